"""Segmentation metrics on NumPy arrays, accumulated over a dataset where averages mislead.

Pixel-level scores come from a confusion matrix summed over all images
(:class:`ConfusionMatrix`), not from a mean of per-image scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["ConfusionMatrix"]


class ConfusionMatrix:
    """A ``(K, K)`` confusion matrix (rows: truth, columns: prediction) summed over images.

    >>> cm = ConfusionMatrix(2)
    >>> cm.update(np.array([0, 1, 1, 1]), np.array([0, 1, 0, 1]))
    >>> cm.scores()["pixel_error"], round(cm.scores()["iou"], 4)
    (0.25, 0.6667)
    """

    def __init__(self, num_classes: int) -> None:
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.k = int(num_classes)
        self.matrix = np.zeros((self.k, self.k), np.int64)

    def update(self, truth: np.ndarray, pred: np.ndarray, *, ignore_index: int = -1) -> None:
        """Add an image: ``truth`` and ``pred`` class maps of equal shape; ignored pixels skip."""
        t, p = np.asarray(truth), np.asarray(pred)
        if t.shape != p.shape:
            raise ValueError(f"truth {t.shape} and prediction {p.shape} differ in shape")
        keep = t != ignore_index
        t, p = t[keep].astype(np.int64), p[keep].astype(np.int64)
        for name, a in (("truth", t), ("prediction", p)):
            if a.size and (a.min() < 0 or a.max() >= self.k):
                raise ValueError(f"{name} has classes outside 0..{self.k - 1}: {np.unique(a)[:10]}")
        self.matrix += np.bincount(t * self.k + p, minlength=self.k**2).reshape(self.k, self.k)

    def scores(self, foreground: Sequence[int] | None = None) -> dict[str, float]:
        """Pixel error, accuracy, per-class IoU/Dice/precision/recall, and foreground means.

        ``iou`` and ``dice`` are the means over the ``foreground`` classes (default: all but
        class 0); for two classes that is the foreground class's score. A class absent from
        both truth and prediction scores 1 (nothing to find, nothing found).
        """
        m = self.matrix.astype(np.float64)
        total = m.sum()
        tp = np.diag(m)
        fp, fn = m.sum(0) - tp, m.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(tp + fp + fn > 0, tp / (tp + fp + fn), 1.0)
            dice = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 1.0)
            precision = np.where(tp + fp > 0, tp / (tp + fp), 1.0)
            recall = np.where(tp + fn > 0, tp / (tp + fn), 1.0)
        fg = list(foreground) if foreground is not None else list(range(1, self.k))
        out = {
            "pixel_error": float(1 - tp.sum() / total) if total else 0.0,
            "accuracy": float(tp.sum() / total) if total else 1.0,
            "iou": float(iou[fg].mean()),
            "dice": float(dice[fg].mean()),
        }
        for c in range(self.k):
            out[f"iou_{c}"] = float(iou[c])
            out[f"dice_{c}"] = float(dice[c])
            out[f"precision_{c}"] = float(precision[c])
            out[f"recall_{c}"] = float(recall[c])
        return out
