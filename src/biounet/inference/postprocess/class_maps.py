"""Class maps from class scores: the argmax, or a threshold on the foreground of two classes."""

from __future__ import annotations

import numpy as np

from biounet.core.checks import check_fraction, check_probabilities
from biounet.inference.postprocess.arguments import check_probs

__all__ = ["semantic"]


def semantic(probs: np.ndarray, *, threshold: float | None = None) -> np.ndarray:
    """The class of every pixel: argmax over classes, or ``probs[1] > threshold`` for 2 classes.

    Parameters
    ----------
    probs : (C, Y, X) or (C, Z, Y, X) array of float
        Per-class scores, ``C >= 2``. The argmax takes any scores (probabilities or logits);
        a threshold needs probabilities in [0, 1].
    threshold : float in (0, 1), optional
        Two classes only: foreground (1) where ``probs[1] > threshold``, else background (0).
        Default: argmax (equal to a threshold of 0.5 for 2 softmax probabilities, up to ties).

    Returns
    -------
    (Y, X) or (Z, Y, X) array of uint8 (int32 when C > 256)
        Class indices ``0..C-1``; ties go to the lower class.

    Examples
    --------
    >>> p1 = np.array([[0.2, 0.6], [0.7, 0.9]])
    >>> semantic(np.stack([1 - p1, p1]), threshold=0.8)
    array([[0, 0],
           [0, 1]], dtype=uint8)
    """
    p = check_probs(probs, "probs")
    dtype = np.uint8 if p.shape[0] <= 256 else np.int32
    if threshold is None:
        return np.asarray(np.argmax(p, axis=0), dtype)
    check_fraction(threshold, "threshold")
    if p.shape[0] != 2:
        raise ValueError(
            f"threshold needs 2 classes, got probs with {p.shape[0]} (shape {p.shape}); "
            "use threshold=None for the argmax"
        )
    check_probabilities(p[1], "probs[1]")
    return np.asarray(p[1] > threshold, dtype)
