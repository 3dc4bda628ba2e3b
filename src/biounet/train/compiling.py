"""Whether a run trains a compiled network: ``compile: auto`` compiles where it pays.

``torch.compile`` makes a training step faster but costs time once, up front. Measured on the
2-core CPU of ``benchmarks/compile.py``: the ``cpu`` preset's step runs 1.23x faster compiled,
after a compile of about 36 s (3 s once inductor's on-disk cache holds it), so compiling pays
after 50-700 iterations; the paper preset's step runs 0.96x as fast compiled (slower). With
``compile: auto`` (the default) a run trains its first :data:`MEASURED` iterations eagerly,
measures their speed, and compiles when the iterations still planned (by ``iterations`` or by
the time budget) save more time than the compile is expected to cost; it then measures as many
compiled iterations and goes back to eager unless they are at least 2% faster. ``compile:
true`` compiles from the start, ``false`` never.

If compiling fails (no C++ compiler, an operation inductor cannot take), the run goes on
eagerly with a warning. Under ``torchrun`` rank 0 decides for every rank.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Callable
from typing import Any

import torch

from biounet.config import TrainConfig
from biounet.train.distributed import Ranks, from_rank0

__all__ = ["EXPECTED_COMPILE_S", "EXPECTED_SPEEDUP", "MEASURED", "Compiler", "worth_compiling"]

log = logging.getLogger(__name__)

#: eager iterations measured before ``compile: auto`` decides
MEASURED = 8
#: the speed-up of a compiled training step expected, by device type (CPU: measured 1.2x for
#: the cpu preset, ``benchmarks/compile.py``)
EXPECTED_SPEEDUP = {"cpu": 1.15, "cuda": 1.25}
#: the compile time of a training step expected, s, by device type
EXPECTED_COMPILE_S = {"cpu": 45.0, "cuda": 90.0}


def worth_compiling(
    cfg: TrainConfig,
    seconds: list[float],
    remaining: int,
    ranks: Ranks,
    device: torch.device,
) -> bool:
    """Whether ``compile: auto`` compiles now, after eager iterations that took ``seconds``.

    ``remaining`` is the number of iterations still planned. On rank 0's measurements.
    """
    per_it = statistics.median(seconds[1:] or seconds)
    speedup = EXPECTED_SPEEDUP.get(device.type, 1.0)
    cost = EXPECTED_COMPILE_S.get(device.type, float("inf"))
    saved = remaining * per_it * (1.0 - 1.0 / speedup)
    yes = float(saved > cost)
    if ranks.world > 1:
        (yes,) = from_rank0((yes,), device)
    log.info(
        "compile auto: %s (%d iterations left at %.2f s; compiling would save ~%.0f s and "
        "cost ~%.0f s)", "compiling" if yes else "eager", remaining, per_it, saved, cost,
    )  # fmt: skip
    return bool(yes)


class Compiler:
    """The network a run trains: eager, compiled from the start, or compiled when it pays.

    Parameters
    ----------
    net : torch.nn.Module
        The network as trained (DDP-wrapped under ``torchrun``), eager.
    cfg : TrainConfig
        ``cfg.compile`` (True, False or ``"auto"``) and ``cfg.compile_backend``.
    ranks, device
        This process's place and device (rank 0 decides for all).
    """

    def __init__(
        self, net: torch.nn.Module, cfg: TrainConfig, ranks: Ranks, device: torch.device
    ) -> None:
        self.eager, self.cfg, self.ranks, self.device = net, cfg, ranks, device
        self.net = self._compiled() if cfg.compile is True else net
        self.seconds: list[float] = []  #: eager iterations measured (compile: auto)
        self.trial: list[float] = []  #: compiled iterations measured, the compile first
        self.checked = False  #: a compiled step has succeeded: later errors are the run's own

    def step(self, fn: Callable[..., float], *args: Any) -> float:
        """``fn(network, *args)``: one training step; a compiled network that fails falls back."""
        if self.net is self.eager or self.checked:
            return fn(self.net, *args)
        try:
            loss = fn(self.net, *args)
        except Exception as e:  # torch.compile's failures come at the first call
            why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            log.warning("the compiled network failed (%s); training eagerly", why)
            self.net = self.eager
            return fn(self.net, *args)
        self.checked = True
        return loss

    def measured(self, seconds: float, remaining: int) -> None:
        """Record an iteration of ``seconds``; ``compile: auto`` decides after a few.

        After :data:`MEASURED` eager iterations it compiles if that pays
        (:func:`worth_compiling`); after as many compiled ones it goes back to eager if the
        compiled network is not at least 2% faster (so a network that compiles to slower
        code, as the paper's does on a 2-core CPU, costs one compile and no more).
        """
        if self.cfg.compile != "auto":
            return
        if len(self.seconds) < MEASURED:
            self.seconds.append(seconds)
            if len(self.seconds) == MEASURED and worth_compiling(
                self.cfg, self.seconds, remaining, self.ranks, self.device
            ):
                self.net = self._compiled()
        elif self.net is not self.eager and len(self.trial) <= MEASURED:
            self.trial.append(seconds)
            if len(self.trial) == MEASURED + 1 and not self._faster():
                self.net = self.eager

    def _faster(self) -> bool:
        """Whether the compiled iterations ran at least 2% faster than the eager ones."""
        eager = statistics.median(self.seconds[1:])
        compiled = statistics.median(self.trial[1:])  # the first held the compile
        yes = float(compiled < 0.98 * eager)
        if self.ranks.world > 1:
            (yes,) = from_rank0((yes,), self.device)
        log.info("compile auto: compiled %.3f s against eager %.3f s per iteration: %s",
                 compiled, eager, "keeping it" if yes else "back to eager")  # fmt: skip
        return bool(yes)

    def _compiled(self) -> torch.nn.Module:
        """The eager network compiled with the configured backend (at its first call)."""
        return torch.compile(self.eager, backend=self.cfg.compile_backend)  # type: ignore[return-value]
