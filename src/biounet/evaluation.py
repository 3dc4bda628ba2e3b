"""Evaluating segmentations against ground truth, file by file and over the whole set.

Three kinds of task choose the metrics (``--metrics`` may pick others):

``semantic``
    Class maps: pixel error, accuracy, IoU and Dice (from one confusion matrix over all images).
``cells``
    Objects: instance matching at IoU 0.5 (precision, recall, F1), average precision at IoU
    0.5:0.95, panoptic quality, the Cell Tracking Challenge SEG score, and pixel IoU.
``membranes``
    EM membranes (ISBI 2012): V_Rand and V_Info (maximised over thresholds 0.0-1.0 in steps of
    0.1, after thinning), the warping error, the adapted Rand error and the pixel error.

Predictions may be probability maps (``(C, *S)`` float; membranes: a membrane probability
``(*S)`` or the class ``membrane_class`` of a ``(C, *S)`` map), masks or instance labels;
they are paired with the truth by file stem, ignoring the suffixes biounet's ``predict``
writes (``_mask``, ``_labels``, ``_probs``). Multi-page stacks pair page by page.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._checks import look_up
from .data.io import file_stem, is_image_file, read_image

log = logging.getLogger(__name__)

TASKS = ("semantic", "cells", "membranes")
_SUFFIX = re.compile(r"_(mask|labels|probs|prob|pred|prediction|seg)$")

__all__ = [
    "TASKS",
    "EvalOptions",
    "evaluate",
    "evaluate_files",
    "format_table",
    "pair_files",
    "write_reports",
]


@dataclass
class EvalOptions:
    """How to read predictions and truth.

    ``truth_foreground``: value of the objects (cells) or of the membranes (membranes task)
    in binary truth masks (None: the larger value; ISBI labels: membranes are 0).
    ``threshold``: foreground threshold for probability maps (cells, semantic with 2 classes).
    ``membrane_class``: which class of a ``(C, *S)`` probability map is the membrane.
    ``num_classes``: for semantic class maps (None: from the data).
    """

    task: str = "semantic"
    truth_foreground: int | None = None
    threshold: float = 0.5
    membrane_class: int = 0
    num_classes: int | None = None
    min_size: int = 0


def _key(path: Path) -> str:
    return _SUFFIX.sub("", file_stem(path))


def _images(path: Path, suffix: str | None = None) -> list[tuple[str, Path, int | None]]:
    """(key, file, page) for every image in a folder, or every page of a stack file.

    ``suffix`` keeps only files whose name without extension ends with it (e.g. ``_probs``).
    """
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_dir() and path.suffix.lower() != ".zarr":
        files = sorted(
            p
            for p in path.iterdir()
            if is_image_file(p)
            and (suffix is None or p.name.split(".")[0].endswith(suffix))
            and not p.name.split(".")[0].endswith("_overlay")  # pictures, not predictions
        )
        if not files:
            raise ValueError(f"{path}: the folder holds no images")
        return [(_key(p), p, None) for p in files]
    data = read_image(path)
    pages = data.shape[0] if data.ndim == 3 and data.shape[-1] > 4 else 0
    if pages:
        return [(f"{_key(path)}[{i}]", path, i) for i in range(pages)]
    return [(_key(path), path, None)]


#: which of ``biounet predict``'s outputs of one image a task scores, first found first
PREFERRED = {
    "semantic": ("_mask", "_probs", "_labels"),
    "cells": ("_labels", "_probs", "_mask"),
    "membranes": ("_probs", "_mask"),
}


def _rank(path: Path, prefer: Sequence[str]) -> int:
    stem = path.name.split(".")[0]
    return next((i for i, s in enumerate(prefer) if stem.endswith(s)), len(prefer))


def pair_files(
    pred: str | Path,
    truth: str | Path,
    *,
    pred_suffix: str | None = None,
    prefer: Sequence[str] = PREFERRED["semantic"],
) -> list[tuple[str, tuple, tuple]]:
    """Predictions paired with truth by stem (or page).

    Where a folder holds several outputs of one image (``a_mask.png``, ``a_labels.tif``,
    ``a_probs.tif``), the first suffix of ``prefer`` found is scored. Images on one side only
    are named in a warning and not scored (so a held-out subset can be scored against a full
    ground-truth folder); no pair at all is an error.
    """
    p_items, t_items = _images(Path(pred), pred_suffix), _images(Path(truth))
    if len(p_items) == len(t_items) and all(p[2] is not None for p in p_items + t_items):
        return [(t[0], p[1:], t[1:]) for p, t in zip(p_items, t_items)]  # stack vs stack
    preds: dict[str, tuple[Path, int | None]] = {}
    for k, f, i in sorted(p_items, key=lambda item: -_rank(item[1], prefer)):
        preds[k] = (f, i)  # the preferred output comes last and wins
    truths = {k for k, _, _ in t_items}
    missing = [k for k, _, _ in t_items if k not in preds]
    extra = sorted(set(preds) - truths)
    if not set(preds) & truths:
        raise ValueError(
            f"{pred}: no prediction pairs with a ground-truth image of {truth} (paired by file "
            "name without extension and without _mask/_labels/_probs); predictions: "
            f"{', '.join(sorted(preds)[:5])}; truth: {', '.join(sorted(truths)[:5])}"
        )
    for what, names in (
        ("ground-truth image(s) without a prediction", missing),
        ("prediction(s) without ground truth", extra),
    ):
        if names:
            log.warning(
                "%d %s, not scored: %s%s",
                len(names),
                what,
                ", ".join(names[:8]),
                " ..." if len(names) > 8 else "",
            )
    return [(k, preds[k], (f, i)) for k, f, i in t_items if k in preds]


def _load(item: tuple[Path, int | None]) -> np.ndarray:
    f, page = item
    a = np.asarray(read_image(f))
    return a[page] if page is not None else a


def _truth_mask(truth: np.ndarray, fg: int | None) -> np.ndarray:
    values = np.unique(truth)
    if len(values) > 2:
        raise ValueError(f"a binary ground truth holds at most 2 values, found {values[:10]}")
    value = fg if fg is not None else int(values.max())
    mask: np.ndarray = truth == value
    return mask


def _truth_classes(name: str, pred: np.ndarray, truth: np.ndarray, o: EvalOptions) -> np.ndarray:
    """The class map of a semantic ground truth.

    ``truth_foreground`` given: that value is class 1, all else 0. Else a two-valued mask
    (0/255) is binary with the larger value as foreground; else the values are class indices,
    unless the prediction has two classes only and the truth more values, as instance labels
    have: then every non-zero value is foreground (with a warning).
    """
    if o.truth_foreground is not None:
        return np.asarray(truth == o.truth_foreground, dtype=np.int64)
    values = np.unique(truth)
    if o.num_classes is None and len(values) == 2 and values.max() > 1:
        return np.asarray(truth == values.max(), dtype=np.int64)
    binary_pred = (pred.ndim == truth.ndim + 1 and pred.shape[0] == 2) or (
        pred.ndim == truth.ndim and len(np.unique(pred)) <= 2
    )
    if o.num_classes is None and len(values) > 2 and binary_pred:
        log.warning(
            "%s: the truth holds %d values but the prediction 2 classes; scoring every non-zero "
            "truth value as foreground (instance labels? --task cells scores objects)",
            name,
            len(values),
        )
        return np.asarray(truth > 0, dtype=np.int64)
    return truth.astype(np.int64)


def _class_map(pred: np.ndarray, truth_ndim: int, o: EvalOptions) -> np.ndarray:
    if pred.ndim == truth_ndim + 1:  # probabilities (C, *S)
        if pred.shape[0] == 2 and o.threshold != 0.5:
            return np.asarray((pred[1] > o.threshold), dtype=np.int64)
        classes: np.ndarray = pred.argmax(0)
        return classes
    if pred.dtype.kind == "f":
        return (pred > o.threshold).astype(np.int64)
    values = np.unique(pred)
    if len(values) <= 2 and values.max(initial=0) > 1:  # a 0/255 mask
        return np.asarray(pred == values.max()).astype(np.int64)
    return pred.astype(np.int64)


def evaluate(
    pairs: Sequence[tuple[str, np.ndarray, np.ndarray]], options: EvalOptions
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Scores per image and over the whole set for ``(name, prediction, truth)`` triples."""
    from . import postprocess
    from .metrics import (
        ConfusionMatrix,
        InstanceAccumulator,
        adapted_rand_error,
        isbi_scores,
        match_instances,
        seg_score,
        topology_errors,
    )

    o = options
    look_up(o.task, TASKS, "task")
    rows: list[dict[str, Any]] = []
    k = o.num_classes or 2
    if o.task == "semantic":
        pairs = [(name, pred, _truth_classes(name, pred, truth, o)) for name, pred, truth in pairs]
        if o.num_classes is None:
            k = max(2, *(int(t.max()) + 1 for _, _, t in pairs)) if pairs else 2
    total_cm = ConfusionMatrix(k)
    acc = InstanceAccumulator()
    for name, pred, truth in pairs:
        nd = truth.ndim
        if tuple(pred.shape[-nd:]) != tuple(truth.shape):
            raise ValueError(
                f"{name}: prediction {pred.shape} and truth {truth.shape} differ in size"
            )
        row: dict[str, Any] = {"image": name}
        if o.task == "semantic":
            cm = ConfusionMatrix(k)
            cls = _class_map(pred, nd, o)
            cm.update(truth, cls)
            total_cm.update(truth, cls)
            row.update({m: cm.scores()[m] for m in ("pixel_error", "iou", "dice")})
        elif o.task == "cells":
            t_inst = truth.astype(np.int64)
            if len(np.unique(t_inst)) <= 2 and t_inst.max() > 1:  # a binary truth mask
                from scipy import ndimage

                t_inst = ndimage.label(t_inst == t_inst.max())[0]
            if pred.ndim == nd + 1 or pred.dtype.kind == "f":
                probs = pred if pred.ndim == nd + 1 else np.stack([1 - pred, pred])
                p_inst = postprocess.instances(probs, threshold=o.threshold, min_size=o.min_size)
            elif len(np.unique(pred)) <= 2:
                p_inst = postprocess.instances(pred > 0, min_size=o.min_size)
            else:
                p_inst = pred.astype(np.int64)
            m = match_instances(t_inst, p_inst)
            acc.update(t_inst, p_inst)
            cm = ConfusionMatrix(2)
            cm.update(t_inst > 0, p_inst > 0)
            total_cm.update(t_inst > 0, p_inst > 0)
            row.update(
                precision=m["precision"],
                recall=m["recall"],
                f1=m["f1"],
                pq=m["panoptic_quality"],
                seg=seg_score(t_inst, p_inst),
                iou=cm.scores()["iou"],
                objects=int(m["n_true"]),
                found=int(m["n_pred"]),
            )
        else:
            t_mem = _truth_mask(truth, o.truth_foreground)
            if pred.ndim == nd + 1:
                prob = pred[o.membrane_class].astype(np.float64)
            elif pred.dtype.kind == "f":
                prob = pred.astype(np.float64)
            else:  # a membrane mask (0/255 or 0/1): membranes are the larger value
                prob = (pred == pred.max()).astype(np.float64)
            s = isbi_scores(prob, t_mem)
            p_mem = prob > 0.5
            topo = topology_errors(t_mem, p_mem)
            regions_t = postprocess.membrane_regions(t_mem.astype(np.float64))
            regions_p = postprocess.membrane_regions(prob, thin=True)
            cm = ConfusionMatrix(2)
            cm.update(t_mem, p_mem)
            total_cm.update(t_mem, p_mem)
            row.update(
                v_rand=s["v_rand"],
                v_info=s["v_info"],
                warping_error=topo["warping_error"],
                rand_error=adapted_rand_error(regions_t, regions_p)["error"],
                pixel_error=cm.scores()["pixel_error"],
            )
        rows.append(row)
    summary: dict[str, Any] = {"images": len(rows)}
    numeric = [k2 for k2 in (rows[0] if rows else {}) if k2 != "image"]
    for key in numeric:
        vals = [r[key] for r in rows if isinstance(r[key], int | float) and not math.isnan(r[key])]
        summary[f"mean_{key}"] = float(np.mean(vals)) if vals else float("nan")
    if o.task == "cells":
        pooled = acc.scores()
        summary.update(
            {
                k2: pooled[k2]
                for k2 in (
                    "precision",
                    "recall",
                    "f1",
                    "mean_ap",
                    "ap_50",
                    "panoptic_quality",
                    "seg",
                )
            }
        )
    summary.update({f"pooled_{m}": total_cm.scores()[m] for m in ("pixel_error", "iou", "dice")})
    return rows, summary


