"""The recipe of the shipped model ``em-membranes``: train it, score it, write it and its card.

Two trainings of the same recipe (the ``cpu`` preset for ``--minutes`` on this machine, no
validation split: every slice trains, and the last weights are kept):

1. on ISBI 2012 slices 00-24, scored on 25-29 (pixel error, V_Rand, V_Info, warping error and
   adapted Rand error, by :func:`biounet.evaluate`; with and without rotation/flip averaging):
   the scores of the card;
2. on all 30 slices: the shipped weights.

Then ``src/biounet/zoo/em-membranes.pt`` (the second run's checkpoint, weights in half
precision) and its card ``em-membranes.json``. Resumable: a finished training is not run
again, an interrupted one resumes from its ``last.pt``. Usage (about 2 x minutes)::

    python scripts/em_membranes.py --minutes 60
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NAME = "em-membranes"
ZOO = ROOT / "src" / "biounet" / "zoo"
SCORES = {
    "v_rand": "V_Rand", "v_info": "V_Info", "pooled_pixel_error": "pixel error",
    "pooled_warping_error": "warping error", "mean_rand_error": "adapted Rand error",
}  # fmt: skip


def slices(src: Path, dst: Path, names: list[str]) -> Path:
    """A dataset folder of links to ``names`` of ``src`` (images/ and labels/)."""
    for sub in ("images", "labels"):
        (dst / sub).mkdir(parents=True, exist_ok=True)
        for n in names:
            link = dst / sub / f"{n}.png"
            if not link.exists():
                link.symlink_to((src / sub / f"{n}.png").resolve())
    return dst


def recipe(data: Path, minutes: float) -> Any:
    """The training configuration: the ``cpu`` preset, every slice trains, ``minutes``."""
    from biounet.config import build_config

    return build_config("cpu", None, [{
        "data": {"path": str(data), "annotation": "binary", "foreground": 255,
                 "val_fraction": 0.0},
        "max_minutes": minutes, "iterations": 10_000_000,
    }])  # fmt: skip


def train(cfg: Any, run: Path) -> dict[str, Any]:
    """Train into ``run`` (resuming an interrupted run); its iterations and wall time."""
    import biounet
    from biounet.config import resume_config
    from biounet.reporting.runlog import read_metrics

    done = run / "trained.json"
    if not done.exists():
        resume = (run / "last.pt").exists()
        if resume:
            cfg = resume_config(run, [{"max_minutes": cfg.max_minutes}])
        t0 = time.monotonic()
        biounet.fit(cfg, run, resume=resume, progress=False)
        records = read_metrics(run)
        info = {"iterations": max(r["iteration"] for r in records),
                "seconds": time.monotonic() - t0}  # fmt: skip
        done.write_text(json.dumps(info))
    return dict(json.loads(done.read_text()))


def held_out_scores(run: Path, test: Path) -> dict[str, Any]:
    """The held-out slices' scores of the run's model, plain and averaged over 8 flips."""
    import biounet
    from biounet.data.io import read_image

    model = biounet.load(run)
    names = sorted(p.stem for p in (test / "images").glob("*.png"))
    images = {n: np.asarray(read_image(test / "images" / f"{n}.png")) for n in names}
    truths = {n: np.asarray(read_image(test / "labels" / f"{n}.png")) for n in names}
    out = {}
    for key, tta in (("scores", False), ("scores_tta", True)):
        pairs = [(n, biounet.predict(model, images[n], tta=tta), truths[n]) for n in names]
        _, summary = biounet.evaluate(pairs, biounet.EvalOptions("membranes"))
        out[key] = {k: round(float(summary[k]), 5) for k in SCORES}
    return out


def ship(run: Path, card: dict[str, Any]) -> None:
    """Write the run's weights (half precision) and the card into the package's zoo."""
    import torch

    payload = torch.load(run / "best.pt", map_location="cpu", weights_only=True)  # = the last
    keep = ("format", "format_version", "biounet_version", "model_config", "iteration",
            "metrics", "normalize", "class_names", "tile", "train_config", "instances", "scale",
            "spacing")  # fmt: skip
    small = {k: payload[k] for k in keep if k in payload}
    small["state_dict"] = {k: v.half() if v.is_floating_point() else v
                           for k, v in payload["state_dict"].items()}  # fmt: skip
    tmp = ZOO / f"{NAME}.pt.part"
    torch.save(small, tmp)
    tmp.replace(ZOO / f"{NAME}.pt")
    card["sha256"] = hashlib.sha256((ZOO / f"{NAME}.pt").read_bytes()).hexdigest()
    card["parameters"] = sum(v.numel() for v in payload["state_dict"].values())
    (ZOO / f"{NAME}.json").write_text(json.dumps(card, indent=1, ensure_ascii=False) + "\n")


def main() -> None:
    """Train both runs (or resume them), score the first, ship the second with its card."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--work", type=Path, default=ROOT / "experiments" / "runs" / NAME)
    args = ap.parse_args()
    import torch

    import biounet

    src = args.data_root / "isbi2012"
    all30 = [f"{i:02d}" for i in range(30)]
    held = slices(src, args.work / "data" / "train-00-24", all30[:25])
    test = slices(src, args.work / "data" / "test-25-29", all30[25:])
    full = slices(src, args.work / "data" / "all-30", all30)
    first = train(recipe(held, args.minutes), args.work / "held-out")
    scores = held_out_scores(args.work / "held-out", test)
    final = train(recipe(full, args.minutes), args.work / "all-30")
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    card = {
        "title": "Membranes in serial-section TEM of neural tissue (ISBI 2012)",
        "task": "membranes",
        "description": (
            "Class 0 is membrane, class 1 the inside of cells. For EM images like the "
            "training data: 8-bit serial-section TEM of the Drosophila first-instar larva "
            "ventral nerve cord, about 4 nm per pixel (resample others to that first). "
            "`biounet predict em-membranes IMAGE --out DIR` writes the membrane mask; "
            "`--probabilities` the maps; `--instances --instance-kind membranes` the regions "
            "between membranes."
        ),
        "training_data": {
            "name": "ISBI 2012 EM segmentation challenge, training set (30 slices of 512 px)",
            "cite": [
                "Cardona et al., PLoS Biology 8(10): e1000502, 2010",
                "Arganda-Carreras et al., Frontiers in Neuroanatomy 9:142, 2015",
            ],
            "terms": "the challenge asks users of the data to cite the papers above",
        },
        "licence": "MIT (the weights, as biounet); see training_data.terms for the data",
        "recipe": {
            "script": "scripts/em_membranes.py",
            "command": f"python scripts/em_membranes.py --minutes {args.minutes:g}",
            "preset": "cpu",
            "minutes": args.minutes,
            "validation": "none",
        },
        "held_out": {
            "trained_on": "slices 00-24",
            "scored_on": "slices 25-29",
            "iterations": first["iterations"],
            **scores,
        },
        "training": {
            "slices": "00-29",
            "iterations": final["iterations"],
            "minutes": round(final["seconds"] / 60, 1),
            "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
            "torch": torch.__version__,
            "biounet": biounet.__version__,
            "commit": commit,
            "date": time.strftime("%Y-%m-%d"),
        },
        "cite_biounet_network": "Ronneberger, Fischer & Brox, U-Net, MICCAI 2015",
    }
    ship(args.work / "all-30", card)
    print(json.dumps(card["held_out"], indent=1))


if __name__ == "__main__":
    main()
