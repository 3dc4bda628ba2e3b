"""Pictures for people: images scaled for viewing, and segmentations drawn over them.

:func:`display_scale` maps an image's 1st to 99.8th percentile to [0, 1] with the one
normalisation arithmetic of :mod:`biounet.data.normalize` (a ``"percentile"``
:class:`~biounet.data.normalize.Normalizer` over the whole array); :func:`overlay` draws a
class map or instance labels over it. ``predict`` writes its ``_overlay.png`` files with them,
and the report's gallery shows them.
"""

from __future__ import annotations

import numpy as np

from biounet.data.normalize import Normalizer, apply_normalization

__all__ = ["DISPLAY", "display_scale", "overlay"]

#: the scaling of pictures for viewing: the 1st percentile to 0, the 99.8th to 1
DISPLAY = Normalizer(mode="percentile", low=1.0, high=99.8)


def display_scale(image: np.ndarray) -> np.ndarray:
    """``image`` scaled for viewing: its 1st percentile to 0, its 99.8th to 1, clipped.

    The statistics are those of the whole array taken as one channel (an RGB picture
    ``(Y, X, 3)`` is scaled as a whole), by :data:`DISPLAY`; the result is float32 in [0, 1].

    >>> display_scale(np.arange(1001.0))[[0, 10, 998, 1000]].round(3).tolist()
    [0.0, 0.0, 1.0, 1.0]
    """
    a = np.asarray(image)[None]  # one channel
    if not a.size:
        return np.zeros(a.shape[1:], np.float32)
    out: np.ndarray = np.clip(apply_normalization(a, *DISPLAY.stats(a))[0], 0, 1)
    return out


def overlay(image: np.ndarray, labels: np.ndarray, *, instances: bool = False) -> np.ndarray:
    """An RGB picture of a 2D image: the image in grey, objects tinted, their outlines drawn.

    Parameters
    ----------
    image : array-like, ``(C, Y, X)`` or ``(Y, X)``
        The first channel is shown, scaled by :func:`display_scale`.
    labels : numpy.ndarray of int, ``(Y, X)``
        A class map (objects > 0 tinted red) or, with ``instances``, instance labels (each
        object in its own colour).
    instances : bool
        Colour and outline each object of ``labels`` on its own.

    Returns
    -------
    numpy.ndarray of uint8, ``(Y, X, 3)``
        Outlines are yellow.
    """
    from skimage.segmentation import find_boundaries

    img = np.asarray(image, dtype=np.float32)
    img = img[0] if img.ndim == 3 else img
    grey = display_scale(img)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    fg = labels > 0
    if instances and labels.max() > 0:
        rng = np.random.default_rng(0)
        colours = rng.uniform(0.3, 1.0, size=(int(labels.max()) + 1, 3))
        tint = colours[labels]
    else:
        tint = np.broadcast_to(np.array([1.0, 0.2, 0.2]), rgb.shape)
    rgb = np.where(fg[..., None], 0.6 * rgb + 0.4 * tint, rgb)
    edges = (
        find_boundaries(labels, mode="inner") if instances else find_boundaries(fg, mode="inner")
    )
    rgb[edges] = [1.0, 1.0, 0.0]
    out: np.ndarray = (rgb * 255).round().astype(np.uint8)
    return out
