"""Instance segmentation scores: IoU matching, AP over IoU thresholds, panoptic quality, SEG.

Inputs are integer label images of any dimension (2D, 3D, ...): ``0`` is background, every
other value one object; labels need not be consecutive. Every function takes the ground truth
first. Dataset scores come from :class:`InstanceAccumulator`, which sums counts over images
(not a mean of per-image scores).

>>> truth = np.array([[1, 1, 1, 1, 0, 2, 2]])
>>> pred = np.array([[5, 5, 5, 0, 0, 0, 7]])
>>> s = match_instances(truth, pred)
>>> s["tp"], s["fp"], s["fn"], s["panoptic_quality"]  # IoUs 3/4 and 1/2 (>= 0.5)
(2.0, 0.0, 0.0, 0.625)
>>> seg_score(truth, pred)  # object 2: 1 px of 2 is not more than half, so J = 0
0.375
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment

from biounet.metrics.contingency import contingency, label_pair

__all__ = [
    "AP_THRESHOLDS",
    "InstanceAccumulator",
    "average_precision",
    "match_instances",
    "merges_and_splits",
    "seg_score",
]

#: IoU thresholds 0.50, 0.55, ..., 0.95 of the average precision.
AP_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * k, 2) for k in range(10))


class _Overlaps(NamedTuple):
    """Pairs of overlapping objects of one image, as indices into the object lists."""

    n_true: int
    n_pred: int
    true_idx: np.ndarray  # (P,) int64, truth object of each overlapping pair
    pred_idx: np.ndarray  # (P,) int64
    inter: np.ndarray  # (P,) int64, |R ∩ S|
    true_size: np.ndarray  # (P,) int64, |R|
    pred_size: np.ndarray  # (P,) int64, |S|
    iou: np.ndarray  # (P,) float64


def _overlaps(truth: np.ndarray, pred: np.ndarray) -> _Overlaps:
    """The pairs of overlapping objects of a truth and a prediction, with their IoUs."""
    t, p = label_pair(truth, pred)
    c = contingency(t, p, drop_truth_zero=True, drop_pred_zero=True)
    true_size = c.true_sizes[c.true_idx]
    pred_size = c.pred_sizes[c.pred_idx]
    union = true_size + pred_size - c.counts
    return _Overlaps(
        n_true=int(c.true_sizes.size),
        n_pred=int(c.pred_sizes.size),
        true_idx=c.true_idx,
        pred_idx=c.pred_idx,
        inter=c.counts,
        true_size=true_size,
        pred_size=pred_size,
        iou=c.counts / union,
    )


def _match(ov: _Overlaps, threshold: float) -> tuple[int, float]:
    """Number of matched pairs with IoU >= ``threshold`` and the sum of their IoUs.

    The matching maximises the number of such pairs, then their total IoU (each object in at
    most one pair). Above 0.5 pairs are unique and this is trivial; otherwise
    ``linear_sum_assignment`` solves it on the candidate pairs.
    """
    cand = ov.iou >= threshold
    a, b, v = ov.true_idx[cand], ov.pred_idx[cand], ov.iou[cand]
    if np.unique(a).size == a.size and np.unique(b).size == b.size:
        return int(a.size), float(v.sum())
    ua, ia = np.unique(a, return_inverse=True)
    ub, ib = np.unique(b, return_inverse=True)
    iou = np.zeros((ua.size, ub.size))
    iou[ia, ib] = v
    # a match is worth 1 plus a tie-breaking bonus; the bonuses total less than one match
    weight = np.where(iou > 0, 1.0 + iou / (2 * min(ua.size, ub.size)), 0.0)
    rows, cols = linear_sum_assignment(weight, maximize=True)
    matched = iou[rows, cols] > 0
    return int(matched.sum()), float(iou[rows, cols][matched].sum())


def _ratio(num: float, den: float, empty: bool) -> float:
    """``num / den``; with ``den == 0``: 1.0 for an image with no objects at all, else 0.0."""
    return num / den if den > 0 else (1.0 if empty else 0.0)


def _scores(tp: int, n_true: int, n_pred: int, sum_iou: float) -> dict[str, float]:
    fp, fn = n_pred - tp, n_true - tp
    empty = n_true == 0 and n_pred == 0
    sq = _ratio(sum_iou, tp, empty)
    rq = _ratio(tp, tp + 0.5 * fp + 0.5 * fn, empty)
    return {
        "tp": float(tp),
        "fp": float(fp),
        "fn": float(fn),
        "precision": _ratio(tp, tp + fp, empty),
        "recall": _ratio(tp, tp + fn, empty),
        "f1": rq,
        "accuracy": _ratio(tp, tp + fp + fn, empty),
        "mean_matched_iou": sq,
        "panoptic_quality": sq * rq,
        "n_true": float(n_true),
        "n_pred": float(n_pred),
    }


def _check_threshold(threshold: float) -> float:
    if not 0 < threshold <= 1:
        raise ValueError(f"IoU threshold must be in (0, 1], got {threshold}")
    return float(threshold)


def match_instances(
    truth: np.ndarray, pred: np.ndarray, *, threshold: float = 0.5
) -> dict[str, float]:
    """Match predicted to true objects by IoU and count TP, FP and FN.

    A true and a predicted object form a true positive when they are paired and their
    intersection over union is at least ``threshold`` (IoU >= threshold: at the default 0.5 a
    pair with IoU exactly 0.5 is a TP, as in StarDist's matching; Kirillov et al. 2019 define
    panoptic quality with IoU > 0.5, so ``panoptic_quality`` differs from theirs when a pair
    has an IoU of exactly 0.5, e.g. a 1-pixel prediction inside a 2-pixel object). The
    pairing maximises the number of
    true positives, then their total IoU, each object in at most one pair (optimal assignment;
    for ``threshold > 0.5`` every object has at most one candidate, so it is unique).
    Unpaired predictions are false positives, unpaired true objects false negatives.

    Parameters
    ----------
    truth : numpy.ndarray of int, shape ``(*spatial)``
        True instance labels, 0 = background.
    pred : numpy.ndarray of int, shape ``(*spatial)``
        Predicted instance labels, same shape.
    threshold : float
        Minimum IoU of a true positive, in (0, 1].

    Returns
    -------
    dict of str to float
        ``tp``, ``fp``, ``fn``, ``n_true``, ``n_pred``; ``precision = TP / (TP + FP)``,
        ``recall = TP / (TP + FN)``, ``f1 = TP / (TP + FP/2 + FN/2)``,
        ``accuracy = TP / (TP + FP + FN)`` (the AP of :func:`average_precision`),
        ``mean_matched_iou`` (mean IoU of the true positives, the SQ of Kirillov et al. 2019)
        and ``panoptic_quality = sum of TP IoUs / (TP + FP/2 + FN/2)`` (TPs at IoU >=
        ``threshold``, see above). A ratio whose
        denominator is 0 is 1.0 when both images have no object (nothing to find, nothing
        found) and 0.0 otherwise (e.g. precision with an empty prediction).
    """
    ov = _overlaps(truth, pred)
    tp, sum_iou = _match(ov, _check_threshold(threshold))
    return _scores(tp, ov.n_true, ov.n_pred, sum_iou)


def average_precision(
    truth: np.ndarray, pred: np.ndarray, *, thresholds: Sequence[float] = AP_THRESHOLDS
) -> np.ndarray:
    """Average precision at each IoU threshold, as in microscopy instance segmentation.

    ``AP(t) = TP(t) / (TP(t) + FP(t) + FN(t))``, the definition of the 2018 Data Science Bowl,
    StarDist ("accuracy") and Cellpose, with the matching of :func:`match_instances`; it is
    not the area under a precision-recall curve (COCO). The mean over the default thresholds
    0.50:0.05:0.95 is ``average_precision(truth, pred).mean()``.

    Parameters
    ----------
    truth, pred : numpy.ndarray of int, shape ``(*spatial)``
        True and predicted instance labels, 0 = background.
    thresholds : sequence of float
        IoU thresholds in (0, 1].

    Returns
    -------
    numpy.ndarray of float64, shape ``(len(thresholds),)``
        AP per threshold; 1.0 when neither image has an object.
    """
    ths = [_check_threshold(t) for t in thresholds]
    ov = _overlaps(truth, pred)
    tps = [_match(ov, t)[0] for t in ths]
    return np.array(
        [_ratio(tp, ov.n_true + ov.n_pred - tp, ov.n_true + ov.n_pred == 0) for tp in tps]
    )


def _seg_sum(ov: _Overlaps) -> float:
    """Sum over the true objects of their Jaccard index with the matching prediction."""
    match = 2 * ov.inter > ov.true_size  # |R ∩ S| > |R| / 2: at most one S per R
    return float(ov.iou[match].sum())


def seg_score(truth: np.ndarray, pred: np.ndarray) -> float:
    """The Cell Tracking Challenge SEG measure: mean Jaccard index over the reference objects.

    A reference object ``R`` is matched by the predicted object ``S`` with
    ``|R ∩ S| > 0.5 |R|`` (at most one can be), and scores ``J(R, S) = |R ∩ S| / |R ∪ S|``;
    an unmatched reference object scores 0. False positives do not lower SEG.

    Parameters
    ----------
    truth : numpy.ndarray of int, shape ``(*spatial)``
        Reference instance labels, 0 = background.
    pred : numpy.ndarray of int, shape ``(*spatial)``
        Predicted instance labels, same shape.

    Returns
    -------
    float
        SEG in [0, 1]; ``nan`` when the reference has no object (SEG is defined over the
        reference objects; :class:`InstanceAccumulator` pools them over images).
    """
    ov = _overlaps(truth, pred)
    return _seg_sum(ov) / ov.n_true if ov.n_true else float("nan")


def _merges_splits(ov: _Overlaps) -> tuple[int, int]:
    """Merges and splits of one image's overlaps (see :func:`merges_and_splits`)."""
    covered = 2 * ov.inter > ov.true_size  # most of R lies in S
    inside = 2 * ov.inter > ov.pred_size  # most of S lies in R
    per_pred = np.bincount(ov.pred_idx[covered], minlength=ov.n_pred)
    per_true = np.bincount(ov.true_idx[inside], minlength=ov.n_true)
    return int(np.clip(per_pred - 1, 0, None).sum()), int(np.clip(per_true - 1, 0, None).sum())


