"""The time budget: how many iterations fit into ``max_minutes``, measured as training runs."""

from __future__ import annotations

import logging
from dataclasses import dataclass

__all__ = ["TimeBudget"]

log = logging.getLogger(__name__)


@dataclass
class TimeBudget:
    """Fits the planned iteration count to ``minutes`` of training.

    The speed is measured between the 5th and the 20th iteration of this session (the first
    ones are slower while kernels warm up), and the plan set once to what fits into the time
    left, 5% kept for validation and checkpoints; past the budget training stops at once.

    Attributes
    ----------
    minutes : float
        The budget of the whole run (earlier sessions of a resumed run included).
    seconds_before : float
        Training time of the earlier sessions of this run.
    start : int
        The iteration this session started at.
    """

    minutes: float
    seconds_before: float = 0.0
    start: int = 0
    t5: float | None = None  #: elapsed seconds at the 5th iteration of this session

    def plan(self, planned: int, it: int, elapsed: float) -> int:
        """The iteration to end at, after ``it`` iterations and ``elapsed`` s of this session.

        A pure function of its arguments and the speed measured so far: with ``elapsed``
        taken from rank 0, all ranks decide alike.
        """
        budget = 60 * self.minutes - self.seconds_before
        done = it - self.start
        if done == 5:
            self.t5 = elapsed
        n = planned
        if done == 20 or elapsed > budget:
            per_it = (elapsed - (self.t5 or 0.0)) / (15 if self.t5 is not None else done)
            n = it if elapsed > budget else min(n, it + int(0.95 * (budget - elapsed) / per_it))
        n = max(n, it)
        if n != planned:
            log.info("time budget %.1f min: %d iterations in all", self.minutes, n)
        return n
