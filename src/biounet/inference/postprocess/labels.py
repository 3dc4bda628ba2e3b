"""Label clean-ups: the holes an object encloses filled, objects below a size removed."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from biounet.core.checks import check_labels
from biounet.inference.postprocess.arguments import check_connectivity, check_min_size

__all__ = ["fill_holes", "fill_object_holes", "hole_structure", "remove_small"]


def fill_holes(labels: np.ndarray, *, connectivity: int = 1) -> np.ndarray:
    """Give each object the background it encloses on its own.

    Parameters
    ----------
    labels : (Y, X) or (Z, Y, X) array of int
        Instance labels, 0 = background.
    connectivity : int, default 1
        Neighbourhood of the objects, 1 to ``ndim``. A background pixel is in a hole of object
        ``i`` when no path through pixels other than ``i`` leads out of the bounding box of
        ``i``; paths step through faces, edges and corners if ``connectivity`` is 1, else only
        through faces.

    Returns
    -------
    array of labels.dtype, labels.shape
        A copy. Background enclosed by several objects together stays 0; other objects inside
        a hole are kept.

    Examples
    --------
    >>> ring = np.ones((4, 4), np.int32)
    >>> ring[1:3, 1:3] = 0
    >>> int(fill_holes(ring).min())
    1
    """
    lab = _integer_labels(labels, ndims=(2, 3))
    return fill_object_holes(lab, check_connectivity(connectivity, lab.ndim))


def remove_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Set objects with fewer than ``min_size`` pixels to 0, without renumbering the others.

    The rule of ``skimage.morphology.remove_small_objects(labels, min_size)``: 0 or 1 keeps
    all. ``labels``: an array of int, 0 = background. Returns a copy, same shape and dtype.

    >>> remove_small(np.array([0, 1, 1, 2, 3, 3, 3]), 2)
    array([0, 1, 1, 0, 3, 3, 3])
    """
    lab = _integer_labels(labels)
    check_min_size(min_size)
    if min_size <= 1 or not lab.size:
        return np.array(lab)
    small = np.bincount(lab.ravel()) < min_size
    small[0] = False
    return np.where(small[lab], 0, lab).astype(lab.dtype)


def hole_structure(ndim: int, conn: int) -> np.ndarray:
    """Steps through background: the dual of the objects' connectivity ``conn``, as a structure.

    Objects connected through faces only (``conn == 1``) leave holes that background crosses
    through edges and corners too, and the other way round.
    """
    return np.asarray(ndi.generate_binary_structure(ndim, ndim if conn == 1 else 1))


def fill_object_holes(lab: np.ndarray, conn: int) -> np.ndarray:
    """:func:`fill_holes` of checked integer labels ``lab`` and a checked connectivity ``conn``."""
    out = np.array(lab)
    structure = hole_structure(lab.ndim, conn)
    for i, box in enumerate(ndi.find_objects(lab), start=1):
        if box is None:
            continue
        obj = lab[box] == i
        hole = ndi.binary_fill_holes(obj, structure) & ~obj & (lab[box] == 0)
        out[box][hole] = i
    return out


def _integer_labels(labels: np.ndarray, ndims: tuple[int, ...] | None = None) -> np.ndarray:
    """``labels`` checked by :func:`~biounet.core.checks.check_labels`, in their own dtype.

    Integer labels keep their dtype (the results are returned in it); a bool mask becomes
    ``int64`` 0/1.
    """
    arr = np.asarray(labels)
    checked = check_labels(arr, "labels", ndims=ndims)
    return arr if np.issubdtype(arr.dtype, np.integer) else checked
