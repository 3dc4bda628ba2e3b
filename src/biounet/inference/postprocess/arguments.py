"""Argument checks shared by the post-processing functions: scores, shapes, sizes.

The probability range and thresholds are checked as everywhere else, by
:func:`biounet.core.checks.check_probabilities` and :func:`~biounet.core.checks.check_fraction`.
"""

from __future__ import annotations

import numpy as np

from biounet.core.checks import is_whole

__all__ = [
    "check_connectivity",
    "check_min_size",
    "check_probs",
    "check_spatial",
]


def check_probs(probs: np.ndarray, name: str) -> np.ndarray:
    """``probs`` as a float ``(C, Y, X)`` or ``(C, Z, Y, X)`` array with ``C >= 2`` classes.

    >>> check_probs(np.zeros((2, 4, 4)), "probs").shape
    (2, 4, 4)
    """
    p = np.asarray(probs)
    if p.ndim not in (3, 4) or p.shape[0] < 2:
        raise ValueError(f"{name} must be (C, Y, X) or (C, Z, Y, X), C >= 2, got shape {p.shape}")
    if not np.issubdtype(p.dtype, np.floating):
        raise ValueError(f"{name} must be float scores, got dtype {p.dtype}")
    return p


def check_spatial(a: np.ndarray, name: str) -> np.ndarray:
    """``a`` if it is a ``(Y, X)`` or ``(Z, Y, X)`` array, else a ValueError naming ``name``."""
    if a.ndim not in (2, 3):
        raise ValueError(f"{name} must have shape (Y, X) or (Z, Y, X), got shape {a.shape}")
    return a


def check_min_size(min_size: int) -> None:
    """Raise unless ``min_size`` is a whole number of pixels >= 0 (a whole float passes)."""
    if not is_whole(min_size) or min_size < 0:
        raise ValueError(f"min_size must be a whole number of pixels >= 0, got {min_size!r}")


def check_connectivity(connectivity: int, ndim: int) -> int:
    """``connectivity`` as an int in ``1..ndim`` (1: faces; ``ndim``: faces, edges, corners)."""
    if connectivity not in range(1, ndim + 1):
        raise ValueError(f"connectivity must be 1..{ndim} for {ndim}D arrays, got {connectivity}")
    return int(connectivity)
