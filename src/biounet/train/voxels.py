"""The voxel spacing of a run: where it comes from, and what it changes in training.

A stack whose z step is 2.2x its pixel size is not a cube of voxels: a nucleus spans 2.2x
fewer planes than pixels across. The spacing is ``data.spacing`` when given, else the one the
training images declare (OME or ImageJ metadata; :attr:`biounet.data.layouts.Sample.spacing`),
else none (isotropic). It changes four things, each only where an axis is coarse:

- the network: :func:`biounet.model.plan.coarse_levels` leaves a coarse axis unpooled (kernel 1)
  until the others have caught up (``model.coarse_levels``, unless set);
- the tile: about the same physical extent along every axis
  (:func:`biounet.model.plan.physical_tile`);
- the weight map: distances, ``sigma`` and ``separation`` in units of the finest axis's voxel
  (``weights.spacing``, unless set);
- augmentation: elastic displacements and shifts are the same physical length along every axis,
  and no rotation mixes axes of different spacing (3D rotations turn the y-x plane only).

:class:`VoxelPlan` carries the spacing and applies it; it is stored in every checkpoint
(``spacing``) and ``predict`` reads it back (``TrainedModel.spacing``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from biounet.config import TrainConfig
from biounet.core.checks import check_spacing
from biounet.data.augment import AugmentConfig
from biounet.data.layouts import Sample
from biounet.data.weightmap import WeightConfig
from biounet.model.plan import coarse_levels, physical_tile
from biounet.model.shapes import ShapeGeometry
from biounet.model.unet import UNetConfig

log = logging.getLogger(__name__)

__all__ = ["VoxelPlan", "resolve_spacing"]

#: relative difference below which two images' spacings count as the same
SAME_SPACING = 0.02


def resolve_spacing(cfg: TrainConfig, samples: Sequence[Sample]) -> tuple[float, ...] | None:
    """The run's voxel spacing: ``data.spacing``, else the samples' declared one, else None.

    Raises
    ------
    ValueError
        A ``data.spacing`` with another number of values than spatial axes, or not positive.
    """
    ndim = cfg.data.ndim
    if cfg.data.spacing:
        given = check_spacing(cfg.data.spacing, None, "data.spacing")
        if len(given) != ndim:
            axes = "[z, y, x]" if ndim == 3 else "[y, x]"
            raise ValueError(
                f"data.spacing {list(cfg.data.spacing)} must give one voxel size per spatial "
                f"axis, {axes} for data.ndim {ndim}"
            )
        return given
    declared = [s.spacing for s in samples if s.spacing is not None]
    if not declared:
        return None
    first = tuple(float(v) for v in declared[0])
    if len(first) != ndim:
        return None
    differ = [
        s
        for s in declared[1:]
        if len(s) != ndim or any(abs(a / b - 1) > SAME_SPACING for a, b in zip(s, first))
    ]
    if differ or len(declared) < len(samples):
        log.warning(
            "the training images declare different voxel spacings (or some none); using "
            "the first, %s: set data.spacing to choose",
            first,
        )
    return first


@dataclass(frozen=True)
class VoxelPlan:
    """What a voxel spacing changes: the network, the tile, the weight map, augmentation.

    Attributes
    ----------
    spacing : tuple of float or None
        Voxel size per spatial axis as given or read (any unit); None: isotropic, unknown.
    """

    spacing: tuple[float, ...] | None = None

    @property
    def relative(self) -> tuple[float, ...] | None:
        """The spacing in units of the finest axis (its smallest value is 1); None: none."""
        if self.spacing is None:
            return None
        low = min(self.spacing)
        return tuple(s / low for s in self.spacing)

    @property
    def relative_if_anisotropic(self) -> tuple[float, ...] | None:
        """:attr:`relative` where the voxels are anisotropic, else None (distances in px)."""
        return self.relative if self.anisotropic else None

    @property
    def anisotropic(self) -> bool:
        """Whether some axis is at least 1.5x coarser than the finest (or finer than others)."""
        r = self.relative
        return r is not None and max(r) >= 1.5

    def unet_config(self, cfg: TrainConfig, in_channels: int) -> UNetConfig:
        """The run's network: ``cfg``'s, with coarse levels planned from the spacing.

        ``model.coarse_levels`` given in the configuration wins.
        """
        net = cfg.unet_config(in_channels)
        if "coarse_levels" in cfg.model or self.spacing is None:
            return net
        levels = coarse_levels(self.spacing, net.depth)
        if any(levels):
            log.info("voxel spacing %s: axes coarse for %s level(s)", self.spacing, levels)
        return dataclasses.replace(net, coarse_levels=levels)

    def tile(self, tile: int, geometry: ShapeGeometry) -> tuple[int, ...]:
        """The training tile: ``tile`` px of the finest axis's extent along every axis, valid."""
        return physical_tile(tile, self.relative if self.anisotropic else None, geometry)

    def weights(self, w: WeightConfig) -> WeightConfig:
        """``w`` with distances in units of the finest axis's voxel (unless it has a spacing)."""
        if w.spacing is not None or not self.anisotropic:
            return w
        return dataclasses.replace(w, spacing=self.relative)

    def augment(self, a: AugmentConfig) -> AugmentConfig:
        """``a`` told the spacing: physical displacements, no rotation across spacings."""
        if a.spacing is not None or not self.anisotropic:
            return a
        return dataclasses.replace(a, spacing=self.relative)
