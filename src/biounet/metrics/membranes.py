"""Membrane masks of EM images: their check, their regions, and the thinning of proposal borders.

Conventions of the ISBI 2012 scores (:mod:`biounet.metrics.isbi`,
:mod:`biounet.metrics.warping`): a *membrane mask* is ``True`` (or 1) on membrane; a *region*
is a 4-connected component (face-connected; in a ``(Z, Y, X)`` stack, within each slice) of
its non-membrane pixels. The image is treated as framed by membrane, so no region reaches
around the border.

>>> mem = np.array([[0, 0, 1, 0, 0]], bool)
>>> label_regions(~mem), thin_borders(label_regions(~mem))
(array([[1, 1, 0, 2, 2]], dtype=int32), array([[1, 1, 1, 2, 2]], dtype=int32))
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage as ndi

__all__ = ["check_membrane_mask", "label_regions", "thin_borders"]


def check_membrane_mask(mask: Any, name: str) -> np.ndarray:
    """``mask`` as a bool membrane mask ``(Y, X)`` or ``(Z, Y, X)``, True on membrane.

    Parameters
    ----------
    mask : array-like of bool or 0/1
        The membrane mask; any other values are refused, not thresholded.
    name : str
        What the mask is, for the error messages.

    Returns
    -------
    numpy.ndarray of bool, shape ``(Y, X)`` or ``(Z, Y, X)``

    Raises
    ------
    ValueError
        Values other than 0 and 1, or another number of axes.
    """
    arr = np.asarray(mask)
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


def label_regions(fg: np.ndarray) -> np.ndarray:
    """The regions of ``fg``: its 4-connected components (per slice for a stack), labelled 1..n.

    Parameters
    ----------
    fg : numpy.ndarray of bool, shape ``(Y, X)`` or ``(Z, Y, X)``
        The non-membrane pixels (``~membrane``).

    Returns
    -------
    numpy.ndarray of int32, same shape
        0 on membrane; the regions of a stack are numbered across its slices.
    """
    structure = ndi.generate_binary_structure(2, 1)
    if fg.ndim == 3:  # no connection between slices
        structure = np.stack([np.zeros_like(structure), structure, np.zeros_like(structure)])
    labels: np.ndarray = ndi.label(fg, structure=structure)[0]
    return labels


def thin_borders(labels: np.ndarray) -> np.ndarray:
    """Each 0 (membrane) takes the label of its nearest non-zero pixel of the same slice.

    Parameters
    ----------
    labels : numpy.ndarray of int, shape ``(Y, X)`` or ``(Z, Y, X)``
        Regions, 0 on membrane (:func:`label_regions`).

    Returns
    -------
    numpy.ndarray, same shape and dtype
        A copy with no 0 left in any slice that has a region; the nearest pixel is in
        Euclidean distance (``scipy.ndimage.distance_transform_edt``; between equidistant
        regions, the one scipy returns).
    """
    out: np.ndarray = labels.copy()
    for sl in out.reshape(-1, *labels.shape[-2:]):
        if sl.any() and not sl.all():
            idx = ndi.distance_transform_edt(sl == 0, return_distances=False, return_indices=True)
            sl[...] = sl[tuple(idx)]
    return out
