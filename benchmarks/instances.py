"""Instance segmentation on real and synthetic cells: train, predict, score, beside references.

One command per study, resumable: every run writes its own folder and a ``done.json``; a rerun
skips what is done, resumes an interrupted training from its ``last.pt`` and redoes only what is
missing, so a study can be spread over several sittings. Results go to ``OUT/results.json`` and
``OUT/results.md`` (machine, torch version, wall time and the configuration of every run).

Datasets:

``usiigaci``
    ``../shared/data/usiigaci-phc`` (45 phase-contrast images of touching, irregular cells,
    1022 x 1024, 16-bit; see its PROVENANCE.md). The split, fixed here and used for every
    choice: sets 01-35 train (a seeded fifth of them validates and picks ``best.pt``), sets
    36-45 are the test images, never used for any choice. Skipped when the data is absent.
``synthetic``
    The demo's synthetic touching cells: 16 training and 8 test images of 256 x 256 px
    (seeds 0 and 10000, as ``biounet demo`` writes them).

Variants (``--variants``), each the ``cpu`` preset with ``--annotation instances`` and a fixed
number of iterations (``--iterations``; a fixed count rather than a time budget, so that the
comparison does not depend on how busy the machine is; the wall time is reported):

``today``
    The pipeline before issue 12: the paper's 2-class target with the weight map, ``best.pt``
    by pixel IoU, running batch-norm statistics, instance labels by the seeded watershed with
    ``h = 2`` px and no size filter.
``two_class``
    The same target with what issue 12 added around it (the instance rule learnt from the
    training labels' object sizes and chosen on the validation images, model selection by
    AP@0.5, batch-norm statistics recomputed).
``two_class_gaps``
    The same, with one background pixel inserted between touching objects in the target
    (``weights.separation: 2``: the paper's separating background labels).
``three_class``
    Background / interior / boundary target (2 px), seeds from the interior.
``*_scaled``
    The same on images shrunk so that the median object diameter is 32 px (``data.scale:
    auto``). ``three_class_scaled`` is what the ``cpu`` preset does for instances.

``--retune`` chooses a finished run's instance rule again on its validation images with the
current grid (for runs trained before the grid grew), then scores the test images again.

References on the same test images, without training: ``true_cc``, the true foreground mask
split by connected components (what a perfect semantic segmentation gives without
separation), and ``true``, the true labels themselves (a check of the scoring: AP 1).

Scores per dataset and variant, pooled over the test images: AP@0.5 and AP@0.5:0.95 (matched /
(matched + missed + spurious), averaged over IoU thresholds), F1@0.5, the Cell Tracking Challenge
SEG, panoptic quality, object counts, merges (predicted objects holding most of two or more true
objects), splits (true objects holding most of two or more predicted objects) and the false
positives (unmatched at IoU 0.5) by size relative to the median true object area.

Usage::

    python benchmarks/instances.py --out bench-out/instances --datasets usiigaci synthetic
        --variants today two_class three_class --iterations 3000  # one line
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

USIIGACI = Path(__file__).resolve().parents[2] / "shared" / "data" / "usiigaci-phc"
TRAIN_SETS = range(1, 36)
TEST_SETS = range(36, 46)

#: the paper's target on the images' own grid (the cpu preset's defaults before issue 12)
TWO_CLASS_UNSCALED = {"instance_target": "two_class", "num_classes": 2, "scale": 1.0}
#: per variant: settings over the cpu preset, and predict's post-processing override
VARIANTS: dict[str, dict[str, Any]] = {
    "today": {
        "set": [{"best_metric": "iou", "recalibrate_bn": 0, "data": TWO_CLASS_UNSCALED}],
        "postprocess": {"min_size": 0, "h": 2.0},
        "legacy": True,
    },
    "two_class": {"set": [{"data": TWO_CLASS_UNSCALED}], "postprocess": {}},
    "two_class_gaps": {
        "set": [{"weights": {"separation": 2}, "data": TWO_CLASS_UNSCALED}],
        "postprocess": {},
    },
    "two_class_gaps_scaled": {
        "set": [{"weights": {"separation": 2}, "data": {**TWO_CLASS_UNSCALED, "scale": "auto"}}],
        "postprocess": {},
    },
    "three_class": {
        "set": [{"data": {"instance_target": "three_class", "num_classes": 3, "scale": 1.0}}],
        "postprocess": {},
    },
    "three_class_scaled": {  # the cpu preset's defaults for instances since issue 12
        "set": [{"data": {"instance_target": "three_class", "num_classes": 3, "scale": "auto"}}],
        "postprocess": {},
    },
}

#: false positives by area, as a fraction of the median true object area
FP_BINS = (0.0, 0.1, 0.5, 2.0, float("inf"))


# ------------------------------------------------------------------------------------ data
def link_split(out: Path) -> dict[str, Path] | None:
    """``train/`` and ``test/`` folders of symbolic links into the Usiigaci data, by set."""
    if not (USIIGACI / "images").is_dir():
        return None
    folders = {}
    for part, sets in (("train", TRAIN_SETS), ("test", TEST_SETS)):
        root = out / "data" / "usiigaci" / part
        for kind, ext in (("images", "tif"), ("labels", "png")):
            (root / kind).mkdir(parents=True, exist_ok=True)
            for k in sets:
                link = root / kind / f"set{k:02d}.{ext}"
                if not link.exists():
                    link.symlink_to(USIIGACI / kind / f"set{k:02d}.{ext}")
        folders[part] = root
    return folders


def synthetic_split(out: Path) -> dict[str, Path]:
    """The demo's synthetic cells, written once."""
    from biounet.data.synthetic import write_synthetic

    folders = {}
    for part, n, seed in (("train", 16, 0), ("test", 8, 10_000)):
        root = out / "data" / "synthetic" / part
        if not (root / "done").exists():
            write_synthetic(root, n, shape=(256, 256), seed=seed)
            (root / "done").write_text("")
        folders[part] = root
    return folders


