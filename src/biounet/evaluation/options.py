"""What an evaluation computes: the tasks, EvalOptions, the metric keys and their selection.

This module imports no numpy (the checks of :mod:`biounet.core.checks` are imported where
they are used), so that the command line can read its constants without loading the
numerical stack.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ISBI_KEYS",
    "PER_CLASS",
    "ROW_KEYS",
    "TASKS",
    "EvalOptions",
    "check_options",
    "keep_metrics",
    "metric_keys",
    "selected_metrics",
]

TASKS = ("semantic", "cells", "membranes")

#: the per-image metrics of each task, in column order
ROW_KEYS: Mapping[str, tuple[str, ...]] = {
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
    "cells": ("mean_ap", "ap_50", "merges", "splits", "pixel_error", "dice"),
    "membranes": ("one_minus_v_rand", "iou", "dice"),
}
#: the per-class scores of a semantic summary, ``iou_0``, ``dice_0``, ...
PER_CLASS = ("iou", "dice", "precision", "recall")
#: the ISBI 2012 scores of a membranes row (and of the stack figure of the summary)
ISBI_KEYS = ROW_KEYS["membranes"][:8]
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
    from biounet.core.checks import look_up  # here: core.checks imports numpy

    look_up(task, TASKS, "task")
    keys = ROW_KEYS[task] + _SUMMARY_KEYS[task]
    if task == "semantic":
        keys += tuple(f"{m}_{c}" for c in range(num_classes) for m in PER_CLASS)
    return keys


@dataclass
class EvalOptions:
    """How to read predictions and truth, and which metrics to report.

    Parameters
    ----------
    task : {"semantic", "cells", "membranes"}, default "semantic"
        The metric set (see :mod:`biounet.evaluation.scoring`).
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
        :func:`~biounet.evaluation.scoring.evaluate_files`: score a 3D truth ``(Z, Y, X)`` as
        one volume (3D objects: a ball is one object, counted once) instead of page by page
        as 2D images. :func:`~biounet.evaluation.scoring.evaluate` scores the arrays it is
        given as they are. The ISBI scores are 2D by definition: in a volume, V_Rand/V_Info
        regions and the warp stay per slice.
    """

    task: str = "semantic"
    truth_foreground: int | None = None
    threshold: float = 0.5
    membrane_class: int = 0
    num_classes: int | None = None
    min_size: int = 0
    metrics: Sequence[str] | str | None = None
    volume: bool = False


def check_options(options: EvalOptions) -> None:
    """Raise a ValueError for an unknown task, a threshold outside (0, 1), a class below 0.

    A threshold that is not a number raises :class:`~biounet.core.checks.InputTypeError`.
    """
    from biounet.core.checks import check_fraction, look_up

    look_up(options.task, TASKS, "task")
    check_fraction(options.threshold, "threshold")
    if options.membrane_class < 0:
        raise ValueError(f"membrane_class must be a class index >= 0, got {options.membrane_class}")


def selected_metrics(options: EvalOptions, choices: Sequence[str]) -> set[str] | None:
    """The metrics of ``options.metrics``, each checked against ``choices``; None for all.

    Raises
    ------
    ValueError
        A name that is not one of ``choices`` (with a did-you-mean), or no name at all.
    """
    from biounet.core.checks import look_up

    if options.metrics is None:
        return None
    given = options.metrics
    names = given.split(",") if isinstance(given, str) else list(given)
    names = [str(m).strip() for m in names if str(m).strip()]
    if not names:
        raise ValueError(f"metrics {given!r} names no metric; choose from {', '.join(choices)}")
    return {look_up(m, choices, f"metric of task {options.task!r}") for m in names}


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


def keep_metrics(
    rows: list[dict[str, Any]],
    summary: dict[str, Any],
    keep: set[str] | None,
    choices: Sequence[str],
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rows and the summary with only the entries of the metrics ``keep`` (None: all).

    A row keeps ``image``, the summary ``images``; a summary entry belongs to the metric
    ``m`` when it is ``m``, ``mean_m``, ``pooled_m`` or an alias (``panoptic_quality``: ``pq``).
    """
    if keep is None:
        return rows, summary
    rows = [{k: v for k, v in r.items() if k == "image" or k in keep} for r in rows]
    summary = {k: v for k, v in summary.items() if k == "images" or _metric_of(k, choices) in keep}
    return rows, summary
