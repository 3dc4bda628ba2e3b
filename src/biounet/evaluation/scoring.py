"""Evaluating segmentations against ground truth, file by file and over the whole set.

The task chooses the metrics; ``EvalOptions(metrics=[...])`` keeps some of them (the keys of
:func:`metric_keys`). Per image and over the set (``images``, ``mean_*``: per-image means,
``pooled_*``: from one confusion matrix of all pixels):

``semantic``
    Class maps: pixel error, accuracy, IoU and Dice (means over the foreground classes); over
    the set also every class's IoU, Dice, precision and recall (``pooled_iou_1``, ...).
``cells``
    Objects: instance matching at IoU >= 0.5 (precision, recall, F1), average precision at IoU
    0.5:0.95, panoptic quality, the Cell Tracking Challenge SEG score, and pixel IoU; over the
    set from counts pooled over all objects.
``membranes``
    EM membranes (ISBI 2012): V_Rand and V_Info with their split and merge parts and the
    thresholds (0.0-1.0 in steps of 0.1) that maximise them, after thinning
    (:func:`biounet.metrics.isbi_scores`); the warping error, the adapted Rand error and the
    pixel error at ``threshold``. Over the set, ``v_rand``, ``v_info``, ... are the challenge's
    stack figure: one threshold for all slices, counts pooled (``isbi_scores`` of the stacked
    slices), beside the per-slice means ``mean_v_rand``, ... of each slice's own best threshold.

Predictions may be probability maps (``(C, *S)`` float; membranes also a membrane probability
``(*S)``), masks or instance labels as ``biounet predict`` writes them; they are paired with the
truth by file stem, ignoring the suffixes ``predict`` writes (``_mask``, ``_labels``,
``_probs``). A 3D ``(Z, Y, X)`` truth is scored page by page (2D) unless
``EvalOptions(volume=True)``.
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

from biounet.core.checks import look_up
from biounet.data.io import file_stem, is_image_file, read_image

log = logging.getLogger(__name__)

TASKS = ("semantic", "cells", "membranes")
_SUFFIX = re.compile(r"_(mask|labels|probs|prob|pred|prediction|seg)$")

__all__ = [
    "TASKS",
    "EvalOptions",
    "evaluate",
    "evaluate_files",
    "metric_keys",
    "pair_files",
]

#: the per-image metrics of each task, in column order
_ROW_KEYS = {
    "semantic": ("pixel_error", "accuracy", "iou", "dice"),
    "cells": ("precision", "recall", "f1", "pq", "seg", "iou", "objects", "found"),
    "membranes": (
        "v_rand",
        "v_rand_split",
        "v_rand_merge",
        "v_rand_threshold",
        "v_info",
        "v_info_split",
        "v_info_merge",
        "v_info_threshold",
        "warping_error",
        "rand_error",
        "pixel_error",
    ),
}
#: metrics found in the summary only
_SUMMARY_KEYS = {
    "semantic": (),
    "cells": ("mean_ap", "ap_50", "pixel_error", "dice"),
    "membranes": ("one_minus_v_rand", "iou", "dice"),
}
_PER_CLASS = ("iou", "dice", "precision", "recall")
_ISBI_KEYS = _ROW_KEYS["membranes"][:8]
_ALIAS = {"panoptic_quality": "pq"}  # summary key -> the metric it belongs to


def metric_keys(task: str, num_classes: int = 2) -> tuple[str, ...]:
    """The metrics ``task`` computes, the choices of ``EvalOptions.metrics``.

    Parameters
    ----------
    task : {"semantic", "cells", "membranes"}
    num_classes : int, default 2
        Semantic: the number of classes, for the per-class keys ``iou_0``, ``recall_1``, ...

    Examples
    --------
    >>> metric_keys("cells")[:4]
    ('precision', 'recall', 'f1', 'pq')
    >>> metric_keys("semantic")[4:8]
    ('iou_0', 'dice_0', 'precision_0', 'recall_0')
    """
    look_up(task, TASKS, "task")
    keys = _ROW_KEYS[task] + _SUMMARY_KEYS[task]
    if task == "semantic":
        keys += tuple(f"{m}_{c}" for c in range(num_classes) for m in _PER_CLASS)
    return keys


@dataclass
class EvalOptions:
    """How to read predictions and truth, and which metrics to report.

    Parameters
    ----------
    task : {"semantic", "cells", "membranes"}, default "semantic"
        The metric set (see the module docstring).
    truth_foreground : int, optional
        Semantic and cells: the value of the objects in a binary truth mask; default: the
        larger of its two values. Membranes: the value of the membrane in the truth; default
        0, the ISBI 2012 convention (label PNGs: membrane 0 = black, cells 255 = white), so a
        0/1 truth whose membrane is 1 needs ``truth_foreground=1``. Every other value is
        cell; the value taken is logged (INFO).
    threshold : float in (0, 1), default 0.5
        Probability maps. Cells and 2-class semantic: foreground where ``p > threshold``.
        Membranes: membrane where the membrane probability exceeds it, for the warping error,
        the pixel error and the adapted Rand error; V_Rand and V_Info are maximised over the
        thresholds 0.0-1.0 instead.
    membrane_class : int, default 0
        Membranes: which class of a prediction is membrane, ``probs[membrane_class]`` of a
        ``(C, *S)`` probability map and the pixels of that class in a class map. Class maps
        are read as ``predict`` writes ``_mask`` files: a 0/255 map is classes 0 and 1 (255),
        any other integer or bool map holds class indices. 0 fits a 2-class net trained on
        ISBI labels (membrane 0 is class 0, cells 255 class 1).
    num_classes : int, optional
        Semantic class maps: the number of classes (default: from the data).
    min_size : int, default 0
        Cells: predicted objects made from probabilities or masks smaller than this (pixels)
        are removed.
    metrics : sequence of str or str, optional
        Report only these metrics, keys of :func:`metric_keys` (a string is split at commas);
        default: all. A metric ``m`` keeps its column ``m`` and the summary entries ``m``,
        ``mean_m`` and ``pooled_m``; ``pq`` also keeps ``panoptic_quality``.
    volume : bool, default False
        :func:`evaluate_files`: score a 3D truth ``(Z, Y, X)`` as one volume (3D objects: a
        ball is one object, counted once) instead of page by page as 2D images.
        :func:`evaluate` scores the arrays it is given as they are. The ISBI scores are 2D by
        definition: in a volume, V_Rand/V_Info regions and the warp stay per slice.
    """

    task: str = "semantic"
    truth_foreground: int | None = None
    threshold: float = 0.5
    membrane_class: int = 0
    num_classes: int | None = None
    min_size: int = 0
    metrics: Sequence[str] | str | None = None
    volume: bool = False


def _key(path: Path) -> str:
    return _SUFFIX.sub("", file_stem(path))


def _is_stack(a: Any) -> bool:
    """A ``(Z, Y, X)`` stack of pages (not a ``(Y, X, 3)`` colour image)."""
    return len(a.shape) == 3 and a.shape[-1] > 4


def _is_folder(path: Path) -> bool:
    return path.is_dir() and path.suffix.lower() != ".zarr"


def _images(path: Path, suffix: str | None = None) -> list[tuple[str, Path]]:
    """(key, file) for every image in a folder, or the one file ``path``.

    ``suffix`` keeps only files whose name without extension ends with it (e.g. ``_probs``).
    """
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if _is_folder(path):
        files = sorted(
            p
            for p in path.iterdir()
            if is_image_file(p)
            and (suffix is None or p.name.split(".")[0].endswith(suffix))
            and not p.name.split(".")[0].endswith("_overlay")  # pictures, not predictions
        )
        if not files:
            raise ValueError(f"{path}: the folder holds no images")
        return [(_key(p), p) for p in files]
    return [(_key(path), path)]


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
) -> list[tuple[str, Path, Path]]:
    """Prediction files paired with truth files by stem: ``(name, prediction, truth)``.

    Where a folder holds several outputs of one image (``a_mask.png``, ``a_labels.tif``,
    ``a_probs.tif``), the first suffix of ``prefer`` found is scored. Images on one side only
    are named in a warning and not scored (so a held-out subset can be scored against a full
    ground-truth folder); no pair at all is an error. Two stack files (a 3D truth) pair
    whatever their names; :func:`evaluate_files` splits them into pages.
    """
    pred, truth = Path(pred), Path(truth)
    p_items, t_items = _images(pred, pred_suffix), _images(truth)
    if not _is_folder(pred) and not _is_folder(truth) and _is_stack(read_image(truth)):
        return [(t_items[0][0], pred, truth)]  # stack vs stack
    preds: dict[str, Path] = {}
    for k, f in sorted(p_items, key=lambda item: -_rank(item[1], prefer)):
        preds[k] = f  # the preferred output comes last and wins
    truths = {k for k, _ in t_items}
    missing = [k for k, _ in t_items if k not in preds]
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
    return [(k, preds[k], f) for k, f in t_items if k in preds]


def _pages(name: str, pred: np.ndarray, truth: np.ndarray) -> list[tuple[str, Any, Any]]:
    """The pages of a truth stack ``(Z, Y, X)`` and of its prediction, as 2D pairs."""
    z, plane = truth.shape[0], truth.shape[1:]
    if pred.shape == truth.shape or (
        pred.ndim == 4 and pred.shape[0] == z and pred.shape[2:] == plane
    ):  # (Z, Y, X) maps, or (Z, C, Y, X) probabilities as predict writes them for a stack
        return [(f"{name}[{i}]", pred[i], truth[i]) for i in range(z)]
    if pred.ndim == 4 and pred.shape[1:] == truth.shape:  # (C, Z, Y, X) of a 3D net
        return [(f"{name}[{i}]", pred[:, i], truth[i]) for i in range(z)]
    raise ValueError(
        f"{name}: the prediction {pred.shape} does not match the truth stack {truth.shape} page "
        "by page; expected (Z, Y, X) maps or (Z, C, Y, X) / (C, Z, Y, X) probabilities"
    )


def _channels_first(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``(Z, C, Y, X)`` probabilities of a stack as ``(C, Z, Y, X)``, others unchanged."""
    if (
        pred.ndim == truth.ndim + 1 == 4
        and pred.shape[1:] != truth.shape
        and pred.shape[0] == truth.shape[0]
        and pred.shape[2:] == truth.shape[1:]
    ):
        return np.moveaxis(pred, 1, 0)
    return pred


