"""Planning a network for anisotropic voxels: which levels treat an axis as coarse, tile shapes.

A stack whose z step is 2.2x its pixel size holds nuclei that span 2.2x fewer planes than
pixels across. Pooling every axis alike would halve the already coarse z from the first level
on; nnU-Net's plan, followed here, leaves a coarse axis alone (kernel 1, no pooling) at every
level where its voxels are still at least twice as long as the finest axis's, so after a level
or two the pooled voxels are about cubic and the network goes on isotropically. Tiles follow
the same rule: a tile covers about the same physical extent along every axis.

>>> coarse_levels((2.2, 1.0, 1.0), depth=3), coarse_levels((5.0, 1.0, 1.0), depth=3)
((1, 0, 0), (2, 0, 0))
>>> coarse_levels((1.5, 1.0, 1.0), depth=3), coarse_levels((1.0, 1.0), depth=4)
((0, 0, 0), (0, 0))
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from biounet.core.checks import check_spacing
from biounet.model.shapes import ShapeGeometry

__all__ = ["coarse_levels", "physical_tile"]


def coarse_levels(spacing: Sequence[float], depth: int) -> tuple[int, ...]:
    """Per axis, how many first levels treat it as coarse, for voxels of ``spacing``.

    Axis ``a`` is coarse at level ``l`` while ``spacing[a] / (min(spacing) * 2**l) >= 2``: its
    voxels are at least twice as long as those of the finest axis, pooled ``l`` times. At
    most ``depth`` levels.

    Parameters
    ----------
    spacing : sequence of float
        Voxel size per spatial axis, any unit (only the ratios matter).
    depth : int
        The network's number of poolings.

    Returns
    -------
    tuple of int
        One count per axis, 0 for the finest.
    """
    sizes = check_spacing(tuple(spacing), None, "spacing")
    low = min(sizes)
    # floor(log2 r) with a tolerance, so that a ratio of 2 read as 1.9999999 counts as 2
    return tuple(min(depth, max(0, math.floor(math.log2(s / low) + 1e-6))) for s in sizes)


def physical_tile(
    tile: int, spacing: Sequence[float] | None, geometry: ShapeGeometry
) -> tuple[int, ...]:
    """A valid input tile of about ``tile`` px of the finest axis's extent along every axis.

    Along an axis whose voxels are ``r`` times longer, ``tile / r`` voxels cover the same
    length; each axis is rounded up to the next valid size of ``geometry``.

    >>> from biounet.model.geometry import Geometry
    >>> g = ShapeGeometry.of(Geometry(depth=3, padding="same"), coarse=(1, 0, 0))
    >>> physical_tile(96, (2.2, 1.0, 1.0), g)
    (44, 96, 96)
    """
    n = geometry.ndim
    if spacing is None:
        return geometry.valid_shape((tile,) * n)
    sizes = check_spacing(tuple(spacing), n, "spacing")
    low = min(sizes)
    return geometry.valid_shape(tuple(max(1, math.ceil(tile * low / s)) for s in sizes))
