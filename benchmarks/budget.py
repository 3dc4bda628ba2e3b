"""Does ``max_minutes`` hold? ``fit`` on a time budget, on a quiet machine and a busy one.

Each run trains the demo's configuration (the ``cpu`` preset on synthetic touching cells,
instance annotations, 20% validation images) with ``max_minutes`` in a fresh process, and
reports the wall time of ``fit`` over the budget, the iterations, the validations (so how
``best.pt`` was chosen) and the last learning rate as a share of the base rate. Conditions:

* ``quiet``: nothing else runs;
* ``busy``: a competing process (a pure-Python busy loop, one core) starts a third of the way
  into the budget and runs to the end, as when a user starts another job.

``--src NAME=DIR`` runs the same on another source tree (e.g. an earlier commit exported with
``git archive``), side by side. Run ``python benchmarks/budget.py --minutes 3 --json
budget.json`` (about 4 x minutes; one heavy job at a time).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

BUSY = "import time\nwhile True:\n    sum(range(10000))\n"


def worker(minutes: float, folder: str) -> dict[str, Any]:
    """Train with the budget into ``folder``; what happened."""
    import biounet
    from biounet.config import build_config
    from biounet.data.synthetic import write_synthetic
    from biounet.reporting.runlog import read_metrics

    data = Path(folder) / "data"
    write_synthetic(data, 16, shape=(256, 256), seed=0)
    cfg = build_config(
        "cpu",
        overrides=[
            {
                "max_minutes": minutes,
                "iterations": 100_000,
                "data": {"path": str(data), "annotation": "instances", "val_fraction": 0.2},
                "loss": {"ce": 1.0, "dice": 0.0},
            }
        ],
    )
    began = time.monotonic()
    biounet.fit(cfg, Path(folder) / "run", progress=False)
    seconds = time.monotonic() - began
    records = read_metrics(Path(folder) / "run")
    lrs = [r["lr"] for r in records if "lr" in r]
    return {
        "seconds": seconds,
        "over_budget": seconds / (60 * minutes),
        "iterations": max(r["iteration"] for r in records),
        "validations": sum(any(k.startswith("val_") for k in r) for r in records),
        "last_lr_share": lrs[-1] / cfg.optim.lr if lrs else None,
    }


def measure(src: str | None, minutes: float, busy: bool) -> dict[str, Any]:
    """One run in a fresh process (``src`` on ``PYTHONPATH``), optionally with a competitor."""
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, __file__, "--worker", str(minutes), tmp]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        competitor: list[subprocess.Popen[bytes]] = []
        timer = threading.Timer(
            20 * minutes,  # a third of the budget
            lambda: competitor.append(subprocess.Popen([sys.executable, "-c", BUSY])),
        )
        if busy:
            timer.start()
        out, err = proc.communicate(timeout=60 * minutes * 3 + 300)
        timer.cancel()
        for c in competitor:
            c.kill()
            c.wait()
    if proc.returncode:
        return {"error": err.decode().strip().splitlines()[-1:]}
    return json.loads(out.decode().strip().splitlines()[-1])


def main() -> None:
    """Parse the arguments, run every source x condition, print and write the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--src", nargs="*", default=[], metavar="NAME=DIR")
    ap.add_argument("--conditions", nargs="+", default=["quiet", "busy"])
    ap.add_argument("--json", type=Path)
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(float(args.worker[0]), args.worker[1])))
        return
    sources: list[tuple[str, str | None]] = [("this", None)]
    sources += [tuple(s.split("=", 1)) for s in args.src]  # type: ignore[misc]
    rows = []
    for condition in args.conditions:
        for name, src in sources:
            r = measure(src, args.minutes, condition == "busy")
            rows.append({"source": name, "condition": condition, **r})
            print(json.dumps(rows[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"minutes": args.minutes, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
