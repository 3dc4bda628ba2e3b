"""Overlap-tile processing of arbitrarily large images with any tile-wise predictor.

The tiler knows nothing of U-Nets: it takes a callable ``fn`` mapping a batch of input tiles
``(B, C, *in_tile)`` to output tiles ``(B, K, *out_tile)`` and the context (``margin``, px per
side) the callable needs. Two ways of putting the outputs together:

``"crop"`` (networks with unpadded convolutions, the paper's overlap-tile strategy)
    ``out_tile = in_tile - 2 * margin``. The output is covered by tiles placed every ``stride``
    px; each input tile is the output tile plus ``margin`` of context per side, taken from the
    image mirrored at its borders. Each output pixel is written by exactly one tile, so there is
    nothing to blend: the result is seamless by construction. When ``stride`` is a multiple of a
    translation-equivariant predictor's period (``2**depth`` for a U-Net), the result equals one
    application of the predictor to the whole mirror-padded image.
``"blend"`` (size-preserving networks)
    ``out_tile = in_tile``. Tiles overlap by a fraction ``overlap`` and are averaged with a
    separable Gaussian window (sigma = tile / 8) normalised so the weights sum to one at every
    pixel.

Memory stays bounded: the image is read one tile at a time from any array that supports NumPy
slicing (``numpy.ndarray``, ``numpy.memmap``, a Zarr array), and the output can be written into
a given array of the same kind, tile by tile.

Test-time augmentation applies each ``transform`` (a flip and/or a transposition of the spatial
axes) to the whole image, tiles the transformed image exactly as it would tile any image of that
shape, maps the result back and averages: the averaged result is therefore exactly invariant
under every transform of the group.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

Predictor = Callable[[torch.Tensor], torch.Tensor]

__all__ = [
    "AxisTile",
    "Transform",
    "dihedral_transforms",
    "mirror_indices",
    "plan_blend",
    "plan_crop",
    "read_mirrored",
    "tile_apply",
]


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


@dataclass(frozen=True)
class AxisTile:
    """One tile along one axis (all in image coordinates, px).

    ``in_start``: first input pixel (negative or beyond the image: mirrored);
    ``out_start``: image coordinate of the tile's first output pixel;
    ``keep``: the ``[lo, hi)`` range of image pixels this tile writes;
    ``weight``: the blending window over the kept range (None in crop mode).
    """

    in_start: int
    out_start: int
    keep: tuple[int, int]
    weight: np.ndarray | None = None


def plan_crop(size: int, out_tile: int, stride: int, margin: int) -> list[AxisTile]:
    """Tiles along an axis of ``size`` px for ``"crop"`` mode (see module docstring).

    >>> [(t.in_start, t.keep) for t in plan_crop(10, out_tile=6, stride=4, margin=2)]
    [(-2, (0, 4)), (2, (4, 10))]
    >>> [(t.in_start, t.keep) for t in plan_crop(11, out_tile=6, stride=4, margin=2)]
    [(-2, (0, 4)), (2, (4, 8)), (6, (8, 11))]
    """
    if not 1 <= stride <= out_tile:
        raise ValueError(f"stride must be in [1, out_tile={out_tile}], got {stride}")
    n = max(1, math.ceil((size - out_tile) / stride) + 1)
    tiles = []
    for i in range(n):
        lo = i * stride
        hi = size if i == n - 1 else min(lo + stride, size)
        tiles.append(AxisTile(lo - margin, lo, (lo, hi)))
    return tiles


def _gaussian(n: int) -> np.ndarray:
    x = np.arange(n, dtype=np.float64) - (n - 1) / 2
    return np.exp(-(x**2) / (2 * (n / 8) ** 2))


def plan_blend(size: int, tile: int, overlap: float) -> list[AxisTile]:
    """Tiles along an axis for ``"blend"`` mode, with per-axis normalised Gaussian weights.

    The weights of all tiles covering a pixel sum to 1 (per axis, hence also for the product
    over axes). An image smaller than the tile gets one tile centred on it (mirror padded).
    """
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if size <= tile:
        start = -((tile - size) // 2)
        return [AxisTile(start, start, (0, size), np.ones(size))]
    step = max(1, math.floor(tile * (1 - overlap)))
    n = math.ceil((size - tile) / step) + 1
    starts = [round(j * (size - tile) / (n - 1)) for j in range(n)]
    window = _gaussian(tile)
    total = np.zeros(size)
    for s in starts:
        total[s : s + tile] += window
    return [AxisTile(s, s, (s, s + tile), window / total[s : s + tile]) for s in starts]


@dataclass(frozen=True)
class Transform:
    """A flip and transposition of the spatial axes: ``g(x) = transpose(flip(x, flips), perm)``.

    Axis ``k`` of ``g(x)`` is axis ``perm[k]`` of ``x``, reversed where ``flips[perm[k]]``.
    """

    perm: tuple[int, ...]
    flips: tuple[bool, ...]

    def shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        """Spatial shape of the transformed image."""
        return tuple(shape[p] for p in self.perm)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Apply to ``x`` of shape ``(C, *S)`` (a view where NumPy allows)."""
        for axis, f in enumerate(self.flips):
            if f:
                x = np.flip(x, axis + 1)
        out: np.ndarray = x.transpose(0, *(p + 1 for p in self.perm))
        return out

    def invert(self, y: np.ndarray) -> np.ndarray:
        """Map ``y`` of shape ``(K, *g(S))`` back to the original orientation."""
        inv = np.argsort(self.perm)
        y = y.transpose(0, *(int(i) + 1 for i in inv))
        for axis, f in enumerate(self.flips):
            if f:
                y = np.flip(y, axis + 1)
        return y


