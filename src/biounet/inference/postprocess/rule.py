"""The instance rule of a model: how its probabilities become cells, learnt from training labels."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from biounet.core.checks import check_fraction, check_spacing, look_up
from biounet.data.annotations import INSTANCE_TARGETS
from biounet.inference.postprocess.arguments import check_min_size, check_probs
from biounet.inference.postprocess.cells import instances

if TYPE_CHECKING:
    from biounet.data.objects import ObjectSizes

__all__ = ["H_FRACTION", "MIN_SIZE_FRACTION", "InstanceRule"]

#: ``min_size`` as a fraction of the 5th percentile of the training objects' areas
MIN_SIZE_FRACTION = 0.25
#: ``h`` as a fraction of the median equivalent radius of the training objects, per target
H_FRACTION = {"two_class": 0.15, "three_class": 0.3}
#: the smallest ``h`` a rule derives (px): below one pixel the steps of the distance transform
#: itself would seed objects
H_FLOOR = 1.0


@dataclass(frozen=True)
class InstanceRule:
    """How a model's class probabilities become cell instances: target, seeds, smallest object.

    A trained model carries one (:attr:`biounet.inference.trained.TrainedModel.instance_rule`),
    derived by :meth:`from_sizes` from its training labels, and ``biounet predict`` applies it.

    Attributes
    ----------
    target : {"two_class", "three_class"}
        What the network predicts: background/object (objects are class 1), or
        background/interior/boundary (objects are classes 1 and 2 pooled, seeded in the
        interior, class 1).
    min_size : int
        Objects with fewer pixels (voxels) are dropped.
    h : float
        Depth of the watershed seeds (px): a maximum of the distance transform seeds its own
        object only if it rises ``h`` above the saddle to a higher one (see
        :func:`~biounet.inference.postprocess.instances`).
    fill_holes : bool
        Fill the holes an object encloses on its own.
    threshold : float in (0, 1)
        A pixel belongs to an object where the object classes' probability exceeds it (0.5
        by default; a network trained with class-balanced weights tends to extend objects
        into the background, which a higher threshold undoes: chosen on the validation
        images by :func:`biounet.train.tune.tune_rule`).
    source : str
        What the values were derived from, for people (``biounet inspect``).
    spacing : tuple of float or None
        Voxel size per spatial axis in units of the finest (e.g. ``(2.2, 1, 1)``): distances
        (the seeds' depth ``h``) are then measured in px of the finest axis, as the training
        objects' radius is. None: every axis 1 px.

    Examples
    --------
    >>> rule = InstanceRule("two_class", min_size=30, h=3.0)
    >>> InstanceRule.from_dict(rule.to_dict()) == rule
    True
    """

    target: str = "two_class"
    min_size: int = 0
    h: float = 2.0
    fill_holes: bool = True
    source: str = "defaults"
    threshold: float = 0.5
    spacing: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.spacing is not None:
            object.__setattr__(self, "spacing", check_spacing(self.spacing, None, "rule spacing"))
        look_up(self.target, INSTANCE_TARGETS, "instance rule target")
        check_min_size(self.min_size)
        check_fraction(self.threshold, "instance rule threshold")
        object.__setattr__(self, "threshold", float(self.threshold))
        if not (isinstance(self.h, int | float) and math.isfinite(self.h) and self.h > 0):
            raise ValueError(f"instance rule h must be a number of pixels > 0, got {self.h!r}")
        object.__setattr__(self, "min_size", int(self.min_size))
        object.__setattr__(self, "h", float(self.h))

    @classmethod
    def from_sizes(
        cls,
        sizes: ObjectSizes | None,
        target: str = "two_class",
        *,
        h_fraction: float | None = None,
        min_size_fraction: float | None = None,
        threshold: float = 0.5,
    ) -> InstanceRule:
        """The rule for a model trained on labels with object sizes ``sizes`` and ``target``.

        Parameters
        ----------
        sizes : ObjectSizes or None
            The training labels' object sizes (:func:`biounet.data.objects.object_sizes`).
            None (no objects, or not known): ``min_size`` 0 and ``h`` 2 px, the defaults of
            :func:`~biounet.inference.postprocess.instances`.
        target : {"two_class", "three_class"}
            The instance target the network was trained on.
        h_fraction, min_size_fraction : float, optional
            Other fractions than the defaults below (``H_FRACTION[target]``,
            ``MIN_SIZE_FRACTION``), e.g. chosen on validation images
            (:func:`biounet.train.tune.tune_rule`).
        threshold : float in (0, 1), default 0.5
            The rule's foreground threshold.

        Returns
        -------
        InstanceRule

        Notes
        -----
        The general rule, in units of the training objects (``r = sqrt(A_median / pi)``, the
        median equivalent radius, ``(3 V / (4 pi))^(1/3)`` in 3D):

        - ``min_size = round(0.25 * A_p05)``, a quarter of the 5th-percentile object area:
          smaller objects are almost never real (0.3% of the Usiigaci training cells, sets
          01-35, 6 of 2186, are below it: 137 px, and none of the synthetic cells: 23 px),
          while the spurious specks of a network are a few pixels whatever the objects' size
          (median 2 px on real nuclei, issue 12). A data set whose small end is fragments
          cut by the image edge gets a small ``min_size``, never one that drops real cells.
        - ``h = max(f * r, 1 px)`` with ``f = 0.15`` for the 2-class target and ``0.3`` for
          the 3-class one. Measured on the true labels turned into ideal probabilities, then
          blurred by a Gaussian of 1 px, 2 px (plus noise of 0.1) and 3 px (plus noise), on 4
          crops of 512 x 512 px of Usiigaci training images (sets 03, 11, 19, 27; r = 27 px,
          irregular cells, 263 objects) and 4 synthetic images of ``make_cells`` (r = 10 px,
          clustered, 332 objects), AP@0.5 (and cells split in two, pairs merged):

          - 2-class, the paper's target with separating gaps: Usiigaci 0.75-0.79 at today's
            2 px (9-11 cells split), 0.83-0.84 at ``f`` = 0.1 (5-6 split), 0.82-0.91 at 0.15,
            0.82-0.93 at 0.2, 0.77-0.94 at 0.5 (up to 10 merges); synthetic: 1.00 unblurred
            for every ``f``, blurred 0.45-0.81 at 0.1, 0.40-0.76 at 0.15, 0.36-0.70 at 0.2,
            0.31-0.59 at 0.3 (the blur closes the 1-px gaps of packed cells, which the
            distance transform must then split, the better the smaller ``h``). 0.15 stops the
            splitting of real cells and merges fewer packed cells than 0.2.
          - 3-class, seeds in the interior (``1 - p_interior`` as the boundary map): synthetic
            0.94-1.00 for every ``f`` from 0.1 to 0.5 (0.86 with one seed per interior
            region under the 3-px blur), Usiigaci 0.77-0.79 at 2 px, 0.78-0.83 at 0.1,
            0.88-0.92 at 0.2, 0.89-0.93 at 0.3, 0.88-0.93 at 0.5. The predicted boundary
            cuts the interiors apart, so the distance transform only splits where the
            boundary was missed, and a deeper ``h`` costs little there.

        ``fill_holes`` is True: cells and nuclei are filled objects.

        Examples
        --------
        >>> from biounet.data.objects import ObjectSizes
        >>> sizes = ObjectSizes(100, 120.0, 250.0, 314.16, 400.0, 600.0, 20.0, 2)
        >>> rule = InstanceRule.from_sizes(sizes, "three_class")
        >>> rule.min_size, rule.h
        (30, 3.0)
        >>> InstanceRule.from_sizes(None).h
        2.0
        """
        look_up(target, INSTANCE_TARGETS, "instance target")
        if sizes is None:
            return cls(target, source="defaults (no object sizes: none found in the labels)")
        r = sizes.radius_median
        f = H_FRACTION[target] if h_fraction is None else float(h_fraction)
        m = MIN_SIZE_FRACTION if min_size_fraction is None else float(min_size_fraction)
        if not (f > 0 and m >= 0):
            raise ValueError(f"h_fraction must be > 0 and min_size_fraction >= 0, got {f}, {m}")
        h = round(max(f * r, H_FLOOR), 1)
        min_size = round(m * sizes.area_p05)
        unit = "px" if sizes.ndim == 2 else "voxels"
        source = (
            f"{sizes.count} training objects: min_size {m:g} x area p05 "
            f"{sizes.area_p05:.4g} {unit}, h {f:g} x median radius {r:.3g} px"
        )
        return cls(
            target, min_size=min_size, h=h, fill_holes=True, source=source, threshold=threshold
        )

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain values (for checkpoints and JSON)."""
        d = asdict(self)
        d["spacing"] = None if self.spacing is None else list(self.spacing)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> InstanceRule:
        """The rule :meth:`to_dict` wrote; an unknown key is a ValueError naming it."""
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"instance rule: unknown keys {sorted(unknown)} (known: "
                f"{sorted(cls.__dataclass_fields__)}); the checkpoint is from another version"
            )
        return cls(**dict(d))

    def describe(self) -> str:
        """One line for people: the target, the values, and what they came from."""
        voxels = "" if self.spacing is None else f", voxel spacing {list(self.spacing)}"
        return (
            f"{self.target}: min_size {self.min_size} px, h {self.h:g} px, "
            f"threshold {self.threshold:g}, fill_holes {self.fill_holes}{voxels} ({self.source})"
        )

    def options(self, probs: np.ndarray) -> dict[str, Any]:
        """The keywords of :func:`~biounet.inference.postprocess.instances` for ``probs``.

        ``probs``: ``(C, *S)`` float probabilities; the 3-class target needs ``C == 3``.
        Returns ``foreground_class``, ``h``, ``min_size``, ``fill_holes``, ``threshold``
        and, for the 3-class target, ``border_prob = 1 - probs[1]`` (not interior): seeds lie
        where the interior is more likely than not, and the watershed floods the rest of the
        objects from them.
        """
        p = check_probs(probs, "probs")
        kw: dict[str, Any] = {
            "h": self.h,
            "min_size": self.min_size,
            "fill_holes": self.fill_holes,
            "threshold": self.threshold,
        }
        if self.spacing is not None and len(self.spacing) == p.ndim - 1:
            kw["spacing"] = self.spacing
        if self.target == "two_class":
            return {"foreground_class": 1, **kw}
        if p.shape[0] != 3:
            raise ValueError(
                f"the instance rule's target is 'three_class' (background, interior, boundary), "
                f"but probs have {p.shape[0]} classes (shape {p.shape}); use the model the rule "
                "came with, or a 'two_class' rule"
            )
        border = np.clip(1.0 - p[1], 0.0, 1.0)
        return {"foreground_class": (1, 2), "border_prob": border, **kw}

    def __call__(self, probs: np.ndarray, **overrides: Any) -> np.ndarray:
        """Instance labels ``(*S)`` int32 of ``(C, *S)`` probabilities by this rule.

        ``overrides``: keywords of :func:`~biounet.inference.postprocess.instances` that
        replace the rule's (a user's ``min_size``, ``h``, ...).

        Examples
        --------
        Two touching disks of radius 8 as ideal 3-class probabilities:

        >>> from biounet.data.annotations import three_class_target
        >>> yy, xx = np.mgrid[:24, :40]
        >>> left, right = (yy - 12) ** 2 + (xx - 12) ** 2 <= 64, (yy - 12) ** 2 + (xx - 27) ** 2 <= 64
        >>> lab = np.where(left, 1, np.where(right, 2, 0))
        >>> c = three_class_target(lab)
        >>> probs = np.stack([c == k for k in range(3)]).astype(np.float32)
        >>> int(InstanceRule("three_class", h=2.4)(probs).max())
        2
        """  # noqa: E501
        return instances(probs, **{**self.options(probs), **overrides})
