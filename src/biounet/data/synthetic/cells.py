"""Synthetic fluorescence-like cells: clustered, touching blobs with instance labels."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi
from scipy.special import ndtr

from biounet.core.checks import check_positive_int, is_whole
from biounet.data.synthetic.checks import check_nonnegative, check_range, check_shape
from biounet.data.synthetic.labels import clean_labels
from biounet.data.synthetic.noise import Seed, add_noise, smooth_noise

__all__ = ["ball_volume", "make_cells"]


def make_cells(
    shape: Sequence[int] = (256, 256),
    *,
    n_cells: int | None = None,
    radius: tuple[float, float] = (6.0, 14.0),
    clustering: float = 0.8,
    gap: int = 1,
    blur: float = 1.5,
    noise: float = 1.0,
    seed: Seed = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Fluorescence-like image of clustered, touching cells, with instance labels.

    Parameters
    ----------
    shape : sequence of int
        Image shape, 2D ``(Y, X)`` or 3D ``(Z, Y, X)``, each axis at least 8 px.
    n_cells : int, optional
        Number of cells to place. Default: enough to cover about 40% of the image with cells of
        the mean radius. Cells that do not fit, or that end up smaller than a third of the
        smallest cell, are dropped, so the returned count can be lower.
    radius : (float, float)
        Range (px) of the equivalent radius of each cell, drawn uniformly. Cells are ellipses
        (ellipsoids in 3D) with random orientation and axis ratios up to about 1.7, whose outline
        is perturbed by smooth noise.
    clustering : float
        Fraction in [0, 1] of cells placed around cluster centres (about 8 cells per cluster,
        packed so that neighbours overlap and touch); the rest are placed uniformly.
    gap : int
        Minimum number of background pixels between two different cells along every axis (the
        thin gaps of the U-Net paper). ``0`` lets cells touch directly.
    blur : float
        Standard deviation (px) of the Gaussian point-spread function; ``0`` for none.
    noise : float
        Noise strength: ``1`` is the default of about 50 photons at intensity 1 (Poisson) plus
        Gaussian read noise of standard deviation 0.02; the relative noise scales with
        ``noise``, ``0`` gives the noise-free image.
    seed : int, SeedSequence or Generator
        Seed of the random generator.

    Returns
    -------
    image : numpy.ndarray of float32, shape ``shape``
        Intensities in [0, 1] (clipped, like a saturating detector); background about 0.04,
        cells about 0.2 to 0.8.
    labels : numpy.ndarray of int32, shape ``shape``
        Instance labels: 0 background, cells numbered 1..n consecutively. Each cell is one
        4-connected (6-connected in 3D) component; with ``gap >= 1`` no two cells are adjacent,
        even diagonally.
    """
    shape = check_shape(shape)
    r_lo, r_hi = check_range(radius, "radius", low=0.5)
    if not 0.0 <= clustering <= 1.0:
        raise ValueError(f"clustering must be in [0, 1], got {clustering}")
    if not is_whole(gap) or gap < 0:
        raise ValueError(f"gap must be a non-negative integer (px), got {gap}")
    check_nonnegative(blur=blur, noise=noise)
    rng = np.random.default_rng(seed)
    ndim = len(shape)
    r_mean = 0.5 * (r_lo + r_hi)
    if n_cells is None:
        n_cells = max(1, round(0.4 * math.prod(shape) / ball_volume(r_mean, ndim)))
    n_cells = check_positive_int(n_cells, "n_cells")

    radii = rng.uniform(r_lo, r_hi, n_cells)
    centres = _place_cells(rng, shape, radii, clustering)
    labels, rel = _draw_cells(rng, shape, centres, radii, r_mean)
    if gap:
        # of two cells closer than gap + 1 px (chessboard), the higher label loses the pixels
        big = np.iinfo(np.int32).max
        low = ndi.minimum_filter(np.where(labels > 0, labels, big), size=2 * int(gap) + 1)
        labels[(labels > 0) & (low < labels)] = 0
    labels = clean_labels(labels, min_size=ball_volume(r_lo, ndim) / 3)
    return _render(rng, labels, rel, blur=blur, noise=noise), labels


def ball_volume(r: float, ndim: int) -> float:
    """Area (2D) or volume (3D) in px of a disc or ball of radius ``r`` px."""
    return math.pi * r**2 if ndim == 2 else 4.0 / 3.0 * math.pi * r**3


def _rotation(rng: np.random.Generator, ndim: int) -> np.ndarray:
    """A uniformly random rotation (or reflection) matrix, shape ``(ndim, ndim)``."""
    q, r = np.linalg.qr(rng.standard_normal((ndim, ndim)))
    return q * np.sign(np.diag(r))