def dihedral_transforms(ndim: int, rotations: bool = True) -> list[Transform]:
    """The test-time augmentation group.

    2D with ``rotations``: the 8 flips/rotations of the square (dihedral group D4: the two axis
    orders times the four flip combinations). 3D (or ``rotations=False``): the ``2**ndim`` flips.
    """
    perms = (
        list(itertools.permutations(range(ndim)))
        if ndim == 2 and rotations
        else [tuple(range(ndim))]
    )
    return [
        Transform(tuple(p), tuple(f))
        for p in perms
        for f in itertools.product((False, True), repeat=ndim)
    ]


IDENTITY_CACHE: dict[int, Transform] = {}


def identity(ndim: int) -> Transform:
    """The identity transform for ``ndim`` spatial axes."""
    return IDENTITY_CACHE.setdefault(ndim, Transform(tuple(range(ndim)), (False,) * ndim))


def _read(
    image: Any, g: Transform, tiles: Sequence[AxisTile], in_tile: Sequence[int]
) -> np.ndarray:
    """Read one input tile ``(C, *in_tile)`` of ``g(image)``, mirrored at the borders."""
    spatial = tuple(image.shape[1:])
    gshape = g.shape(spatial)
    # index arrays per *original* axis
    index: list[np.ndarray] = [np.empty(0, dtype=np.intp)] * len(spatial)
    for k, (t, n) in enumerate(zip(tiles, in_tile)):
        axis = g.perm[k]
        idx = mirror_indices(t.in_start, t.in_start + n, gshape[k])
        index[axis] = spatial[axis] - 1 - idx if g.flips[axis] else idx
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
    return _read(image, identity(len(tiles)), tiles, tuple(int(n) for n in shape))


def _check_finite(block: np.ndarray, tiles: Sequence[AxisTile]) -> None:
    if block.dtype.kind in "fc" and not np.isfinite(block).all():
        where = ", ".join(f"{t.in_start}:{t.in_start + n}" for t, n in zip(tiles, block.shape[1:]))
        raise ValueError(
            f"the image contains NaN or infinite values (in the region [{where}]); replace them "
            "first, e.g. with numpy.nan_to_num(image)"
        )


def _write(
    out: Any,
    y: np.ndarray,
    g: Transform,
    tiles: Sequence[AxisTile],
    spatial: Sequence[int],
    accumulate: bool,
    scale: float,
) -> None:
    """Write the kept part of one output tile ``y (K, *out_tile)`` of ``g(image)`` into ``out``."""
    gshape = g.shape(spatial)
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
    region: list[slice] = [slice(None)] * (len(spatial) + 1)
    for k, t in enumerate(tiles):
        axis = g.perm[k]
        lo, hi = t.keep
        if g.flips[axis]:
            lo, hi = gshape[k] - hi, gshape[k] - lo
        region[axis + 1] = slice(lo, hi)
    if accumulate:
        out[tuple(region)] = np.asarray(out[tuple(region)]) + y
    else:
        out[tuple(region)] = y


