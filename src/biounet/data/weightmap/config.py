"""The weight-map settings of a training run (:class:`WeightConfig`), checked when made."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from biounet.core.checks import check_spacing, look_up
from biounet.data.weightmap.borders import BORDER_ON

__all__ = ["BALANCES", "WeightConfig"]

#: how ``WeightConfig.balance`` balances the class frequencies
BALANCES = ("image", "dataset", "none")


@dataclass(frozen=True)
class WeightConfig:
    """The paper's loss weights: ``w = w_c + w0 * exp(-(d1 + d2)**2 / (2 sigma**2))``.

    ``d1``, ``d2`` are the distances to the nearest and second-nearest object (0 on the
    object itself), computed by :func:`biounet.data.weightmap.borders.weight_map`.

    Attributes
    ----------
    w0 : float
        Border weight (the paper: 10); 0 switches the border term off.
    sigma : float
        Border width, in the units of ``spacing`` (px by default; the paper: about 5 px).
    balance : {"image", "dataset", "none"}
        Class-frequency balancing ``w_c``: per image, over the whole training set, or none.
    max_class_weight : float
        Cap on the balancing weights ``w_c`` (the most frequent class has 1); 0: no cap. Sparse
        objects make inverse frequencies large (3% foreground: about 32, and more for the
        boundary class of the 3-class target), which can drive a network to mark everything
        as foreground; the 3D presets cap them.
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
    max_class_weight: float = 0.0
    separation: int = 0
    border_on: str = "all"
    spacing: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        look_up(self.balance, BALANCES, "weights.balance")
        look_up(self.border_on, BORDER_ON, "weights.border_on")
        checked = (
            ("w0", False),
            ("sigma", True),
            ("separation", False),
            ("max_class_weight", False),
        )
        for name, strict in checked:
            v = getattr(self, name)
            ok = (
                isinstance(v, int | float)
                and math.isfinite(v)
                and (v > 0 or (not strict and v == 0))
            )
            if not ok:
                relation = "> 0" if strict else ">= 0"
                raise ValueError(f"weights.{name} must be a finite number {relation}, got {v!r}")
        if 0 < self.max_class_weight < 1:
            raise ValueError(
                f"weights.max_class_weight must be 0 (no cap) or >= 1 (the most frequent class "
                f"has weight 1), got {self.max_class_weight}"
            )
        if self.spacing is not None:
            # the images decide the number of axes; prepare checks that it fits
            spacing = check_spacing(self.spacing, None, "weights.spacing")
            object.__setattr__(self, "spacing", spacing)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (for YAML and the cache key)."""
        return asdict(self)
