"""The optimiser and the learning-rate schedule (warm-up, then constant, cosine or poly)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from biounet.config.schema import OptimConfig

__all__ = ["build_optimizer", "lr_factor", "set_lr"]


def build_optimizer(o: OptimConfig, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """SGD with momentum (the paper: 0.99), Adam or AdamW, at the base rate ``o.lr``."""
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    cls = torch.optim.Adam if o.name == "adam" else torch.optim.AdamW
    return cls(params, lr=o.lr, weight_decay=o.weight_decay)


def lr_factor(o: OptimConfig, it: int, n: int) -> float:
    """The learning rate of iteration ``it`` (0-based) of ``n`` as a fraction of ``o.lr``.

    ``o.warmup`` iterations rise linearly to 1; then ``constant`` stays at 1, ``cosine`` falls
    to 0 at iteration ``n`` and ``poly`` follows ``(1 - t) ** 0.9``.

    >>> o = OptimConfig(lr=0.1, schedule="cosine", warmup=2)
    >>> [round(lr_factor(o, it, 6), 3) for it in range(6)]
    [0.5, 1.0, 1.0, 0.854, 0.5, 0.146]
    """
    if o.warmup and it < o.warmup:
        return (it + 1) / o.warmup
    t = (it - o.warmup) / max(1, n - o.warmup)
    if o.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    if o.schedule == "poly":
        return float(max(0.0, 1 - t) ** 0.9)
    return 1.0


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr
