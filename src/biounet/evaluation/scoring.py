"""Evaluating segmentations against ground truth: :func:`evaluate` and :func:`evaluate_files`.

The task chooses the metrics; ``EvalOptions(metrics=[...])`` keeps some of them (the keys of
:func:`~biounet.evaluation.options.metric_keys`). Per image and over the set (``images``,
``mean_*``: per-image means, ``pooled_*``: from one confusion matrix of all pixels):

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
``(*S)``), masks or instance labels as ``biounet predict`` writes them
(:mod:`~biounet.evaluation.reading`); they are paired with the truth by file stem, ignoring
the suffixes ``predict`` writes (``_mask``, ``_labels``, ``_probs``;
:mod:`~biounet.evaluation.pairing`). A 3D ``(Z, Y, X)`` truth is scored page by page (2D)
unless ``EvalOptions(volume=True)``. Each task has its scorer
(:mod:`~biounet.evaluation.semantic`, :mod:`~biounet.evaluation.cells`,
:mod:`~biounet.evaluation.membranes`); :func:`evaluate` checks the options, runs it over the
images and keeps the metrics asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from biounet.core.checks import look_up
from biounet.evaluation.cells import CellScorer
from biounet.evaluation.membranes import MembraneScorer
from biounet.evaluation.options import (
    TASKS,
    EvalOptions,
    check_options,
    keep_metrics,
    metric_keys,
    selected_metrics,
)
from biounet.evaluation.pairing import PREFERRED, pair_files, read_pairs
from biounet.evaluation.semantic import SemanticScorer, class_truths

__all__ = ["SCORERS", "Scorer", "evaluate", "evaluate_files"]


class Scorer(Protocol):
    """What scores one task: a row per image, then the summary of the rows."""

    def score(self, name: str, pred: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
        """The task's metrics of one image, in column order."""
        ...

    def summary(self, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """The summary of all rows, with the scores pooled over the images."""
        ...


#: the scorer of each task, made from the options and the number of classes
SCORERS: dict[str, Callable[[EvalOptions, int], Scorer]] = {
    "semantic": SemanticScorer,
    "cells": CellScorer,
    "membranes": MembraneScorer,
}


def _check_size(name: str, pred: np.ndarray, truth: np.ndarray) -> None:
    if tuple(pred.shape[-truth.ndim :]) != tuple(truth.shape):
        raise ValueError(f"{name}: prediction {pred.shape} and truth {truth.shape} differ in size")


def evaluate(
    pairs: Sequence[tuple[str, np.ndarray, np.ndarray]],
    options: EvalOptions,
    *,
    sources: dict[str, str] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Scores per image and over the whole set for ``(name, prediction, truth)`` triples.

    Parameters
    ----------
    pairs : sequence of (str, numpy.ndarray, numpy.ndarray)
        Name, prediction and truth of each image. Truth: ``(*S)``, ``S = (Y, X)`` or
        ``(Z, Y, X)``; prediction: ``(C, *S)`` probabilities or a ``(*S)`` map (see
        :class:`~biounet.evaluation.options.EvalOptions` for how each task reads them).
        Arrays are scored as given: a ``(Z, Y, X)`` pair is one volume.
    options : EvalOptions
        What to compute (:class:`~biounet.evaluation.options.EvalOptions`).
    sources : dict of str to str, optional
        Where each name's data came from (the files), for error messages; an error about an
        image starts with its source (else its name).

    Returns
    -------
    rows : list of dict
        One per image: ``image`` (the name) and the task's metrics
        (:func:`~biounet.evaluation.options.metric_keys`).
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
    check_options(options)
    if options.task == "semantic":  # the classes come from the truths
        pairs, k = class_truths(pairs, options)
    else:
        k = options.num_classes or 2
    choices = metric_keys(options.task, k)
    keep = selected_metrics(options, choices)
    scorer = SCORERS[options.task](options, k)
    rows: list[dict[str, Any]] = []
    for name, pred, truth in pairs:
        where = (sources or {}).get(name.split("[")[0], name)
        try:
            _check_size(name, pred, truth)
            rows.append({"image": name, **scorer.score(name, pred, truth)})
        except ValueError as e:
            raise ValueError(f"{where}: {e}{_hint(options, pred, k)}") from e
    return keep_metrics(rows, scorer.summary(rows), keep, choices)


def _hint(options: EvalOptions, pred: Any, k: int) -> str:
    """What to try when a semantic score fails on a prediction of many integer values."""
    a = np.asarray(pred)
    if options.task != "semantic" or a.dtype.kind not in "iu" or a.ndim < 2:
        return ""
    n = int(np.unique(a).size)
    if n <= max(k, 2) + 1:
        return ""
    return (
        f"; the prediction holds {n} distinct values, like instance labels (one per object): "
        "score objects with --task cells (task='cells')"
    )


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
        selected_metrics(options, metric_keys(options.task))
    prefer = PREFERRED[options.task]
    files = pair_files(pred, truth, pred_suffix=pred_suffix, prefer=prefer)
    items = read_pairs(pred, truth, prefer=prefer, volume=options.volume, files=files)
    sources = {name: f"{p} (truth {t})" for name, p, t in files}
    return evaluate(items, options, sources=sources)
