"""Synthetic electron-microscopy-like tissue: a warped Voronoi partition with dark membranes."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi
from scipy.special import ndtr

from biounet.core.checks import check_positive_int
from biounet.data.synthetic.checks import check_nonnegative, check_range, check_shape
from biounet.data.synthetic.labels import clean_labels
from biounet.data.synthetic.noise import Seed, add_noise, smooth_noise

__all__ = ["make_membranes"]


def make_membranes(
    shape: Sequence[int] = (256, 256),
    *,
    n_cells: int | None = None,
    membrane_width: tuple[float, float] = (1.0, 4.0),
    blur: float = 1.0,
    noise: float = 1.0,
    seed: Seed = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Electron-microscopy-like image of cells separated by dark membranes, with ground truth.

    Parameters
    ----------
    shape : sequence of int
        Image shape, 2D ``(Y, X)`` or 3D ``(Z, Y, X)``, each axis at least 8 px.
    n_cells : int, optional
        Number of Voronoi seeds (cells). Default: one per 36**2 px in 2D, per 20**3 voxels in 3D.
        Seeds keep a minimum distance, so cells have similar but not equal sizes.
    membrane_width : (float, float)
        Range (px) of the membrane width, which varies smoothly along and between membranes.
    blur : float
        Standard deviation (px) of the Gaussian blur; ``0`` for none.
    noise : float
        Strength of the Gaussian noise (standard deviation ``0.06 * noise``); ``0`` for none.
    seed : int, SeedSequence or Generator
        Seed of the random generator.

    Returns
    -------
    image : numpy.ndarray of float32, shape ``shape``
        Intensities in [0, 1] (clipped): membranes 0.1 to 0.3, cell interiors 0.5 to 0.8 with
        darker organelle-like blobs.
    membranes : numpy.ndarray of uint8, shape ``shape``
        1 on membranes, 0 inside cells; the pixels more than half covered by a membrane.
    cells : numpy.ndarray of int32, shape ``shape``
        Cell instance labels 1..n (consecutive), 0 on membranes, so ``membranes == (cells == 0)``.
        Each cell is one 4-connected (6-connected in 3D) component and no two cells are
        4-adjacent (6-adjacent).
    """
    shape = check_shape(shape)
    w_lo, w_hi = check_range(membrane_width, "membrane_width", low=0.5)
    check_nonnegative(blur=blur, noise=noise)
    rng = np.random.default_rng(seed)
    ndim = len(shape)
    if n_cells is None:
        n_cells = max(2, round(math.prod(shape) / (36.0 if ndim == 2 else 20.0) ** ndim))
    n_cells = check_positive_int(n_cells, "n_cells")
    spacing = (math.prod(shape) / n_cells) ** (1.0 / ndim)
    voronoi = _warped_voronoi(rng, shape, n_cells, spacing)

    # a 1 px line on the lower side of every change of label, widened by the distance to it
    line = np.zeros(shape, bool)
    for k in range(ndim):
        lower = (slice(None),) * k + (slice(None, -1),)
        line[lower] |= np.diff(voronoi, axis=k) != 0
    dist = ndi.distance_transform_edt(~line).astype(np.float32)
    width = w_lo + (w_hi - w_lo) * ndtr(smooth_noise(rng, shape, spacing / 2))
    cover = np.clip(width / 2 + 0.5 - dist, 0.0, 1.0)  # fraction of the pixel on a membrane
    cells = clean_labels(np.where(cover > 0.5, 0, voronoi).astype(np.int32), min_size=1)
    membranes = (cells == 0).astype(np.uint8)
    cover = np.maximum(cover, membranes)  # fragments dropped by the clean-up become membrane

    n = int(cells.max())
    tone = np.concatenate([[0.0], rng.uniform(0.55, 0.8, n)]).astype(np.float32)
    interior = tone[cells] * (1.0 + 0.08 * smooth_noise(rng, shape, 0.8))
    # organelle-like dark blobs inside the cells, and membranes of varying contrast
    organelles = (smooth_noise(rng, shape, 2.5) > 1.7) & (dist > width / 2 + 1.5)
    interior = np.where(organelles, 0.45 * interior, interior)
    membrane_tone = 0.08 + 0.22 * ndtr(smooth_noise(rng, shape, spacing / 2))
    clean = (1.0 - cover) * interior + cover * membrane_tone
    if blur > 0:
        clean = ndi.gaussian_filter(clean, blur)
    clean = clean * (1.0 + 0.1 * smooth_noise(rng, shape, max(shape) / 3))
    image = add_noise(rng, clean, photons=0.0, read=0.06, strength=noise)
    return image, membranes, cells


def _warped_voronoi(
    rng: np.random.Generator, shape: tuple[int, ...], n_cells: int, spacing: float
) -> np.ndarray:
    """A Voronoi partition of ``n_cells`` seeds, bent by a smooth warp: int32 ids 1..n.

    ``spacing`` (px) is the typical distance between seeds; they keep at least 0.6 of it.
    """
    ndim = len(shape)
    seeds = _dart_throw(rng, shape, n_cells, 0.6 * spacing)
    not_seed = np.ones(shape, bool)
    not_seed[tuple(seeds.T)] = False
    ids = np.zeros(shape, np.int32)
    ids[tuple(seeds.T)] = np.arange(1, len(seeds) + 1)
    nearest = ndi.distance_transform_edt(not_seed, return_distances=False, return_indices=True)
    voronoi = ids[tuple(nearest)]
    # a smooth warp bends the straight Voronoi edges
    coords = np.indices(shape, dtype=np.float32)
    for k in range(ndim):
        coords[k] += 0.12 * spacing * smooth_noise(rng, shape, spacing / 3)
    warped: np.ndarray = ndi.map_coordinates(voronoi, coords, order=0, mode="nearest")
    return warped


def _dart_throw(
    rng: np.random.Generator, shape: tuple[int, ...], n: int, min_dist: float
) -> np.ndarray:
    """Up to ``n`` integer points, shape ``(k, ndim)``, at least ``min_dist`` px apart.

    When no room is found the distance is relaxed, so exactly ``n`` points are returned as long
    as the image has ``n`` pixels.
    """
    ndim = len(shape)
    points = np.empty((0, ndim), np.int64)
    while len(points) < min(n, math.prod(shape)):
        for cand in rng.integers(0, shape, (50, ndim)):
            if np.all(((points - cand) ** 2).sum(axis=1) >= max(min_dist, 1.0) ** 2):
                points = np.vstack([points, cand])
                break
        else:
            min_dist *= 0.9
    return points
