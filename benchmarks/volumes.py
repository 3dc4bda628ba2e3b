"""3D nuclei: a time-budgeted training on synthetic anisotropic stacks, scored on held-out ones.

The data imitate a real fluorescence stack of embryo nuclei (issue 17): ``make_nuclei`` volumes
of 51 x 120 x 122 voxels, z spacing 2.2x the pixel size (written into the TIFFs' metadata, as a
microscope writes it), nuclei about 3% of the voxels, partly touching, of uneven brightness in
a faint cytoplasmic haze, dimmer with depth; ``--train`` volumes to train on (20% of them
validate, as the presets do), ``--test`` held-out ones. Each variant trains for ``--minutes``
on this machine, predicts the held-out volumes whole (overlap-tile inference, 3D), makes
instances with the model's rule and reports foreground IoU, AP@0.5, AP@0.5:0.95, SEG, F1 and
the object counts, beside the true labels' connected components (a check of the scoring), and
the best validation AP@0.5 of the run (what a choice between variants is made by).

Variants (:data:`VARIANTS`): ``today`` is what the README led a new user to before the 3D
presets (the 2D ``cpu`` recipe with ``data.ndim=3``, ``narrow3d``, ``--tile 100``, no voxel
spacing); ``cpu3d`` the defaults now (``--set data.ndim=3`` with the ``cpu`` preset); the
others change one thing of ``cpu3d``: the class-balance remedies (uncapped or no balancing
weights, cross-entropy without Dice, no tiles centred on objects), the voxel spacing ignored,
a larger tile, one training volume (validated on a held-out block of it), and ``slices2d``:
the 2D ``cpu`` preset trained on the planes of the same volumes, its per-plane probabilities
stacked and made into 3D instances by the same rule.

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

#: the 2D ``cpu`` recipe as a 3D user got it before the volume presets (issue 17's run)
TODAY = [{"data": {"ndim": 3, "spacing": [1.0, 1.0, 1.0]}, "model": {"preset": "narrow3d"},
          "tile": 100}]  # fmt: skip

#: per variant: the training preset, overrides over it, and the data it trains on
VARIANTS: dict[str, dict[str, Any]] = {
    "cpu3d": {"preset": "cpu", "overrides": [{"data": {"ndim": 3}}]},
    "today": {"preset": "cpu-2d-recipe", "overrides": TODAY},
    "uncapped": {"preset": "cpu", "overrides": [{"data": {"ndim": 3}},
                                                 {"weights": {"max_class_weight": 0.0}}]},
    "slices2d": {"preset": "cpu", "overrides": [], "data": "planes"},
    "one_volume": {"preset": "cpu", "overrides": [{"data": {"ndim": 3}}], "data": "one"},
    "isotropic": {"preset": "cpu", "overrides": [{"data": {"ndim": 3,
                                                          "spacing": [1.0, 1.0, 1.0]}}]},
    "unbalanced": {"preset": "cpu", "overrides": [{"data": {"ndim": 3}},
                                                   {"weights": {"balance": "none"}}]},
    "ce_only": {"preset": "cpu", "overrides": [{"data": {"ndim": 3}}, {"loss": {"dice": 0.0}}]},
    "not_centred": {"preset": "cpu", "overrides": [{"data": {"ndim": 3}}, {"oversample": 0.0}]},
    "tile96": {"preset": "cpu", "overrides": [{"data": {"ndim": 3}}, {"tile": 96}]},
}  # fmt: skip


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
        raw = (100 + image * 3000).astype(np.uint16)  # a camera's offset and range
        write_image(folder / "images" / f"v{i:02d}.tif", raw, spacing=SPACING)
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


def write_planes(volumes: Path, folder: Path) -> Path:
    """The planes of the volumes in ``volumes`` as 2D images ``NAME_zKK.tif`` (for ``slices2d``)."""
    from biounet.data import write_image
    from biounet.data.io import read_image

    if (folder / "images").is_dir():
        return folder
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    for path in sorted((volumes / "images").glob("*.tif")):
        image = np.asarray(read_image(path))
        labels = np.asarray(read_image(volumes / "masks" / path.name))
        for z in range(image.shape[0]):
            write_image(folder / "images" / f"{path.stem}_z{z:02d}.tif", image[z])
            write_image(folder / "masks" / f"{path.stem}_z{z:02d}.tif", labels[z])
    return folder


def variant_config(name: str, data: Path, minutes: float) -> Any:
    """The training configuration of variant ``name`` on ``data``."""
    from biounet.config import build_config, config_from_dict, merge
    from biounet.config.presets import TRAIN_PRESETS

    v = VARIANTS[name]
    last = [{"max_minutes": minutes, "iterations": 100_000},
            {"data": {"annotation": "instances", "path": str(data)}}]  # fmt: skip
    if v["preset"] == "cpu-2d-recipe":  # the 2D recipe, as the presets were before
        d: dict[str, Any] = merge({"preset": "cpu"}, TRAIN_PRESETS["cpu"])
        for o in [*v["overrides"], *last]:
            d = merge(d, o)
        return config_from_dict(d)
    return build_config(v["preset"], None, [*v["overrides"], *last])


def predict_volume(model: Any, image: np.ndarray, planes: bool, rule: Any) -> np.ndarray:
    """Instance labels of one volume: the 3D model's, or a 2D model's planes stacked."""
    import biounet
    from biounet.inference.postprocess import instances_from_probabilities

    if planes:
        probs = np.stack([biounet.predict(model, image[z]) for z in range(image.shape[0])], 1)
    else:
        probs = biounet.predict(model, image)
    return np.asarray(instances_from_probabilities(probs, kind="cells", rule=rule))


def planes_rule(model: Any, train: Path) -> Any:
    """For ``slices2d``: the rule biounet derives for 3D objects of the training volumes.

    The 2D model's rule counts areas and in-plane radii; its stacked probabilities are made
    into 3D objects by the rule of the training volumes' 3D sizes (with the voxel spacing),
    with the foreground threshold the 2D model's training chose.
    """
    import dataclasses

    from biounet.data.io import read_image
    from biounet.data.objects import object_sizes
    from biounet.inference.postprocess import InstanceRule

    labels = [np.asarray(read_image(p)) for p in sorted((train / "masks").glob("*.tif"))]
    rule = InstanceRule.from_sizes(object_sizes(labels), model.instance_rule.target)
    relative = tuple(s / min(SPACING) for s in SPACING)
    return dataclasses.replace(rule, threshold=model.instance_rule.threshold, spacing=relative)


def run_variant(out: Path, train: Path, test: Path, name: str, minutes: float) -> dict[str, Any]:
    """Train the variant for ``minutes``, predict and score the held-out volumes."""
    import biounet
    from biounet.data.io import read_image

    kind = VARIANTS[name].get("data", "volumes")
    data = {"volumes": train, "planes": write_planes(train, out / "data" / "train_planes"),
            "one": write_volumes(out / "data" / "train_one", 1, seed=0)}[kind]  # fmt: skip
    run = out / "runs" / name
    cfg = variant_config(name, data, minutes)
    t0 = time.monotonic()
    biounet.fit(cfg, run, progress=False)
    train_s = time.monotonic() - t0
    model = biounet.load(run)
    rule = planes_rule(model, train) if kind == "planes" else model.instance_rule
    pairs = []
    t0 = time.monotonic()
    for stem, t in truth(test).items():
        image = np.asarray(read_image(test / "images" / f"{stem}.tif"))
        pairs.append((stem, predict_volume(model, image, kind == "planes", rule), t))
    result = score(pairs)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    vals = [r["val_ap_50"] for r in records if "val_ap_50" in r]
    result.update(
        variant=name,
        train_seconds=train_s,
        predict_seconds=time.monotonic() - t0,
        iterations=max(r["iteration"] for r in records),
        val_ap_50=max(vals) if vals else None,
        preset=cfg.preset,
        tile=list(model.tile or ()),
        coarse_levels=list(model.config.coarse_levels),
        rule=rule.describe(),
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
    keys = ("val_ap_50", "foreground_iou", "ap_50", "mean_ap", "seg", "f1", "foreground_share",
            "found", "iterations")  # fmt: skip
    print("| variant | " + " | ".join(keys) + " |")
    print("| --- |" + " ---: |" * len(keys))
    for r in rows:
        cells = [f"{v:.3f}" if isinstance(v := r.get(k), float) else str(v or "") for k in keys]
        print(f"| {r['variant']} | " + " | ".join(cells) + " |")
    meta = {"machine": platform.machine(), "torch": torch.__version__, "minutes": args.minutes}
    (args.out / "results.json").write_text(json.dumps({**meta, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
