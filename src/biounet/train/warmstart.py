"""Fine-tuning: a new run that starts from a trained model's network and weights (``init``).

The trained model (a checkpoint, a run folder or a shipped model, :mod:`biounet.zoo`) gives
the run its architecture: :func:`adopt_network` writes the model's network settings into the
configuration, so ``config.yaml`` records them and a resumed run rebuilds the same network.
:func:`load_start` then copies the weights. The input channels must agree with the images; a
different number of classes keeps everything but the 1x1 head, which starts afresh.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from biounet.checkpoint import load_checkpoint
from biounet.config import TrainConfig
from biounet.model.unet import UNet

__all__ = ["adopt_network", "load_start"]

log = logging.getLogger(__name__)

#: network settings that follow the data, not the trained model
_FROM_DATA = ("in_channels", "num_classes", "ndim")


def adopt_network(cfg: TrainConfig) -> dict[str, Any]:
    """Read ``cfg.init`` and put its network settings into ``cfg.model``; the checkpoint.

    Raises
    ------
    FileNotFoundError
        ``cfg.init`` names no checkpoint, run folder or shipped model.
    ValueError
        A corrupt checkpoint, or one of another dimensionality than the data (``data.ndim``).
    """
    ck = load_checkpoint(cfg.init)
    net = dict(ck["model_config"])
    if int(net.get("ndim", 2)) != cfg.data.ndim:
        raise ValueError(
            f"init {cfg.init}: a {net.get('ndim', 2)}D network cannot start a run on "
            f"{cfg.data.ndim}D data (data.ndim {cfg.data.ndim})"
        )
    cfg.model = {k: v for k, v in net.items() if k not in _FROM_DATA}
    return ck


def load_start(model: UNet, ck: dict[str, Any], where: str) -> None:
    """Copy the trained weights of ``ck`` into ``model`` (built by :func:`adopt_network`'s config).

    Raises
    ------
    ValueError
        The images have another number of channels than the trained model took.
    """
    state = ck["state_dict"]
    own = model.state_dict()
    first = model.config.in_channels
    was = int(ck["model_config"].get("in_channels", first))
    if was != first:
        raise ValueError(
            f"init {where}: the model was trained on images of {was} channel(s), these have "
            f"{first}; fine-tune on images like its own, or train from scratch (no --init)"
        )
    fresh = [k for k in own if k.startswith("head.") and state[k].shape != own[k].shape]
    if fresh:
        log.info(
            "init %s: %d classes here, %d in the trained model; the 1x1 head starts afresh",
            where,
            model.config.num_classes,
            int(ck["model_config"].get("num_classes", 0)),
        )
    with torch.no_grad():
        for k, v in own.items():
            if k not in fresh:
                v.copy_(state[k])
    log.info("init %s: weights of %d tensors loaded", where, len(own) - len(fresh))