def merges_and_splits(truth: np.ndarray, pred: np.ndarray) -> tuple[int, int]:
    """Objects merged into one, and objects split into several, by the predicted labels.

    A predicted object ``S`` *merges* the true objects of which it holds more than half
    (``|R ∩ S| > |R| / 2``, SEG's rule): each beyond the first counts one merge. A true object
    ``R`` is *split* into the predicted objects that lie more than half inside it
    (``|R ∩ S| > |S| / 2``): each beyond the first counts one split. A prediction that merges
    two touching cells into one costs exactly one merge; one that cuts a cell in two, one split.

    Parameters
    ----------
    truth, pred : numpy.ndarray of int, shape ``(*spatial)``
        True and predicted instance labels of the same shape, 0 = background.

    Returns
    -------
    merges, splits : int

    Examples
    --------
    >>> truth = np.array([[1, 1, 2, 2, 0, 3, 3, 3, 3]])
    >>> pred = np.array([[4, 4, 4, 4, 0, 5, 5, 6, 6]])
    >>> merges_and_splits(truth, pred)  # 1 and 2 merged into 4; 3 split into 5 and 6
    (1, 1)
    """
    return _merges_splits(_overlaps(truth, pred))


class InstanceAccumulator:
    """Instance scores of a dataset: counts summed over images, then the ratios.

    TP, FP, FN and the IoU sums are summed over all images at every threshold before the
    ratios of :func:`match_instances` are taken, and SEG is the mean over all reference
    objects of all images, so large images with many objects weigh more than a mean of
    per-image scores would give them.

    Parameters
    ----------
    thresholds : sequence of float
        IoU thresholds of the average precision (default 0.50:0.05:0.95).
    threshold : float
        IoU threshold of the TP/FP/FN, precision, recall, F1 and panoptic quality.

    Examples
    --------
    >>> acc = InstanceAccumulator()
    >>> acc.update(np.array([[1, 0, 2]]), np.array([[3, 0, 4]]))
    >>> acc.update(np.array([[1, 0, 0]]), np.array([[0, 0, 0]]))
    >>> s = acc.scores()
    >>> s["tp"], s["fn"], s["recall"], round(s["seg"], 4), s["ap_50"]
    (2.0, 1.0, 0.666..., 0.6667, 0.666...)
    """

    def __init__(
        self, thresholds: Sequence[float] = AP_THRESHOLDS, *, threshold: float = 0.5
    ) -> None:
        self.thresholds = tuple(_check_threshold(t) for t in thresholds)
        self.threshold = _check_threshold(threshold)
        self.n_images = 0
        self.n_true = 0
        self.n_pred = 0
        self.tp = np.zeros(len(self.thresholds), np.int64)
        self.main_tp = 0
        self.main_iou = 0.0
        self.seg_sum = 0.0
        self.merges = 0
        self.splits = 0

    def update(self, truth: np.ndarray, pred: np.ndarray) -> None:
        """Add one image: true and predicted label images of equal shape."""
        ov = _overlaps(truth, pred)
        self.n_images += 1
        self.n_true += ov.n_true
        self.n_pred += ov.n_pred
        self.tp += np.array([_match(ov, t)[0] for t in self.thresholds], dtype=np.int64)
        tp, sum_iou = _match(ov, self.threshold)
        self.main_tp += tp
        self.main_iou += sum_iou
        self.seg_sum += _seg_sum(ov)
        merges, splits = _merges_splits(ov)
        self.merges += merges
        self.splits += splits

    def scores(self) -> dict[str, float]:
        """The scores of :func:`match_instances` at ``threshold``, AP per threshold and SEG.

        Returns
        -------
        dict of str to float
            The keys of :func:`match_instances`, plus ``ap_50``, ``ap_55``, ... (AP at each
            threshold, keyed by 100 x threshold), ``mean_ap``, ``seg`` (``nan`` without
            reference objects), ``merges`` and ``splits`` (summed over the images,
            :func:`merges_and_splits`) and ``n_images``.
        """
        out = _scores(self.main_tp, self.n_true, self.n_pred, self.main_iou)
        total = self.n_true + self.n_pred
        aps = [_ratio(int(tp), total - int(tp), total == 0) for tp in self.tp]
        out.update({f"ap_{round(100 * t)}": ap for t, ap in zip(self.thresholds, aps)})
        out["mean_ap"] = float(np.mean(aps)) if aps else float("nan")
        out["seg"] = self.seg_sum / self.n_true if self.n_true else float("nan")
        out["merges"] = float(self.merges)
        out["splits"] = float(self.splits)
        out["n_images"] = float(self.n_images)
        return out
