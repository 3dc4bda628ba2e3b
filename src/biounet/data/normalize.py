"""Intensity normalisation for microscopy, stored with a model so prediction matches training.

Modes
-----
``"percentile"`` (default)
    Per image (and per channel): map the ``low`` and ``high`` percentiles (default 1 and 99.8)
    to 0 and 1. Robust to hot pixels and to the varying exposure of fluorescence images.
``"range"``
    Fixed range by dtype: every integer type divided by its maximum (uint8 / 255,
    uint16 / 65535, int16 / 32767, ...), so 0 stays 0 and, for signed types, negative values
    become negative (down to about -1); bool as 0/1; floats unchanged. ``vmin``/``vmax``, if
    given, replace the dtype's range: ``(x - vmin) / (vmax - vmin)``.
``"meanstd"``
    Per image and channel: subtract the mean, divide by the standard deviation.
``"none"``
    Cast to float32 only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from biounet.core.checks import look_up

__all__ = ["Normalizer", "apply_normalization"]

MODES = ("percentile", "range", "meanstd", "none")

#: images larger than this many pixels get their statistics from a regular subsample
_STATS_SAMPLE = 1 << 22


@dataclass(frozen=True)
class Normalizer:
    """An intensity normalisation (see the module docstring); ``__call__`` applies it.

    Parameters
    ----------
    mode : {"percentile", "range", "meanstd", "none"}
    low, high : float
        Percentiles for ``"percentile"`` (0-100).
    vmin, vmax : float, optional
        Explicit range for ``"range"`` (overrides the dtype's).
    eps : float
        Guards divisions for flat images.
    """

    mode: str = "percentile"
    low: float = 1.0
    high: float = 99.8
    vmin: float | None = None
    vmax: float | None = None
    eps: float = 1e-6

    def __post_init__(self) -> None:
        look_up(self.mode, MODES, "normalisation mode")
        if not 0.0 <= self.low < self.high <= 100.0:
            raise ValueError(f"need 0 <= low < high <= 100, got low={self.low}, high={self.high}")

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (for checkpoints and YAML)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalizer:
        """Inverse of :meth:`to_dict`; unknown keys get a did-you-mean."""
        names = list(cls.__dataclass_fields__)
        for key in d:
            look_up(key, names, "normalisation option")
        return cls(**d)

    def stats(self, image: Any) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel offset and scale for ``image (C, *S)``: ``(x - offset) / scale``.

        Both are float32 arrays of shape ``(C,)``. Large (e.g. Zarr) images are measured on a
        regular subsample so the whole image is never loaded.
        """
        c = int(image.shape[0])
        if self.mode == "none":
            return np.zeros(c, np.float32), np.ones(c, np.float32)
        if self.mode == "range":
            lo, hi = _dtype_range(np.dtype(image.dtype))
            lo = self.vmin if self.vmin is not None else lo
            hi = self.vmax if self.vmax is not None else hi
            return np.full(c, lo, np.float32), np.full(c, max(hi - lo, self.eps), np.float32)
        sample = _subsample(image).reshape(c, -1).astype(np.float64)
        if self.mode == "percentile":
            lo, hi = np.percentile(sample, [self.low, self.high], axis=1)
            return lo.astype(np.float32), np.maximum(hi - lo, self.eps).astype(np.float32)
        mean, std = sample.mean(axis=1), sample.std(axis=1)
        return mean.astype(np.float32), np.maximum(std, self.eps).astype(np.float32)

    def __call__(self, image: Any) -> np.ndarray:
        """Normalised float32 copy of ``image (C, *S)`` (loads it: use :meth:`stats` for lazy)."""
        return apply_normalization(image, *self.stats(image))


def apply_normalization(image: Any, offset: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``(image - offset) / scale`` per channel, as float32: the one normalisation arithmetic.

    Parameters
    ----------
    image : array-like, shape ``(C, *S)``
        Loaded with ``numpy.asarray``.
    offset, scale : numpy.ndarray, shape ``(C,)``
        Per-channel statistics, as :meth:`Normalizer.stats` gives them.

    >>> apply_normalization(np.array([[2.0, 4.0]]), np.array([2.0]), np.array([2.0]))
    array([[0., 1.]], dtype=float32)
    """
    x = np.asarray(image, dtype=np.float32)
    shape = (-1,) + (1,) * (x.ndim - 1)
    off = np.asarray(offset, np.float32).reshape(shape)
    out: np.ndarray = (x - off) / np.asarray(scale, np.float32).reshape(shape)
    return out


def _dtype_range(dtype: np.dtype) -> tuple[float, float]:
    """``(low, high)`` that "range" maps to 0 and 1: 0 and the dtype's maximum for integers.

    >>> _dtype_range(np.dtype(np.int16)), _dtype_range(np.dtype(np.float32))
    ((0.0, 32767.0), (0.0, 1.0))
    """
    if dtype == np.bool_:
        return 0.0, 1.0
    if np.issubdtype(dtype, np.integer):
        return 0.0, float(np.iinfo(dtype).max)
    return 0.0, 1.0


def _subsample(image: Any) -> np.ndarray:
    ndim = len(image.shape)
    n = int(np.prod(image.shape[1:]))
    step = 1 if n <= _STATS_SAMPLE else int(np.ceil((n / _STATS_SAMPLE) ** (1 / (ndim - 1))))
    return np.asarray(image[(slice(None),) + (slice(None, None, step),) * (ndim - 1)])
