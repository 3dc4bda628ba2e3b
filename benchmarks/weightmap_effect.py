"""Does the paper's weight map help separate touching cells? Two trainings, side by side.

Trains the ``cpu`` preset twice on the same synthetic fluorescence cells (clustered, touching,
1 px gaps), identical in everything (seed, data, iterations, cross-entropy only) except the
border weight: ``w0 = 10`` (the paper; eq. 2 at every pixel, the pipeline's default
``weights.border_on: all``) against ``w0 = 0`` (class balancing only). Both runs go in
parallel, one core each. Then both segment held-out images; objects are the connected
components of the predicted foreground (no watershed, so only the predicted gaps separate
touching cells), matched to the true cells at IoU >= 0.5.

Reported per run: pixel IoU of the foreground, instance precision / recall / F1 at IoU 0.5,
and the number of predicted objects that cover two or more true cells (merges).

Run: ``python benchmarks/weightmap_effect.py [--minutes 6] [--out bench-out/wmap]``
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
from pathlib import Path

import numpy as np


def train(w0: float, minutes: float, out: Path) -> str:
    import torch

    torch.set_num_threads(1)
    from biounet.config import build_config
    from biounet.data import Sample
    from biounet.data.synthetic import make_dataset
    from biounet.train import fit

    data = [
        Sample(f"c{i}", img[None], lab)
        for i, (img, lab) in enumerate(make_dataset("cells", n=12, shape=(256, 256), seed=0))
    ]
    cfg = build_config(
        "cpu",
        overrides=[
            {
                "iterations": 100000,
                "max_minutes": minutes,
                "val_every": 10**9,
                "loss": {"ce": 1.0, "dice": 0.0},
                "weights": {"w0": w0, "sigma": 5.0},
                "data": {"annotation": "instances", "val_fraction": 0.0},
                "seed": 0,
            }
        ],
    )
    run = out / f"w0_{w0:g}"
    fit(cfg, run, samples=data, progress=False)
    return str(run)


def evaluate(run: str) -> dict[str, float]:
    from scipy import ndimage

    import biounet
    from biounet.data.synthetic import make_dataset
    from biounet.metrics import ConfusionMatrix

    model = biounet.load(run)
    cm = ConfusionMatrix(2)
    tp = fp = fn = merges = 0
    for img, truth in make_dataset("cells", n=4, shape=(256, 256), seed=100):
        fg = biounet.predict(model, img).argmax(0)
        cm.update((truth > 0).astype(int), fg)
        pred, n_pred = ndimage.label(fg)
        n_true = int(truth.max())
        # contingency of predicted objects x true cells
        table = np.zeros((n_pred + 1, n_true + 1), np.int64)
        np.add.at(table, (pred.ravel(), truth.ravel()), 1)
        sizes_p, sizes_t = table.sum(1), table.sum(0)
        iou = table / (sizes_p[:, None] + sizes_t[None, :] - table).clip(min=1)
        matched = iou[1:, 1:] >= 0.5  # at IoU >= 0.5 a match is unique
        tp += int(matched.sum())
        fp += n_pred - int(matched.any(1).sum())
        fn += n_true - int(matched.any(0).sum())
        covered = (table[1:, 1:] > 0.5 * sizes_t[None, 1:]).sum(1)  # true cells mostly inside
        merges += int((covered >= 2).sum())
    p, r = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    return {
        "iou": cm.scores()["iou"],
        "precision": p,
        "recall": r,
        "f1": 2 * p * r / max(p + r, 1e-9),
        "merges": merges,
        "true_cells": tp + fn,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=6.0, help="training time per run")
    parser.add_argument("--out", type=Path, default=Path("bench-out/wmap"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with mp.get_context("spawn").Pool(2) as pool:
        runs = pool.starmap(train, [(10.0, args.minutes, args.out), (0.0, args.minutes, args.out)])
    results = {Path(r).name: evaluate(r) for r in runs}
    print(f"{'run':<8}{'fg IoU':>8}{'precision':>11}{'recall':>8}{'F1@0.5':>8}{'merges':>8}")
    for name, r in results.items():
        print(
            f"{name:<8}{r['iou']:>8.3f}{r['precision']:>11.3f}{r['recall']:>8.3f}"
            f"{r['f1']:>8.3f}{r['merges']:>8d}"
        )
    (args.out / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
