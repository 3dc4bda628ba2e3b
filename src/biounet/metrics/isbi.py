"""The ISBI 2012 leaderboard scores of a membrane probability map: V_Rand and V_Info at best.

Definitions follow the challenge paper (Arganda-Carreras et al. 2015, Front. Neuroanat. 9:142):
the map is thresholded at 0.0, 0.1, ..., 1.0 (:data:`ISBI_THRESHOLDS`), the regions of each
proposal (:mod:`biounet.metrics.membranes`) are scored against the truth regions with the
foreground-restricted scores of :mod:`biounet.metrics.rand_info`, and the best threshold of
each score is reported. The counts of each threshold (:class:`~biounet.metrics.rand_info.Table`)
are exposed, so that slices scored one by one can also be scored as one stack
(:func:`join_tables`). The warping error is in :mod:`biounet.metrics.warping`.

>>> truth = np.zeros((6, 6), bool); truth[:, 2] = True  # two regions
>>> isbi_scores(truth.astype(float), truth)["v_rand"]
1.0
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from biounet.core.checks import check_probabilities
from biounet.metrics.contingency import check_same_shape
from biounet.metrics.membranes import check_membrane_mask, label_regions, thin_borders
from biounet.metrics.rand_info import Table, count_table, info_from_table, rand_from_table

__all__ = ["ISBI_THRESHOLDS", "best_scores", "isbi_scores", "join_tables", "threshold_tables"]

#: The challenge's thresholds of the membrane probability map: 0.0, 0.1, ..., 1.0.
ISBI_THRESHOLDS: tuple[float, ...] = tuple(round(0.1 * k, 1) for k in range(11))


def isbi_scores(
    membrane_prob: np.ndarray,
    truth_membrane: np.ndarray,
    *,
    thresholds: Sequence[float] = ISBI_THRESHOLDS,
    thin: bool = True,
    membrane_is_high: bool = True,
) -> dict[str, float]:
    """The ISBI 2012 leaderboard scores: maximal V_Rand and V_Info over thresholds.

    For each threshold ``th`` the proposal membrane is ``membrane_prob > th`` and the proposal
    regions are the 4-connected components of its complement. With ``thin`` (our version of the
    leaderboard's "after border thinning") the regions then absorb the proposal membrane: each
    proposal-membrane pixel takes the label of its nearest region pixel in Euclidean distance
    (``scipy.ndimage.distance_transform_edt``; equidistant regions: the one scipy returns), so
    no membrane pixel is left. This has not been checked against the challenge's Fiji script;
    re-implementations that grow the regions step by step (e.g. with a 3 x 3 maximum filter)
    can assign some pixels differently and give slightly different scores. Without ``thin``
    each proposal-membrane pixel is a singleton region. The truth regions are the
    components of the truth's non-membrane pixels, and only those pixels are scored
    (foreground-restricted). :func:`~biounet.metrics.rand_info.rand_scores` and
    :func:`~biounet.metrics.rand_info.info_scores` are computed at every threshold; the best
    of each is reported with its parts and threshold (lowest on ties).

    Parameters
    ----------
    membrane_prob : numpy.ndarray of float, shape ``(Y, X)`` or ``(Z, Y, X)``
        Membrane probability in [0, 1]. A stack is scored as a whole (one contingency table
        over all slices), with regions found slice by slice.
    truth_membrane : numpy.ndarray of bool, same shape
        Ground-truth membrane mask (ISBI label PNGs: ``png == 0``).
    thresholds : sequence of float
        Thresholds in [0, 1]; default 0.0, 0.1, ..., 1.0.
    thin : bool
        Thin the proposal borders as described above (default, as the leaderboard).
    membrane_is_high : bool
        ``False`` if ``membrane_prob`` is the probability of cell interior: it is then
        replaced by ``1 - membrane_prob``.

    Returns
    -------
    dict of str to float
        ``v_rand``, ``v_rand_split``, ``v_rand_merge``, ``v_rand_threshold``, ``v_info``,
        ``v_info_split``, ``v_info_merge``, ``v_info_threshold``.
    """
    prob = np.asarray(membrane_prob, dtype=np.float64)
    truth = check_membrane_mask(truth_membrane, "truth_membrane")
    check_same_shape(prob, truth, "membrane_prob and truth_membrane")
    check_probabilities(prob, "membrane_prob")
    ths = [float(th) for th in thresholds]
    if not ths or min(ths) < 0 or max(ths) > 1:
        raise ValueError(f"thresholds must be a non-empty sequence in [0, 1], got {ths}")
    if not membrane_is_high:
        prob = 1.0 - prob
    tables, _, _ = threshold_tables(prob, truth, ths, thin=thin)
    return best_scores(tables, ths)


def threshold_tables(
    prob: np.ndarray,
    truth: np.ndarray,
    thresholds: Sequence[float],
    *,
    thin: bool = True,
    regions_at: float | None = None,
) -> tuple[list[Table], np.ndarray, np.ndarray | None]:
    """The counts behind :func:`isbi_scores`: one table of counts per threshold.

    Parameters
    ----------
    prob : numpy.ndarray of float, shape ``(Y, X)`` or ``(Z, Y, X)``
        Membrane probability in [0, 1] (checked by the caller).
    truth : numpy.ndarray of bool, same shape
        Ground-truth membrane mask.
    thresholds : sequence of float
        The thresholds of the proposal membrane ``prob > th``.
    thin : bool
        Thin the proposal borders (:func:`~biounet.metrics.membranes.thin_borders`).
    regions_at : float, optional
        A threshold whose proposal regions to return, for callers that score them otherwise
        (the adapted Rand error).

    Returns
    -------
    tables : list of Table
        One :class:`~biounet.metrics.rand_info.Table` per threshold. The tables of several
        slices can be joined with :func:`join_tables` (regions never cross slices).
    truth_regions : numpy.ndarray of int32, same shape
        The truth regions (:func:`~biounet.metrics.membranes.label_regions`).
    regions : numpy.ndarray of int32 or None
        The (thinned) proposal regions at ``regions_at`` if it is one of ``thresholds``, else
        None.
    """
    truth_regions = label_regions(~truth)
    tables, kept = [], None
    for th in thresholds:
        regions = label_regions(prob <= th)
        if thin:
            regions = thin_borders(regions)
        if regions_at is not None and th == regions_at:
            kept = regions
        tables.append(count_table(truth_regions, regions, "singletons"))
    return tables, truth_regions, kept


def join_tables(tables: Sequence[Table]) -> Table:
    """The table of slices scored as one stack, from the slices' tables.

    The regions of different slices are disjoint, so the stack's pairs and sizes are those of
    its slices side by side, and its pixels their sum.
    """
    joint, t, s, n = zip(*tables)
    return Table(np.concatenate(joint), np.concatenate(t), np.concatenate(s), int(sum(n)))


def best_scores(tables: Sequence[Table], thresholds: Sequence[float]) -> dict[str, float]:
    """:func:`isbi_scores`'s result from the tables of its thresholds.

    Parameters
    ----------
    tables : sequence of Table
        The counts at each threshold (:func:`threshold_tables`).
    thresholds : sequence of float
        The thresholds, in the order of ``tables``.

    Returns
    -------
    dict of str to float
        The keys of :func:`isbi_scores`: the best V_Rand and V_Info, each with its split and
        merge parts and its threshold (the lowest on ties).
    """
    best: dict[str, float] = {"v_rand": -1.0, "v_info": -1.0}
    for th, table in zip(thresholds, tables):
        for key, scores in (
            ("v_rand", rand_from_table(table)),
            ("v_info", info_from_table(table)),
        ):
            if scores[key] > best[key]:
                best.update({key: scores[key], f"{key}_threshold": float(th)})
                best.update({f"{key}_split": scores["split"], f"{key}_merge": scores["merge"]})
    order = ("v_rand", "v_rand_split", "v_rand_merge", "v_rand_threshold")
    return {k: best[k] for k in (*order, *(o.replace("rand", "info") for o in order))}
