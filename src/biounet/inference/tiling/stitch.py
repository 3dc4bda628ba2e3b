"""Writing output tiles into the result: the kept part of each, weighted, mapped back, checked."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from biounet.inference.tiling.plans import AxisTile, Job
from biounet.inference.tiling.transforms import Transform

__all__ = ["check_output_finite", "image_region", "write_tile"]


def image_region(g: Transform, tiles: Sequence[AxisTile], spatial: Sequence[int]) -> list[slice]:
    """Per original spatial axis, the image pixels that the kept part of a tile covers.

    ``tiles`` are the tile's :class:`AxisTile` along each axis of ``g(image)``; ``spatial`` is
    the image's spatial shape, px.
    """
    gshape = g.shape(spatial)
    region: list[slice] = [slice(None)] * len(spatial)
    for k, t in enumerate(tiles):
        axis = g.perm[k]
        lo, hi = t.keep
        if g.flips[axis]:
            lo, hi = gshape[k] - hi, gshape[k] - lo
        region[axis] = slice(lo, hi)
    return region


def write_tile(
    out: Any,
    y: np.ndarray,
    g: Transform,
    tiles: Sequence[AxisTile],
    spatial: Sequence[int],
    accumulate: bool,
    scale: float,
    parts: Sequence[Sequence[slice]] | None = None,
) -> None:
    """Write the kept part of one output tile ``y (K, *out_tile)`` of ``g(image)`` into ``out``.

    ``out`` is the ``(K, *spatial)`` result. The kept part is weighted by the tiles' blending
    windows (if any) and by ``scale`` (``1 / number of transforms``), mapped back to the
    image's orientation, and added to ``out`` (``accumulate``) or written over it. ``parts``
    (boxes of image pixels, one slice per spatial axis, inside the tile's region): write only
    these (:meth:`~biounet.inference.tiling.shards.Shard.owned_parts`); each pixel gets the
    same value as when the whole region is written.
    """
    crop = [slice(None)]
    weight: np.ndarray | None = None
    for k, t in enumerate(tiles):
        lo, hi = t.keep
        crop.append(slice(lo - t.out_start, hi - t.out_start))
        if t.weight is not None:
            w = t.weight.reshape([-1 if j == k else 1 for j in range(len(tiles))])
            weight = w if weight is None else weight * w
    y = y[tuple(crop)]
    if weight is not None:
        y = y * weight[None].astype(np.float32)
    if scale != 1.0:
        y = y * np.float32(scale)
    y = g.invert(y)
    region = image_region(g, tiles, spatial)
    if parts is None:
        _put(out, (slice(None), *region), y, accumulate)
        return
    for part in parts:
        local = (
            slice(None),
            *(slice(p.start - r.start, p.stop - r.start) for p, r in zip(part, region)),
        )
        _put(out, (slice(None), *part), y[local], accumulate)


def _put(out: Any, index: tuple[slice, ...], y: np.ndarray, accumulate: bool) -> None:
    """``out[index] = y``, or ``+= y`` (read, add, write: ``out`` may be a Zarr array)."""
    if accumulate:
        out[index] = np.asarray(out[index]) + y
    else:
        out[index] = y


def check_output_finite(
    y: np.ndarray, x: np.ndarray, batch: Sequence[Job], spatial: Sequence[int]
) -> None:
    """Raise, naming the image region, if an output tile holds NaN or inf.

    ``y`` ``(B, K, *out_tile)`` are the predictor's outputs for the input tiles ``x``
    ``(B, C, *in_tile)`` of ``batch``; ``spatial`` is the image's spatial shape, px.
    """
    finite = np.isfinite(y.reshape(len(y), -1)).all(axis=1)
    if finite.all():
        return
    i = int(np.argmin(finite))
    g, tiles = batch[i]
    region = ", ".join(f"{s.start}:{s.stop}" for s in image_region(g, tiles, spatial))
    raise ValueError(
        f"the predictor returned NaN or infinite values for the image region [{region}] "
        f"(input values there reach |x| = {float(np.abs(x[i]).max()):.3g}); such values "
        "usually mean the image is far outside the range the network expects: rescale it, "
        "e.g. to [0, 1]"
    )
