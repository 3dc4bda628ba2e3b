"""Tile plans: where the tiles go along each axis, for cropped or blended outputs (all in px)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from biounet.core.checks import int_tuple
from biounet.inference.tiling.transforms import Transform

__all__ = ["MODES", "AxisTile", "Job", "TileLayout", "gaussian_window", "plan_blend", "plan_crop"]

#: how output tiles are put together (see :mod:`biounet.inference.tiling`)
MODES = ("crop", "blend")


@dataclass(frozen=True)
class AxisTile:
    """One tile along one axis (all in image coordinates, px).

    Attributes
    ----------
    in_start : int
        First input pixel (negative or beyond the image: mirrored).
    out_start : int
        Image coordinate of the tile's first output pixel.
    keep : (int, int)
        The ``[lo, hi)`` range of image pixels this tile writes.
    weight : numpy.ndarray of float64, shape ``(hi - lo,)``, or None
        The blending window over the kept range (None in crop mode).
    """

    in_start: int
    out_start: int
    keep: tuple[int, int]
    weight: np.ndarray | None = None


#: one tile to compute: the transform of the image and the tile along each of its axes
Job = tuple[Transform, tuple[AxisTile, ...]]


def plan_crop(size: int, out_tile: int, stride: int, margin: int) -> list[AxisTile]:
    """Tiles along an axis of ``size`` px for ``"crop"`` mode (see :mod:`biounet.inference.tiling`).

    Output tiles of ``out_tile`` px start every ``stride`` px; each keeps ``stride`` px (the
    last one the rest of the image) and reads ``margin`` px of context per side.

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


def gaussian_window(n: int) -> np.ndarray:
    """A Gaussian over ``n`` px centred on the tile, sigma ``n / 8`` px, peak 1; float64 ``(n,)``.

    >>> gaussian_window(5).round(3).tolist()
    [0.006, 0.278, 1.0, 0.278, 0.006]
    """
    x = np.arange(n, dtype=np.float64) - (n - 1) / 2
    return np.exp(-(x**2) / (2 * (n / 8) ** 2))


def plan_blend(size: int, tile: int, overlap: float, align: int = 1) -> list[AxisTile]:
    """Tiles along an axis for ``"blend"`` mode, with per-axis normalised Gaussian weights.

    Parameters
    ----------
    size : int
        Image size along the axis, px.
    tile : int
        Tile size, px (input = output in blend mode).
    overlap : float
        Overlap of neighbouring tiles as a fraction of the tile, in ``[0, 1)``.
    align : int
        Every tile start is a multiple of ``align`` px (``2**depth`` for a same-padded U-Net,
        which is translation-equivariant only for shifts on its pooling grid; then all tiles
        see the image at the same pooling phase and agree where they overlap). The step
        between tiles is ``tile * (1 - overlap)`` rounded down to a multiple of ``align``
        (at least ``align``); the last tile may run past the end of the image, where the
        mirrored read supplies its input.

    Returns
    -------
    list of AxisTile
        The weights of all tiles covering a pixel sum to 1 (per axis, hence also for the
        product over axes). An image no larger than the tile gets one tile, centred on it as
        far as ``align`` allows (mirror padded).

    >>> [t.in_start for t in plan_blend(300, 96, 0.5, align=4)]
    [0, 48, 96, 144, 192, 240]
    """
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if align < 1 or align > tile:
        raise ValueError(f"align must be in [1, tile={tile}] px, got {align}")
    if size <= tile:
        start = -((tile - size) // 2 // align * align)
        return [AxisTile(start, start, (0, size), np.ones(size))]
    step = max(align, math.floor(tile * (1 - overlap)) // align * align)
    n = math.ceil((size - tile) / step) + 1
    starts = [j * step for j in range(n)]
    window = gaussian_window(tile)
    total = np.zeros(starts[-1] + tile)
    for s in starts:
        total[s : s + tile] += window
    tiles = []
    for s in starts:
        hi = min(s + tile, size)
        tiles.append(AxisTile(s, s, (s, hi), window[: hi - s] / total[s:hi]))
    return tiles


@dataclass(frozen=True)
class TileLayout:
    """How an image is cut into tiles: the checked tiling arguments of one ``tile_apply`` call.

    All sizes are px per spatial axis, in the image's own orientation. Build it with
    :meth:`checked`.

    Attributes
    ----------
    mode : {"crop", "blend"}
        How output tiles are put together.
    in_tile, out_tile : tuple of int
        Input and output tile shapes (equal in blend mode).
    margin : tuple of int
        Context per side that the predictor consumes (crop mode).
    stride : tuple of int
        Distance between tiles (crop mode).
    overlap : float
        Overlap of neighbouring tiles as a fraction of the tile (blend mode).
    align : tuple of int
        Tile starts are multiples of this many px per axis (blend mode).
    """

    mode: str
    in_tile: tuple[int, ...]
    out_tile: tuple[int, ...]
    margin: tuple[int, ...]
    stride: tuple[int, ...]
    overlap: float
    align: tuple[int, ...]

    @classmethod
    def checked(
        cls,
        ndim: int,
        tile_shape: object,
        margin: object,
        mode: str,
        stride: object,
        overlap: float,
        align: object,
    ) -> TileLayout:
        """The layout for ``ndim`` spatial axes, or TypeError/ValueError naming the argument."""
        in_tile = int_tuple(tile_shape, "tile_shape", ndim)
        margins = int_tuple(margin, "margin", ndim)
        aligns = int_tuple(align, "align", ndim)
        if mode not in MODES:
            raise ValueError(f"mode must be 'crop' or 'blend', got {mode!r}")
        if mode == "blend":
            return cls(mode, in_tile, in_tile, margins, in_tile, overlap, aligns)
        out_tile = tuple(t - 2 * m for t, m in zip(in_tile, margins))
        if min(out_tile) < 1:
            raise ValueError(f"tile_shape {in_tile} leaves no output with margin {margins}")
        strides = int_tuple(stride, "stride", ndim) if stride is not None else out_tile
        return cls(mode, in_tile, out_tile, margins, strides, overlap, aligns)

    def axes(self, g: Transform, spatial: Sequence[int]) -> list[list[AxisTile]]:
        """The tiles along each axis of ``g(image)``, for an image of spatial shape ``spatial``."""
        gshape = g.shape(spatial)
        if self.mode == "crop":
            go, gs, gm = g.shape(self.out_tile), g.shape(self.stride), g.shape(self.margin)
            return [plan_crop(n, o, s, m) for n, o, s, m in zip(gshape, go, gs, gm)]
        gtile, galign = g.shape(self.in_tile), g.shape(self.align)
        return [plan_blend(n, t, self.overlap, a) for n, t, a in zip(gshape, gtile, galign)]

    def jobs(self, g: Transform, spatial: Sequence[int]) -> list[Job]:
        """Every tile of ``g(image)``: the product of the tiles along its axes."""
        return [(g, tiles) for tiles in itertools.product(*self.axes(g, spatial))]