def _binary_classes(pred: np.ndarray) -> np.ndarray:
    """Class indices of an integer map: two values, the larger above 1 (0/255), are 0 and 1."""
    values = np.unique(pred)
    if len(values) <= 2 and values.max(initial=0) > 1:  # a 0/255 mask
        return np.asarray(pred == values.max()).astype(np.int64)
    return pred.astype(np.int64)


def _truth_membrane(name: str, truth: np.ndarray, value: int) -> np.ndarray:
    values = np.unique(truth)
    if len(values) > 2:
        raise ValueError(
            f"{name}: a membrane ground truth holds 2 values (membrane and cells), found "
            f"{len(values)}: {values[:10]}"
        )
    if value not in values:
        log.warning(
            "%s: no truth pixel has the membrane value %d (values: %s); set truth_foreground "
            "(--truth-foreground) to the value of the membranes",
            name,
            value,
            ", ".join(str(v) for v in values),
        )
    mask: np.ndarray = truth == value
    return mask


def _membrane_prob(name: str, pred: np.ndarray, nd: int, o: EvalOptions) -> np.ndarray:
    """The membrane probability (float in [0, 1], float32 or wider) of a prediction."""
    if pred.ndim == nd + 1:  # probabilities (C, *S)
        if not 0 <= o.membrane_class < pred.shape[0]:
            raise ValueError(
                f"{name}: membrane_class {o.membrane_class} is not a class of the probability "
                f"map of shape {pred.shape} (classes 0..{pred.shape[0] - 1})"
            )
        prob = np.asarray(pred[o.membrane_class])
    elif pred.dtype.kind == "f":
        prob = np.asarray(pred)
    else:  # a class map as predict writes it: 0/255 (255 = class 1) or class indices
        values = np.unique(pred)
        classes = pred // 255 if values.max(initial=0) == 255 and set(values) <= {0, 255} else pred
        prob = (classes == o.membrane_class).astype(np.float32)
    prob = prob.astype(np.result_type(prob.dtype, np.float32), copy=False)  # values kept
    if prob.size and not (np.isfinite(prob).all() and prob.min() >= 0 and prob.max() <= 1):
        raise ValueError(
            f"{name}: a membrane probability must lie in [0, 1], got [{prob.min()}, "
            f"{prob.max()}]; scale it first (8-bit maps: divide by 255)"
        )
    return prob


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
    return _binary_classes(pred)


