"""Run by ``torchrun`` in tests: train a tiny net with DDP, save this rank's final weights."""

import sys
from pathlib import Path

import torch

from biounet.config import build_config
from biounet.data import Sample
from biounet.data.synthetic import make_cells
from biounet.train import fit


def main() -> None:
    out = Path(sys.argv[1])
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
                "val_every": 3,
                "log_every": 2,
                "data": {"annotation": "instances", "val_fraction": 0.34},
                "optim": {"warmup": 0},
            }
        ],
    )
    result = fit(cfg, out / "run", samples=samples, progress=False)
    rank = torch.distributed.get_rank()
    torch.save(result.model.state_dict(), out / f"rank{rank}.pt")


if __name__ == "__main__":
    main()
