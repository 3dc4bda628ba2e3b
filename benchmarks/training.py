"""Training-step throughput of biounet's loop against a bare PyTorch loop, side by side.

For each preset (``cpu`` and ``ronneberger2015``), in one run:

1. ``biounet.fit`` on synthetic cells for ``N`` iterations (no validation, checkpoint only at
   the end): seconds per iteration from its metrics log, and the share of each iteration spent
   waiting for tiles (reading, weight maps, augmentation, collation);
2. a bare loop: the same network, optimiser and loss on pre-made random tensors of the same
   shapes (no data pipeline at all).

It reports output pixels per second of both and the ratio (goal: biounet's full step within
15% of the bare step). Warm-up iterations are excluded from both. Both run with glibc's
allocator tuned (:func:`biounet.core.runtime.tune_allocator`, which ``fit`` calls on a CPU).

Run: ``python benchmarks/training.py [--iterations 30] [--paper-iterations 4] [--json FILE]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from biounet.config import build_config
from biounet.core.runtime import tune_allocator
from biounet.data import Sample
from biounet.data.synthetic import make_cells
from biounet.reporting.runlog import read_metrics
from biounet.train import build_model, fit
from biounet.train.losses import dice_ce_loss
from biounet.train.optim import build_optimizer


def samples(n: int = 6, size: int = 512) -> list[Sample]:
    out = []
    for i in range(n):
        image, labels = make_cells((size, size), seed=i)
        out.append(Sample(f"c{i}", image[None], labels))
    return out


def bench_fit(preset: str, iterations: int, warmup: int, data: list[Sample]) -> dict[str, float]:
    cfg = build_config(
        preset,
        overrides=[
            {
                "iterations": iterations,
                "log_every": 1,
                "val_every": 10**9,
                "checkpoint_minutes": 10**6,
                "data": {"annotation": "instances", "val_fraction": 0.0},
            }
        ],
    )
    with tempfile.TemporaryDirectory() as tmp:
        fit(cfg, Path(tmp) / "run", samples=data, progress=False)
        recs = [r for r in read_metrics(Path(tmp) / "run") if "loss" in r][warmup:]
    step = statistics.median(r["seconds_per_it"] for r in recs)
    share = statistics.median(r["data_share"] for r in recs)
    return {"seconds_per_it": step, "data_share": share}


def bench_bare(preset: str, iterations: int, warmup: int) -> dict[str, float]:
    cfg = build_config(preset, overrides=[{"data": {"annotation": "instances"}}])
    torch.manual_seed(0)
    model = build_model(cfg, 1).train()
    g = model.geometry
    tile = g.nearest_valid_sizes(cfg.tile)[1]
    out = g.output_size(tile)
    b = cfg.batch_size
    x = torch.randn(b, 1, tile, tile)
    y = torch.randint(0, 2, (b, out, out))
    w = torch.rand(b, out, out) + 0.5
    opt = build_optimizer(cfg.optim, model.parameters())
    times = []
    for i in range(iterations):
        t0 = time.perf_counter()
        loss = dice_ce_loss(model(x), y, w, ce=cfg.loss.ce, dice=cfg.loss.dice)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return {"seconds_per_it": statistics.median(times), "tile": tile, "out": out, "batch": b}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=30, help="cpu preset iterations")
    parser.add_argument("--paper-iterations", type=int, default=4)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    # fit() tunes glibc's allocator on the CPU (biounet.core.runtime); do it first so that the bare
    # loop runs under the same allocator and the ratio compares the loops alone
    tune_allocator()
    data = samples()
    results = {}
    for preset, n in (("cpu", args.iterations), ("ronneberger2015", args.paper_iterations)):
        warm = max(1, n // 10)
        bare = bench_bare(preset, n, warm)
        full = bench_fit(preset, n, warm, data)
        px = bare["batch"] * bare["out"] ** 2
        results[preset] = {
            "tile": bare["tile"],
            "output": bare["out"],
            "batch": bare["batch"],
            "bare_s": bare["seconds_per_it"],
            "biounet_s": full["seconds_per_it"],
            "bare_px_per_s": px / bare["seconds_per_it"],
            "biounet_px_per_s": px / full["seconds_per_it"],
            "data_share": full["data_share"],
            "ratio": full["seconds_per_it"] / bare["seconds_per_it"],
        }
    print(f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    print(
        f"{'preset':<16}{'tile->out x batch':<20}{'bare s/it':>10}{'biounet s/it':>13}"
        f"{'out px/s':>10}{'data share':>11}{'ratio':>7}"
    )
    for name, r in results.items():
        print(
            f"{name:<16}{r['tile']}->{r['output']} x {r['batch']:<10}{r['bare_s']:>10.3f}"
            f"{r['biounet_s']:>13.3f}{r['biounet_px_per_s']:>10.0f}{r['data_share']:>11.1%}"
            f"{r['ratio']:>7.3f}"
        )
    for name, r in results.items():
        verdict = "met" if r["ratio"] <= 1.15 else "NOT met"
        print(f"{name}: biounet step / bare step = {r['ratio']:.3f} (goal <= 1.15: {verdict})")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