def _place_cells(
    rng: np.random.Generator, shape: tuple[int, ...], radii: np.ndarray, clustering: float
) -> list[np.ndarray | None]:
    """Centres (px) of the cells, or None for a cell that found no room.

    Cells overlap their neighbours by up to 25% of the sum of radii, which makes them touch.
    """
    n, ndim = len(radii), len(shape)
    per_cluster = 8
    n_clusters = max(1, round(n / per_cluster))
    hubs = rng.uniform(0, 1, (n_clusters, ndim)) * np.array(shape)
    spread = 0.8 * float(radii.mean()) * math.sqrt(per_cluster)
    clustered = rng.uniform(0, 1, n) < clustering
    hub_of = rng.integers(0, n_clusters, n)
    upper = np.array(shape) - 1
    placed = np.empty((0, ndim))
    placed_r = np.empty(0)
    centres: list[np.ndarray | None] = []
    for i in range(n):
        candidates = rng.uniform(0, 1, (60, ndim)) * upper
        if clustered[i]:
            near = hubs[hub_of[i]] + rng.normal(0.0, spread, (30, ndim))
            candidates[:30] = np.clip(near, 0, upper)
        centre = None
        for cand in candidates:
            d = np.sqrt(((placed - cand) ** 2).sum(axis=1))
            if np.all(d >= 0.75 * (placed_r + radii[i])):
                centre = cand
                break
        centres.append(centre)
        if centre is not None:
            placed = np.vstack([placed, centre])
            placed_r = np.append(placed_r, radii[i])
    return centres


def _draw_cells(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    centres: list[np.ndarray | None],
    radii: np.ndarray,
    r_mean: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Rasterise the cells as wobbly ellipses: ``(labels, rel)``, both of shape ``shape``.

    Each pixel goes to the cell whose outline it lies deepest inside; ``labels`` (int32) is
    that cell (0 outside every cell) and ``rel`` (float32) the normalised radial coordinate
    in it (0 at the centre, 1 on the outline).
    """
    ndim = len(shape)
    # two smooth fields, mixed per cell, perturb the outlines
    fields = [smooth_noise(rng, shape, 0.6 * r_mean) for _ in range(2)]
    best = np.full(shape, np.inf, np.float32)  # signed distance (px) to the nearest outline
    rel = np.ones(shape, np.float32)  # normalised radial coordinate in the winning cell
    labels = np.zeros(shape, np.int32)
    for i, (c, r) in enumerate(zip(centres, radii), start=1):
        # drawn for every cell, placed or not, so that the random stream does not depend on it
        rot = _rotation(rng, ndim)
        axes = rng.uniform(0.75, 1.3, ndim)
        axes *= r / np.prod(axes) ** (1.0 / ndim)
        mix = rng.uniform(0.0, 2.0 * np.pi)
        if c is None:
            continue
        half = int(np.ceil(axes.max() / 0.7)) + 1
        box = tuple(
            slice(max(0, int(ci) - half), min(s, int(ci) + half + 1)) for ci, s in zip(c, shape)
        )
        grids = np.ogrid[box]
        e2 = sum(
            (sum(rot[j, k] * (grids[k] - c[k]) for k in range(ndim)) / axes[j]) ** 2
            for j in range(ndim)
        )
        wobble = np.cos(mix) * fields[0][box] + np.sin(mix) * fields[1][box]
        e = np.sqrt(e2) * np.clip(1.0 + 0.15 * wobble, 0.7, None)
        sd = r * (e - 1.0)
        win = sd < best[box]
        best[box][win] = sd[win]
        rel[box][win] = e[win]
        labels[box][win] = i
    labels[best >= 0] = 0
    return labels, rel


def _render(
    rng: np.random.Generator, labels: np.ndarray, rel: np.ndarray, *, blur: float, noise: float
) -> np.ndarray:
    """The microscope image of ``labels``: float32 in [0, 1], shape of ``labels``.

    Per-cell brightness, texture and a profile brighter towards the centre (from ``rel``),
    then blur (``blur`` px), autofluorescence, uneven illumination and camera noise.
    """
    shape = labels.shape
    n = int(labels.max())
    brightness = np.concatenate([[0.0], rng.uniform(0.45, 1.0, n)]).astype(np.float32)
    texture = 1.0 + 0.2 * smooth_noise(rng, shape, 1.5)
    profile = 1.0 - 0.3 * np.clip(rel, 0.0, 1.0) ** 2  # brighter towards the cell centre
    signal = brightness[labels] * profile * np.clip(texture, 0.3, None)
    if blur > 0:
        signal = ndi.gaussian_filter(signal, blur)
    autofluorescence = 0.01 * smooth_noise(rng, shape, 4.0)
    illumination = 1.0 - 0.45 * ndtr(smooth_noise(rng, shape, max(shape) / 3))
    clean = (0.04 + autofluorescence + 0.85 * signal) * illumination
    return add_noise(rng, np.clip(clean, 0.0, None), photons=50.0, read=0.02, strength=noise)
