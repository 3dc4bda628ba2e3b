"""Shared fixtures: small, seeded networks that run in milliseconds on a CPU."""

from __future__ import annotations

import pytest
import torch

from biounet import UNet
from biounet.data import Sample
from biounet.data.synthetic import make_cells

collect_ignore = ["helpers"]  # scripts run by tests in subprocesses

#: settings over the cpu preset for a training run of a few seconds on instance labels
TINY = {
    "model": {"depth": 2, "base_width": 4},
    "tile": 44,
    "batch_size": 2,
    "log_every": 2,
    "optim": {"warmup": 0},
    "data": {"annotation": "instances"},
}

# the test networks are tiny: one thread is as fast, and immune to a busy machine's
# oversubscribed OpenMP threads (which can slow small ops by orders of magnitude)
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def small_net(**options: object) -> UNet:
    """A narrow net in eval mode with non-trivial biases and norm statistics."""
    opts: dict[str, object] = {"depth": 2, "base_width": 4, "num_classes": 3}
    opts.update(options)
    net = UNet(**opts)  # type: ignore[arg-type]
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
            bias = getattr(m, "bias", None)
            if isinstance(bias, torch.Tensor):
                bias.uniform_(-0.1, 0.1)
    return net.eval()


def cells(n: int = 4, size: int = 64) -> list[Sample]:
    """``n`` synthetic images of touching cells ``size`` px square, named ``c0``, ``c1``, ..."""
    out = []
    for i in range(n):
        img, lab = make_cells((size, size), seed=i)
        out.append(Sample(f"c{i}", img[None], lab))
    return out
