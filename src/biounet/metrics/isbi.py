"""ISBI 2012 (EM membranes) scores: foreground-restricted V_Rand and V_Info, warping error.

Definitions follow the challenge paper (Arganda-Carreras et al. 2015, Front. Neuroanat. 9:142)
and, for the warping error, Jain et al. 2010 (CVPR, "Boundary learning by optimization with
topological constraints").

Conventions: a *membrane mask* is ``True`` (or 1) on membrane; a *region* is a 4-connected
component (face-connected; in a ``(Z, Y, X)`` stack, within each slice) of its non-membrane
pixels; in label images ``0`` is membrane/background. Every function takes the ground truth
first. The image is treated as framed by membrane, so no region reaches around the border.

>>> truth = np.array([[1, 1, 0, 2, 2]])
>>> rand_scores(truth, np.array([[1, 1, 0, 1, 1]]))  # one merge
{'v_rand': 0.666..., 'split': 1.0, 'merge': 0.5}
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

from biounet.core.checks import look_up

__all__ = [
    "ISBI_THRESHOLDS",
    "Table",
    "adapted_rand_error",
    "best_scores",
    "info_scores",
    "isbi_scores",
    "join_tables",
    "rand_scores",
    "simple_point_warp",
    "threshold_tables",
    "topology_errors",
    "warping_error",
]

#: The challenge's thresholds of the membrane probability map: 0.0, 0.1, ..., 1.0.
ISBI_THRESHOLDS: tuple[float, ...] = tuple(round(0.1 * k, 1) for k in range(11))
_PRED_BACKGROUND = ("singletons", "region")


def _labels(a: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype == bool:
        return arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            f"{name} must be an integer label image (0 = membrane/background), got dtype "
            f"{arr.dtype}; label a mask first, e.g. with scipy.ndimage.label"
        )
    return arr.astype(np.int64, copy=False)


def _mask(a: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype != bool:
        if not ((arr == 0) | (arr == 1)).all():
            raise ValueError(
                f"{name} must be a binary membrane mask (bool or 0/1, membrane = True), got "
                f"{arr.dtype} values {np.unique(arr)[:6]}; threshold it first (ISBI label "
                "PNGs: membrane = (png == 0))"
            )
        arr = arr.astype(bool)
    if arr.ndim not in (2, 3):
        raise ValueError(f"{name} must be 2D (Y, X) or a stack (Z, Y, X), got shape {arr.shape}")
    return arr


def _same_shape(a: np.ndarray, b: np.ndarray, names: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{names} must have the same shape, got {a.shape} and {b.shape}")


def _compact(x: np.ndarray) -> tuple[np.ndarray, int]:
    """Integer ``x`` relabelled 0..k-1 in sorted order (``np.unique``'s inverse), and ``k``."""
    if x.size and int(x.min()) >= 0 and int(x.max()) < 4 * x.size + 1024:  # fast path
        present = np.bincount(x) > 0
        return (np.cumsum(present) - 1)[x], int(present.sum())
    values, inverse = np.unique(x, return_inverse=True)
    return inverse.ravel(), int(values.size)


def _table(
    truth: np.ndarray, pred: np.ndarray, pred_background: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Counts on the truth foreground: joint ``n_ij``, truth sizes, proposal sizes, and ``n``.

    Proposal pixels labelled 0 are dropped from ``n_ij`` and the proposal sizes when they are
    singletons: each is then a region of one pixel, which adds 1 to every sum of squares and 0
    to every ``sum c log c``, so only ``n`` needs to remember them.
    """
    look_up(pred_background, _PRED_BACKGROUND, "pred_background")
    t, p = _labels(truth, "truth"), _labels(pred, "pred")
    _same_shape(t, p, "truth and pred")
    keep = t.ravel() != 0
    t, p = t.ravel()[keep], p.ravel()[keep]
    n = int(t.size)
    ti, _ = _compact(t)
    t_sizes = np.bincount(ti)
    if pred_background == "singletons":
        fg = p != 0
        ti, p = ti[fg], p[fg]
    pi, n_p = _compact(p)
    joint = np.bincount(_compact(ti * n_p + pi)[0])
    return joint, t_sizes, np.bincount(pi), n


def _rand(joint: np.ndarray, t: np.ndarray, s: np.ndarray, n: int) -> dict[str, float]:
    if n == 0:
        return {"v_rand": 1.0, "split": 1.0, "merge": 1.0}
    singles = n - int(s.sum())  # proposal regions of one pixel each
    sum_p2 = float(np.sum(joint.astype(np.float64) ** 2)) + singles
    split = sum_p2 / float(np.sum(t.astype(np.float64) ** 2))
    merge = sum_p2 / (float(np.sum(s.astype(np.float64) ** 2)) + singles)
    return {"v_rand": 2 * split * merge / (split + merge), "split": split, "merge": merge}


def _entropy(c: np.ndarray, n: int) -> float:
    """Entropy (bits) of counts ``c`` out of ``n`` pixels; the missing ones are singletons."""
    c = c[c > 0].astype(np.float64)
    return float(np.log2(n) - np.sum(c * np.log2(c)) / n)


def _info(joint: np.ndarray, t: np.ndarray, s: np.ndarray, n: int) -> dict[str, float]:
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


# --- Rand and information scores on label images ------------------------------------------


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
        Ground-truth and proposal regions, any labels; truth pixels labelled 0 are excluded.
    pred_background : {"singletons", "region"}
        How proposal pixels labelled 0 inside the truth foreground count: ``"singletons"``
        (default): each is a region of its own, so thick predicted membranes cost split
        score; ``"region"``: 0 is an ordinary label (as in scikit-image).

    Returns
    -------
    dict of str to float
        ``v_rand``, ``split``, ``merge`` in (0, 1]; all 1.0 without truth foreground.
    """
    return _rand(*_table(truth, pred, pred_background))


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
        Ground-truth and proposal regions; truth pixels labelled 0 are excluded.
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
    return _info(*_table(truth, pred, pred_background))


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
        Ground-truth and proposal labels.
    ignore_labels : sequence of int
        Truth labels whose pixels are left out (default: 0, the membrane).

    Returns
    -------
    dict of str to float
        ``error`` in [0, 1] (0 is perfect), ``precision`` and ``recall``.
    """
    t = _labels(truth, "truth")
    keep = ~np.isin(t, np.asarray(list(ignore_labels), dtype=np.int64))
    t = np.where(keep, _compact(t.ravel())[0].reshape(t.shape) + 1, 0)  # ignored pixels: 0
    joint, b, a, n = _table(t, pred, "region")
    pairs = float(np.sum(joint.astype(np.float64) ** 2)) - n
    a2 = float(np.sum(a.astype(np.float64) ** 2)) - n
    b2 = float(np.sum(b.astype(np.float64) ** 2)) - n
    precision = pairs / a2 if a2 > 0 else 1.0
    recall = pairs / b2 if b2 > 0 else 1.0
    f = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"error": 1.0 - f, "precision": precision, "recall": recall}


# --- the challenge's scores on a membrane probability map ---------------------------------


def _regions(fg: np.ndarray) -> np.ndarray:
    """4-connected components of ``fg`` (per slice for a stack), labelled 1..n."""
    structure = ndi.generate_binary_structure(2, 1)
    if fg.ndim == 3:
        structure = np.stack([np.zeros_like(structure), structure, np.zeros_like(structure)])
    labels: np.ndarray = ndi.label(fg, structure=structure)[0]
    return labels


def _thin(labels: np.ndarray) -> np.ndarray:
    """Each 0 (per slice) takes the label of its nearest non-zero pixel (Euclidean distance)."""
    out: np.ndarray = labels.copy()
    for sl in out.reshape(-1, *labels.shape[-2:]):
        if sl.any() and not sl.all():
            idx = ndi.distance_transform_edt(sl == 0, return_distances=False, return_indices=True)
            sl[...] = sl[tuple(idx)]
    return out


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
    (foreground-restricted). :func:`rand_scores` and :func:`info_scores` are computed at every
    threshold; the best of each is reported with its parts and threshold (lowest on ties).

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
    truth = _mask(truth_membrane, "truth_membrane")
    _same_shape(prob, truth, "membrane_prob and truth_membrane")
    if prob.size and not (np.isfinite(prob).all() and 0 <= prob.min() and prob.max() <= 1):
        raise ValueError(
            f"membrane_prob must lie in [0, 1], got [{prob.min()}, {prob.max()}]; scale it "
            "first (8-bit maps: divide by 255)"
        )
    ths = [float(th) for th in thresholds]
    if not ths or min(ths) < 0 or max(ths) > 1:
        raise ValueError(f"thresholds must be a non-empty sequence in [0, 1], got {ths}")
    if not membrane_is_high:
        prob = 1.0 - prob
    tables, _, _ = threshold_tables(prob, truth, ths, thin=thin)
    return best_scores(tables, ths)


#: the contingency counts of one threshold: joint ``n_ij``, truth sizes, proposal sizes, ``n``
Table = tuple[np.ndarray, np.ndarray, np.ndarray, int]


def threshold_tables(
    prob: np.ndarray,
    truth: np.ndarray,
    thresholds: Sequence[float],
    *,
    thin: bool = True,
    regions_at: float | None = None,
) -> tuple[list[Table], np.ndarray, np.ndarray | None]:
    """The counts behind :func:`isbi_scores`, one :data:`Table` per threshold.

    ``prob``: membrane probability (float, checked by the caller), ``truth``: bool membrane
    mask. Also returns the truth regions and, if ``regions_at`` is one of ``thresholds``, the
    (thinned) proposal regions at that threshold (else None), for callers that score those
    regions otherwise (the adapted Rand error). The tables of several slices can be joined
    with :func:`join_tables` (regions never cross slices).
    """
    truth_regions = _regions(~truth)
    tables, kept = [], None
    for th in thresholds:
        regions = _regions(prob <= th)
        if thin:
            regions = _thin(regions)
        if regions_at is not None and th == regions_at:
            kept = regions
        tables.append(_table(truth_regions, regions, "singletons"))
    return tables, truth_regions, kept


def join_tables(tables: Sequence[Table]) -> Table:
    """The table of slices scored as one stack, from theirs (their regions are disjoint)."""
    joint, t, s, n = zip(*tables)
    return np.concatenate(joint), np.concatenate(t), np.concatenate(s), int(sum(n))


def best_scores(tables: Sequence[Table], thresholds: Sequence[float]) -> dict[str, float]:
    """:func:`isbi_scores`'s result from the tables of its thresholds (lowest on ties)."""
    best: dict[str, float] = {"v_rand": -1.0, "v_info": -1.0}
    for th, table in zip(thresholds, tables):
        for key, scores in (("v_rand", _rand(*table)), ("v_info", _info(*table))):
            if scores[key] > best[key]:
                best.update({key: scores[key], f"{key}_threshold": float(th)})
                best.update({f"{key}_split": scores["split"], f"{key}_merge": scores["merge"]})
    order = ("v_rand", "v_rand_split", "v_rand_merge", "v_rand_threshold")
    return {k: best[k] for k in (*order, *(o.replace("rand", "info") for o in order))}


# --- warping error ------------------------------------------------------------------------

# The 8 neighbours counter-clockwise from east: bit k of a 3x3 configuration code is neighbour
# k. The centre is simple for (8, 4) connectivity iff the Yokoi number
# sum_{k = 0, 2, 4, 6} (y_k - y_k y_{k+1} y_{k+2}), with y = 1 - x, is 1.
_OFFSETS = ((0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1))
_Y = 1 - ((np.arange(256)[:, None] >> np.arange(8)) & 1)
_YOKOI = sum(_Y[:, k] * (1 - _Y[:, k + 1] * _Y[:, (k + 2) % 8]) for k in (0, 2, 4, 6))
_SIMPLE = np.asarray(_YOKOI == 1)


def _warp2d(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    w = np.pad(source, 1, constant_values=True).astype(np.uint8)  # framed by membrane
    stride = w.shape[1]
    flat, goal = w.ravel(), np.pad(target, 1, constant_values=True).ravel().astype(np.uint8)
    rows, cols = np.divmod(np.arange(flat.size), stride)
    subfield = (rows % 2) * 2 + cols % 2  # pixels of one subfield are never 8-adjacent
    offsets = np.array([dy * stride + dx for dy, dx in _OFFSETS])
    bits = np.uint8(1) << np.arange(8, dtype=np.uint8)
    cand = np.flatnonzero(flat != goal)
    while cand.size:
        flipped = []
        for sf in range(4):
            sel = cand[subfield[cand] == sf]
            sel = sel[flat[sel] != goal[sel]]
            if sel.size:
                code = (flat[sel[:, None] + offsets] * bits).sum(axis=1)
                ok = sel[_SIMPLE[code]]
                flat[ok] ^= 1
                flipped.append(ok)
        moved = np.concatenate(flipped) if flipped else np.zeros(0, np.int64)
        near = np.unique((moved[:, None] + offsets).ravel())  # only their neighbours changed
        cand = near[flat[near] != goal[near]]
    return w[1:-1, 1:-1].astype(bool)


def simple_point_warp(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Warp the membrane mask ``source`` towards ``target`` by flipping simple points only.

    See :func:`warping_error`. ``source`` and ``target``: bool arrays, shape ``(Y, X)`` or
    ``(Z, Y, X)`` (warped slice by slice). Returns the warped ``source`` (bool, same shape),
    which has the topology of ``source``.
    """
    src, tgt = _mask(source, "source"), _mask(target, "target")
    _same_shape(src, tgt, "source and target")
    if src.ndim == 2:
        return _warp2d(src, tgt)
    return np.stack([_warp2d(s, t) for s, t in zip(src, tgt)]) if src.size else src.copy()


def topology_errors(truth_membrane: np.ndarray, pred_membrane: np.ndarray) -> dict[str, float]:
    """:func:`warping_error` with its remaining errors classified (Jain et al. 2010).

    The pixels where the warped truth and the prediction still differ are grouped into
    8-connected pieces (per slice). A piece of predicted membrane the warp could not add is a
    ``split`` if it touches membrane present in both (or the image border), else an
    ``addition`` (a new membrane fragment); a piece of truth membrane it could not remove is a
    ``merger`` if it touches such membrane, else a ``deletion`` (a lost fragment). Same
    parameters as :func:`warping_error`.

    Returns
    -------
    dict of str to float
        ``warping_error`` (fraction of all pixels), ``error_pixels``, and the numbers of
        ``splits``, ``mergers``, ``additions`` and ``deletions``.
    """
    truth, pred = _mask(truth_membrane, "truth_membrane"), _mask(pred_membrane, "pred_membrane")
    warped = simple_point_warp(truth, pred)
    structure = np.ones((3,) * truth.ndim, bool)
    if truth.ndim == 3:
        structure[0] = structure[2] = False
    false, missing = pred & ~warped, warped & ~pred
    errors = int(false.sum() + missing.sum())
    near = ndi.binary_dilation(pred & warped, structure, border_value=1)  # the frame counts
    out = {"warping_error": errors / truth.size if truth.size else 0.0}
    out["error_pixels"] = float(errors)
    for pieces, attached, alone in (
        (false, "splits", "additions"),
        (missing, "mergers", "deletions"),
    ):
        labels, n = ndi.label(pieces, structure=structure)
        out[attached] = float(np.unique(labels[near & pieces]).size)
        out[alone] = n - out[attached]
    return out


def warping_error(truth_membrane: np.ndarray, pred_membrane: np.ndarray) -> float:
    """Warping error (Jain et al. 2010): the disagreement left after a topology-safe warp.

    ``|warp(L*) xor L| / N``: the truth membrane ``L*`` is warped towards the predicted
    membrane ``L`` (:func:`simple_point_warp`) by flipping, among the pixels where they differ,
    only *simple* points, whose flip changes no topology (membrane 8-connected, regions
    4-connected): no region or membrane piece is split, merged, created or deleted. Flips
    repeat until none is possible; the ``N`` pixels still differing are the topological errors.
    Boundary shifts cost nothing. The four subfields ``(y % 2, x % 2)`` are swept in turn, each
    in parallel (their pixels share no neighbourhood, so this equals a sequential order): the
    warp is greedy, as in Jain et al., not the minimal one.

    Parameters
    ----------
    truth_membrane, pred_membrane : numpy.ndarray of bool, shape ``(Y, X)`` or ``(Z, Y, X)``
        Membrane masks (True on membrane), the prediction binarised; a stack is warped slice
        by slice and counted over all its pixels.

    Returns
    -------
    float
        In [0, 1]; 0 when the masks agree up to a topology-preserving deformation.

    Examples
    --------
    >>> truth = np.zeros((5, 5), bool); truth[:, 2] = True  # two regions
    >>> warping_error(truth, np.roll(truth, 1, axis=1)), warping_error(truth, truth & False)
    (0.0, 0.2)
    """
    return topology_errors(truth_membrane, pred_membrane)["warping_error"]
