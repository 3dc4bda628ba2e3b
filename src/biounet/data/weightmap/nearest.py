"""The distances ``d1``, ``d2`` from every pixel to the nearest and second-nearest object.

They are measured as ``scipy.ndimage.distance_transform_edt`` measures them: between pixel
centres, 0 on the object itself, in the units of ``spacing`` (pixels when ``spacing`` is 1).

Speed and exactness: each object gets one distance transform, inside its bounding box enlarged
by a cut-off radius ``R``, and the two smallest distances per pixel are kept. Where
``d1 + d2 <= R`` both objects lie within ``R``, so both windows hold the pixel and ``d1``, ``d2``
are exact; elsewhere they can only come out too large. The weight map uses
``R = sigma * sqrt(2 ln(w0 / tol))``, where the border term falls to ``tol``, and sets the term to
0 wherever it is below ``tol``: the result is eq. 2 truncated at ``tol`` (absolute error below
``tol``), independent of the windows. The cost grows as ``objects * (object size + 2 R) ** ndim``;
a 512 x 512 image of 200 cells takes about 50 ms on one CPU core (``benchmarks/weightmap.py``),
30 times less than one whole-image transform per object.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

__all__ = ["Objects", "relabel", "two_nearest"]

#: ``(label, bounding box)`` of every object of a relabelled image
Objects = list[tuple[int, tuple[slice, ...]]]


def relabel(arr: np.ndarray, background: int) -> tuple[np.ndarray, Objects]:
    """Labels with background 0, and ``(label, bounding box)`` for every object.

    Parameters
    ----------
    arr : numpy.ndarray of int, shape ``(*S)``
        Checked instance labels (non-negative).
    background : int
        The label value of the background.

    Returns
    -------
    lab : numpy.ndarray of int, shape ``(*S)``
        ``arr`` itself when its labels are small and the background is 0 (no copy), else the
        labels renumbered 1..n (int32) with background 0.
    objects : list of (int, tuple of slice)
        Every object's label in ``lab`` and bounding box.
    """
    if background == 0 and arr.size and int(arr.max()) <= arr.size:
        lab = arr  # small labels: no copy, find_objects indexes by label value
    else:
        values, inverse = np.unique(arr, return_inverse=True)
        is_object = values != background
        lut = (np.cumsum(is_object) * is_object).astype(np.int32)
        lab = lut[inverse].reshape(arr.shape)
    boxes = ndi.find_objects(lab) if lab.size else []
    return lab, [(k, box) for k, box in enumerate(boxes, start=1) if box is not None]


def two_nearest(
    lab: np.ndarray,
    objects: Objects,
    sampling: tuple[float, ...],
    cutoff: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Distances ``d1``, ``d2`` to the nearest and second-nearest object (float64, lab.shape).

    Parameters
    ----------
    lab, objects
        What :func:`relabel` returns.
    sampling : tuple of float
        Pixel size per axis; distances are in its units.
    cutoff : float
        The window radius ``R`` around each object, in the units of ``sampling``
        (``math.inf``: whole-image transforms).

    Returns
    -------
    d1, d2 : numpy.ndarray of float64, shape ``lab.shape``
        Exact wherever ``d1 + d2 <= cutoff``; elsewhere they may be too large (inf where fewer
        than two objects lie within ``cutoff``).
    """
    d1 = np.full(lab.shape, np.inf)
    d2 = np.full(lab.shape, np.inf)
    margins = [
        n if math.isinf(cutoff) else math.ceil(cutoff / s) + 1 for n, s in zip(lab.shape, sampling)
    ]
    for k, box in objects:
        window = tuple(
            slice(max(b.start - m, 0), min(b.stop + m, n))
            for b, m, n in zip(box, margins, lab.shape)
        )
        dist = ndi.distance_transform_edt(lab[window] != k, sampling=sampling)
        near, second = d1[window], d2[window]  # views: updated in place
        np.minimum(second, np.maximum(near, dist), out=second)
        np.minimum(near, dist, out=near)
    return d1, d2
