"""Seeded synthetic images with ground truth: the data that ships with biounet.

Two kinds, both hard in the way the U-Net paper cares about (touching objects), 2D and 3D:

``make_cells``
    Fluorescence-like cells: clustered, irregular blobs, many touching their neighbours across
    a thin gap of background (``gap`` px), per-cell brightness, internal texture, optical blur,
    uneven illumination, Poisson shot noise and Gaussian read noise. Instance labels.
``make_membranes``
    Electron-microscopy-like tissue: a warped Voronoi partition whose cells are separated by dark
    membranes of varying width; cell interiors carry fine grain and dark organelle-like blobs.
    Membrane mask and cell instance labels.

Every function is pure: the same ``seed`` gives bit-identical arrays. ``seed`` may be an int, a
``numpy.random.SeedSequence`` or a ``numpy.random.Generator`` (which is then advanced).

>>> image, labels = make_cells((64, 64), seed=1)
>>> image.shape, image.dtype, labels.dtype
((64, 64), dtype('float32'), dtype('int32'))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from scipy.special import ndtr

from biounet.core.checks import look_up

__all__ = ["make_cells", "make_dataset", "make_membranes"]

Seed = int | np.random.SeedSequence | np.random.Generator


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
    shape = _check_shape(shape)
    r_lo, r_hi = _check_range(radius, "radius", low=0.5)
    if not 0.0 <= clustering <= 1.0:
        raise ValueError(f"clustering must be in [0, 1], got {clustering}")
    if int(gap) != gap or gap < 0:
        raise ValueError(f"gap must be a non-negative integer (px), got {gap}")
    _check_nonneg(blur=blur, noise=noise)
    rng = np.random.default_rng(seed)
    ndim = len(shape)
    r_mean = 0.5 * (r_lo + r_hi)
    if n_cells is None:
        n_cells = max(1, round(0.4 * math.prod(shape) / _ball_volume(r_mean, ndim)))
    elif n_cells < 1:
        raise ValueError(f"n_cells must be at least 1, got {n_cells}")

    radii = rng.uniform(r_lo, r_hi, n_cells)
    centres = _place_cells(rng, shape, radii, clustering)
    # two smooth fields, mixed per cell, perturb the outlines
    fields = [_smooth_noise(rng, shape, 0.6 * r_mean) for _ in range(2)]
    best = np.full(shape, np.inf, np.float32)  # signed distance (px) to the nearest outline
    rel = np.ones(shape, np.float32)  # normalised radial coordinate in the winning cell
    labels = np.zeros(shape, np.int32)
    for i, (c, r) in enumerate(zip(centres, radii), start=1):
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
    if gap:
        # of two cells closer than gap + 1 px (chessboard), the higher label loses the pixels
        big = np.iinfo(np.int32).max
        low = ndi.minimum_filter(np.where(labels > 0, labels, big), size=2 * int(gap) + 1)
        labels[(labels > 0) & (low < labels)] = 0
    labels = _clean_labels(labels, min_size=_ball_volume(r_lo, ndim) / 3)

    n = int(labels.max())
    brightness = np.concatenate([[0.0], rng.uniform(0.45, 1.0, n)]).astype(np.float32)
    texture = 1.0 + 0.2 * _smooth_noise(rng, shape, 1.5)
    profile = 1.0 - 0.3 * np.clip(rel, 0.0, 1.0) ** 2  # brighter towards the cell centre
    signal = brightness[labels] * profile * np.clip(texture, 0.3, None)
    if blur > 0:
        signal = ndi.gaussian_filter(signal, blur)
    autofluorescence = 0.01 * _smooth_noise(rng, shape, 4.0)
    illumination = 1.0 - 0.45 * ndtr(_smooth_noise(rng, shape, max(shape) / 3))
    clean = (0.04 + autofluorescence + 0.85 * signal) * illumination
    image = _add_noise(rng, np.clip(clean, 0.0, None), photons=50.0, read=0.02, strength=noise)
    return image, labels


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
    shape = _check_shape(shape)
    w_lo, w_hi = _check_range(membrane_width, "membrane_width", low=0.5)
    _check_nonneg(blur=blur, noise=noise)
    rng = np.random.default_rng(seed)
    ndim = len(shape)
    if n_cells is None:
        n_cells = max(2, round(math.prod(shape) / (36.0 if ndim == 2 else 20.0) ** ndim))
    elif n_cells < 1:
        raise ValueError(f"n_cells must be at least 1, got {n_cells}")
    spacing = (math.prod(shape) / n_cells) ** (1.0 / ndim)

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
        coords[k] += 0.12 * spacing * _smooth_noise(rng, shape, spacing / 3)
    voronoi = ndi.map_coordinates(voronoi, coords, order=0, mode="nearest")

    # a 1 px line on the lower side of every change of label, widened by the distance to it
    line = np.zeros(shape, bool)
    for k in range(ndim):
        lower = (slice(None),) * k + (slice(None, -1),)
        line[lower] |= np.diff(voronoi, axis=k) != 0
    dist = ndi.distance_transform_edt(~line).astype(np.float32)
    width = w_lo + (w_hi - w_lo) * ndtr(_smooth_noise(rng, shape, spacing / 2))
    cover = np.clip(width / 2 + 0.5 - dist, 0.0, 1.0)  # fraction of the pixel on a membrane
    cells = _clean_labels(np.where(cover > 0.5, 0, voronoi).astype(np.int32), min_size=1)
    membranes = (cells == 0).astype(np.uint8)
    cover = np.maximum(cover, membranes)  # fragments dropped by the clean-up become membrane

    n = int(cells.max())
    tone = np.concatenate([[0.0], rng.uniform(0.55, 0.8, n)]).astype(np.float32)
    interior = tone[cells] * (1.0 + 0.08 * _smooth_noise(rng, shape, 0.8))
    # organelle-like dark blobs inside the cells, and membranes of varying contrast
    organelles = (_smooth_noise(rng, shape, 2.5) > 1.7) & (dist > width / 2 + 1.5)
    interior = np.where(organelles, 0.45 * interior, interior)
    membrane_tone = 0.08 + 0.22 * ndtr(_smooth_noise(rng, shape, spacing / 2))
    clean = (1.0 - cover) * interior + cover * membrane_tone
    if blur > 0:
        clean = ndi.gaussian_filter(clean, blur)
    clean = clean * (1.0 + 0.1 * _smooth_noise(rng, shape, max(shape) / 3))
    image = _add_noise(rng, clean, photons=0.0, read=0.06, strength=noise)
    return image, membranes, cells


def make_dataset(
    kind: str = "cells",
    n: int = 8,
    *,
    shape: Sequence[int] = (256, 256),
    seed: int | np.random.SeedSequence = 0,
    **options: Any,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """A list of ``n`` synthetic ``(image, labels)`` pairs, each seeded from ``seed``.

    Parameters
    ----------
    kind : {"cells", "membranes"}
        Generator: :func:`make_cells` or :func:`make_membranes`.
    n : int
        Number of images.
    shape : sequence of int
        Shape of every image, 2D or 3D.
    seed : int or SeedSequence
        Root seed; image ``i`` uses child ``i`` of ``SeedSequence(seed).spawn(n)``, so the first
        images do not change when ``n`` grows.
    **options
        Keyword options of the generator, e.g. ``gap=2`` or ``membrane_width=(2, 5)``.

    Returns
    -------
    list of (image, labels)
        ``image`` float32 in [0, 1] and ``labels`` int32 instance labels (0 background or
        membrane, 1..k objects), both of shape ``shape``.

    Examples
    --------
    >>> data = make_dataset("membranes", 2, shape=(48, 48), seed=3)
    >>> [(im.shape, lab.dtype.name) for im, lab in data]
    [((48, 48), 'int32'), ((48, 48), 'int32')]
    """
    kind = look_up(kind, ["cells", "membranes"], "synthetic data kind")
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for child in root.spawn(n):
        if kind == "cells":
            out.append(make_cells(shape, seed=child, **options))
        else:
            image, _, cells = make_membranes(shape, seed=child, **options)
            out.append((image, cells))
    return out


def _check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    out = tuple(int(s) for s in shape)
    if len(out) not in (2, 3) or min(out) < 8 or out != tuple(shape):
        raise ValueError(f"shape must be 2 or 3 integers of at least 8 px, got {tuple(shape)}")
    return out


def _check_range(value: tuple[float, float], name: str, *, low: float) -> tuple[float, float]:
    lo, hi = (float(v) for v in value)
    if not low <= lo <= hi:
        raise ValueError(f"{name} must be a range (lo, hi) with {low} <= lo <= hi, got {value}")
    return lo, hi


def _check_nonneg(**values: float) -> None:
    for name, v in values.items():
        if not v >= 0:
            raise ValueError(f"{name} must be non-negative, got {v}")


def _ball_volume(r: float, ndim: int) -> float:
    return math.pi * r**2 if ndim == 2 else 4.0 / 3.0 * math.pi * r**3


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise, float32, zero mean and unit standard deviation.

    Large ``sigma`` is filtered on a coarse grid and interpolated up, so cost stays linear.
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


def _clean_labels(labels: np.ndarray, *, min_size: float) -> np.ndarray:
    """Keep the largest component of each label (in place), drop small ones, relabel 1..n."""
    for i, box in enumerate(ndi.find_objects(labels), start=1):
        if box is not None:
            mine = labels[box] == i
            parts, _ = ndi.label(mine)
            sizes = np.bincount(parts.ravel())
            sizes[0] = 0
            drop = mine & (parts != sizes.argmax()) if sizes.max() >= min_size else mine
            labels[box][drop] = 0
    _, inverse = np.unique(labels, return_inverse=True)
    out: np.ndarray = inverse.reshape(labels.shape).astype(np.int32)
    if labels.min() > 0:  # no background at all: keep labels starting at 1
        out += 1
    return out


def _add_noise(
    rng: np.random.Generator, clean: np.ndarray, *, photons: float, read: float, strength: float
) -> np.ndarray:
    """Shot noise (``photons`` at intensity 1, 0 for none) and Gaussian read noise, in [0, 1]."""
    image = clean.astype(np.float64)
    if strength > 0:
        if photons > 0:
            scale = photons / strength**2
            image = rng.poisson(image * scale) / scale
        image = image + rng.normal(0.0, read * strength, image.shape)
    return np.clip(image, 0.0, 1.0).astype(np.float32)
