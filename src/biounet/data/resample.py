"""Resampling images, labels and probabilities to another pixel size, region by region.

A model trained on images shrunk by a factor ``s`` (``data.scale``) sees every image shrunk by
the same ``s`` at prediction, and its probabilities are brought back to the image's own grid.
Both directions use one coordinate rule, pixel centres aligned (the pixel ``j`` of an axis of
``m`` px resampled from ``n`` px sits at ``(j + 0.5) * n / m - 0.5`` in the source), so a
region computed on its own equals the same region of the whole result: lazy views
(:class:`biounet.data.views.Resampled`) read a large image tile by tile and stay seamless.

Shrinking first smooths with a Gaussian of ``sigma = (n / m - 1) / 2`` px per axis (as
anti-aliasing filters do), then interpolates linearly; enlarging interpolates linearly. Beyond
the image the edge value continues. Labels take the nearest source pixel, so they stay labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage as ndi

__all__ = ["resample", "resample_labels", "scaled_shape"]

#: the Gaussian's support, in sigmas (scipy's default truncation)
TRUNCATE = 4.0


def scaled_shape(spatial: Sequence[int], scale: float) -> tuple[int, ...]:
    """The spatial shape ``spatial`` (px per axis) takes at ``scale``: ``round(n * s)``, >= 1.

    >>> scaled_shape((1022, 1024), 0.6)
    (613, 614)
    """
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a number > 0, got {scale!r}")
    return tuple(max(1, round(int(n) * scale)) for n in spatial)


def _source_coordinates(start: int, stop: int, n_src: int, n_dst: int) -> np.ndarray:
    """Source coordinates (px, float) of the resampled pixels ``start..stop-1`` of one axis."""
    j = np.arange(start, stop, dtype=np.float64)
    return np.clip((j + 0.5) * (n_src / n_dst) - 0.5, 0.0, n_src - 1.0)


def _sigma(n_src: int, n_dst: int) -> float:
    """The anti-aliasing Gaussian of an axis shrunk from ``n_src`` to ``n_dst`` px (0: none)."""
    return max(0.0, (n_src / n_dst - 1.0) / 2.0)


def resample(
    array: Any,
    shape: Sequence[int],
    region: Sequence[slice] | None = None,
) -> np.ndarray:
    """``array`` ``(C, *S)`` resampled to the spatial ``shape``; only ``region`` of it if given.

    Parameters
    ----------
    array : array-like, shape ``(C, *S)``
        Image or probabilities, channels first; any array with NumPy slicing (only the source
        pixels that ``region`` needs are read).
    shape : sequence of int
        The resampled spatial shape ``S'`` (px per axis, see :func:`scaled_shape`).
    region : sequence of slice, optional
        Part of the resampled image to compute, one step-1 slice per spatial axis (bounds as
        ``range`` takes them within ``S'``). Default: all of it.

    Returns
    -------
    numpy.ndarray, float32, shape ``(C, *region shape)``
        Equal to the same region of the whole resampled image (to float rounding).

    Examples
    --------
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    >>> resample(x, (2, 2)).shape, resample(np.ones((1, 5, 5)), (2, 3)).tolist()
    ((1, 2, 2), [[[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]])
    >>> part = resample(x, (8, 8), (slice(2, 5), slice(1, 3)))
    >>> np.allclose(resample(x, (8, 8))[:, 2:5, 1:3], part)
    True
    """
    src = tuple(int(n) for n in array.shape[1:])
    dst = tuple(int(n) for n in shape)
    if len(dst) != len(src):
        raise ValueError(f"shape {dst} has {len(dst)} axes, the array {len(src)} spatial axes")
    if region is None:
        region = tuple(slice(0, n) for n in dst)
    bounds = [r.indices(n)[:2] for r, n in zip(region, dst)]
    coords, box, sigmas = [], [], []
    for (a, b), n, m in zip(bounds, src, dst):
        c = _source_coordinates(a, max(a, b), n, m)
        s = _sigma(n, m)
        pad = int(TRUNCATE * s + 0.5) + 1  # the Gaussian's reach, and one for the interpolation
        lo = max(0, int(np.floor(c.min())) - pad) if c.size else 0
        hi = min(n, int(np.ceil(c.max())) + pad + 1) if c.size else 0
        coords.append(c - lo)
        box.append(slice(lo, hi))
        sigmas.append(s)
    block = np.asarray(array[(slice(None),) + tuple(box)], dtype=np.float32)
    out = np.empty((block.shape[0], *(len(c) for c in coords)), np.float32)
    if out.size == 0:
        return out
    grid = np.meshgrid(*coords, indexing="ij")
    for k in range(block.shape[0]):
        channel = block[k]
        if any(sigmas):  # mode "nearest": the edge continues, as the whole image's would
            channel = ndi.gaussian_filter(channel, sigmas, mode="nearest", truncate=TRUNCATE)
        out[k] = ndi.map_coordinates(channel, grid, order=1, mode="nearest")
    return out


def resample_labels(labels: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Label (or class) image ``(*S)`` resampled to ``shape`` by the nearest source pixel.

    The same pixel-centre rule as :func:`resample`; values and dtype are kept.

    >>> resample_labels(np.array([[1, 1, 2, 2]]), (1, 2)).tolist()
    [[1, 2]]
    """
    a = np.asarray(labels)
    if a.ndim != len(shape):
        raise ValueError(f"shape {tuple(shape)} has {len(shape)} axes, the labels {a.ndim}")
    index = [
        np.clip(np.floor((np.arange(m) + 0.5) * (n / m)).astype(np.intp), 0, n - 1)
        for n, m in zip(a.shape, (int(k) for k in shape))
    ]
    return a[np.ix_(*index)]
