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