def tile_apply(
    fn: Predictor,
    image: Any,
    *,
    tile_shape: Sequence[int],
    margin: int | Sequence[int] = 0,
    mode: str = "crop",
    stride: Sequence[int] | None = None,
    overlap: float = 0.5,
    transforms: Sequence[Transform] | None = None,
    out: Any = None,
    batch_size: int = 1,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> Any:
    """Apply ``fn`` tile by tile to ``image`` and assemble the result.

    Parameters
    ----------
    fn : callable
        ``(B, C, *tile_shape)`` float32 tensor on ``device`` -> ``(B, K, *out_tile)`` tensor, with
        ``out_tile = tile_shape - 2 * margin`` (``"crop"``) or ``tile_shape`` (``"blend"``).
    image : array-like, shape ``(C, *S)``
        Any array supporting NumPy basic slicing (ndarray, memmap, Zarr); read tile by tile and
        converted to float32.
    tile_shape : sequence of int
        Input tile shape, px per spatial axis.
    margin : int or sequence of int
        ``"crop"``: context per side that ``fn`` consumes. Ignored by ``"blend"``.
    mode : {"crop", "blend"}
        See the module docstring.
    stride : sequence of int, optional
        ``"crop"``: distance between tiles, at most the output tile (default: the output tile).
    overlap : float
        ``"blend"``: overlap of neighbouring tiles as a fraction of the tile.
    transforms : sequence of Transform, optional
        Test-time augmentation: the result is the mean over the transforms.
    out : array-like, shape ``(K, *S)``, optional
        Where to write the result (e.g. a Zarr array on disk); overwritten. Default: a new
        float32 ndarray.
    batch_size : int
        Tiles per call of ``fn``.
    device : torch.device or str
        Where the input tiles are sent.
    progress : bool
        Show a progress bar over tiles.

    Returns
    -------
    array-like, shape ``(K, *S)``
        ``out`` (or the new array).
    """
    spatial = tuple(int(n) for n in image.shape[1:])
    ndim = len(spatial)
    tile_shape = tuple(int(n) for n in tile_shape)
    if len(tile_shape) != ndim:
        raise ValueError(f"tile_shape {tile_shape} has {len(tile_shape)} axes, image has {ndim}")
    margins = (margin,) * ndim if isinstance(margin, int) else tuple(int(m) for m in margin)
    if mode not in ("crop", "blend"):
        raise ValueError(f"mode must be 'crop' or 'blend', got {mode!r}")
    transforms = list(transforms) if transforms else [identity(ndim)]
    if mode == "crop":
        out_tile = tuple(t - 2 * m for t, m in zip(tile_shape, margins))
        if min(out_tile) < 1:
            raise ValueError(f"tile_shape {tile_shape} leaves no output with margin {margins}")
        strides = tuple(stride) if stride is not None else out_tile
    else:
        out_tile = tile_shape
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if min(spatial, default=0) < 1:
        raise ValueError(f"the image is empty: spatial shape {spatial}")

    def plans(g: Transform) -> list[list[AxisTile]]:
        gshape = g.shape(spatial)
        gtile = g.shape(tile_shape)
        if mode == "crop":
            go, gs, gm = g.shape(out_tile), g.shape(strides), g.shape(margins)
            return [plan_crop(n, o, s, m) for n, o, s, m in zip(gshape, go, gs, gm)]
        return [plan_blend(n, t, overlap) for n, t in zip(gshape, gtile)]

    jobs: list[tuple[Transform, tuple[AxisTile, ...]]] = []
    for g in transforms:
        jobs.extend((g, tiles) for tiles in itertools.product(*plans(g)))
    accumulate = mode == "blend" or len(transforms) > 1
    scale = 1.0 / len(transforms)

    def load(batch: list[tuple[Transform, tuple[AxisTile, ...]]]) -> np.ndarray:
        blocks = []
        for g, tiles in batch:
            block = _read(image, g, tiles, g.shape(tile_shape))
            _check_finite(block, tiles)
            blocks.append(block.astype(np.float32, copy=False))
        return np.stack(blocks)  # (B, C, *tile) in the transformed orientation

    if out is not None:
        _check_out(out, int(out.shape[0]), spatial)
        if accumulate:
            _zero(out)
    groups = [jobs[i : i + batch_size] for i in range(0, len(jobs), batch_size)]
    bar = _progress_bar(len(jobs), progress)
    with ThreadPoolExecutor(max_workers=1) as reader:  # read the next batch while fn runs
        future = reader.submit(load, groups[0])
        for i, batch in enumerate(groups):
            x = future.result()
            if i + 1 < len(groups):
                future = reader.submit(load, groups[i + 1])
            y = _call(fn, x, device, batch[0][0].shape(out_tile))
            if out is None:
                out = np.zeros((y.shape[1], *spatial), dtype=np.float32)
            _check_out(out, y.shape[1], spatial)
            for (g, tiles), yi in zip(batch, y):
                _write(out, yi, g, tiles, spatial, accumulate, scale)
            bar.update(len(batch))
    bar.close()
    return out


def _call(
    fn: Predictor, x: np.ndarray, device: torch.device | str, out_tile: tuple[int, ...]
) -> np.ndarray:
    t = torch.from_numpy(x).to(device, non_blocking=True)
    y = fn(t)
    expected = (x.shape[0], *out_tile)
    if y.ndim != len(expected) + 1 or (y.shape[0], *y.shape[2:]) != expected:
        raise ValueError(
            f"the predictor returned a tensor of shape {tuple(y.shape)} for input tiles of shape "
            f"{tuple(x.shape)}; expected (B, K, {', '.join(map(str, out_tile))})"
        )
    return y.detach().float().cpu().numpy()


def _zero(out: Any) -> None:
    out[...] = 0


def _check_out(out: Any, channels: int, spatial: tuple[int, ...]) -> None:
    if tuple(out.shape) != (channels, *spatial):
        raise ValueError(
            f"out has shape {tuple(out.shape)}, expected {(channels, *spatial)} (K, *spatial)"
        )


def _progress_bar(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="tile", disable=not enabled, leave=False, desc="tiles")
