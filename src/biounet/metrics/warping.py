"""The warping error of a membrane mask (Jain et al. 2010): topology errors left after a warp.

The truth membrane is warped towards the prediction by flipping *simple* points only, pixels
whose flip changes no topology (:func:`simple_point_warp`); the pixels that still differ are
the topological errors (:func:`warping_error`), classified as splits, mergers, additions and
deletions by :func:`topology_errors`. Masks follow :mod:`biounet.metrics.membranes`: True on
membrane, the image framed by membrane, a stack warped slice by slice.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from biounet.metrics.contingency import check_same_shape
from biounet.metrics.membranes import check_membrane_mask

__all__ = ["simple_point_warp", "topology_errors", "warping_error"]

# The 8 neighbours counter-clockwise from east: bit k of a 3x3 configuration code is neighbour
# k. The centre is simple for (8, 4) connectivity iff the Yokoi number
# sum_{k = 0, 2, 4, 6} (y_k - y_k y_{k+1} y_{k+2}), with y = 1 - x, is 1.
_OFFSETS = ((0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1))
_Y = 1 - ((np.arange(256)[:, None] >> np.arange(8)) & 1)
_YOKOI = sum(_Y[:, k] * (1 - _Y[:, k + 1] * _Y[:, (k + 2) % 8]) for k in (0, 2, 4, 6))
_SIMPLE = np.asarray(_YOKOI == 1)


def _warp2d(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """:func:`simple_point_warp` of one slice: bool ``(Y, X)`` masks in, the warped source out."""
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

    See :func:`warping_error` for the warp.

    Parameters
    ----------
    source, target : numpy.ndarray of bool, shape ``(Y, X)`` or ``(Z, Y, X)``
        Membrane masks (True on membrane); a stack is warped slice by slice.

    Returns
    -------
    numpy.ndarray of bool, same shape
        The warped ``source``, which has the topology of ``source``.
    """
    src, tgt = check_membrane_mask(source, "source"), check_membrane_mask(target, "target")
    check_same_shape(src, tgt, "source and target")
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
    truth = check_membrane_mask(truth_membrane, "truth_membrane")
    pred = check_membrane_mask(pred_membrane, "pred_membrane")
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
