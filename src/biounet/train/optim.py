"""The optimiser, the learning-rate schedule and the plan of each next iteration.

The schedule: warm-up, then constant, cosine or poly, over the run's iterations or, on a time
budget, over its time.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable

import torch

from biounet.config.schema import OptimConfig, TrainConfig
from biounet.train.distributed import Ranks, from_rank0
from biounet.train.state import TrainState

log = logging.getLogger(__name__)

__all__ = ["build_optimizer", "lr_at", "lr_factor", "plan_next", "set_lr", "validation_interval"]


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
    return lr_at(o, it, (it - o.warmup) / max(1, n - o.warmup))


def lr_at(o: OptimConfig, it: int, t: float) -> float:
    """The rate of iteration ``it`` at progress ``t`` of the run, as a fraction of ``o.lr``.

    ``t`` in [0, 1] is how far the run is past its warm-up: a share of its iterations
    (:func:`lr_factor`) or of its time budget (:class:`biounet.train.budget.TimeBudget`). The
    first ``o.warmup`` iterations rise linearly to 1 whatever ``t`` is.

    >>> o = OptimConfig(lr=0.1, schedule="cosine")
    >>> [round(lr_at(o, 100, t), 3) for t in (0.0, 0.5, 1.0, 1.5)]
    [1.0, 0.5, 0.0, 0.0]
    """
    if o.warmup and it < o.warmup:
        return (it + 1) / o.warmup
    if o.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    if o.schedule == "poly":
        return float(max(0.0, 1 - t) ** 0.9)
    return 1.0


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def validation_interval(cfg: TrainConfig) -> int:
    """Iterations between validations: ``val_every``, or less so that a run validates 5 times.

    A budgeted run also validates at every tenth of its budget (:class:`TimeBudget`).
    """
    return max(1, min(cfg.val_every, cfg.iterations // 5))


def plan_next(
    cfg: TrainConfig,
    state: TrainState,
    ranks: Ranks,
    device: torch.device,
    opt: torch.optim.Optimizer,
    duration: float,
    now: float,
) -> bool:
    """After an iteration of ``duration`` s, at ``now`` (s): refit the plan, set the next rate.

    Without a budget the schedule runs over ``cfg.iterations``. On a budget it runs over the
    time (:class:`TimeBudget`), decided on rank 0's clock and measurements and broadcast, so
    every rank ends the loop at the same iteration with the same rates. Returns whether a
    validation is due by time.
    """
    o = cfg.optim
    if state.budget is None:
        set_lr(opt, o.lr * lr_factor(o, state.iteration, state.planned))
        return False
    step = state.budget.step(state.iteration, duration, now - state.started)
    planned, progress, by_time = float(step.planned), step.progress, float(step.validate)
    if ranks.world > 1:
        planned, progress, by_time = from_rank0((planned, progress, by_time), device)
    if int(planned) != state.planned and int(planned) == state.iteration:
        log.info("time budget %.1f min: ending at iteration %d", cfg.max_minutes, state.iteration)
    state.planned = int(planned)
    set_lr(opt, o.lr * lr_at(o, state.iteration, progress))
    return bool(by_time)
