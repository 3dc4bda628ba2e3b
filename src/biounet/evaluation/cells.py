"""The cells task: objects matched per image and over all objects, with SEG and pixel IoU.

The summary also counts the objects merged and split (:func:`biounet.metrics.merges_and_splits`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from biounet.evaluation.options import EvalOptions
from biounet.evaluation.reading import pred_instances, truth_instances
from biounet.evaluation.summary import pooled_scores, summarize
from biounet.metrics import ConfusionMatrix, InstanceAccumulator, match_instances, seg_score

__all__ = ["POOLED_INSTANCE_KEYS", "CellScorer"]

#: the instance scores of the summary, from counts pooled over all objects
POOLED_INSTANCE_KEYS = (
    "precision", "recall", "f1", "mean_ap", "ap_50", "panoptic_quality", "seg", "merges", "splits"
)  # fmt: skip


class CellScorer:
    """Scores objects: matching at IoU >= 0.5, panoptic quality, SEG, pixel IoU.

    Parameters
    ----------
    options : EvalOptions
        ``threshold`` and ``min_size`` make objects of probability maps and masks
        (:func:`~biounet.evaluation.reading.pred_instances`).
    num_classes : int
        The classes of the pooled confusion matrix (``options.num_classes`` or 2).
    """

    def __init__(self, options: EvalOptions, num_classes: int) -> None:
        self.threshold = options.threshold
        self.min_size = options.min_size
        self.total = ConfusionMatrix(num_classes)  # object or not, of all pixels
        self.objects = InstanceAccumulator()  # counts of all objects of all images

    def score(self, name: str, pred: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
        """The row of one image: a prediction ``(C, *S)`` or ``(*S)``, a truth ``(*S)``."""
        t_inst = truth_instances(truth)
        p_inst = pred_instances(pred, truth.ndim, self.threshold, self.min_size)
        m = match_instances(t_inst, p_inst)
        self.objects.update(t_inst, p_inst)
        cm = ConfusionMatrix(2)
        cm.update(t_inst > 0, p_inst > 0)
        self.total.update(t_inst > 0, p_inst > 0)
        return {
            "precision": m["precision"],
            "recall": m["recall"],
            "f1": m["f1"],
            "pq": m["panoptic_quality"],
            "seg": seg_score(t_inst, p_inst),
            "iou": cm.scores()["iou"],
            "objects": int(m["n_true"]),
            "found": int(m["n_pred"]),
        }

    def summary(self, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """The means of ``rows``, then the instance scores of all objects and the pooled ones."""
        pooled = self.objects.scores()
        instance = {k: pooled[k] for k in POOLED_INSTANCE_KEYS}
        instance.update(merges=int(pooled["merges"]), splits=int(pooled["splits"]))
        return summarize(rows, last={**instance, **pooled_scores(self.total)})
