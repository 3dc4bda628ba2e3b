"""Run by ``torchrun`` in tests: train a tiny net with DDP, save this rank's final weights.

The run has a time budget (``max_minutes``), and rank 1's clock runs 1000 times fast: if ranks
decided on their own clocks when the budget is spent, rank 1 would leave the loop after one
iteration while rank 0 waits for it in DDP's gradient all-reduce. ``fit`` takes rank 0's
clock on every rank, so both train all 6 iterations. The process group is set up here with a
short timeout, so that a rank left waiting fails within a minute instead of hanging.
"""

import datetime
import os
import sys
import time
import types
from pathlib import Path

import torch

import biounet.train.loop
from biounet.config import build_config
from biounet.data import Sample
from biounet.data.synthetic import make_cells
from biounet.train import fit


def main() -> None:
    out = Path(sys.argv[1])
    torch.distributed.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    if int(os.environ["RANK"]) == 1:
        t0 = time.monotonic()
        fast = types.SimpleNamespace(monotonic=lambda: t0 + 1000 * (time.monotonic() - t0))
        biounet.train.loop.time = fast  # type: ignore[assignment]
    samples = [
        Sample(f"c{i}", make_cells((64, 64), seed=i)[0][None], make_cells((64, 64), seed=i)[1])
        for i in range(3)
    ]
    cfg = build_config(
        "cpu",
        overrides=[
            {
                "model": {"depth": 2, "base_width": 4},
                "tile": 44,
                "batch_size": 2,
                "iterations": 6,
                "max_minutes": 1.0,
                "val_every": 3,
                "log_every": 2,
                "data": {"annotation": "instances", "val_fraction": 0.34},
                "optim": {"warmup": 0},
            }
        ],
    )
    result = fit(cfg, out / "run", samples=samples, progress=False)
    rank = torch.distributed.get_rank()
    torch.save(result.model.net.state_dict(), out / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