def truth_files(test: Path) -> dict[str, Path]:
    """The test images' true label files by image name."""
    folder = test / "labels" if (test / "labels").is_dir() else test / "masks"
    return {p.name.split(".")[0]: p for p in sorted(folder.iterdir())}


# ------------------------------------------------------------------------------------ scoring
def overlaps(truth: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel counts of every (true, predicted) object pair that overlaps, and object sizes."""
    t, p = truth.ravel().astype(np.int64), pred.ravel().astype(np.int64)
    both = (t > 0) & (p > 0)
    pairs, counts = np.unique(np.stack([t[both], p[both]]), axis=1, return_counts=True)
    return pairs, counts, np.bincount(t), np.bincount(p)  # type: ignore[return-value]


def errors(truth: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    """Merges, splits and false positives by size of one image."""
    (ti, pi), inter, t_size, p_size = overlaps(truth, pred)
    # a true object "mostly inside" a predicted one: more than half of it
    t_in_p = inter > 0.5 * t_size[ti]
    p_in_t = inter > 0.5 * p_size[pi]
    merged = np.bincount(pi[t_in_p], minlength=len(p_size))
    split = np.bincount(ti[p_in_t], minlength=len(t_size))
    iou = inter / (t_size[ti] + p_size[pi] - inter)
    matched = set(pi[iou >= 0.5].tolist())
    p_ids = [k for k in np.flatnonzero(p_size) if k > 0]
    t_areas = t_size[1:][t_size[1:] > 0]
    median = float(np.median(t_areas)) if t_areas.size else 1.0
    fp_areas = [int(p_size[k]) for k in p_ids if k not in matched]
    bins = np.histogram(np.array(fp_areas, float) / median, bins=FP_BINS)[0]
    return {
        "merged_pred": int(np.sum(merged >= 2)),
        "split_true": int(np.sum(split >= 2)),
        "fp": len(fp_areas),
        "fp_under_30px": int(np.sum(np.array(fp_areas) < 30)),
        "fp_by_size": {
            f"{lo:g}-{hi:g}x": int(n) for lo, hi, n in zip(FP_BINS[:-1], FP_BINS[1:], bins)
        },
    }


def score(pairs: list[tuple[str, np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """Biounet's instance scores pooled over the images, plus merges, splits, FP by size."""
    from biounet.evaluation import EvalOptions, evaluate

    _, summary = evaluate(pairs, EvalOptions("cells"))
    out = {
        k: summary[k]
        for k in ("ap_50", "mean_ap", "f1", "seg", "panoptic_quality", "precision", "recall")
    }
    out["objects"] = int(sum(np.unique(t[t > 0]).size for _, _, t in pairs))
    out["found"] = int(sum(np.unique(p[p > 0]).size for _, p, _ in pairs))
    per = [errors(t, p) for _, p, t in pairs]
    for key in ("merged_pred", "split_true", "fp", "fp_under_30px"):
        out[key] = int(sum(e[key] for e in per))
    out["fp_by_size"] = {k: int(sum(e["fp_by_size"][k] for e in per)) for k in per[0]["fp_by_size"]}
    return out


def read_truth(test: Path) -> dict[str, np.ndarray]:
    from biounet.data.io import read_image

    return {
        name: np.asarray(read_image(p)).astype(np.int64) for name, p in truth_files(test).items()
    }


def references(test: Path) -> dict[str, dict[str, Any]]:
    """The true labels and the true foreground's connected components, scored."""
    truth = read_truth(test)
    cc = {n: ndi.label(t > 0)[0] for n, t in truth.items()}
    return {
        "true": score([(n, t, t) for n, t in truth.items()]),
        "true_cc": score([(n, cc[n], t) for n, t in truth.items()]),
    }


# ------------------------------------------------------------------------------------ runs
def train(run: Path, data: Path, variant: str, iterations: int, val_every: int) -> float:
    """Train (or resume) a variant; returns the wall time of this call, s."""
    from biounet.config import build_config, resume_config
    from biounet.train import fit

    v = VARIANTS[variant]
    base = {
        "iterations": iterations,
        "val_every": val_every,
        "data": {"annotation": "instances", "path": str(data)},
    }
    t0 = time.monotonic()
    if (run / "last.pt").exists():
        fit(resume_config(run), run, resume=True, progress=False)
    else:
        fit(build_config("cpu", None, [base, *v["set"]]), run, progress=False)
    return time.monotonic() - t0


def predict_and_score(run: Path, test: Path, variant: str) -> dict[str, Any]:
    """Instance labels of the test images with the run's best.pt, scored."""
    import biounet
    from biounet.data.io import read_image
    from biounet.inference.postprocess import instances_from_probabilities

    model = biounet.load(run)
    truth = read_truth(test)
    images = test / "images"
    post = VARIANTS[variant]["postprocess"]
    pairs = []
    t0 = time.monotonic()
    for name, t in truth.items():
        image = next(images.glob(f"{name}.*"))
        probs = biounet.predict(model, read_image(image))
        # as predict --instances makes them: the model's rule, the variant's options over it
        # (the pipeline before issue 12 had no rule: h 2 px, no size filter)
        rule = None if VARIANTS[variant].get("legacy") else model.instance_rule
        labels = instances_from_probabilities(probs, kind="cells", rule=rule, **post)
        pairs.append((name, np.asarray(labels), t))
    result = score(pairs)
    result["predict_seconds"] = time.monotonic() - t0
    if rule is not None:
        result["rule"] = rule.describe()
    return result


def run_one(out: Path, dataset: str, split: dict[str, Path], variant: str, args: Any) -> dict:
    run = out / "runs" / dataset / variant
    done = run / "done.json"
    if done.exists():
        return dict(json.loads(done.read_text()))
    run.mkdir(parents=True, exist_ok=True)
    seconds = 0.0
    if not (run / "trained").exists():
        seconds = train(run, split["train"], variant, args.iterations, args.val_every)
        (run / "trained").write_text(json.dumps({"seconds": seconds}))
    seconds = json.loads((run / "trained").read_text())["seconds"]
    result = {
        "dataset": dataset,
        "variant": variant,
        "train_seconds": seconds,
        "iterations": args.iterations,
        "config": (run / "config.yaml").read_text(),
        **predict_and_score(run, split["test"], variant),
    }
    done.write_text(json.dumps(result, indent=1))
    return result


def retune(out: Path, dataset: str, split: dict[str, Path], variant: str) -> dict | None:
    """Choose a finished run's instance rule again on its validation images, then re-score.

    For runs trained before the rule's grid grew (the foreground threshold): the choice uses
    the run's own validation images only (``biounet.train.tune.tune_best``), as training now
    does at its end; the scores before are kept under ``"before_retune"``.
    """
    from biounet.checkpoint import instance_entry, load_checkpoint
    from biounet.config import load_config
    from biounet.data.normalize import Normalizer
    from biounet.data.tiles import prepare
    from biounet.train.data import load_samples
    from biounet.train.data import split as split_samples
    from biounet.train.tune import tune_best

    run = out / "runs" / dataset / variant
    done = run / "done.json"
    if not done.exists() or VARIANTS[variant].get("legacy"):
        return None
    result = json.loads(done.read_text())
    if "before_retune" in result:
        return dict(result)
    cfg = load_config(run / "config.yaml")
    _, val = split_samples(load_samples(cfg.data), cfg.data, cfg.seed)
    spec, norm = cfg.data.annotation_spec(), Normalizer.from_dict(cfg.data.normalize)
    images = prepare(list(val), spec, norm, cfg.weights)
    sizes = instance_entry(load_checkpoint(run / "best.pt"))[1]
    import torch

    tune_best(run / "best.pt", images, sizes, cfg.data.instance_target, torch.device("cpu"))
    before = {k: v for k, v in result.items() if k != "config"}
    result.update(predict_and_score(run, split["test"], variant))
    result["before_retune"] = before
    done.write_text(json.dumps(result, indent=1))
    return dict(result)


# ------------------------------------------------------------------------------------ report
COLUMNS = ("ap_50", "mean_ap", "f1", "seg", "panoptic_quality", "objects", "found",
           "merged_pred", "split_true", "fp", "fp_under_30px")  # fmt: skip


def markdown(rows: list[dict[str, Any]]) -> str:
    head = "| dataset | run | " + " | ".join(COLUMNS) + " | FP by size (x median) | train s |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 4)]
    for r in rows:
        cells = [f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in COLUMNS]
        fp = ", ".join(f"{k}: {v}" for k, v in r["fp_by_size"].items())
        secs = f"{r['train_seconds']:.0f}" if "train_seconds" in r else "-"
        lines.append(
            f"| {r['dataset']} | {r['variant']} | " + " | ".join(cells) + f" | {fp} | {secs} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench-out/instances"))
    parser.add_argument("--datasets", nargs="+", default=["usiigaci", "synthetic"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--val-every", type=int, default=500)
    parser.add_argument(
        "--retune",
        action="store_true",
        help="choose the finished runs' instance rules again on their validation images",
    )
    args = parser.parse_args(argv)
    import torch

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for dataset in args.datasets:
        split = link_split(out) if dataset == "usiigaci" else synthetic_split(out)
        if split is None:
            print(f"{dataset}: data not present, skipped")
            continue
        for name, ref in references(split["test"]).items():
            rows.append({"dataset": dataset, "variant": name, **ref})
        for variant in args.variants:
            print(f"{dataset} / {variant} ...", flush=True)
            if args.retune:
                retuned = retune(out, dataset, split, variant)
                if retuned is not None:
                    print(markdown([retuned]), flush=True)
                continue
            print(markdown([run_one(out, dataset, split, variant, args)]), flush=True)
        # every run done so far, this call's and earlier sittings', in the variants' order
        for variant in VARIANTS:
            done = out / "runs" / dataset / variant / "done.json"
            if done.exists():
                rows.append(json.loads(done.read_text()))
    meta = {
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
    }
    (out / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    (out / "results.md").write_text(f"{json.dumps(meta)}\n\n" + markdown(rows))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
