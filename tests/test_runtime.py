"""The allocator settings biounet applies on CPU, checked in fresh processes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from biounet.core.runtime import _glibc

pytestmark = pytest.mark.skipif(_glibc() is None, reason="needs Linux with glibc")

SCRIPT = """
import numpy as np
import biounet
from biounet.core.runtime import allocator_tuned
model = biounet.UNet.from_preset("narrow", depth=2, base_width=4)
assert not allocator_tuned()
probs = biounet.predict(model, np.zeros((40, 40), np.float32), device="cpu")
assert probs.shape == (2, 40, 40)
print(allocator_tuned())
"""


def _run(env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "BIOUNET_TUNE_ALLOCATOR"}
    if env_value is not None:
        env["BIOUNET_TUNE_ALLOCATOR"] = env_value
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_predict_on_cpu_tunes_the_allocator() -> None:
    assert _run(None) == "True"


@pytest.mark.parametrize("value", ["0", "off", "False"])
def test_environment_variable_keeps_glibc_defaults(value: str) -> None:
    assert _run(value) == "False"


class _Machine:
    """Fake CPU counters: ``others`` cores used by other processes, ours by this one."""

    def __init__(self) -> None:
        self.t, self.busy, self.own = 0.0, 0, 0

    def advance(self, seconds: float, others: float, ours: float = 2.0) -> None:
        hz = os.sysconf("SC_CLK_TCK")
        self.t += seconds
        self.busy += round((others + ours) * seconds * hz)
        self.own += round(ours * seconds * hz)

    def counters(self):
        return self.t, self.busy, self.own


@pytest.fixture
def machine(monkeypatch):
    import torch

    import biounet.core.runtime as runtime

    m = _Machine()
    monkeypatch.setattr(runtime, "_share", runtime._CoreShare())
    monkeypatch.setattr(runtime, "_cpu_counters", m.counters)
    monkeypatch.setattr(runtime.time, "monotonic", lambda: m.t)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("BIOUNET_THREADS", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(4)
    yield m
    torch.set_num_threads(threads)


def test_threads_make_room_for_other_processes_and_come_back(machine) -> None:
    import torch

    from biounet.core.runtime import share_cores

    assert share_cores() is None  # the first look only takes a sample
    machine.advance(1.0, others=1.0)
    assert share_cores() is None and torch.get_num_threads() == 4  # too soon to look again
    machine.advance(5.0, others=1.0)
    assert share_cores() == 3 and torch.get_num_threads() == 3
    machine.advance(5.0, others=0.3)  # a process squeezed by spinning threads still counts
    assert share_cores() == 3
    machine.advance(5.0, others=2.6)
    assert share_cores() == 1
    machine.advance(5.0, others=0.1)  # quiet again: every thread back
    assert share_cores() == 4 and torch.get_num_threads() == 4


@pytest.mark.parametrize("env", [{"OMP_NUM_THREADS": "4"}, {"BIOUNET_THREADS": "off"}])
def test_a_chosen_thread_count_is_kept(machine, monkeypatch, env) -> None:
    import torch

    from biounet.core.runtime import share_cores

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    for _ in range(3):
        machine.advance(3.0, others=2.0)
        assert share_cores() is None
    assert torch.get_num_threads() == 4


def test_a_fixed_count_or_the_users_own_call_wins(machine, monkeypatch) -> None:
    import torch

    from biounet.core.runtime import share_cores

    share_cores()
    torch.set_num_threads(2)  # the user's choice, after biounet first looked
    machine.advance(6.0, others=0.0)
    assert share_cores() is None and torch.get_num_threads() == 2
    monkeypatch.setenv("BIOUNET_THREADS", "3")
    assert share_cores() is None and torch.get_num_threads() == 3
