"""The semantic task: class maps scored pixel by pixel, per image and from all pixels at once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from biounet.evaluation.options import PER_CLASS, ROW_KEYS, EvalOptions
from biounet.evaluation.reading import class_map, truth_classes
from biounet.evaluation.summary import pooled_scores, summarize
from biounet.metrics import ConfusionMatrix

__all__ = ["SemanticScorer", "class_truths"]

Triple = tuple[str, np.ndarray, np.ndarray]  # (name, prediction, truth)


def class_truths(pairs: Sequence[Triple], options: EvalOptions) -> tuple[list[Triple], int]:
    """The pairs with each truth read as a class map, and the number of classes.

    Parameters
    ----------
    pairs : sequence of (str, numpy.ndarray, numpy.ndarray)
        ``(name, prediction, truth)`` as :func:`~biounet.evaluation.scoring.evaluate` takes
        them.
    options : EvalOptions
        ``truth_foreground`` and ``num_classes`` say how to read the truth
        (:func:`~biounet.evaluation.reading.truth_classes`).

    Returns
    -------
    pairs : list of (str, numpy.ndarray, numpy.ndarray)
        The truths as ``int64`` class maps.
    num_classes : int
        ``options.num_classes``, else one more than the largest class of any truth (2 at
        least).
    """
    fg, k = options.truth_foreground, options.num_classes
    read = [
        (name, pred, truth_classes(name, pred, truth, foreground=fg, num_classes=k))
        for name, pred, truth in pairs
    ]
    if k is None:  # the largest class of any truth
        k = max(2, *(int(t.max()) + 1 for _, _, t in read)) if read else 2
    return read, k or 2


class SemanticScorer:
    """Scores class maps: pixel error, accuracy, IoU and Dice per image; pooled per class.

    Parameters
    ----------
    options : EvalOptions
        ``threshold`` reads probability maps (:func:`~biounet.evaluation.reading.class_map`).
    num_classes : int
        The number of classes of the truths (:func:`class_truths`).
    """

    def __init__(self, options: EvalOptions, num_classes: int) -> None:
        self.threshold = options.threshold
        self.num_classes = num_classes
        self.total = ConfusionMatrix(num_classes)  # of all pixels of all images

    def score(self, name: str, pred: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
        """The row of one image: a prediction ``(C, *S)`` or ``(*S)``, a class map ``(*S)``."""
        cm = ConfusionMatrix(self.num_classes)
        classes = class_map(pred, truth.ndim, self.threshold)
        cm.update(truth, classes)
        self.total.update(truth, classes)
        scores = cm.scores()
        return {m: scores[m] for m in ROW_KEYS["semantic"]}

    def summary(self, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """The means of ``rows``, then the pooled scores with those of every class."""
        keys = ["pixel_error", "accuracy", "iou", "dice"]
        keys += [f"{m}_{c}" for c in range(self.num_classes) for m in PER_CLASS]
        return summarize(rows, last=pooled_scores(self.total, keys))
