"""Object-size statistics of instance label images: how many objects, how large (px, 2D or 3D)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from biounet.core.checks import check_labels

__all__ = ["SCALE_DIAMETER", "ObjectSizes", "auto_scale", "equivalent_diameter", "object_sizes"]

#: the median object diameter (px) that ``data.scale: auto`` shrinks larger objects to
SCALE_DIAMETER = 32.0


@dataclass(frozen=True)
class ObjectSizes:
    """The sizes of the objects of a set of instance label images (the training labels).

    Areas are in pixels (voxels for 3D labels); an object is one label value in one image,
    whether or not its pixels are connected, and objects cut by the image edge count as they
    are seen.

    Attributes
    ----------
    count : int
        Number of objects, over all images.
    area_p05, area_p25, area_median, area_p75, area_p95 : float
        Quantiles of the object areas (px, or voxels in 3D), linear interpolation.
    diameter_median : float
        Median equivalent diameter (px): the diameter of the disk (2D) or ball (3D) of the
        object's area, see :func:`equivalent_diameter`.
    ndim : int
        2 or 3: the dimension of the label images.
    """

    count: int
    area_p05: float
    area_p25: float
    area_median: float
    area_p75: float
    area_p95: float
    diameter_median: float
    ndim: int

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain Python numbers (for checkpoints, JSON and YAML)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ObjectSizes:
        """The statistics :meth:`to_dict` wrote; a missing or unknown key is a ValueError.

        >>> s = ObjectSizes(3, 4.0, 5.0, 6.0, 7.0, 8.0, 2.8, 2)
        >>> ObjectSizes.from_dict(s.to_dict()) == s
        True
        """
        names = set(cls.__dataclass_fields__)
        if set(d) != names:
            raise ValueError(
                f"object sizes: expected the keys {sorted(names)}, got {sorted(d)}; the "
                "checkpoint's 'instances' entry is damaged or from another version"
            )
        floats = {k: float(d[k]) for k in names - {"count", "ndim"}}
        return cls(count=int(d["count"]), ndim=int(d["ndim"]), **floats)

    @property
    def radius_median(self) -> float:
        """The equivalent radius (px) of the median area.

        ``sqrt(A / pi)`` in 2D, ``(3 V / (4 pi))^(1/3)`` in 3D.
        """
        return float(equivalent_diameter(self.area_median, self.ndim)) / 2.0

    def describe(self) -> str:
        """One line for people, e.g. ``"1234 objects (2D), area px p05 80, ..., diameter ..."``.

        >>> print(ObjectSizes(3, 4.0, 5.0, 6.0, 7.0, 8.0, 2.76, 2).describe())
        3 objects (2D); area px: p05 4, p25 5, median 6, p75 7, p95 8; median diameter 2.8 px
        """
        unit = "px" if self.ndim == 2 else "voxels"
        q = (
            f"p05 {self.area_p05:.4g}, p25 {self.area_p25:.4g}, median {self.area_median:.4g}, "
            f"p75 {self.area_p75:.4g}, p95 {self.area_p95:.4g}"
        )
        return (
            f"{self.count} objects ({self.ndim}D); area {unit}: {q}; "
            f"median diameter {self.diameter_median:.2g} px"
        )


def auto_scale(sizes: ObjectSizes | None) -> float:
    """The factor ``data.scale: auto`` resamples images by, for objects of ``sizes``.

    ``SCALE_DIAMETER / d`` (two decimals) when the median equivalent diameter ``d`` is above
    :data:`SCALE_DIAMETER` px, else 1: large objects are shrunk until a network with a
    receptive field of a few such diameters sees a whole object with its neighbours (and
    trains on more objects per tile, faster); small objects are never enlarged. None (no
    objects known): 1.

    >>> auto_scale(ObjectSizes(9, 1.0, 2.0, 2215.0, 4.0, 5.0, 53.0, 2))
    0.6
    >>> auto_scale(ObjectSizes(9, 1.0, 2.0, 300.0, 4.0, 5.0, 19.5, 2)), auto_scale(None)
    (1.0, 1.0)
    """
    if sizes is None or sizes.diameter_median <= SCALE_DIAMETER:
        return 1.0
    return max(0.01, round(SCALE_DIAMETER / sizes.diameter_median, 2))


def equivalent_diameter(area: float | np.ndarray, ndim: int) -> Any:
    """Diameter (px) of the disk (``ndim == 2``) or ball (3) of ``area`` px (voxels).

    >>> round(float(equivalent_diameter(math.pi * 25, 2)), 6)
    10.0
    >>> round(float(equivalent_diameter(4 / 3 * math.pi * 125, 3)), 6)
    10.0
    """
    a = np.asarray(area, np.float64)
    if ndim == 2:
        return 2.0 * np.sqrt(a / math.pi)
    return 2.0 * np.cbrt(3.0 * a / (4.0 * math.pi))


def object_sizes(label_images: Iterable[np.ndarray]) -> ObjectSizes | None:
    """The object-size statistics of instance label images; None when they hold no object.

    Parameters
    ----------
    label_images : iterable of (Y, X) or (Z, Y, X) arrays of int
        Instance labels, 0 = background, each object its own positive integer (labels need not
        be consecutive). All 2D or all 3D; bools and whole-number floats are accepted.

    Returns
    -------
    ObjectSizes or None
        Counts, area quantiles (px) and the median equivalent diameter (px) over all objects of
        all images; None if there is no object at all.

    Raises
    ------
    ValueError
        A label image that is not an integer 2D or 3D image, or a mix of 2D and 3D images.

    Notes
    -----
    One ``numpy.bincount`` per image: time and memory grow with the pixels and the largest
    label, not with the number of objects.

    Examples
    --------
    Two images, objects of 4, 2 and 6 pixels:

    >>> a = np.array([[1, 1, 0], [1, 1, 2], [0, 0, 2]])
    >>> b = np.array([[0, 7, 7], [7, 7, 7], [0, 7, 0]])
    >>> s = object_sizes([a, b])
    >>> s.count, s.area_median, s.area_p05, s.ndim
    (3, 4.0, 2.2, 2)
    >>> object_sizes([np.zeros((4, 4), int)]) is None
    True
    """
    areas: list[np.ndarray] = []
    ndim = None
    for i, image in enumerate(label_images):
        lab = check_labels(image, f"label image {i}", ndims=(2, 3), whole_floats=True)
        if ndim is not None and lab.ndim != ndim:
            raise ValueError(
                f"label image {i} is {lab.ndim}D but the ones before it are {ndim}D; object "
                "sizes are computed over images of one dimension (all 2D or all 3D)"
            )
        ndim = lab.ndim
        counts = np.bincount(lab.ravel())[1:]
        areas.append(counts[counts > 0])
    if ndim is None or not sum(len(a) for a in areas):
        return None
    area = np.concatenate(areas).astype(np.float64)
    q = np.quantile(area, [0.05, 0.25, 0.5, 0.75, 0.95])
    return ObjectSizes(
        count=len(area),
        area_p05=float(q[0]),
        area_p25=float(q[1]),
        area_median=float(q[2]),
        area_p75=float(q[3]),
        area_p95=float(q[4]),
        diameter_median=float(np.median(equivalent_diameter(area, ndim))),
        ndim=ndim,
    )
