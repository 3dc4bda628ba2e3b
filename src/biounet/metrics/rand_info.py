"""Region agreement of two label images: foreground-restricted V_Rand and V_Info, adapted Rand.

Definitions follow the ISBI 2012 challenge paper (Arganda-Carreras et al. 2015, Front.
Neuroanat. 9:142) and, for the adapted Rand error, SNEMI3D and scikit-image. Each score is a
function of one :class:`Table` of counts (:func:`count_table`), so a caller that scores many
thresholds or slices (:mod:`biounet.metrics.isbi`) counts each once. Every function takes the
ground truth first; truth pixels labelled 0 (membrane/background) are not scored.

>>> truth = np.array([[1, 1, 0, 2, 2]])
>>> rand_scores(truth, np.array([[1, 1, 0, 1, 1]]))  # one merge
{'v_rand': 0.666..., 'split': 1.0, 'merge': 0.5}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from biounet.core.checks import check_labels, look_up
from biounet.metrics.contingency import compact, contingency, label_pair

__all__ = [
    "PRED_BACKGROUND",
    "Table",
    "adapted_rand_error",
    "count_table",
    "info_from_table",
    "info_scores",
    "rand_from_table",
    "rand_scores",
]

#: how proposal pixels labelled 0 count: each a region of its own, or together one region
PRED_BACKGROUND = ("singletons", "region")


class Table(NamedTuple):
    """The counts on the truth foreground behind every score of this module."""

    joint: np.ndarray  # (P,) int64, n_ij: pixels of each (truth region, proposal region) pair
    truth_sizes: np.ndarray  # (K_t,) int64, pixels of each truth region
    pred_sizes: np.ndarray  # (K_p,) int64, pixels of each proposal region (singletons left out)
    n: int  # truth-foreground pixels, the singletons included


def count_table(truth: np.ndarray, pred: np.ndarray, pred_background: str) -> Table:
    """The :class:`Table` of ``pred`` against ``truth`` over the truth foreground (``truth != 0``).

    Parameters
    ----------
    truth, pred : numpy.ndarray of int, shape ``(*spatial)``
        Ground-truth and proposal labels (checked here).
    pred_background : {"singletons", "region"}
        See :func:`rand_scores`.

    Notes
    -----
    Proposal pixels labelled 0 are dropped from ``joint`` and the proposal sizes when they are
    singletons: each is then a region of one pixel, which adds 1 to every sum of squares and 0
    to every ``sum c log c``, so only ``n`` needs to remember them.
    """
    look_up(pred_background, PRED_BACKGROUND, "pred_background")
    t, p = label_pair(truth, pred)
    keep = t.ravel() != 0
    t, p = t.ravel()[keep], p.ravel()[keep]
    c = contingency(t, p, drop_pred_zero=pred_background == "singletons")
    return Table(c.counts, c.true_sizes, c.pred_sizes, int(t.size))


def _sum_squares(counts: np.ndarray) -> float:
    return float(np.sum(counts.astype(np.float64) ** 2))


def rand_from_table(table: Table) -> dict[str, float]:
    """:func:`rand_scores` of the counts ``table``."""
    joint, t, s, n = table
    if n == 0:
        return {"v_rand": 1.0, "split": 1.0, "merge": 1.0}
    singles = n - int(s.sum())  # proposal regions of one pixel each
    sum_p2 = _sum_squares(joint) + singles
    split = sum_p2 / _sum_squares(t)
    merge = sum_p2 / (_sum_squares(s) + singles)
    return {"v_rand": 2 * split * merge / (split + merge), "split": split, "merge": merge}


def _entropy(c: np.ndarray, n: int) -> float:
    """Entropy (bits) of counts ``c`` out of ``n`` pixels; the missing ones are singletons."""
    c = c[c > 0].astype(np.float64)
    return float(np.log2(n) - np.sum(c * np.log2(c)) / n)


def info_from_table(table: Table) -> dict[str, float]:
    """:func:`info_scores` of the counts ``table``."""
    joint, t, s, n = table
    if n == 0:
        return {"v_info": 1.0, "split": 1.0, "merge": 1.0, "vi_split": 0.0, "vi_merge": 0.0}
    h_s, h_t, h_st = _entropy(s, n), _entropy(t, n), _entropy(joint, n)
    mi = max(h_s + h_t - h_st, 0.0)
    split = mi / h_s if h_s > 1e-12 else 1.0
    merge = mi / h_t if h_t > 1e-12 else 1.0
    v = 2 * split * merge / (split + merge) if split + merge > 0 else 0.0
    return {
        "v_info": v,
        "split": split,
        "merge": merge,
        "vi_split": max(h_st - h_t, 0.0),
        "vi_merge": max(h_st - h_s, 0.0),
    }


def rand_scores(
    truth: np.ndarray, pred: np.ndarray, *, pred_background: str = "singletons"
) -> dict[str, float]:
    """Foreground-restricted Rand scores V_Rand, V_Rand_split and V_Rand_merge (higher is better).

    Let ``p_ij`` be the fraction of the ``n`` truth-foreground pixels (``truth != 0``) that lie
    in proposal region ``i`` and truth region ``j``; ``s_i = sum_j p_ij``, ``t_j = sum_i p_ij``.
    Then (Arganda-Carreras et al. 2015, eqs. 1-3)::

        V_Rand_split = sum_ij p_ij**2 / sum_j t_j**2   # P(same in S | same in T)
        V_Rand_merge = sum_ij p_ij**2 / sum_i s_i**2   # P(same in T | same in S)
        V_Rand       = 2 * split * merge / (split + merge)

    Squares include the pairs of a pixel with itself (the challenge's N**2 normalisation);
    :func:`adapted_rand_error` counts pairs of distinct pixels instead.

    Parameters
    ----------
    truth, pred : numpy.ndarray of int, shape ``(*spatial)``
        Ground-truth and proposal regions, labels >= 0; truth pixels labelled 0 are excluded.
    pred_background : {"singletons", "region"}
        How proposal pixels labelled 0 inside the truth foreground count: ``"singletons"``
        (default): each is a region of its own, so thick predicted membranes cost split
        score; ``"region"``: 0 is an ordinary label (as in scikit-image).

    Returns
    -------
    dict of str to float
        ``v_rand``, ``split``, ``merge`` in (0, 1]; all 1.0 without truth foreground.
    """
    return rand_from_table(count_table(truth, pred, pred_background))


def info_scores(
    truth: np.ndarray, pred: np.ndarray, *, pred_background: str = "singletons"
) -> dict[str, float]:
    """Foreground-restricted information-theoretic scores V_Info, split and merge.

    With ``p_ij``, ``s_i``, ``t_j`` as in :func:`rand_scores`, entropies ``H(S) = -sum s log s``,
    ``H(T)``, ``H(S, T) = -sum p log p`` and mutual information
    ``I(S; T) = H(S) + H(T) - H(S, T)`` (Arganda-Carreras et al. 2015, eqs. 4-6)::

        V_Info_split = I(S; T) / H(S)   # 1 when the proposal splits nothing
        V_Info_merge = I(S; T) / H(T)   # 1 when the proposal merges nothing
        V_Info       = 2 * split * merge / (split + merge)

    A split (merge) score whose denominator is 0 (a single region) is 1.0: a single proposal
    region cannot split, a single truth region cannot be merged.

    Parameters
    ----------
    truth, pred : numpy.ndarray of int, shape ``(*spatial)``
        Ground-truth and proposal regions, labels >= 0; truth pixels labelled 0 are excluded.
    pred_background : {"singletons", "region"}
        Proposal label 0 as singletons (default) or one region; see :func:`rand_scores`.

    Returns
    -------
    dict of str to float
        ``v_info``, ``split``, ``merge`` in [0, 1], and the conditional entropies in bits
        ``vi_split = H(S|T)`` (over-segmentation) and ``vi_merge = H(T|S)``
        (under-segmentation), whose sum is the variation of information; they equal
        ``skimage.metrics.variation_of_information(truth, pred, ignore_labels=(0,))`` with
        ``pred_background="region"``. No truth foreground gives 1.0 scores and 0.0 entropies.
    """
    return info_from_table(count_table(truth, pred, pred_background))


def adapted_rand_error(
    truth: np.ndarray, pred: np.ndarray, *, ignore_labels: Sequence[int] = (0,)
) -> dict[str, float]:
    """Adapted Rand error (SNEMI3D; scikit-image's ``adapted_rand_error``): ``1 - F``.

    Over the pixels whose truth label is not in ``ignore_labels``, with ``n_ij`` the joint
    counts and ``a_i``, ``b_j`` the proposal and truth region sizes, counting pairs of distinct
    pixels::

        precision = (sum n_ij**2 - n) / (sum a_i**2 - n)   # same in T, of pairs same in S
        recall    = (sum n_ij**2 - n) / (sum b_j**2 - n)   # same in S, of pairs same in T
        error     = 1 - 2 * precision * recall / (precision + recall)

    Proposal label 0 is an ordinary label, so predicted membrane labelled 0 is one region that
    merges all it touches: give every pixel a region (e.g. ``skimage.segmentation.expand_labels``)
    to avoid that. The error equals scikit-image's; its ``precision``
    and ``recall`` are swapped relative to these (and to its own docstring; scikit-image issue
    #6485). A ratio with no pairs in its denominator is 1.0.

    Parameters
    ----------
    truth, pred : numpy.ndarray of int, shape ``(*spatial)``
        Ground-truth and proposal labels, >= 0.
    ignore_labels : sequence of int
        Truth labels whose pixels are left out (default: 0, the membrane).

    Returns
    -------
    dict of str to float
        ``error`` in [0, 1] (0 is perfect), ``precision`` and ``recall``.
    """
    t = check_labels(truth, "truth")
    keep = ~np.isin(t, np.asarray(list(ignore_labels), dtype=np.int64))
    t = np.where(keep, compact(t.ravel())[0].reshape(t.shape) + 1, 0)  # ignored pixels: 0
    joint, b, a, n = count_table(t, pred, "region")
    pairs = _sum_squares(joint) - n
    a2 = _sum_squares(a) - n
    b2 = _sum_squares(b) - n
    precision = pairs / a2 if a2 > 0 else 1.0
    recall = pairs / b2 if b2 > 0 else 1.0
    f = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"error": 1.0 - f, "precision": precision, "recall": recall}
