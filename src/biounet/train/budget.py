"""The time budget: a run that ends within ``max_minutes``, however the machine's speed changes.

A budgeted run is planned in time, not in iterations. Every iteration the loop tells the budget
how long the iteration took and how much time has passed; the budget answers with

* the **progress** of the run, a fraction of the time available for training (the learning-rate
  schedule is a function of it, so a run that slows down halfway still anneals to the end of
  its budget, not to an iteration count fixed at the start);
* the **plan**: the iteration the run is expected to end at, refitted every iteration from the
  recent speed (shown by the progress bar, saved in ``last.pt``); the run stops as soon as not
  half of one more iteration fits before the time kept for the end (so it ends as often a
  little late as a little early);
* whether a **validation** is due: at every tenth of the budget (besides ``val_every``), so that
  ``best.pt`` is chosen among at least ten validations in any budgeted run.

The time kept for the end covers the final validation, the batch-norm recalibration and, for
instance annotations, the tuning of the instance rule on the validation images (measured as a
multiple of the last validation's duration). Every duration is measured in the run itself.

The budget is a pure function of the durations and times it is given: under ``torchrun`` the
loop feeds it rank 0's measurements and broadcasts its answers, so all ranks agree, and a test
can drive it with a fake clock.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections import deque
from dataclasses import dataclass, field

__all__ = ["BudgetStep", "TimeBudget"]

log = logging.getLogger(__name__)

#: validations per budget: one at every tenth of it
TENTHS = 10
#: the recent iterations whose median duration is the expected duration of the next one
WINDOW = 20
#: the tuning of the instance rule after training, in validations' time (measured: a
#: validation's prediction once plus 13 post-processings of it, 0.6-1.4x a validation)
TUNE_VALIDATIONS = 1.5
#: a margin on the time kept for the end, s (plots, the final checkpoint)
END_MARGIN = 1.0


@dataclass(frozen=True)
class BudgetStep:
    """What the budget decides after an iteration (the same on every rank).

    Attributes
    ----------
    planned : int
        The iteration the run is expected to end at; equal to the current iteration when the
        run must stop now.
    progress : float
        The share of the training time spent, in [0, 1]: the learning-rate schedule's ``t``.
    validate : bool
        Whether a tenth of the budget was crossed since the last validation.
    """

    planned: int
    progress: float
    validate: bool


@dataclass
class TimeBudget:
    """Fits a run into ``minutes`` of wall time, measured as it goes.

    Parameters
    ----------
    minutes : float
        The budget of the whole run, earlier sessions of a resumed run included.
    iterations : int
        The most iterations the run may take (``cfg.iterations``): with time to spare the run
        ends there, and the schedule follows whichever limit is nearer.
    seconds_before : float
        Wall time of the earlier sessions of this run, s.
    validates : bool
        Whether the run validates (keeps time for the final validation).
    tunes : bool
        Whether the instance rule is tuned after training (keeps time for it).
    """

    minutes: float
    iterations: int
    seconds_before: float = 0.0
    validates: bool = False
    tunes: bool = False
    #: the durations of this session's recent iterations, s
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    #: the duration of the last validation (batch-norm recalibration included), s
    val_seconds: float = 0.0
    #: the tenth of the budget at the last validation
    tenth: int = -1

    def __post_init__(self) -> None:
        self.tenth = self._tenth(0.0)

    @property
    def seconds(self) -> float:
        """The whole budget, s."""
        return 60.0 * self.minutes

    def per_iteration(self) -> float:
        """The expected duration of the next iteration, s (0 before any was measured)."""
        return statistics.median(self.recent) if self.recent else 0.0

    def end_reserve(self) -> float:
        """Time kept for what follows the last iteration, s."""
        if not self.validates:
            return END_MARGIN
        tune = TUNE_VALIDATIONS * self.val_seconds if self.tunes else 0.0
        return self.val_seconds + tune + END_MARGIN

    def validated(self, seconds: float) -> None:
        """Record that a validation took ``seconds`` (the next one is expected to take as long)."""
        self.val_seconds = seconds

    def step(self, it: int, duration: float, elapsed: float) -> BudgetStep:
        """The decision after iteration ``it`` took ``duration`` s, ``elapsed`` s into the session.

        ``it`` counts the run's iterations (earlier sessions included); ``elapsed`` is this
        session's wall time since ``fit`` was called.
        """
        self.recent.append(duration)
        spent = self.seconds_before + elapsed
        left = self.seconds - spent - self.end_reserve()  # for training and mid-run validations
        per_it = self.per_iteration()
        stop = left < 0.5 * per_it or spent >= self.seconds  # not half an iteration more fits
        tenth = self._tenth(elapsed)
        validate = self.validates and tenth > self.tenth
        if validate:
            self.tenth = tenth
            left -= self.val_seconds
            # the end is at most an iteration away: its validation stands for this one
            validate = not stop and left >= 0.5 * per_it
        # validations still to come at the later tenths (each as long as the last)
        later = max(0, TENTHS - 1 - tenth) * self.val_seconds if self.validates else 0.0
        if stop:
            planned = it
        elif per_it > 0:
            planned = it + max(1, int((left - later) / per_it))
        else:
            planned = self.iterations
        planned = max(it, min(planned, self.iterations))
        usable = max(self.seconds - self.end_reserve(), 1e-9)
        progress = min(1.0, max(spent / usable, it / max(1, self.iterations)))
        return BudgetStep(planned, progress, validate)

    def _tenth(self, elapsed: float) -> int:
        """How many tenths of the budget have passed (0-9; 10 when it is spent)."""
        return min(TENTHS, math.floor(TENTHS * (self.seconds_before + elapsed) / self.seconds))