def evaluate_files(
    pred: str | Path, truth: str | Path, options: EvalOptions, *, pred_suffix: str | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """:func:`evaluate` on files: ``pred`` and ``truth`` are folders or stacks."""
    look_up(options.task, TASKS, "task")
    pairs = pair_files(pred, truth, pred_suffix=pred_suffix, prefer=PREFERRED[options.task])
    return evaluate([(name, _load(p), _load(t)) for name, p, t in pairs], options)


def format_table(rows: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    """Per-image rows and the aggregate as a plain-text table."""
    if not rows:
        return "no images"
    keys = [k for k in rows[0] if k != "image"]
    width = max(12, *(len(str(r["image"])) for r in rows))
    head = f"{'image':<{width}}" + "".join(f"{k:>14}" for k in keys)
    lines = [head, "-" * len(head)]
    for r in rows:
        cells = "".join(
            f"{r[k]:>14.4f}" if isinstance(r[k], float) else f"{r[k]:>14}" for k in keys
        )
        lines.append(f"{r['image']!s:<{width}}{cells}")
    lines.append("-" * len(head))
    lines.append(
        "over all images: "
        + ", ".join(
            f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in summary.items()
        )
    )
    return "\n".join(lines)


def write_reports(
    rows: list[dict[str, Any]],
    summary: dict[str, Any],
    *,
    json_path: str | Path | None = None,
    csv_path: str | Path | None = None,
) -> None:
    """Write the scores as JSON (rows and summary) and/or CSV (one row per image), atomically."""
    import csv
    import io
    import json

    from .data.io import atomic_path

    if json_path:
        with atomic_path(json_path) as tmp:
            tmp.write_text(json.dumps({"images": rows, "summary": summary}, indent=2))
    if csv_path:
        buf = io.StringIO()
        if rows:
            writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        with atomic_path(csv_path) as tmp:
            tmp.write_text(buf.getvalue())
