"""Synthetic nuclei in anisotropic stacks: sparse, touching, coarser along z than in the plane.

Real fluorescence stacks of nuclei differ from :func:`~biounet.data.synthetic.make_cells`'
packed cells in three ways that decide whether a 3D U-Net trains well on them: the voxels are
coarser along z than in the plane (typically 2-5x), the optics blur more along z than across,
and the nuclei fill only a few percent of the volume. :func:`make_nuclei` draws nuclei on a grid
that is isotropic at the finest spacing, blurs them with an axial point-spread function wider
than the lateral one, samples the stack at the given voxel spacing (anti-aliased, so each plane
integrates its slab), then adds camera noise; the labels are sampled at the nearest voxel.
What makes real stacks hard is imitated too: nuclei differ in brightness by up to 2.5x (dim
ones are still nuclei), the cytoplasm around them glows faintly and unevenly, and deep planes
are dimmer than shallow ones (light is absorbed on its way in and out).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

from biounet.core.checks import check_positive_int
from biounet.data.resample import resample, resample_labels
from biounet.data.synthetic.cells import ball_volume, make_cells
from biounet.data.synthetic.checks import check_nonnegative, check_range, check_shape
from biounet.data.synthetic.labels import clean_labels
from biounet.data.synthetic.noise import Seed, add_noise, smooth_noise

__all__ = ["make_nuclei"]


def make_nuclei(
    shape: Sequence[int] = (40, 128, 128),
    *,
    spacing: Sequence[float] = (2.2, 1.0, 1.0),
    coverage: float = 0.03,
    radius: tuple[float, float] = (4.0, 7.0),
    clustering: float = 0.6,
    gap: int = 1,
    blur: float = 1.0,
    axial_blur: float = 2.5,
    noise: float = 1.0,
    dim: float = 0.6,
    haze: float = 0.05,
    attenuation: float = 0.3,
    seed: Seed = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A stack of sparse, partly touching nuclei sampled at an anisotropic voxel spacing.

    Parameters
    ----------
    shape : sequence of int
        Stack shape ``(Z, Y, X)`` in voxels (or ``(Y, X)``), each axis at least 8.
    spacing : sequence of float
        Voxel size per axis, in any unit (e.g. ``(2.2, 1, 1)``: z steps 2.2x the pixel size);
        only the ratios matter. Nuclei are round in physical space, so they span fewer voxels
        along a coarse axis.
    coverage : float
        The share of the volume that nuclei fill, in (0, 0.5] (real embryo stacks: 0.02-0.04);
        about, since nuclei that do not fit are dropped.
    radius : (float, float)
        Range of the nuclei's equivalent radius, in units of the finest spacing (px in the
        plane).
    clustering : float
        Share of nuclei placed in clusters, where they touch (see :func:`make_cells`).
    gap : int
        Background between touching nuclei on the fine grid, px; along a coarse axis it may
        vanish in sampling, so nuclei may touch there.
    blur, axial_blur : float
        Standard deviation of the point-spread function across and along the first axis, in
        units of the finest spacing (light microscopes blur 2-3x more along z).
    noise : float
        Camera noise strength, as for :func:`make_cells` (0: none).
    dim : float
        Each nucleus is dimmed by a factor drawn uniformly from ``[1 - dim, 1]`` (0: all as
        :func:`make_cells` draws them; 0.6: up to 2.5x dimmer), in [0, 1).
    haze : float
        Mean intensity of the cytoplasm's glow between nuclei (smooth, uneven: it varies by
        +-50% over about 8 px), on the scale where nuclei are about 0.4-0.9 (0: none).
    attenuation : float
        Share of the intensity lost from the first plane to the last (linear in depth), in
        [0, 1); 2D images are not attenuated.
    seed : int, SeedSequence or Generator

    Returns
    -------
    image : numpy.ndarray of float32, shape ``shape``
        Intensities in [0, 1].
    labels : numpy.ndarray of int32, shape ``shape``
        Nuclei numbered 1..n, 0 background; each one connected component.

    Examples
    --------
    >>> image, labels = make_nuclei((16, 48, 48), seed=0)
    >>> image.shape, labels.dtype, bool(0 < (labels > 0).mean() < 0.1)
    ((16, 48, 48), dtype('int32'), True)
    """
    shape = check_shape(shape)
    steps = _spacing(spacing, len(shape))
    r_lo, r_hi = check_range(radius, "radius", low=0.5)
    if not 0.0 < coverage <= 0.5:
        raise ValueError(f"coverage must be in (0, 0.5] (a share of the volume), got {coverage}")
    check_nonnegative(blur=blur, axial_blur=axial_blur, noise=noise, haze=haze)
    for name, value in (("dim", dim), ("attenuation", attenuation)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {value}")
    rng = np.random.default_rng(seed)
    fine = tuple(max(8, round(n * s)) for n, s in zip(shape, steps))
    r_mean = 0.5 * (r_lo + r_hi)
    ball = ball_volume(r_mean, len(shape))
    n = check_positive_int(max(1, round(coverage * math.prod(fine) / ball)), "n_cells")
    clean, labels = make_cells(
        fine, n_cells=n, radius=(r_lo, r_hi), clustering=clustering, gap=gap, blur=0.0,
        noise=0.0, seed=rng,
    )  # fmt: skip
    clean = _stain(rng, clean, labels, dim, haze, attenuation)
    sigma = [axial_blur if len(shape) == 3 and a == 0 else blur for a in range(len(shape))]
    if max(sigma) > 0:
        clean = ndi.gaussian_filter(clean, sigma)
    image = resample(clean[None], shape)[0]  # each voxel integrates its slab
    labels = resample_labels(labels, shape)
    labels = clean_labels(labels, min_size=ball_volume(r_lo, len(shape)) / math.prod(steps) / 3)
    image = add_noise(rng, np.clip(image, 0.0, None), photons=50.0, read=0.02, strength=noise)
    return image, labels


def _stain(
    rng: np.random.Generator,
    clean: np.ndarray,
    labels: np.ndarray,
    dim: float,
    haze: float,
    attenuation: float,
) -> np.ndarray:
    """``clean`` (float32, labels' shape) with dimmed nuclei, cytoplasmic haze and depth loss."""
    n = int(labels.max())
    factor = np.concatenate([[1.0], rng.uniform(1.0 - dim, 1.0, n)]).astype(np.float32)
    out = clean * factor[labels]
    if haze > 0:
        glow = haze * np.clip(1.0 + 0.5 * smooth_noise(rng, labels.shape, 8.0), 0.0, None)
        out = out + np.where(labels == 0, glow, 0.0).astype(np.float32)
    if attenuation > 0 and labels.ndim == 3:
        depth = np.linspace(1.0, 1.0 - attenuation, labels.shape[0], dtype=np.float32)
        out = out * depth[:, None, None]
    return np.asarray(out, dtype=np.float32)


def _spacing(spacing: Sequence[float], ndim: int) -> tuple[float, ...]:
    """The voxel spacing as multiples of its finest axis, checked (one positive number per axis)."""
    try:
        values = tuple(float(s) for s in spacing)
    except (TypeError, ValueError):
        raise ValueError(f"spacing must be {ndim} numbers, one per axis, got {spacing!r}") from None
    if len(values) != ndim or not all(math.isfinite(s) and s > 0 for s in values):
        raise ValueError(
            f"spacing must be {ndim} positive numbers, one per axis (e.g. "
            f"{'(2.2, 1, 1)' if ndim == 3 else '(1, 1)'}), got {tuple(spacing)}"
        )
    low = min(values)
    return tuple(s / low for s in values)
