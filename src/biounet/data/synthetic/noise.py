"""Random fields of synthetic images: smooth noise (texture, illumination, warps), camera noise."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["Seed", "add_noise", "smooth_noise"]

#: what a generator's ``seed`` may be (a Generator is advanced)
Seed = int | np.random.SeedSequence | np.random.Generator


def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise, float32, zero mean and unit standard deviation.

    Large ``sigma`` (px) is filtered on a coarse grid and interpolated up, so cost stays
    linear in the number of pixels.
    """
    step = max(1, int(sigma // 2))
    coarse = tuple(-(-s // step) + 2 for s in shape)
    white = rng.standard_normal(coarse, np.float32)
    field: np.ndarray = ndi.gaussian_filter(white, sigma / step, mode="wrap")
    if step > 1:
        field = ndi.zoom(field, step, order=1)
    field = field[tuple(slice(0, s) for s in shape)]
    field -= field.mean()
    field /= max(float(field.std()), 1e-12)
    return field


def add_noise(
    rng: np.random.Generator, clean: np.ndarray, *, photons: float, read: float, strength: float
) -> np.ndarray:
    """Shot noise (``photons`` at intensity 1, 0 for none) and Gaussian read noise, in [0, 1].

    The relative noise scales with ``strength`` (0: the clean image, clipped); float32 out.
    """
    image = clean.astype(np.float64)
    if strength > 0:
        if photons > 0:
            scale = photons / strength**2
            image = rng.poisson(image * scale) / scale
        image = image + rng.normal(0.0, read * strength, image.shape)
    return np.clip(image, 0.0, 1.0).astype(np.float32)
