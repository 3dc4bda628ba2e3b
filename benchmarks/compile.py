"""Eager against ``torch.compile``, for ``predict`` and for the training step, on this machine.

In one run, each measurement in a fresh process (so no compiled network is kept from an
earlier one; inductor's on-disk cache is warmed once first, as it is for a user's second run):

* ``predict`` of random float32 images of 1, 16 and 256 tiles, for the ``narrow`` preset at
  its fitted tile (512 px output) and the paper's network at the paper's tile (572 -> 388 px),
  with ``backend="eager"``, ``"compile"`` and ``"auto"``: wall time, compile included, and
  auto's time over the better of the other two (the goal: at most 1.05);
* the training step (forward, weighted cross-entropy, backward, optimiser step) of the ``cpu``
  preset (narrow, 380 px tiles, batch 2) and of the paper preset (572 px, batch 1), eager
  and compiled: compile time, seconds per iteration, and the iterations after which
  compiling has paid for itself.

Run ``python benchmarks/compile.py --json compile.json`` (about 25 minutes on 2 cores; one
heavy job at a time) or ``--quick`` (a smoke test: small images, few iterations).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

#: (preset, tile or None for the fitted one, output px per tile along each axis)
NETS = {"narrow": (None, 512), "ronneberger2015": (572, 388)}
TILES = (1, 16, 256)
BACKENDS = ("eager", "compile", "auto")


def worker_predict(p: dict[str, Any]) -> dict[str, Any]:
    """One ``predict`` call: wall time and the backend chosen."""
    import logging

    import numpy as np
    import torch

    import biounet

    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda r: records.append(r.getMessage())  # type: ignore[method-assign]
    logging.getLogger("biounet.inference.backend").addHandler(handler)
    logging.getLogger("biounet.inference.backend").setLevel(logging.INFO)
    torch.manual_seed(0)
    net = biounet.UNet.from_preset(p["preset"])
    side = p["side"]
    image = np.random.default_rng(0).random((side, side), dtype=np.float32)
    began = time.perf_counter()
    biounet.predict(net, image, tile_shape=p["tile"], backend=p["backend"])
    return {"seconds": time.perf_counter() - began, "log": records}


def worker_train(p: dict[str, Any]) -> dict[str, Any]:
    """Training steps, eager or compiled: the first step (compile) and the median of the rest."""
    import torch

    from biounet.config import build_config
    from biounet.core.runtime import tune_allocator
    from biounet.train.optim import build_optimizer
    from biounet.train.setup import build_model
    from biounet.train.step import Precision, place, train_step

    tune_allocator()
    cfg = build_config(p["preset"])
    torch.manual_seed(0)
    net = build_model(cfg, 1)
    tile = net.geometry.nearest_valid_sizes(cfg.tile)[1]
    out = net.geometry.output_shape((tile, tile))
    precision = Precision.of(cfg, torch.device("cpu"))
    place(net, precision)
    opt = build_optimizer(cfg.optim, net.parameters())
    scaler = precision.scaler()
    model = torch.compile(net) if p["compiled"] else net
    b, k = cfg.batch_size, net.config.num_classes
    batch = {
        "image": torch.randn(b, 1, tile, tile),
        "target": torch.randint(0, k, (b, *out)),
        "weight": torch.rand(b, *out) + 0.5,
    }
    times = []
    for it in range(p["iterations"]):
        began = time.perf_counter()
        train_step(model, batch, opt, scaler, precision, cfg.loss, cfg.optim, it)
        times.append(time.perf_counter() - began)
    return {"first": times[0], "per_it": statistics.median(times[2:]), "tile": tile}


WORKERS = {"predict": worker_predict, "train": worker_train}


def run(kind: str, params: dict[str, Any], timeout: float) -> dict[str, Any]:
    """``WORKERS[kind](params)`` in a fresh interpreter; its result, or the error."""
    cmd = [sys.executable, __file__, "--worker", kind, json.dumps(params)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1:] or ["failed"]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def predict_section(quick: bool, timeout: float, repeats: int) -> list[dict[str, Any]]:
    """Each net x tile count x backend; auto over the better of eager and compiled."""
    rows = []
    counts = (1, 4) if quick else TILES
    for preset, (tile, out) in NETS.items():
        if quick and preset != "narrow":
            continue
        run("predict", {"preset": preset, "side": out, "tile": tile, "backend": "compile"}, timeout)
        for n in counts:
            side = out * round(n**0.5)
            row: dict[str, Any] = {"preset": preset, "tiles": n, "side": side}
            # short calls are repeated (the median kept), the backends interleaved
            times: dict[str, list[float]] = {b: [] for b in BACKENDS}
            for _ in range(repeats if n < max(counts) else 1):
                for b in BACKENDS:
                    r = run("predict", {"preset": preset, "side": side, "tile": tile,
                                        "backend": b}, timeout)  # fmt: skip
                    if "seconds" in r:
                        times[b].append(r["seconds"])
                    if b == "auto":
                        row["auto_log"] = r.get("log") or r.get("error")
            for b in BACKENDS:
                row[b] = statistics.median(times[b]) if times[b] else None
            if row["eager"] and row["compile"] and row["auto"]:
                row["auto_over_best"] = row["auto"] / min(row["eager"], row["compile"])
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def train_section(quick: bool, timeout: float) -> list[dict[str, Any]]:
    """Compile time and per-iteration speed of the training step, eager and compiled."""
    rows = []
    for preset in ("cpu",) if quick else ("cpu", "ronneberger2015"):
        its = 4 if quick else 12
        eager = run("train", {"preset": preset, "compiled": False, "iterations": its}, timeout)
        comp = run("train", {"preset": preset, "compiled": True, "iterations": its}, timeout)
        row: dict[str, Any] = {"preset": preset, "eager": eager, "compiled": comp}
        if "per_it" in eager and "per_it" in comp:
            row["speedup"] = eager["per_it"] / comp["per_it"]
            gain = eager["per_it"] - comp["per_it"]
            extra = comp["first"] - eager["first"]
            row["pays_after_iterations"] = extra / gain if gain > 0 else None
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    """Parse the arguments, measure, print and write the results."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--sections", nargs="+", default=["predict", "train"])
    ap.add_argument("--timeout", type=float, default=1500.0)
    ap.add_argument("--repeats", type=int, default=3, help="runs of the shorter predict calls")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        kind, params = args.worker
        print(json.dumps(WORKERS[kind](json.loads(params))))
        return
    import torch

    began = time.monotonic()
    results: dict[str, Any] = {
        "machine": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
    }
    if "predict" in args.sections:
        results["predict"] = predict_section(args.quick, args.timeout, args.repeats)
    if "train" in args.sections:
        results["train"] = train_section(args.quick, args.timeout)
    results["wall_s"] = time.monotonic() - began
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(f"done in {results['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