def _selected(o: EvalOptions, choices: Sequence[str]) -> set[str] | None:
    """The metrics of ``o.metrics``, checked against ``choices``; None for all."""
    if o.metrics is None:
        return None
    names = o.metrics.split(",") if isinstance(o.metrics, str) else list(o.metrics)
    names = [str(m).strip() for m in names if str(m).strip()]
    if not names:
        raise ValueError(f"metrics {o.metrics!r} names no metric; choose from {', '.join(choices)}")
    return {look_up(m, choices, f"metric of task {o.task!r}") for m in names}


def _metric_of(key: str, choices: Sequence[str]) -> str | None:
    """The metric a summary key belongs to: itself, its alias, or ``mean_m``/``pooled_m``'s m."""
    if key in choices:
        return key
    if key in _ALIAS:
        return _ALIAS[key]
    for prefix in ("mean_", "pooled_"):
        if key.startswith(prefix) and key[len(prefix) :] in choices:
            return key[len(prefix) :]
    return None


def _filter(
    rows: list[dict[str, Any]],
    summary: dict[str, Any],
    keep: set[str] | None,
    choices: Sequence[str],
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    if keep is None:
        return rows, summary
    rows = [{k: v for k, v in r.items() if k == "image" or k in keep} for r in rows]
    summary = {k: v for k, v in summary.items() if k == "images" or _metric_of(k, choices) in keep}
    return rows, summary


def evaluate(
    pairs: Sequence[tuple[str, np.ndarray, np.ndarray]], options: EvalOptions
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Scores per image and over the whole set for ``(name, prediction, truth)`` triples.

    Parameters
    ----------
    pairs : sequence of (str, numpy.ndarray, numpy.ndarray)
        Name, prediction and truth of each image. Truth: ``(*S)``, ``S = (Y, X)`` or
        ``(Z, Y, X)``; prediction: ``(C, *S)`` probabilities or a ``(*S)`` map (see
        :class:`EvalOptions` for how each task reads them). Arrays are scored as given: a
        ``(Z, Y, X)`` pair is one volume.
    options : EvalOptions

    Returns
    -------
    rows : list of dict
        One per image: ``image`` (the name) and the task's metrics (:func:`metric_keys`).
    summary : dict
        ``images`` (their number); ``mean_m``, the mean over images of every row metric ``m``
        (not of thresholds; images where ``m`` is NaN, such as SEG without reference objects,
        left out); ``pooled_*`` from one confusion matrix of all pixels (semantic: with every
        class's ``iou_c``, ``dice_c``, ``precision_c``, ``recall_c``); cells: the instance
        scores from counts pooled over all objects; membranes: the stack figure (below).

    Notes
    -----
    Membranes: ``v_rand``, ``v_info`` and their ``_split``, ``_merge`` and ``_threshold`` in the
    summary are :func:`biounet.metrics.isbi_scores` of all slices stacked, as the challenge
    scores a stack: one threshold for all slices, the pair counts pooled over them. A row uses
    its slice's own best threshold, so ``mean_v_rand`` is usually higher (optimistic). When the
    slices differ in size only the means are given. ``one_minus_v_rand`` is ``1 - v_rand``
    (after thinning), for comparison with the deprecated "Rand error" of the original 2012
    leaderboard that the U-Net paper quotes, which the challenge's page defines as "1 - the
    maximal F-score of the foreground-restricted Rand index"; we have not checked that it
    reproduces that figure.
    ``warping_error`` and ``pixel_error`` are at ``threshold`` (0.5 by default), not
    minimised over thresholds; ``pooled_warping_error`` counts the error pixels of all slices
    over all their pixels. ``rand_error`` is the adapted Rand error (SNEMI3D, scikit-image) of
    the thinned regions at ``threshold`` against the truth regions, truth membrane left out.
    """
    from biounet.inference import postprocess
    from biounet.metrics import (
        ConfusionMatrix,
        InstanceAccumulator,
        adapted_rand_error,
        match_instances,
        seg_score,
        topology_errors,
    )
    from biounet.metrics.isbi import (
        ISBI_THRESHOLDS,
        _regions,
        _thin,
        best_scores,
        join_tables,
        threshold_tables,
    )

    o = options
    look_up(o.task, TASKS, "task")
    if not 0 < o.threshold < 1:
        raise ValueError(f"threshold must be in (0, 1), got {o.threshold}")
    rows: list[dict[str, Any]] = []
    k = o.num_classes or 2
    if o.task == "semantic":
        pairs = [(name, pred, _truth_classes(name, pred, truth, o)) for name, pred, truth in pairs]
        if o.num_classes is None:
            k = max(2, *(int(t.max()) + 1 for _, _, t in pairs)) if pairs else 2
    choices = metric_keys(o.task, k)
    keep = _selected(o, choices)
    membrane_value = 0 if o.truth_foreground is None else int(o.truth_foreground)
    if o.task == "membranes":
        log.info(
            "membranes: truth pixels of value %d are membrane (%s); prediction class %d is "
            "membrane",
            membrane_value,
            "the ISBI convention" if o.truth_foreground is None else "truth_foreground",
            o.membrane_class,
        )
    total_cm = ConfusionMatrix(k)
    acc = InstanceAccumulator()
    slice_tables: list[list[Any]] = []  # membranes: each slice's counts per ISBI threshold
    planes = set()
    # the adapted Rand error's regions are those isbi_scores thins at o.threshold, when that
    # threshold is one of its own and compares alike in float32 (o.threshold below) and float64
    shared_th = o.threshold in ISBI_THRESHOLDS and float(np.float32(o.threshold)) == o.threshold
    warp_pixels = n_pixels = 0
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
            scores = cm.scores()
            row.update({m: scores[m] for m in _ROW_KEYS["semantic"]})
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
            t_mem = _truth_membrane(name, truth, membrane_value)
            prob = _membrane_prob(name, pred, nd, o)
            tables, regions_t, regions_p = threshold_tables(
                prob.astype(np.float64),  # as isbi_scores compares
                t_mem,
                ISBI_THRESHOLDS,
                regions_at=o.threshold if shared_th else None,
            )
            s = best_scores(tables, ISBI_THRESHOLDS)
            slice_tables.append(tables)
            planes.add(t_mem.shape[-2:])
            p_mem = prob > o.threshold
            topo = topology_errors(t_mem, p_mem)
            warp_pixels += int(topo["error_pixels"])
            n_pixels += t_mem.size
            if regions_p is None:
                regions_p = _thin(_regions(~p_mem))
            cm = ConfusionMatrix(2)
            cm.update(t_mem, p_mem)
            total_cm.update(t_mem, p_mem)
            row.update({key: s[key] for key in _ISBI_KEYS})
            row.update(
                warping_error=topo["warping_error"],
                rand_error=adapted_rand_error(regions_t, regions_p)["error"],
                pixel_error=cm.scores()["pixel_error"],
            )
        rows.append(row)
    summary: dict[str, Any] = {"images": len(rows)}
    if o.task == "membranes" and slice_tables:
        if len(planes) == 1:  # the stack's counts: the slices' joined (regions never cross)
            whole = best_scores([join_tables(ts) for ts in zip(*slice_tables)], ISBI_THRESHOLDS)
            summary.update({key: whole[key] for key in _ISBI_KEYS})
            summary["one_minus_v_rand"] = 1.0 - whole["v_rand"]
        else:
            log.info("membranes: slices of different sizes; no stack figure, only the means")
    for key in rows[0] if rows else {}:
        if key == "image" or key.endswith("_threshold"):
            continue
        vals = [r[key] for r in rows if isinstance(r[key], int | float) and not math.isnan(r[key])]
        summary[f"mean_{key}"] = float(np.mean(vals)) if vals else float("nan")
    pooled = total_cm.scores()
    if o.task == "cells":
        inst = acc.scores()
        summary.update(
            {
                k2: inst[k2]
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
    if o.task == "membranes":
        summary["pooled_warping_error"] = warp_pixels / n_pixels if n_pixels else 0.0
    pooled_keys = ["pixel_error", "iou", "dice"]
    if o.task == "semantic":
        pooled_keys[1:1] = ["accuracy"]
        pooled_keys += [f"{m}_{c}" for c in range(k) for m in _PER_CLASS]
    summary.update({f"pooled_{m}": pooled[m] for m in pooled_keys})
    return _filter(rows, summary, keep, choices)


def evaluate_files(
    pred: str | Path, truth: str | Path, options: EvalOptions, *, pred_suffix: str | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """:func:`evaluate` on files: ``pred`` and ``truth`` are folders or (stack) files.

    A 3D truth ``(Z, Y, X)`` is split into its pages (rows ``name[0]``, ``name[1]``, ...) with
    the prediction's pages: ``(Z, Y, X)`` maps, or ``(Z, C, Y, X)`` (``predict`` on a stack)
    or ``(C, Z, Y, X)`` probabilities. With ``options.volume`` it is scored as one volume
    (``(Z, C, Y, X)`` probabilities are then read as ``(C, Z, Y, X)``).
    """
    look_up(options.task, TASKS, "task")
    if options.task != "semantic":  # checked before reading (semantic: classes from the data)
        _selected(options, metric_keys(options.task))
    items: list[tuple[str, np.ndarray, np.ndarray]] = []
    for name, p_file, t_file in pair_files(
        pred, truth, pred_suffix=pred_suffix, prefer=PREFERRED[options.task]
    ):
        p, t = np.asarray(read_image(p_file)), np.asarray(read_image(t_file))
        if options.volume:
            items.append((name, _channels_first(p, t), t))
        elif _is_stack(t):
            items.extend(_pages(name, p, t))
        else:
            items.append((name, p, t))
    return evaluate(items, options)
