"""Overlap-tile processing of arbitrarily large images with any tile-wise predictor.

The tiler knows nothing of U-Nets: :func:`tile_apply` takes a callable ``fn`` mapping a batch
of input tiles ``(B, C, *in_tile)`` to output tiles ``(B, K, *out_tile)`` and the context
(``margin``, px per side) the callable needs. Two ways of putting the outputs together:

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

One image across processes: under ``torchrun`` each process passes its :class:`Shard` (its
share of the output array's chunks) and computes and writes only the tiles of its chunks; the
result is bit-identical to a single-process run (:mod:`biounet.inference.tiling.shards`).

The modules: ``plans`` (where the tiles go along each axis), ``transforms`` (the flips and
transpositions), ``reading`` (input tiles mirrored at the borders), ``stitch`` (output tiles
written back), ``checks`` (the image and output arrays), ``shards`` (the chunks each process
writes) and ``apply`` (:func:`tile_apply`).
"""

from biounet.inference.tiling.apply import Predictor, tile_apply
from biounet.inference.tiling.checks import as_image_array, check_out
from biounet.inference.tiling.plans import AxisTile, plan_blend, plan_crop
from biounet.inference.tiling.reading import mirror_indices, read_mirrored
from biounet.inference.tiling.shards import Shard, chunk_aligned_stride, spatial_chunks
from biounet.inference.tiling.transforms import Transform, dihedral_transforms

__all__ = [
    "AxisTile",
    "Predictor",
    "Shard",
    "Transform",
    "as_image_array",
    "check_out",
    "chunk_aligned_stride",
    "dihedral_transforms",
    "mirror_indices",
    "plan_blend",
    "plan_crop",
    "read_mirrored",
    "spatial_chunks",
    "tile_apply",
]
