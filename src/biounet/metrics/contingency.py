"""The core every label metric shares: the checked label pair, compact labels, the pair counts.

The instance scores (:mod:`biounet.metrics.instances`) and the Rand and information scores
(:mod:`biounet.metrics.rand_info`) all start from the same counts: for two label images of
one shape, how many pixels each pair of labels shares (the contingency table) and how large
each label is. This module checks the inputs once (through
:func:`biounet.core.checks.check_labels`) and counts them once.

>>> c = contingency(np.array([0, 1, 1, 2]), np.array([5, 5, 5, 0]))
>>> c.true_idx, c.pred_idx, c.counts  # (0, 5): 1 px, (1, 5): 2 px, (2, 0): 1 px
(array([0, 1, 2]), array([1, 1, 0]), array([1, 2, 1]))
>>> c.true_sizes, c.pred_sizes
(array([1, 2, 1]), array([1, 3]))
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from biounet.core.checks import check_labels

__all__ = ["Contingency", "check_same_shape", "compact", "contingency", "label_pair"]


def check_same_shape(a: np.ndarray, b: np.ndarray, names: str) -> None:
    """Raise a ValueError naming both shapes unless ``a`` and ``b`` have the same shape.

    ``names`` says what the two arrays are, e.g. ``"truth and pred"``.
    """
    if a.shape != b.shape:
        raise ValueError(f"{names} must have the same shape, got {a.shape} and {b.shape}")


def label_pair(truth: Any, pred: Any) -> tuple[np.ndarray, np.ndarray]:
    """A ground truth and a prediction checked as label images of one shape.

    Parameters
    ----------
    truth, pred : array-like of int, shape ``(*spatial)``
        Label images, integers >= 0 (bools become 0/1); checked by
        :func:`biounet.core.checks.check_labels` under the names ``truth`` and ``pred``.

    Returns
    -------
    truth, pred : numpy.ndarray of int64, shape ``(*spatial)``

    Raises
    ------
    ValueError
        A non-integer or negative label image, or two shapes.
    """
    t, p = check_labels(truth, "truth"), check_labels(pred, "pred")
    check_same_shape(t, p, "truth and pred")
    return t, p


def compact(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Labels renumbered 0..k-1 in the sorted order of their values, and ``k``.

    Parameters
    ----------
    labels : numpy.ndarray of int, shape ``(N,)``
        Non-negative labels, any values.

    Returns
    -------
    index : numpy.ndarray of int64, shape ``(N,)``
        The rank of each label among the distinct values (``np.unique``'s inverse): label 0,
        where present, is index 0.
    k : int
        The number of distinct labels.

    Examples
    --------
    >>> compact(np.array([7, 0, 7, 3]))
    (array([2, 0, 2, 1]), 3)
    """
    # small label values: a bincount is much faster than the sort of np.unique
    if labels.size and int(labels.max()) < 4 * labels.size + 1024:
        present = np.bincount(labels) > 0
        return (np.cumsum(present) - 1)[labels], int(present.sum())
    values, inverse = np.unique(labels, return_inverse=True)
    return inverse.ravel(), int(values.size)


class Contingency(NamedTuple):
    """Pixel counts of two label images: each pair of labels that shares pixels, each label's size.

    Labels are indices of :func:`compact` (the sorted order of the label values); the pairs
    are sorted by ``(true_idx, pred_idx)``.
    """

    true_idx: np.ndarray  # (P,) int64, truth label of each pair that shares a pixel
    pred_idx: np.ndarray  # (P,) int64, its predicted label
    counts: np.ndarray  # (P,) int64, pixels of the pair: |R ∩ S|
    true_sizes: np.ndarray  # (K_t,) int64, pixels of each truth label: |R|
    pred_sizes: np.ndarray  # (K_p,) int64, pixels of each predicted label: |S|


def contingency(
    truth: np.ndarray,
    pred: np.ndarray,
    *,
    drop_truth_zero: bool = False,
    drop_pred_zero: bool = False,
) -> Contingency:
    """The contingency table of two label images, as the pairs of labels that share pixels.

    Parameters
    ----------
    truth, pred : numpy.ndarray of int, shape ``(*spatial)``
        Checked label images (:func:`label_pair`) of one shape.
    drop_truth_zero, drop_pred_zero : bool
        Leave label 0 of the truth (of the prediction) out of the pairs and the sizes, as
        background; the other labels keep their order, numbered from 0.

    Returns
    -------
    Contingency
        The non-zero entries of the table ``n_ij`` (``counts``, with their labels) and its
        row and column sums over all pixels (``true_sizes``, ``pred_sizes``).
    """
    t_inv, n_t = compact(truth.ravel())
    p_inv, n_p = compact(pred.ravel())
    keys = t_inv.astype(np.int64) * n_p + p_inv
    if n_t * n_p < 4 * keys.size + 1024:  # a dense table is small: count it directly
        counts = np.bincount(keys)
        keys = np.flatnonzero(counts)
        counts = counts[keys]
    else:
        keys, counts = np.unique(keys, return_counts=True)
    ti, pi = np.divmod(keys, n_p)
    t_sizes, p_sizes = np.bincount(t_inv, minlength=n_t), np.bincount(p_inv, minlength=n_p)
    # label 0, where present, is index 0 of compact's numbering
    t0 = int(drop_truth_zero and truth.size > 0 and int(truth.min()) == 0)
    p0 = int(drop_pred_zero and pred.size > 0 and int(pred.min()) == 0)
    if t0 or p0:
        keep = (ti >= t0) & (pi >= p0)
        ti, pi, counts = ti[keep] - t0, pi[keep] - p0, counts[keep]
        t_sizes, p_sizes = t_sizes[t0:], p_sizes[p0:]
    return Contingency(ti, pi, counts, t_sizes, p_sizes)
