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

    python experiments/em_membranes.py --minutes 60
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import common
from common import (
    ISBI_TEST,
    ISBI_TRAIN,
    ROOT,
    biounet_membranes,
    link_slices,
    machine,
    read_images,
    read_truths,
    score_membranes,
    train_resumable,
)

NAME = "em-membranes"
ZOO = ROOT / "src" / "biounet" / "zoo"
#: the checkpoint's entries the shipped file keeps (the optimiser's state is left out)
KEEP = (
    "format", "format_version", "biounet_version", "model_config", "iteration", "metrics",
    "normalize", "class_names", "tile", "train_config", "instances", "scale", "spacing",
)  # fmt: skip
SCORES = ("v_rand", "v_info", "pooled_pixel_error", "pooled_warping_error", "mean_rand_error")


def recipe(data: Path, minutes: float) -> Any:
    """The training configuration: the ``cpu`` preset, every slice trains, ``minutes``."""
    from biounet.config import build_config

    return build_config("cpu", None, [{
        "data": {"path": str(data), "annotation": "binary", "foreground": 255,
                 "val_fraction": 0.0},
        "max_minutes": minutes, "iterations": 10_000_000,
    }])  # fmt: skip


def held_out_scores(run: Path, test: Path) -> dict[str, Any]:
    """The held-out slices' stack scores of the run's model, plain and averaged over 8 flips."""
    import biounet

    model = biounet.load(run)
    images, truths = read_images(test), read_truths(test)
    out = {}
    for key, tta in (("scores", False), ("scores_tta", True)):
        scores = score_membranes(biounet_membranes(model, images, tta)["probs"], truths)
        out[key] = {k: round(scores[k], 5) for k in SCORES}
    return out


def ship(run: Path, card: dict[str, Any], zoo: Path = ZOO) -> None:
    """Write the run's weights (half precision) and the card into the package's zoo.

    Without a validation split, the run's ``best.pt`` is its last network. Both files are
    written atomically.
    """
    import torch

    from biounet.core.files import atomic_path

    payload = torch.load(run / "best.pt", map_location="cpu", weights_only=True)
    small = {k: payload[k] for k in KEEP if k in payload}
    small["state_dict"] = {k: v.half() if v.is_floating_point() else v
                           for k, v in payload["state_dict"].items()}  # fmt: skip
    with atomic_path(zoo / f"{NAME}.pt") as tmp:
        torch.save(small, tmp)
    card["sha256"] = hashlib.sha256((zoo / f"{NAME}.pt").read_bytes()).hexdigest()
    card["parameters"] = sum(v.numel() for v in payload["state_dict"].values())
    with atomic_path(zoo / f"{NAME}.json") as tmp:
        tmp.write_text(json.dumps(card, indent=1, ensure_ascii=False) + "\n")


def make_card(minutes: float, first: dict[str, Any], scores: dict[str, Any],
              final: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """The model's card: what it segments, its data, recipe, held-out scores and provenance."""
    env = machine()
    return {
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
            "script": "experiments/em_membranes.py",
            "command": f"python experiments/em_membranes.py --minutes {minutes:g}",
            "preset": "cpu",
            "minutes": minutes,
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
            "minutes": round(final["train_seconds"] / 60, 1),
            "machine": f"{env['cpu']}, {env['torch_threads']} threads",
            "torch": env["torch"],
            "biounet": env["biounet"],
            "commit": env["commit"],
            "date": time.strftime("%Y-%m-%d"),
        },
        "cite_biounet_network": "Ronneberger, Fischer & Brox, U-Net, MICCAI 2015",
    }


def main() -> None:
    """Train both runs (or resume them), score the first, ship the second with its card."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--data-root", type=Path, default=common.DATA_ROOT)
    ap.add_argument("--work", type=Path, default=ROOT / "experiments" / "runs" / NAME)
    args = ap.parse_args()
    src = args.data_root / "isbi2012"
    if not (src / "images").is_dir():
        sys.exit(f"{src}: no ISBI 2012 data (see --data-root)")
    data = args.work / "data"
    held = link_slices(src, data / "train-00-24", ISBI_TRAIN)
    test = link_slices(src, data / "test-25-29", ISBI_TEST)
    full = link_slices(src, data / "all-30", ISBI_TRAIN + ISBI_TEST)
    first = train_resumable(recipe(held, args.minutes), args.work / "held-out")
    scores = held_out_scores(args.work / "held-out", test)
    final = train_resumable(recipe(full, args.minutes), args.work / "all-30")
    card = make_card(args.minutes, first, scores, final)
    ship(args.work / "all-30", card)
    print(json.dumps(card["held_out"], indent=1))


if __name__ == "__main__":
    main()
