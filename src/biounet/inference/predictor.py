"""Whole-image prediction with a U-Net: overlap-tile inference of any image size, 2D or 3D."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from biounet.core.checks import check_positive_int
from biounet.core.device import resolve_device
from biounet.core.runtime import auto_tune_allocator
from biounet.data.layouts.channels import COLOUR_CHANNELS, as_grey
from biounet.data.normalize import Normalizer
from biounet.data.resample import resample, scaled_shape
from biounet.data.views import ChannelsFirst, Normalized, Resampled
from biounet.inference.backend import TileRunner
from biounet.inference.tile_choice import choose_tile, chunk_tiles
from biounet.inference.tiling import (
    Shard,
    as_image_array,
    check_out,
    dihedral_transforms,
    tile_apply,
)
from biounet.inference.trained import TrainedModel
from biounet.model.unet import UNet

__all__ = ["choose_tile", "predict"]


def _as_channels_first(image: Any, c: int, nd: int) -> Any:
    """``image`` with a leading channel axis (a view), checked for ``c`` channels, ``nd`` dims.

    ``image`` is ``(*S)`` (given one channel) or ``(C, *S)`` with ``nd`` spatial axes.
    """
    shape = tuple(image.shape)
    if len(shape) == nd:
        if c != 1:
            raise ValueError(
                f"image of shape {shape} has no channel axis, but the model expects {c} input "
                f"channels; pass an array of shape ({c}, {', '.join(map(str, shape))})"
            )
        return image[None] if isinstance(image, np.ndarray) else ChannelsFirst(image, None)
    if len(shape) == nd + 1:
        if c == 1 and shape[0] in COLOUR_CHANNELS:  # the rule training applies to colour
            return as_grey(image)
        if shape[0] != c:
            hint = (
                "; the channels look last: pass numpy.moveaxis(image, -1, 0)"
                if shape[-1] == c
                else f"; the model was trained on {c}-channel images: convert the image "
                f"(e.g. to {'greyscale' if c == 1 else f'{c} channels'}) or use a model "
                f"trained on {shape[0]}-channel images"
            )
            raise ValueError(
                f"image of shape {shape} has {shape[0]} channel(s) on axis 0, but the model "
                f"expects {c}{hint}"
            )
        return image
    raise ValueError(
        f"image of shape {shape} has {len(shape)} axes; this {nd}D model takes ({nd} spatial "
        f"axes) or (channels, {nd} spatial axes)"
    )


def predict(
    model: UNet | TrainedModel,
    image: Any,
    *,
    tile_shape: Sequence[int] | int | None = None,
    batch_size: int | None = None,
    tta: bool = False,
    device: str | torch.device = "auto",
    progress: bool | Callable[[int, int], object] | None = False,
    out: Any = None,
    overlap: float = 0.5,
    channels_last: bool | None = None,
    normalize: bool = True,
    scale: float | None = None,
    backend: str = "auto",
) -> Any:
    """Per-class probabilities of a U-Net for a whole image of any size.

    Parameters
    ----------
    model : TrainedModel or UNet
        A trained model (:func:`biounet.load`, :func:`biounet.fit`), whose normalisation is
        applied to the image first, or a bare network. The network is put into eval mode
        while predicting (its mode is restored afterwards). Its parameters may be float32,
        float64 or half precision: the input tiles are cast to the parameters' dtype, and the
        probabilities are returned as float32.
    image : array-like, shape ``(*S)`` or ``(C, *S)``
        2D or 3D image as the model expects (``model.ndim`` spatial axes, ``C`` its input
        channels), of any size, down to 1 px per axis. Any array with NumPy slicing works
        (ndarray, memmap, Zarr); it is read tile by tile and cast to float32 without rescaling.
        Nested lists are converted with ``numpy.asarray``; complex values are refused.
    tile_shape : int or sequence of int, optional
        The network's input tile, px. Default: fitted to the image (see :func:`choose_tile`).
    batch_size : int, optional
        Tiles per forward pass (default: 1 on a CPU, 4 on a GPU).
    tta : bool
        Test-time augmentation: average over the 8 flips/rotations in 2D, the 8 flips in 3D.
    device : str or torch.device
        ``"auto"`` (CUDA if present, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:0"``, ...,
        ``"mps"`` (only when named). A device this machine lacks raises ValueError.
    progress : bool, None or callable
        Progress bar over tiles: True shows it, False hides it, None lets tqdm decide (shown
        when stderr is a terminal). A callable is called as ``progress(done, total)`` with
        the tiles done and in all, first with 0, then after each batch (a GUI's bar).
    out : array-like, shape ``(num_classes, *S)``, floating dtype, optional
        Write into this array (e.g. a Zarr array on disk) instead of returning a new one, so
        neither the image nor the probabilities need to fit in memory. Its dtype and shape
        are checked before anything is computed or written. A chunked ``out`` (Zarr) gets
        tiles whose outputs fall on its chunks. Under ``torchrun`` (an initialised process
        group) the ranks share the work: each computes the tiles of its own chunks of
        ``out`` and writes only those (:class:`~biounet.inference.tiling.shards.Shard`), so
        every rank must call ``predict`` with the same image and ``out``; the result is
        bit-identical to one process's (same backend, same thread count; ``"auto"`` runs
        eagerly there).
    overlap : float
        Same-padded networks only: overlap of the blended tiles, as a fraction of the tile.
    channels_last : bool, optional
        Run the network in channels-last memory format. Default: on for 2D networks on a CPU,
        where oneDNN's convolutions run 1.3x faster in it (``benchmarks/inference.py``), off
        otherwise.
    normalize : bool
        Apply a trained model's training normalisation (:attr:`TrainedModel.normalizer`) to
        the image first; its statistics come from the whole image (a subsample for very large
        ones). Without a normaliser the values pass unchanged.
    scale : float, optional
        Resample the image by this factor before the network sees it, and the probabilities
        back to the image's grid after (:mod:`biounet.data.resample`). Default: the trained
        model's :attr:`~biounet.inference.trained.TrainedModel.scale` (the factor its training
        images were resampled by), 1 for a bare network. ``tile_shape`` is then in resampled
        px. The resampled probabilities ``(K, *S * scale)`` are held in memory.
    backend : {"auto", "eager", "compile"}
        Run the network eagerly or compiled by ``torch.compile`` (with inductor's freezing;
        its probabilities are checked against eager ones on the first batch, within
        :data:`~biounet.inference.backend.TOLERANCE`). ``"auto"`` compiles only when the
        image has enough tiles for the compile time to pay (:mod:`biounet.inference.backend`);
        a network compiled by an earlier call is reused.

    Returns
    -------
    numpy.ndarray or ``out``, shape ``(num_classes, *S)``, float32
        Softmax probabilities per class.

    Raises
    ------
    ValueError
        For an image of the wrong number of axes or channels, an empty image, NaN or infinite
        values (or values beyond float32's range; the first such pixel is named), an invalid
        ``tile_shape`` (naming the nearest valid sizes), a wrong ``out`` and an unavailable
        device.
    biounet.core.checks.InputTypeError
        (A TypeError) For a non-integer ``tile_shape`` or ``batch_size``, a complex image, or
        an ``out`` that is not an array.
    TypeError
        For a model that is neither a trained model nor a :class:`~biounet.UNet`.

    Notes
    -----
    Valid networks use the paper's overlap-tile strategy: borders are mirror-extrapolated, the
    output is covered by non-overlapping tiles, and each input tile carries ``model.margin`` px
    of context per side. Strides are multiples of ``2**depth``, so in eval mode the result
    equals one forward pass over the whole mirror-padded image.

    Same-padded networks blend overlapping tiles with a Gaussian window. The tile starts are
    multiples of ``2**depth`` too, so every tile sees the image at the same pooling phase and
    neighbouring tiles agree where they overlap, up to the zero padding at each tile's border
    (which the window weights down).

    Both equalities hold for networks without normalisation or with batch norm (pointwise in
    eval mode). Instance- and group-norm networks normalise with each tile's own statistics,
    so their tiled result differs from one pass over the whole image.

    With ``tta`` and a given non-square ``tile_shape``, the tiles of a transposed image are
    transposed too; a same-padded network is then not exactly transpose-invariant, since
    its tiles cover different parts of the image.
    """
    net, normalizer = _network(model)
    factor = _scale(model, scale)
    image = as_image_array(image)
    given = tuple(int(n) for n in image.shape)
    if 0 in given:
        raise ValueError(f"the image is empty: shape {given}")
    image = _as_channels_first(image, net.config.in_channels, net.ndim)
    spatial = tuple(int(n) for n in image.shape[1:])
    if out is not None:
        check_out(out, net.config.num_classes, spatial)
    dev = resolve_device(device)
    if batch_size is None:
        batch_size = 4 if dev.type == "cuda" else 1
    batch_size = check_positive_int(batch_size, "batch_size")
    if factor != 1.0:  # the network sees the image on its training grid
        image = Resampled(image, scaled_shape(spatial, factor))
    tile, stride = choose_tile(net, tuple(image.shape[1:]), tile_shape)
    shard = None if out is None else Shard.from_env(out)  # ranks share the chunks of out
    if out is not None and factor == 1.0:  # tiles on the chunks of out
        tile, stride = chunk_tiles(net, out, tile, stride, tile_shape is None)
    if shard is not None and backend == "auto":
        backend = "eager"  # every rank computes alike, as one process would
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if normalize and normalizer is not None:
        image = Normalized(image, *normalizer.stats(image))
    if channels_last is None:
        channels_last = dev.type == "cpu" and net.ndim == 2
    if dev.type == "cpu":
        auto_tune_allocator()
    transforms = dihedral_transforms(net.ndim) if tta else None
    with _evaluating(net, dev, channels_last) as fn, torch.inference_mode():
        runner = TileRunner(net, fn, backend, dev, batch_size)
        probs = tile_apply(
            runner,
            image,
            tile_shape=tile,
            margin=net.margins,
            mode="crop" if net.config.padding == "valid" else "blend",
            stride=stride,
            overlap=overlap,
            align=net.geometry.alignments,
            transforms=transforms,
            out=out if factor == 1.0 else None,
            channels=net.config.num_classes,
            batch_size=batch_size,
            device=dev,
            progress=progress,
            shard=shard if factor == 1.0 else None,
        )
    return probs if factor == 1.0 else _back_to_grid(probs, spatial, out, shard)


def _scale(model: UNet | TrainedModel, scale: float | None) -> float:
    """The resampling factor of a prediction: given, the trained model's, or 1."""
    if scale is None:
        return float(model.scale) if isinstance(model, TrainedModel) else 1.0
    if isinstance(scale, bool) or not isinstance(scale, int | float):
        raise TypeError(f"scale must be a number, got {type(scale).__name__}")
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a number > 0, got {scale!r}")
    return float(scale)


def _back_to_grid(
    probs: np.ndarray, spatial: tuple[int, ...], out: Any, shard: Shard | None = None
) -> Any:
    """Probabilities ``(K, *S')`` resampled to the image's grid ``S``, into ``out`` if given.

    Written in slabs of the first spatial axis (about 4 M values each), so that only the
    result grows with the image; with a ``shard``, only this rank's part of ``out``.
    """
    if shard is not None:
        for box in shard.boxes(spatial):
            out[(slice(None),) + tuple(box)] = resample(probs, spatial, tuple(box))
        return out
    result = out if out is not None else np.empty((probs.shape[0], *spatial), np.float32)
    per_row = max(1, probs.shape[0] * math.prod(spatial[1:]))
    rows = max(1, (1 << 22) // per_row)
    rest = tuple(slice(0, n) for n in spatial[1:])
    for a in range(0, spatial[0], rows):
        b = min(spatial[0], a + rows)
        result[:, a:b] = resample(probs, spatial, (slice(a, b), *rest))
    return result


def _network(model: UNet | TrainedModel) -> tuple[UNet, Normalizer | None]:
    """The network of ``model`` and the normalisation its images need (None: none)."""
    if isinstance(model, TrainedModel):
        return model.net, model.normalizer
    if not isinstance(model, UNet):
        raise TypeError(
            f"model must be a biounet.UNet or a trained model (biounet.load), got "
            f"{type(model).__name__}"
        )
    return model, None


@contextlib.contextmanager
def _evaluating(
    net: UNet, dev: torch.device, channels_last: bool
) -> Iterator[Callable[[torch.Tensor], torch.Tensor]]:
    """``net`` in eval mode on ``dev`` for a while; yields the tile function for the tiler.

    The tile function maps float32 input tiles ``(B, C, *in_tile)`` to softmax probabilities
    ``(B, K, *out_tile)`` float32. Afterwards the network's mode, device and memory format
    are restored.
    """
    memory_format = (
        (torch.channels_last if net.ndim == 2 else torch.channels_last_3d)
        if channels_last
        else torch.contiguous_format
    )
    was_training = net.training
    first = next(net.parameters())
    old_device, dtype = first.device, first.dtype
    net.eval().to(dev)
    if channels_last:
        net.to(memory_format=memory_format)  # type: ignore[call-overload]

    def fn(x: torch.Tensor) -> torch.Tensor:
        x = x.to(dtype=dtype).contiguous(memory_format=memory_format)  # the model's dtype
        return torch.softmax(net(x).float(), dim=1)  # (B, K, *out_tile) float32

    try:
        yield fn
    finally:
        net.train(was_training)
        net.to(old_device)
        if channels_last:
            net.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
