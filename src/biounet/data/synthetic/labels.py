"""The tidy-up both synthetic generators apply to the labels they draw: one piece per object."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["clean_labels"]


def clean_labels(labels: np.ndarray, *, min_size: float) -> np.ndarray:
    """Keep the largest component of each label (in place), drop small ones, relabel 1..n.

    Parameters
    ----------
    labels : numpy.ndarray of int32, shape ``(*S)``
        Drawn labels; changed in place (the pieces dropped become 0).
    min_size : float
        An object whose largest component is smaller than this (px) is dropped.

    Returns
    -------
    numpy.ndarray of int32, shape ``(*S)``
        Labels 1..n consecutively, 0 background.
    """
    for i, box in enumerate(ndi.find_objects(labels), start=1):
        if box is not None:
            mine = labels[box] == i
            parts, _ = ndi.label(mine)
            sizes = np.bincount(parts.ravel())
            sizes[0] = 0
            drop = mine & (parts != sizes.argmax()) if sizes.max() >= min_size else mine
            labels[box][drop] = 0
    _, inverse = np.unique(labels, return_inverse=True)
    out: np.ndarray = inverse.reshape(labels.shape).astype(np.int32)
    if labels.min() > 0:  # no background at all: keep labels starting at 1
        out += 1
    return out
