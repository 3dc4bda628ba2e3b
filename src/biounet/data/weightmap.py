"""Pixel-wise loss weights and separating borders for instance label images (U-Net paper, eq. 2).

Ronneberger et al. (2015) train with a weighted cross entropy whose weight map

    w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))**2 / (2 * sigma**2))

balances the classes (``w_c``) and strongly weights the thin background gaps between touching
cells (the border term), and they insert "separating background labels between touching cells"
into the targets. This module computes both from an integer instance label image, 2D ``(Y, X)``
or 3D ``(Z, Y, X)``: 0 is background (see ``background=``) and every object has its own positive
label; labels need not be consecutive.

``d1(x)`` and ``d2(x)`` are the Euclidean distances from pixel ``x`` to the nearest pixel of the
nearest and of the second-nearest object, as ``scipy.ndimage.distance_transform_edt`` measures
them: between pixel centres, 0 on the object itself, in the units of ``spacing`` (pixels when
``spacing`` is None). By default the formula holds at every pixel, as written: on an object
pixel ``d1 = 0`` and ``d2`` is the distance to the nearest other object, so the rims of touching
objects are weighted as well as the gaps between them. ``border_on="background"`` adds the
border term on background pixels only (the gaps), a common variant.

Speed and exactness: each object gets one distance transform, inside its bounding box enlarged
by a cut-off radius ``R``, and the two smallest distances per pixel are kept. Where
``d1 + d2 <= R`` both objects lie within ``R``, so both windows hold the pixel and ``d1``, ``d2``
are exact; elsewhere they can only come out too large. The weight map uses
``R = sigma * sqrt(2 ln(w0 / tol))``, where the border term falls to ``tol``, and sets the term to
0 wherever it is below ``tol``: the result is eq. 2 truncated at ``tol`` (absolute error below
``tol``), independent of the windows. The cost grows as ``objects * (object size + 2 R) ** ndim``;
a 512 x 512 image of 200 cells takes about 50 ms on one CPU core (``benchmarks/weightmap.py``),
30 times less than one whole-image transform per object.

References
----------
O. Ronneberger, P. Fischer, T. Brox. U-Net: Convolutional Networks for Biomedical Image
Segmentation. MICCAI 2015, section 3, eq. 2.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from biounet.core.checks import look_up

__all__ = [
    "WeightConfig",
    "balanced_class_weights",
    "class_frequencies",
    "separation_borders",
    "weight_map",
    "with_separation",
]

#: where ``weight_map`` adds the border term (the first is the default)
BORDER_ON = ("all", "background")

ClassWeights = str | Sequence[float] | Mapping[int, float] | None
Spacing = float | Sequence[float] | None

#: how ``WeightConfig.balance`` balances the class frequencies
BALANCES = ("image", "dataset", "none")


@dataclass(frozen=True)
class WeightConfig:
    """The paper's loss weights: ``w = w_c + w0 * exp(-(d1 + d2)**2 / (2 sigma**2))``.

    ``d1``, ``d2`` are the distances to the nearest and second-nearest object (0 on the
    object itself), computed by :func:`biounet.data.weightmap.weight_map`.

    Attributes
    ----------
    w0 : float
        Border weight (the paper: 10); 0 switches the border term off.
    sigma : float
        Border width, in the units of ``spacing`` (px by default; the paper: about 5 px).
    balance : {"image", "dataset", "none"}
        Class-frequency balancing ``w_c``: per image, over the whole training set, or none.
    separation : int
        Pixels between two objects closer than this (units of ``spacing``) become background
        in the target (the paper's separating borders); 0 switches it off. Needs instance
        annotations: in binary or class masks touching objects form one connected region, so
        there is no border between them to find.
    border_on : {"all", "background"}
        Where the border term is added: "all" (default) at every pixel, as eq. 2 is written
        (object pixels next to another object are weighted too: there ``d1 = 0``);
        "background" only on background pixels, the gaps between objects.
    spacing : tuple of float, optional
        Pixel size per axis (e.g. ``(50.0, 4.0, 4.0)`` nm for anisotropic ``(Z, Y, X)`` EM),
        one number per spatial axis or one for all; distances, ``sigma`` and ``separation``
        are then in these units. None: 1 per axis (isotropic, pixels).
    """

    w0: float = 10.0
    sigma: float = 5.0
    balance: str = "image"
    separation: int = 0
    border_on: str = "all"
    spacing: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        look_up(self.balance, BALANCES, "weights.balance")
        look_up(self.border_on, BORDER_ON, "weights.border_on")
        for name, strict in (("w0", False), ("sigma", True), ("separation", False)):
            v = getattr(self, name)
            ok = (
                isinstance(v, int | float)
                and math.isfinite(v)
                and (v > 0 or (not strict and v == 0))
            )
            if not ok:
                relation = "> 0" if strict else ">= 0"
                raise ValueError(f"weights.{name} must be a finite number {relation}, got {v!r}")
        if self.spacing is not None:
            raw = self.spacing
            values = (raw,) if isinstance(raw, int | float) else raw
            try:
                spacing = tuple(float(v) for v in values)
            except (TypeError, ValueError):
                spacing = ()
            if not spacing or not all(math.isfinite(v) and v > 0 for v in spacing):
                raise ValueError(
                    "weights.spacing must be positive pixel sizes, one per spatial axis (e.g. "
                    f"[50, 4, 4]) or one for all, got {raw!r}"
                )
            object.__setattr__(self, "spacing", spacing)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (for YAML and the cache key)."""
        return asdict(self)


def weight_map(
    labels: np.ndarray,
    *,
    w0: float = 10.0,
    sigma: float = 5.0,
    class_weights: ClassWeights = "balanced",
    spacing: Spacing = None,
    background: int = 0,
    border_on: str = "all",
    tol: float = 1e-6,
) -> np.ndarray:
    """Pixel-wise loss weights ``w = w_c + w0 * exp(-(d1 + d2)**2 / (2 sigma**2))`` (paper, eq. 2).

    Parameters
    ----------
    labels : (Y, X) or (Z, Y, X) array of int
        Instance labels: ``background`` (default 0) or one non-negative label per object. Bool
        arrays and floats holding whole numbers are accepted.
    w0 : float, default 10.0
        Height of the border term (the paper's 10), in units of weight.
    sigma : float, default 5.0
        Width of the border term, in the units of ``spacing`` (the paper's 5 px).
    class_weights : "balanced", None, sequence of 2 floats or mapping {0: float, 1: float}
        ``w_c``, one weight for background (class 0) and one for foreground (class 1, all
        objects). "balanced": inverse class frequency of this image's foreground/background
        mask, scaled so that the more frequent class gets 1 (see ``balanced_class_weights``).
        None: ``w_c = 1``. Explicit weights, e.g. from ``class_frequencies`` over a data set.
    spacing : float or sequence of float, optional
        Pixel size per axis (e.g. ``(2.0, 0.5, 0.5)`` µm for ``(Z, Y, X)``); distances and
        ``sigma`` are in these units. Default: 1 per axis (pixels).
    background : int, default 0
        Label value of the background.
    border_on : {"all", "background"}, default "all"
        Where the border term is added. "all" (default, eq. 2 as written): on every pixel; on
        an object pixel ``d1 = 0`` and ``d2`` is the distance to the nearest other object, so
        object pixels next to another object are weighted too. "background": only on
        background pixels, i.e. on the gaps between objects; object pixels keep ``w = w_c``.
    tol : float, default 1e-6
        The border term is set to 0 where it is below ``tol`` (weight units); this bounds the
        work to a radius ``sigma * sqrt(2 ln(w0 / tol))`` around each object (about 5.7 sigma
        by default). ``tol=0`` computes the untruncated formula (slow on large images).

    Returns
    -------
    (Y, X) or (Z, Y, X) array of float32
        The weights, ``labels.shape``.

    Notes
    -----
    The border term needs two objects: with fewer than 2 objects it is 0 everywhere and
    ``w = w_c``. It is computed from the labels as given; to weight the separating gaps that
    ``with_separation`` inserts, pass ``weight_map(with_separation(labels))``.

    Examples
    --------
    Two 1-pixel cells 4 px apart: on the midpoint ``d1 = d2 = 2``, so the term is
    ``10 * exp(-16 / 50)``.

    >>> labels = np.zeros((3, 7), dtype=np.uint8)
    >>> labels[1, 1], labels[1, 5] = 1, 2
    >>> w = weight_map(labels, class_weights=None)
    >>> w.dtype, w.shape
    (dtype('float32'), (3, 7))
    >>> round(float(w[1, 3]), 4), round(1 + 10 * math.exp(-16 / 50), 4)
    (8.2615, 8.2615)

    On an object pixel ``d1 = 0`` and ``d2 = 4``; ``border_on="background"`` leaves it at ``w_c``:

    >>> round(float(w[1, 1]), 4), round(1 + 10 * math.exp(-16 / 50), 4)
    (8.2615, 8.2615)
    >>> float(weight_map(labels, class_weights=None, border_on="background")[1, 1])
    1.0
    """
    arr = _check_labels(labels)
    w0 = _check_number("w0", w0, minimum=0.0)
    sigma = _check_number("sigma", sigma, minimum=0.0, strict=True)
    tol = _check_number("tol", tol, minimum=0.0)
    border_on = look_up(border_on, BORDER_ON, "border_on")
    sampling = _check_spacing(spacing, arr.ndim)
    lab, objects = _relabel(arr, background)

    fg = lab != 0
    w_bg, w_fg = _resolve_class_weights(class_weights, fg)
    weights: np.ndarray = np.where(fg, np.float32(w_fg), np.float32(w_bg))
    if len(objects) < 2 or w0 == 0.0 or w0 <= tol:
        return weights  # no border term: it needs two objects and is everywhere below tol

    cutoff = math.inf if tol == 0.0 else sigma * math.sqrt(2.0 * math.log(w0 / tol))
    d1, d2 = _two_nearest(lab, objects, sampling, cutoff)
    where = ~fg if border_on == "background" else np.ones_like(fg)
    dsum = d1[where] + d2[where]  # inf where no second object lies within the cut-off
    term = w0 * np.exp(-(dsum * dsum) / (2.0 * sigma * sigma))
    term[term < tol] = 0.0
    weights[where] += term.astype(np.float32)
    return weights


def separation_borders(
    labels: np.ndarray, *, width: float = 2.0, spacing: Spacing = None, background: int = 0
) -> np.ndarray:
    """Pixels that must be background so that different objects end up ``width`` apart.

    A pixel ``x`` (background or object) is marked when it lies on a short path between two
    different objects: ``d1(x) + d2(x) < width``, with ``d1``, ``d2`` the distances to the
    nearest and second-nearest object (``d1 = 0`` on an object pixel, so an object pixel is
    marked when another object is closer than ``width``). This is the paper's "separating
    background labels between touching cells", and it works for objects that touch with no gap.

    Parameters
    ----------
    labels : (Y, X) or (Z, Y, X) array of int
        Instance labels, as for ``weight_map``.
    width : float, default 2.0
        Smallest distance (units of ``spacing``, between pixel centres) allowed between two
        different objects. The default 2 leaves at least one background pixel between objects
        that touched, also diagonally; two objects that touch face to face lose one layer each.
    spacing : float or sequence of float, optional
        Pixel size per axis; default 1 (pixels).
    background : int, default 0
        Label value of the background.

    Returns
    -------
    (Y, X) or (Z, Y, X) array of bool
        True where the target must be background: object pixels closer than ``width`` to
        another object, and the background between such objects.

    Notes
    -----
    After ``with_separation`` every remaining pixel of an object is at least ``width`` from every
    other object's original pixels, so different objects are at least ``width`` apart. Objects
    already ``width`` or more apart are untouched (no pixel satisfies the rule, by the triangle
    inequality). An object thinner than ``width`` next to another object can lose all its pixels.

    Examples
    --------
    >>> labels = np.array([[1, 1, 1, 2, 2, 2, 0, 0, 3]])
    >>> separation_borders(labels).astype(int)
    array([[0, 0, 1, 1, 0, 0, 0, 0, 0]])
    """
    arr = _check_labels(labels)
    width = _check_number("width", width, minimum=0.0, strict=True)
    sampling = _check_spacing(spacing, arr.ndim)
    lab, objects = _relabel(arr, background)
    if len(objects) < 2:
        return np.zeros(arr.shape, dtype=bool)
    d1, d2 = _two_nearest(lab, objects, sampling, width)
    return np.asarray(d1 + d2 < width)


def with_separation(
    labels: np.ndarray, *, width: float = 2.0, spacing: Spacing = None, background: int = 0
) -> np.ndarray:
    """A copy of ``labels`` with the ``separation_borders`` set to ``background``.

    Parameters
    ----------
    labels : (Y, X) or (Z, Y, X) array of int
        Instance labels, as for ``weight_map``.
    width : float, default 2.0
        Smallest distance allowed between different objects (see ``separation_borders``).
    spacing : float or sequence of float, optional
        Pixel size per axis; default 1 (pixels).
    background : int, default 0
        Label value of the background.

    Returns
    -------
    (Y, X) or (Z, Y, X) array
        The labels, same shape and dtype as ``labels`` (bool and whole-number floats included).

    Examples
    --------
    >>> with_separation(np.array([[1, 1, 1, 2, 2, 2]]))
    array([[1, 1, 0, 0, 2, 2]])
    """
    mask = separation_borders(labels, width=width, spacing=spacing, background=background)
    out = np.array(labels, copy=True)
    out[mask] = background
    return out


def class_frequencies(
    label_images: np.ndarray | Iterable[np.ndarray], *, background: int = 0
) -> np.ndarray:
    """Fraction of background and foreground pixels over one label image or a data set.

    Parameters
    ----------
    label_images : array or iterable of arrays
        One label image (2D or 3D), or several (any mix of shapes), as for ``weight_map``.
    background : int, default 0
        Label value of the background.

    Returns
    -------
    (2,) array of float64
        ``[background, foreground]`` pixel fractions over all images together; they sum to 1.

    Examples
    --------
    >>> class_frequencies([np.array([[0, 0, 0, 1]]), np.array([[0, 2], [2, 2]])])
    array([0.5, 0.5])
    """
    images = [label_images] if isinstance(label_images, np.ndarray) else label_images
    counts = np.zeros(2, dtype=np.float64)
    n_images = 0
    for n_images, image in enumerate(images, start=1):
        arr = _check_labels(image, what=f"label image {n_images - 1}")
        n_fg = np.count_nonzero(arr != background)
        counts += (arr.size - n_fg, n_fg)
    if counts.sum() == 0:
        raise ValueError(f"class_frequencies needs at least one pixel; got {n_images} images of 0")
    fractions: np.ndarray = counts / counts.sum()
    return fractions


def balanced_class_weights(frequencies: Sequence[float] | np.ndarray) -> np.ndarray:
    """Inverse-frequency class weights, scaled so that the most frequent class gets 1.

    Parameters
    ----------
    frequencies : (K,) array_like of float
        Pixel counts or fractions per class (e.g. from ``class_frequencies``), non-negative,
        at least one positive.

    Returns
    -------
    (K,) array of float64
        ``max(frequencies) / frequencies``; a class with frequency 0 gets weight 0 (it has no
        pixels to weight).

    Examples
    --------
    >>> balanced_class_weights([0.8, 0.2])
    array([1., 4.])
    """
    try:
        f = np.asarray(frequencies, dtype=np.float64)
    except (TypeError, ValueError):
        f = np.full(0, np.nan)
    if f.ndim != 1 or f.size == 0 or not np.all(np.isfinite(f)) or np.any(f < 0) or f.max() == 0:
        raise ValueError(
            "frequencies must be a non-empty 1D sequence of finite non-negative numbers with at "
            f"least one positive; got {frequencies!r}"
        )
    out = np.zeros_like(f)
    np.divide(f.max(), f, out=out, where=f > 0)
    return out


# --- helpers -------------------------------------------------------------------------------------


def _resolve_class_weights(class_weights: ClassWeights, fg: np.ndarray) -> tuple[float, float]:
    """``(w_background, w_foreground)`` from the ``class_weights`` option of ``weight_map``."""
    expected = (
        "class_weights must be 'balanced', None, two weights [background, foreground] or a "
        f"mapping {{0: background, 1: foreground}}; got {class_weights!r}"
    )
    if class_weights is None:
        return 1.0, 1.0
    if isinstance(class_weights, str):
        if class_weights != "balanced":
            raise ValueError(expected)
        n_fg = int(np.count_nonzero(fg))
        w = balanced_class_weights([fg.size - n_fg, n_fg]) if fg.size else (1.0, 1.0)
        return float(w[0]), float(w[1])
    if isinstance(class_weights, Mapping):
        if set(class_weights) != {0, 1}:
            raise ValueError(expected)
        pair = [class_weights[0], class_weights[1]]
    else:
        pair = list(class_weights)
    try:
        values = np.asarray(pair, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(expected) from None
    if values.shape != (2,) or not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(expected + " (two finite, non-negative numbers)")
    return float(values[0]), float(values[1])


def _check_labels(labels: np.ndarray, what: str = "labels") -> np.ndarray:
    """Validate an instance label image and return it as an integer array."""
    arr = np.asarray(labels)
    if arr.ndim not in (2, 3):
        raise ValueError(
            f"{what} must be a 2D (Y, X) or 3D (Z, Y, X) label image; got a {arr.ndim}D array "
            f"of shape {arr.shape}"
        )
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            raise ValueError(
                f"{what} must hold whole numbers (instance labels); got {arr.dtype} values such "
                f"as {arr[bad].flat[0].item()!r}"
            )
        arr = arr.astype(np.int64)
    elif not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{what} must be an integer label image; got dtype {arr.dtype}")
    if arr.size and np.issubdtype(arr.dtype, np.signedinteger) and arr.min() < 0:
        raise ValueError(
            f"{what} must be non-negative (background 0, objects 1, 2, ...); got minimum "
            f"{arr.min()}"
        )
    return arr


def _check_number(name: str, value: float, *, minimum: float, strict: bool = False) -> float:
    """Return ``value`` as a float if finite and above ``minimum``, else raise ValueError."""
    v = float(value)
    if not math.isfinite(v) or v < minimum or (strict and v == minimum):
        relation = ">" if strict else ">="
        raise ValueError(f"{name} must be a finite number {relation} {minimum:g}; got {value!r}")
    return v


def _check_spacing(spacing: Spacing, ndim: int) -> tuple[float, ...]:
    """Return the pixel size per axis as a tuple of ``ndim`` positive floats."""
    if spacing is None:
        return (1.0,) * ndim
    s = np.atleast_1d(np.asarray(spacing, dtype=np.float64))
    if s.ndim != 1 or s.size not in (1, ndim) or not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ValueError(
            f"spacing must be one positive number or {ndim} (one per axis of the {ndim}D "
            f"labels); got {spacing!r}"
        )
    return tuple(float(v) for v in np.broadcast_to(s, (ndim,)))


def _relabel(arr: np.ndarray, background: int) -> tuple[np.ndarray, list[tuple[int, tuple]]]:
    """Labels with background 0, and ``(label, bounding box)`` for every object."""
    if background == 0 and arr.size and int(arr.max()) <= arr.size:
        lab = arr  # small labels: no copy, find_objects indexes by label value
    else:
        values, inverse = np.unique(arr, return_inverse=True)
        is_object = values != background
        lut = (np.cumsum(is_object) * is_object).astype(np.int32)
        lab = lut[inverse].reshape(arr.shape)
    boxes = ndi.find_objects(lab) if lab.size else []
    return lab, [(k, box) for k, box in enumerate(boxes, start=1) if box is not None]


def _two_nearest(
    lab: np.ndarray,
    objects: list[tuple[int, tuple]],
    sampling: tuple[float, ...],
    cutoff: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Distances ``d1``, ``d2`` to the nearest and second-nearest object (float64, lab.shape).

    Exact wherever ``d1 + d2 <= cutoff``; elsewhere they may be too large (inf where fewer than
    two objects lie within ``cutoff``).
    """
    d1 = np.full(lab.shape, np.inf)
    d2 = np.full(lab.shape, np.inf)
    margins = [
        n if math.isinf(cutoff) else math.ceil(cutoff / s) + 1 for n, s in zip(lab.shape, sampling)
    ]
    for k, box in objects:
        window = tuple(
            slice(max(b.start - m, 0), min(b.stop + m, n))
            for b, m, n in zip(box, margins, lab.shape)
        )
        dist = ndi.distance_transform_edt(lab[window] != k, sampling=sampling)
        near, second = d1[window], d2[window]  # views: updated in place
        np.minimum(second, np.maximum(near, dist), out=second)
        np.minimum(near, dist, out=near)
    return d1, d2
