"""Batch-norm statistics recomputed over many training tiles, not the last few batches.

During training, batch norm keeps running averages (momentum 0.1) of the batch statistics of
the last ~10 batches; with batches of two tiles they swing, and so do the eval-mode outputs:
validation scores jump between validations even at a learning rate near 0, and which model
becomes ``best.pt`` is chance. :func:`recalibrate` replaces the running averages by exact means
over ``batches`` batches of training tiles drawn with their own seed (the training's tile stream
is not touched), computed in train mode for the batch-norm layers only (dropout off), without
gradients.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import torch

from biounet.config import TrainConfig
from biounet.data.tiles import TileDataset, TrainImage
from biounet.model.unet import UNet

__all__ = [
    "RECALIBRATION_SEED",
    "has_batch_norm",
    "recalibrate",
    "recalibrated",
    "recalibration_batches",
]

#: added to the run's seed for the tiles the statistics are recomputed over: their own stream
RECALIBRATION_SEED = 7919

_BN = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)


def _bn_layers(model: torch.nn.Module) -> list[torch.nn.modules.batchnorm._BatchNorm]:
    """The batch-norm layers of ``model`` that keep running statistics."""
    return [m for m in model.modules() if isinstance(m, _BN) and m.track_running_stats]


def has_batch_norm(model: torch.nn.Module) -> bool:
    """Whether ``model`` has batch-norm layers that keep running statistics."""
    return bool(_bn_layers(model))


@torch.no_grad()
def recalibrate(
    model: torch.nn.Module,
    batches: Iterable[torch.Tensor],
    *,
    device: torch.device,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> int:
    """Set every batch-norm layer's running statistics to their mean over ``batches``.

    Parameters
    ----------
    model : torch.nn.Module
        The network; its mode (train or eval) is restored afterwards.
    batches : iterable of torch.Tensor
        Input batches ``(B, C, *in_tile)``, as training feeds them.
    device : torch.device
        Where the network is.
    memory_format : torch.memory_format
        The layout training uses (channels-last or contiguous).

    Returns
    -------
    int
        The number of batches seen (0: nothing changed, e.g. no batch-norm layer).

    Notes
    -----
    With ``momentum=None`` a batch-norm layer keeps the cumulative average of the batch means
    and (unbiased) variances: after ``n`` batches its statistics are the mean over all of them.
    """
    layers = _bn_layers(model)
    inputs = list(batches)
    if not layers or not inputs:  # nothing to average over: the statistics stay as they are
        return 0
    was_training = model.training
    momenta = [m.momentum for m in layers]
    model.eval()  # dropout off; only the batch-norm layers compute batch statistics
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    n = 0
    try:
        for x in inputs:
            model(x.to(device).contiguous(memory_format=memory_format))
            n += 1
    finally:
        for m, momentum in zip(layers, momenta):
            m.momentum = momentum
        model.train(was_training)
    return n


@contextmanager
def recalibrated(
    model: torch.nn.Module,
    batches: Iterable[torch.Tensor],
    *,
    device: torch.device,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> Iterator[int]:
    """:func:`recalibrate` for the duration of a block, then the running statistics back.

    Validation (and the ``best.pt`` it writes) sees exact statistics, while training goes on
    from its own running averages exactly as it would have without the validation: a resumed
    run stays identical to an uninterrupted one whatever its validation interval.
    """
    layers = _bn_layers(model)
    saved = [
        {k: v.clone() for k, v in m.state_dict().items()}  # running mean/var, batch count
        for m in layers
    ]
    try:
        yield recalibrate(model, batches, device=device, memory_format=memory_format)
    finally:
        with torch.no_grad():
            for m, state in zip(layers, saved):
                for name, value in state.items():
                    getattr(m, name).copy_(value)


def recalibration_batches(
    cfg: TrainConfig, images: Sequence[TrainImage], model: UNet, in_tile: tuple[int, ...]
) -> list[torch.Tensor]:
    """``cfg.recalibrate_bn`` augmented training tiles ``(4, C, *in_tile)`` at a time.

    Drawn as training draws its tiles, with their own seed (the training's tile stream is
    untouched); none when recalibration is off or ``model`` has no batch norm.
    """
    if not cfg.recalibrate_bn or not has_batch_norm(model):
        return []
    tiles = TileDataset(
        list(images),
        in_tile=in_tile,
        out_tile=model.geometry.output_shape(in_tile),
        augment=cfg.augment,
        length=cfg.recalibrate_bn,
        seed=cfg.seed + RECALIBRATION_SEED,
        oversample=cfg.oversample,
    )
    return [
        torch.stack([tiles[i]["image"] for i in range(start, min(start + 4, len(tiles)))])
        for start in range(0, len(tiles), 4)
    ]
