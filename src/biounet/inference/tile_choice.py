"""The tiles a prediction uses: given (checked), or fitted to the image and the network.

All sizes are px (voxels) per spatial axis of the image the network sees.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from biounet.core.checks import int_tuple, is_int
from biounet.inference.tiling import chunk_aligned_stride, spatial_chunks
from biounet.inference.trained import TrainedModel
from biounet.model.unet import UNet

__all__ = ["TARGET_OUTPUT", "choose_tile", "chunk_tiles"]

#: the output extent (px per axis) that automatic tiles aim for, before fitting them to the image
TARGET_OUTPUT = {2: 512, 3: 64}


def choose_tile(
    model: UNet | TrainedModel,
    spatial: Sequence[int],
    tile_shape: Sequence[int] | int | None = None,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Input tile shape and stride (px per axis) for ``model`` on an image of shape ``spatial``.

    For a valid (unpadded) network the stride is a multiple of ``2**depth``, which makes the
    tiled result equal to one pass over the whole mirror-padded image. Without ``tile_shape``,
    tiles are fitted to the image: the fewest tiles whose output reaches ``TARGET_OUTPUT`` px per
    axis (a same-padded trained model's: at least its training tile), shrunk to just cover the
    image, so little computed output falls outside it.
    A given ``tile_shape`` is the network's input tile and must be valid.

    Returns
    -------
    tile, stride : tuple of int
        For a same-padded network the stride is unused (tiles are blended).
    """
    ndim = len(spatial)
    axes = model.geometry.axes
    if len(axes) != ndim:
        raise ValueError(f"an image of {ndim} spatial axes for a {len(axes)}D network")
    if tile_shape is not None:
        tile = _physical(model, int_tuple(tile_shape, "tile_shape", ndim), is_int(tile_shape))
        for axis, (g, n) in enumerate(zip(axes, tile)):
            if not g.is_valid_size(n):
                raise ValueError(f"tile_shape {tile}, axis {axis}: {g.invalid_size_message(n)}")
        out = model.geometry.output_shape(tile)
        grid = model.geometry.alignments
        if any(o < a for o, a in zip(out, grid)):
            smallest = tuple(g.input_size_for_output(g.alignment) for g in axes)
            raise ValueError(
                f"tile_shape {tile} gives output tiles {out} smaller than the pooling grid "
                f"({_one(grid)} px); use tiles of at least {_one(smallest)} px"
            )
        return tile, tuple(max(a, o // a * a) for o, a in zip(out, grid))
    target = TARGET_OUTPUT.get(ndim, 64)
    trained = model.tile if isinstance(model, TrainedModel) and model.tile else None
    tiles: list[int] = []
    strides: list[int] = []
    for axis, (n, g) in enumerate(zip(spatial, axes)):
        a = g.alignment
        cap = max(a, target // a * a)
        if g.padding == "same":
            # blended tiles: at least the training tile (the context the network learnt with)
            cap = max(cap, trained[axis] // a * a) if trained and len(trained) == ndim else cap
            tiles.append(min(cap, math.ceil(n / a) * a))
            strides.append(tiles[-1])
            continue
        count = math.ceil(n / cap)
        step = math.ceil(n / count / a) * a  # aligned, and count * step >= n
        tiles.append(g.input_size_for_output(step))
        strides.append(step)
    return tuple(tiles), tuple(strides)


def _physical(model: UNet | TrainedModel, tile: tuple[int, ...], one: bool) -> tuple[int, ...]:
    """One tile size given for a model with coarse axes: as many µm along them as across.

    Along an axis whose voxels are ``r >= 1.5`` times the finest, ``ceil(n / r)`` voxels,
    rounded up to a valid size; the other axes (and tiles given per axis) stay as given.
    """
    spacing = model.spacing if isinstance(model, TrainedModel) else None
    if not one or spacing is None or model.geometry.isotropic or len(spacing) != len(tile):
        return tile
    low = min(spacing)
    return tuple(
        n if s / low < 1.5 else g.nearest_valid_sizes(math.ceil(n * low / s))[1]
        for n, s, g in zip(tile, spacing, model.geometry.axes)
    )


def _one(sizes: tuple[int, ...]) -> int | tuple[int, ...]:
    """One number for sizes that are equal on every axis, else the tuple (for messages)."""
    return sizes[0] if len(set(sizes)) == 1 else sizes


def chunk_tiles(
    net: UNet, out: Any, tile: tuple[int, ...], stride: tuple[int, ...], fitted: bool
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Fitted tiles of a valid network whose outputs fall on ``out``'s chunks (none straddle).

    Then no two ranks compute one tile, and one process computes the same tiles as several.
    """
    chunks = spatial_chunks(out)
    if chunks is None or not fitted or net.config.padding != "valid":
        return tile, stride
    g = net.geometry
    stride = tuple(
        chunk_aligned_stride((s,), (c,), a)[0] for s, c, a in zip(stride, chunks, g.alignments)
    )
    return g.input_shape_for_output(stride), stride
