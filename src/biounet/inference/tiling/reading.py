"""Reading input tiles: indices mirrored at the borders, one tile or a checked float32 batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from biounet.inference.tiling.plans import AxisTile, Job
from biounet.inference.tiling.transforms import Transform, identity

__all__ = ["mirror_indices", "read_batch", "read_mirrored", "read_tile", "source_indices"]


def mirror_indices(start: int, stop: int, size: int) -> np.ndarray:
    """Indices ``start..stop-1`` folded into ``[0, size)`` by mirroring at the borders.

    Mirroring does not repeat the border pixel (``... 2 1 | 0 1 2 ... n-1 | n-2 n-3 ...``) and
    repeats as often as needed, so any window works, even around a 1-pixel image.

    >>> mirror_indices(-3, 6, 4).tolist()
    [3, 2, 1, 0, 1, 2, 3, 2, 1]
    """
    idx = np.arange(start, stop)
    if size == 1:
        return np.zeros_like(idx)
    period = 2 * (size - 1)
    idx = np.mod(idx, period)
    return np.where(idx >= size, period - idx, idx)


def source_indices(
    spatial: Sequence[int], g: Transform, tiles: Sequence[AxisTile], in_tile: Sequence[int]
) -> list[np.ndarray]:
    """Per *original* axis, the image indices that one input tile of ``g(image)`` reads.

    ``spatial`` is the image's spatial shape and ``in_tile`` the input tile's shape in the
    transformed orientation (px). Entry ``axis`` holds ``in_tile[k]`` indices into that axis,
    where ``g.perm[k] == axis``.
    """
    gshape = g.shape(spatial)
    index: list[np.ndarray] = [np.empty(0, dtype=np.intp)] * len(spatial)
    for k, (t, n) in enumerate(zip(tiles, in_tile)):
        axis = g.perm[k]
        idx = mirror_indices(t.in_start, t.in_start + n, gshape[k])
        index[axis] = spatial[axis] - 1 - idx if g.flips[axis] else idx
    return index


def read_tile(
    image: Any, g: Transform, tiles: Sequence[AxisTile], in_tile: Sequence[int]
) -> np.ndarray:
    """Read one input tile ``(C, *in_tile)`` of ``g(image)``, mirrored at the borders.

    ``image`` is ``(C, *S)``, any array with NumPy slicing; the tile keeps its dtype.
    """
    index = source_indices(tuple(image.shape[1:]), g, tiles, in_tile)
    # read the bounding box once (a slice: cheap for Zarr/memmap), then gather inside it
    box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in index)
    block = np.asarray(image[(slice(None),) + box])
    local = [i - b.start for i, b in zip(index, box)]
    if not all(np.array_equal(loc, np.arange(len(loc))) for loc in local):
        block = block[np.ix_(np.arange(block.shape[0]), *local)]
    tile: np.ndarray = block.transpose(0, *(p + 1 for p in g.perm))
    return tile


def read_mirrored(image: Any, start: Sequence[int], shape: Sequence[int]) -> np.ndarray:
    """Read ``image[:, start : start + shape]`` (``image`` is ``(C, *S)``), mirrored beyond it.

    Any window works, also far outside the image (mirroring repeats as needed). Only the
    bounding box of the needed pixels is read, so lazy arrays (Zarr, memmap) stay lazy.

    >>> read_mirrored(np.arange(4)[None], [-2], [8]).tolist()
    [[2, 1, 0, 1, 2, 3, 2, 1]]
    """
    tiles = [AxisTile(int(s), int(s), (0, 0)) for s in start]
    return read_tile(image, identity(len(tiles)), tiles, tuple(int(n) for n in shape))


def read_batch(image: Any, batch: Sequence[Job], in_tile: Sequence[int]) -> np.ndarray:
    """The input tiles of ``batch`` as float32 ``(B, C, *g(in_tile))``, each checked finite.

    All jobs of a batch share one transform ``g`` (a transposition changes the tile's shape);
    ``in_tile`` is in the image's own orientation.
    """
    spatial = tuple(int(n) for n in image.shape[1:])
    blocks = []
    for g, tiles in batch:
        gtile = g.shape(in_tile)
        raw = read_tile(image, g, tiles, gtile)
        with np.errstate(over="ignore"):  # overflow to inf is reported just below
            block = raw.astype(np.float32, copy=False)
        _check_finite(raw, block, spatial, g, tiles, gtile)  # after the cast: overflow
        blocks.append(block)
    return np.stack(blocks)  # (B, C, *tile) in the transformed orientation


def _check_finite(
    raw: np.ndarray,
    block: np.ndarray,
    spatial: Sequence[int],
    g: Transform,
    tiles: Sequence[AxisTile],
    in_tile: Sequence[int],
) -> None:
    """Raise if the float32 tile ``block`` (read from ``raw``) holds NaN or inf.

    The message names the first such pixel in image coordinates ``(channel, *spatial)``,
    whatever the transform and the mirroring that produced the tile.
    """
    if raw.dtype.kind != "f":  # integers are finite in float32, even uint64
        return
    bad = ~np.isfinite(block)
    if not bad.any():
        return
    first = tuple(int(i) for i in np.argwhere(bad)[0])  # (c, *tile position), transformed
    index = source_indices(spatial, g, tiles, in_tile)
    where = [0] * len(spatial)
    for k in range(len(spatial)):
        axis = g.perm[k]
        where[axis] = int(index[axis][first[k + 1]])
    pixel = (first[0], *where)
    value = float(raw[first])
    if np.isfinite(value):
        raise ValueError(
            f"the image value {value:g} at index {pixel} (channel, *spatial) is beyond "
            f"float32's range (|x| <= {float(np.finfo(np.float32).max):.3g}); rescale the "
            "image, e.g. to [0, 1]"
        )
    raise ValueError(
        f"the image contains NaN or infinite values (the first found: {value} at index "
        f"{pixel}, (channel, *spatial)); replace them first, e.g. with numpy.nan_to_num(image)"
    )
