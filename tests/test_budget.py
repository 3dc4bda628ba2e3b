"""The time budget: runs end within ``max_minutes`` on a quiet or a busy machine (fake clocks)."""

from __future__ import annotations

import types

import pytest

import biounet
import biounet.train.loop as loop
from biounet.checkpoint import load_checkpoint
from biounet.config import OptimConfig, build_config
from biounet.reporting.runlog import read_metrics
from biounet.train.budget import TimeBudget
from biounet.train.optim import lr_at, lr_factor

from .conftest import TINY, cells


def _simulate(budget: TimeBudget, speed, val_s: float = 0.0, tune_s: float = 0.0):
    """Drive ``budget`` as the loop does; returns (end time, iterations, validations, rates)."""
    t, it, vals, progress = 0.0, 0, 0, []
    while True:
        duration = speed(it, t)
        t += duration
        it += 1
        step = budget.step(it, duration, t)
        progress.append(step.progress)
        if step.validate or step.planned == it:
            t += val_s
            vals += 1
            budget.validated(val_s)
        if step.planned == it:
            return t + (tune_s if budget.tunes else 0.0), it, vals, progress


@pytest.mark.parametrize(
    "name, speed",
    [
        ("quiet", lambda it, t: 0.2),
        ("busy from halfway", lambda it, t: 0.2 if t < 150 else 0.9),
        ("quiet from halfway", lambda it, t: 0.9 if t < 150 else 0.2),
        ("noisy", lambda it, t: 0.2 + 0.6 * ((it * 7919) % 13 == 0)),
        ("slow iterations", lambda it, t: 4.0),
    ],
)
def test_the_budget_is_met_within_3_percent(name, speed) -> None:
    budget = TimeBudget(5.0, 10**6, validates=True, tunes=True)
    end, its, vals, progress = _simulate(budget, speed, val_s=6.0, tune_s=8.0)
    assert 0.97 * 300 <= end <= 1.03 * 300, (name, end)
    assert vals >= 9  # a validation at every tenth (the end's may stand for the last)
    assert progress == sorted(progress) and progress[-1] > 0.97  # the schedule reached its end
    assert its > 0


def test_a_resumed_budget_counts_the_earlier_sessions() -> None:
    budget = TimeBudget(5.0, 10**6, seconds_before=200.0)
    end, _, _, progress = _simulate(budget, lambda it, t: 0.5)
    assert 0.97 * 100 <= end <= 100  # what is left of 300 s
    assert progress[0] > 0.66


def test_the_iteration_count_bounds_a_budget_with_time_to_spare() -> None:
    budget = TimeBudget(5.0, 50)
    end, its, _, progress = _simulate(budget, lambda it, t: 0.5)
    assert its == 50 and end == pytest.approx(25.0)
    assert progress[-1] == 1.0  # the schedule follows the nearer limit


def test_a_spent_budget_stops_at_once() -> None:
    budget = TimeBudget(1.0, 10**6, seconds_before=61.0)
    assert budget.step(7, 0.1, 0.1).planned == 7


def test_the_time_schedule_equals_the_count_schedule_at_equal_progress() -> None:
    o = OptimConfig(lr=1.0, schedule="cosine", warmup=10)
    assert lr_at(o, 3, 0.9) == lr_factor(o, 3, 1000) == 0.4  # warming up: by count
    assert lr_at(o, 505, 0.5) == pytest.approx(lr_factor(o, 505, 1000))
    assert lr_at(o, 10**6, 1.0) == 0.0


class _FakeClock:
    """``time.monotonic`` of the loop: advances only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_fit_meets_its_budget_on_a_machine_that_slows_down(tmp_path, monkeypatch) -> None:
    # every iteration "takes" 0.5 s, then 2 s once a third of the budget is spent (another
    # job started); a validation 3 s, the tuning of the instance rule 4 s: the run must end
    # within 3% of its 2 minutes, validate at every tenth, and anneal to the end
    clock = _FakeClock()
    monkeypatch.setattr(loop, "time", types.SimpleNamespace(monotonic=clock.monotonic))
    step, validate, tune = loop.train_step, loop._validate, loop.tune_best

    def slow_step(*a, **k):
        clock.now += 0.5 if clock.now < 1040 else 2.0
        return step(*a, **k)

    def slow_validate(*a, **k):
        clock.now += 3.0
        return validate(*a, **k)

    def slow_tune(*a, **k):
        clock.now += 4.0
        return tune(*a, **k)

    monkeypatch.setattr(loop, "train_step", slow_step)
    monkeypatch.setattr(loop, "_validate", slow_validate)
    monkeypatch.setattr(loop, "tune_best", slow_tune)
    cfg = build_config(
        "cpu",
        overrides=[
            TINY,
            {
                "iterations": 100000,
                "max_minutes": 2.0,
                "val_every": 10**6,
                "optim": {"warmup": 0, "schedule": "cosine"},
                "data": {"val_fraction": 0.34},
            },
        ],
    )
    result = biounet.fit(cfg, tmp_path / "run", samples=cells(3), progress=False)
    took = clock.now - 1000.0
    assert 0.97 * 120 <= took <= 1.03 * 120, took
    ck = load_checkpoint(result.run / "last.pt")
    assert ck["planned_iterations"] == ck["iteration"] > 40
    records = read_metrics(result.run)
    # one at every tenth; the last tenth's falls within an iteration of the end's, which
    # stands for it
    assert sum("val_loss" in r for r in records) >= 9
    lrs = [r["lr"] for r in records if "lr" in r]
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] < 0.03 * cfg.optim.lr


def test_a_run_without_budget_validates_at_least_five_times(tmp_path) -> None:
    cfg = build_config(
        "cpu",
        overrides=[TINY, {"iterations": 10, "val_every": 250, "data": {"val_fraction": 0.34}}],
    )
    result = biounet.fit(cfg, tmp_path / "run", samples=cells(3), progress=False)
    validated = [r["iteration"] for r in read_metrics(result.run) if "val_loss" in r]
    assert validated == [2, 4, 6, 8, 10]
