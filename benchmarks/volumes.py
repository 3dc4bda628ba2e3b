"""3D nuclei: a time-budgeted training on synthetic anisotropic stacks, scored on held-out ones.

The data imitate a real fluorescence stack of embryo nuclei (issue 17): ``make_nuclei`` volumes
of 51 x 120 x 122 voxels, z spacing 2.2x the pixel size, nuclei about 3% of the voxels, partly
touching; ``--train`` volumes to train on (20% of them validate, as the presets do), ``--test``
held-out ones. Each variant trains for ``--minutes`` on this machine, predicts the held-out
volumes whole (overlap-tile inference, 3D), makes instances with the model's rule and reports
foreground IoU, AP@0.5, AP@0.5:0.95, SEG, F1 and the object counts, beside the true labels'
connected components (a check of the scoring).

Variants:

* ``today``: what the README led a new user to (issue 17): the ``cpu`` preset with
  ``data.ndim=3``, ``model.preset=narrow3d`` and ``--tile 100``.

Resumable: a variant whose ``result.json`` exists is not run again. Run
``python benchmarks/volumes.py --out OUT --minutes 10`` (about 12 minutes per variant on 2
cores; one heavy job at a time).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

SHAPE = (51, 120, 122)
SPACING = (2.2, 1.0, 1.0)

#: configuration overrides of each variant, over the ``cpu`` preset
VARIANTS: dict[str, list[dict[str, Any]]] = {
    "today": [{"data": {"ndim": 3}, "model": {"preset": "narrow3d"}, "tile": 100}],
}


def write_volumes(folder: Path, n: int, seed: int) -> Path:
    """``n`` synthetic nucleus stacks as 16-bit TIFF volumes in ``images/`` and ``masks/``."""
    from biounet.data import write_image
    from biounet.data.synthetic import make_nuclei

    if (folder / "images").is_dir():
        return folder
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    for i in range(n):
        image, labels = make_nuclei(SHAPE, spacing=SPACING, seed=seed + i)
        write_image(folder / "images" / f"v{i:02d}.tif", (image * 65535).astype(np.uint16))
        write_image(folder / "masks" / f"v{i:02d}.tif", labels.astype(np.uint16))
    return folder


def score(pairs: list[tuple[str, np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """Instance scores pooled over the volumes, foreground IoU and object counts."""
    from biounet.evaluation import EvalOptions, evaluate

    _, summary = evaluate(pairs, EvalOptions("cells"))
    out = {k: summary[k] for k in ("ap_50", "mean_ap", "f1", "seg", "precision", "recall")}
    inter = sum(int(((p > 0) & (t > 0)).sum()) for _, p, t in pairs)
    union = sum(int(((p > 0) | (t > 0)).sum()) for _, p, t in pairs)
    out["foreground_iou"] = inter / max(union, 1)
    out["foreground_share"] = float(np.mean([(p > 0).mean() for _, p, _ in pairs]))
    out["true_share"] = float(np.mean([(t > 0).mean() for _, _, t in pairs]))
    out["objects"] = int(sum(t.max() for _, _, t in pairs))
    out["found"] = int(sum(np.unique(p[p > 0]).size for _, p, _ in pairs))
    return out


def truth(test: Path) -> dict[str, np.ndarray]:
    """The held-out volumes' true labels, by name."""
    from biounet.data.io import read_image

    return {
        p.stem: np.asarray(read_image(p)).astype(np.int64)
        for p in sorted((test / "masks").glob("*.tif"))
    }


def run_variant(out: Path, train: Path, test: Path, name: str, minutes: float) -> dict[str, Any]:
    """Train the variant for ``minutes``, predict and score the held-out volumes."""
    import biounet
    from biounet.config import build_config
    from biounet.data.io import read_image
    from biounet.inference.postprocess import instances_from_probabilities

    run = out / "runs" / name
    cfg = build_config(
        "cpu",
        None,
        [
            {"max_minutes": minutes, "iterations": 100_000},
            *VARIANTS[name],
            {"data": {"annotation": "instances", "path": str(train)}},
        ],
    )
    t0 = time.monotonic()
    biounet.fit(cfg, run, progress=False)
    train_s = time.monotonic() - t0
    model = biounet.load(run)
    pairs = []
    t0 = time.monotonic()
    for stem, t in truth(test).items():
        probs = biounet.predict(model, read_image(test / "images" / f"{stem}.tif"))
        labels = instances_from_probabilities(probs, kind="cells", rule=model.instance_rule)
        pairs.append((stem, np.asarray(labels), t))
    result = score(pairs)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    result.update(
        variant=name,
        train_seconds=train_s,
        predict_seconds=time.monotonic() - t0,
        iterations=max(r["iteration"] for r in records),
        config=VARIANTS[name],
    )
    return result


def main() -> None:
    """Parse the arguments, make the data, run the variants not yet run, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--train", type=int, default=5, help="training volumes (20%% validate)")
    ap.add_argument("--test", type=int, default=3, help="held-out volumes")
    args = ap.parse_args()
    import torch

    train = write_volumes(args.out / "data" / "train", args.train, seed=0)
    test = write_volumes(args.out / "data" / "test", args.test, seed=10_000)
    t = truth(test)
    rows = [
        {"variant": "true labels", **score([(n, v, v) for n, v in t.items()])},
        {"variant": "true cc", **score([(n, ndi.label(v > 0)[0], v) for n, v in t.items()])},
    ]
    for name in args.variants:
        path = args.out / "runs" / name / "result.json"
        if not path.exists():
            result = run_variant(args.out, train, test, name, args.minutes)
            path.write_text(json.dumps(result, indent=1))
        rows.append(json.loads(path.read_text()))
    keys = ("foreground_iou", "ap_50", "mean_ap", "seg", "f1", "foreground_share", "found")
    print("| variant | " + " | ".join(keys) + " | iterations |")
    print("| --- |" + " ---: |" * (len(keys) + 1))
    for r in rows:
        cells = [f"{r[k]:.3f}" if isinstance(r[k], float) else str(r[k]) for k in keys]
        print(f"| {r['variant']} | " + " | ".join(cells) + f" | {r.get('iterations', '')} |")
    meta = {"machine": platform.machine(), "torch": torch.__version__, "minutes": args.minutes}
    (args.out / "results.json").write_text(json.dumps({**meta, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
