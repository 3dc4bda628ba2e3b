"""One image across ranks: which output chunks each process writes, and strides that fit them.

Under ``torchrun`` every process (rank) tiles the same image into the same chunked output
array (a Zarr array on a shared disk). Each rank owns whole output chunks and writes nothing
else, so no two processes ever write one chunk (Zarr writes a chunk by reading, changing and
rewriting it whole: two writers of one chunk would lose each other's pixels).

Ownership: the grid of output chunks over the spatial axes, in C order (the last axis
fastest), is cut into ``world`` contiguous runs of nearly equal length; rank ``r`` owns run
``r``. A run is a band of chunk rows (plus a partial row at either end), so each rank reads a
compact part of the image. The pixels a rank owns are a few boxes (at most ``2 * ndim - 1``),
see :meth:`Shard.boxes`.

A rank computes a tile only if the tile's written region (its kept part, mapped back through
any test-time transform) meets an owned box, and writes only the intersections
(:meth:`Shard.owned_parts`). Every pixel thus gets its value from exactly the tiles, in
exactly the order, of a single-process run, in every mode (crop, blend, test-time
augmentation): see :func:`~biounet.inference.tiling.apply.tile_apply` for why the result is
bit-identical.

Tiles that straddle a chunk border are computed by both owners (each writes its own part).
In crop mode :func:`chunk_aligned_stride` places the tile borders on chunk borders so that
this never happens (flips of test-time augmentation, and the last tile of an axis, can still
straddle: correct, only some work done twice).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

__all__ = ["Shard", "chunk_aligned_stride", "spatial_chunks"]

#: a box of pixels: one ``slice(lo, hi)`` per spatial axis, in image coordinates (px)
Box = tuple[slice, ...]


@dataclass(frozen=True)
class Shard:
    """The output chunks that process ``rank`` of ``world`` writes.

    Attributes
    ----------
    rank : int
        This process, ``0 <= rank < world``.
    world : int
        The number of processes sharing the image.
    chunks : tuple of int
        The output array's chunk shape over the spatial axes, px per axis (the leading channel
        axis left out; see :func:`spatial_chunks`).

    Examples
    --------
    Two ranks, a 10 x 6 image in 4 x 4 chunks (a 3 x 2 grid of chunks): rank 0 owns the
    first three chunks in C order, the top row and the left chunk of the middle row.

    >>> [tuple((s.start, s.stop) for s in b) for b in Shard(0, 2, (4, 4)).boxes((10, 6))]
    [((0, 4), (0, 6)), ((4, 8), (0, 4))]
    >>> Shard(1, 2, (4, 4)).owned_parts([slice(2, 6), slice(2, 6)], (10, 6))
    [(slice(4, 6, None), slice(4, 6, None))]
    """

    rank: int
    world: int
    chunks: tuple[int, ...]

    def __post_init__(self) -> None:
        if not (isinstance(self.world, int) and self.world >= 1):
            raise ValueError(f"Shard: world must be an integer >= 1, got {self.world!r}")
        if not (isinstance(self.rank, int) and 0 <= self.rank < self.world):
            raise ValueError(f"Shard: rank must be in [0, world={self.world}), got {self.rank!r}")
        chunks = tuple(self.chunks)
        if not chunks or not all(isinstance(c, int) and c >= 1 for c in chunks):
            raise ValueError(f"Shard: chunks must be positive integers (px), got {self.chunks!r}")
        object.__setattr__(self, "chunks", chunks)

    @classmethod
    def from_env(cls, out: Any) -> Shard | None:
        """The calling process's shard of ``out`` under ``torch.distributed``, or None.

        ``out`` is the ``(K, *S)`` output array. None (every pixel written by this process)
        unless ``torch.distributed`` is initialised with more than one process and ``out``
        has a regular chunk shape (a Zarr array; see :func:`spatial_chunks`). Only the rank
        and world size are read: the tiling itself communicates nothing, so any backend
        (gloo, NCCL) will do.

        Every rank must then tile the same image into the same array: a process group that
        runs different images on different ranks must not pass its ``out`` arrays here.
        """
        if out is None:
            return None
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
            return None
        chunks = spatial_chunks(out)
        if chunks is None:
            return None
        return cls(dist.get_rank(), dist.get_world_size(), chunks)

    def boxes(self, spatial: Sequence[int]) -> list[Box]:
        """The pixels this rank owns in an image of spatial shape ``spatial`` (px), as boxes.

        The boxes are disjoint, and those of all ranks tile the image. A rank may own nothing
        (more ranks than chunks): an empty list.
        """
        spatial = tuple(int(n) for n in spatial)
        if len(spatial) != len(self.chunks):
            raise ValueError(
                f"Shard: chunks {self.chunks} have {len(self.chunks)} axes but the image has "
                f"{len(spatial)} spatial axes {spatial}; give one chunk size per spatial axis"
            )
        return list(_owned_boxes(self.rank, self.world, self.chunks, spatial))

    def owned_parts(self, region: Sequence[slice], spatial: Sequence[int]) -> list[Box]:
        """The parts of ``region`` (one slice per spatial axis, px) that this rank writes.

        ``region`` is a tile's written region in image coordinates
        (:func:`~biounet.inference.tiling.stitch.image_region`); the parts are its
        intersections with :meth:`boxes`, disjoint. Empty: the tile is another rank's.
        """
        parts = []
        for box in self.boxes(spatial):
            part = tuple(
                slice(max(r.start, b.start), min(r.stop, b.stop)) for r, b in zip(region, box)
            )
            if all(p.start < p.stop for p in part):
                parts.append(part)
        return parts


def spatial_chunks(out: Any) -> tuple[int, ...] | None:
    """The unit of writing of the ``(K, *S)`` array ``out`` over its spatial axes, px; or None.

    For a Zarr array that is its chunk shape (its shard shape where the array is sharded: a
    Zarr v3 shard is rewritten whole). None for an array without a regular chunk shape (a
    NumPy array, a memmap). The channel axis may be chunked in any way: a rank owns all
    channels of its spatial chunks.

    >>> import numpy as np
    >>> spatial_chunks(np.zeros((2, 8, 8))) is None
    True
    """
    grid = getattr(out, "shards", None) or getattr(out, "chunks", None)
    shape = getattr(out, "shape", None)
    if grid is None or shape is None:
        return None
    try:
        sizes = tuple(int(c) for c in grid)
    except (TypeError, ValueError):  # e.g. a dask array's chunks: a tuple of tuples
        return None
    if len(sizes) != len(shape) or len(sizes) < 2 or min(sizes) < 1:
        return None
    return sizes[1:]


def chunk_aligned_stride(
    stride: Sequence[int], chunks: Sequence[int], alignment: int = 1
) -> tuple[int, ...]:
    """Crop-mode strides whose tiles never straddle an output chunk border, px per axis.

    Per axis: the largest stride ``<= stride`` that is a multiple of ``alignment`` (a valid
    U-Net's ``2**depth``, which keeps the tiled result equal to one pass over the whole
    image) and either divides the chunk size or is a multiple of it. Then every tile's kept
    part lies in whole chunks of one rank (only the last tile of an axis, which keeps the rest
    of the image, may reach into a further chunk), and no rank computes another's tiles.

    Where no such stride exists (a chunk size that is no multiple of ``alignment``, and no
    multiple of the chunk small enough), the given stride is kept: the result is just as
    correct, but tiles across a chunk border are computed by both ranks that own a part.

    A smaller stride keeps less of each output tile: shrink the input tile with it, to
    ``geometry.input_size_for_output(stride)`` (:class:`~biounet.model.geometry`). Use the
    aligned stride for single-process runs into the same chunks too: the same tiles there as
    under ``torchrun`` keep the two results bit-identical whatever the network's kernels do.

    >>> chunk_aligned_stride((496, 512, 100), (512, 512, 100), alignment=16)
    (256, 512, 100)
    >>> chunk_aligned_stride((1100,), (512,), alignment=16)
    (1024,)
    >>> chunk_aligned_stride((300,), (100,), alignment=16)  # none: kept
    (300,)
    """
    if len(stride) != len(chunks):
        raise ValueError(
            f"stride {tuple(stride)} and chunks {tuple(chunks)} must have one entry per "
            "spatial axis each"
        )
    if alignment < 1:
        raise ValueError(f"alignment must be >= 1 px, got {alignment}")
    return tuple(_aligned(int(s), int(c), int(alignment)) for s, c in zip(stride, chunks))


def _aligned(stride: int, chunk: int, alignment: int) -> int:
    """The largest multiple of ``alignment`` <= ``stride`` dividing or multiplying ``chunk``.

    ``stride`` where there is none.
    """
    if stride >= chunk:
        step = chunk * alignment // math.gcd(chunk, alignment)  # multiples of both
        if stride >= step:
            return stride // step * step
    divisors = [d for d in range(alignment, min(stride, chunk) + 1, alignment) if chunk % d == 0]
    return max(divisors, default=stride)


@lru_cache(maxsize=64)
def _owned_boxes(
    rank: int, world: int, chunks: tuple[int, ...], spatial: tuple[int, ...]
) -> tuple[Box, ...]:
    """The pixel boxes of rank ``rank``'s run of the C-ordered chunk grid (see the module)."""
    grid = tuple(math.ceil(n / c) for n, c in zip(spatial, chunks))
    total = math.prod(grid)
    lo, hi = rank * total // world, (rank + 1) * total // world
    return tuple(
        tuple(slice(a * c, min(b * c, n)) for (a, b), c, n in zip(box, chunks, spatial))
        for box in _run_boxes(lo, hi, grid)
    )


def _run_boxes(lo: int, hi: int, grid: tuple[int, ...]) -> list[list[tuple[int, int]]]:
    """The flat C-order indices ``[lo, hi)`` of a grid of shape ``grid`` as boxes of indices.

    Each box is ``[(start, stop)]`` per axis; at most ``2 * len(grid) - 1`` of them.
    """
    if lo >= hi:
        return []
    if len(grid) == 1:
        return [[(lo, hi)]]
    inner = math.prod(grid[1:])
    (i0, r0), (i1, r1) = divmod(lo, inner), divmod(hi, inner)
    if i0 == i1:
        return [[(i0, i0 + 1), *b] for b in _run_boxes(r0, r1, grid[1:])]
    boxes = []
    if r0:  # the partial first row
        boxes += [[(i0, i0 + 1), *b] for b in _run_boxes(r0, inner, grid[1:])]
        i0 += 1
    if i1 > i0:  # whole rows
        boxes.append([(i0, i1), *((0, g) for g in grid[1:])])
    if r1:  # the partial last row
        boxes += [[(i1, i1 + 1), *b] for b in _run_boxes(0, r1, grid[1:])]
    return boxes
