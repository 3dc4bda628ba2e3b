"""EM membrane regions: the regions that membranes enclose, from a membrane probability map."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import relabel_sequential, watershed

from biounet.core.checks import check_fraction, check_probabilities
from biounet.inference.postprocess.arguments import (
    check_connectivity,
    check_min_size,
    check_spatial,
)
from biounet.inference.postprocess.labels import remove_small

__all__ = ["membrane_regions"]


def membrane_regions(
    membrane_prob: np.ndarray,
    *,
    threshold: float = 0.5,
    min_size: int = 0,
    thin: bool = False,
    connectivity: int = 1,
) -> np.ndarray:
    """EM: the regions enclosed by membranes, as objects, from a membrane probability map.

    Parameters
    ----------
    membrane_prob : (Y, X) or (Z, Y, X) array of float in [0, 1]
        Probability of membrane (cell boundary), e.g. ``probs[k]`` for a membrane class ``k``.
    threshold : float in (0, 1), default 0.5
        Membrane where ``membrane_prob > threshold``; the connected regions of the other
        pixels are the objects.
    min_size : int, default 0
        Regions with fewer pixels than this become membrane (taken over by their neighbours
        when ``thin``).
    thin : bool, default False
        Grow the regions over the membranes by a watershed on ``membrane_prob`` (regions as
        markers): 0 is left only on lines 1 px thin where two regions meet.
    connectivity : int, default 1
        Neighbourhood of the regions, 1 (faces) to ``ndim``.

    Returns
    -------
    (Y, X) or (Z, Y, X) array of int32
        0 on membranes (and lines), regions ``1..n``.

    Notes
    -----
    With ``thin=True``, open membrane ends and membranes along the image edge disappear; on
    flat plateaus the line may switch sides of a wide membrane, and at crossings a pixel may
    touch its region only diagonally.

    Examples
    --------
    A 1-px membrane cross cuts a 5 x 5 image into 4 regions:

    >>> m = np.zeros((5, 5))
    >>> m[2, :] = m[:, 2] = 1.0
    >>> membrane_regions(m)
    array([[1, 1, 0, 2, 2],
           [1, 1, 0, 2, 2],
           [0, 0, 0, 0, 0],
           [3, 3, 0, 4, 4],
           [3, 3, 0, 4, 4]], dtype=int32)
    """
    p = check_spatial(np.asarray(membrane_prob), "membrane_prob")
    if not np.issubdtype(p.dtype, np.floating):
        raise ValueError(f"membrane_prob must be float probabilities, got dtype {p.dtype}")
    check_fraction(threshold, "threshold")
    check_probabilities(p, "membrane_prob")
    check_min_size(min_size)
    conn = check_connectivity(connectivity, p.ndim)
    regions, _ = ndi.label(~(p > threshold), ndi.generate_binary_structure(p.ndim, conn))
    regions = remove_small(regions.astype(np.int32), min_size)
    if thin and regions.any():
        regions = watershed(p, regions, connectivity=conn, watershed_line=True)
    return np.asarray(relabel_sequential(regions)[0], np.int32)
