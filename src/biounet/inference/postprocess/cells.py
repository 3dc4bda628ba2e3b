"""Instances of cells from probabilities or a mask: touching cells split by a seeded watershed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import local_maxima, reconstruction
from skimage.segmentation import relabel_sequential, watershed

from biounet.core.checks import (
    check_fraction,
    check_probabilities,
    check_spacing,
    is_whole,
    look_up,
)
from biounet.inference.postprocess.arguments import (
    check_connectivity,
    check_min_size,
    check_probs,
    check_spatial,
)
from biounet.inference.postprocess.labels import fill_object_holes, hole_structure, remove_small

__all__ = ["instances"]

#: a pixel size: one for every axis, one per axis, or None (1 per axis)
Spacing = float | Sequence[float] | None


def instances(
    probs_or_mask: np.ndarray,
    *,
    foreground_class: int | Sequence[int] = 1,
    threshold: float | None = 0.5,
    separate: str = "watershed",
    h: float = 2.0,
    border_prob: np.ndarray | int | None = None,
    fill_holes: bool = True,
    min_size: int = 0,
    connectivity: int = 1,
    spacing: Spacing = None,
) -> np.ndarray:
    """Instance labels from class probabilities or a foreground mask, touching cells separated.

    Steps: foreground mask; seeded watershed or connected components; hole filling per object;
    removal of objects below ``min_size``; consecutive labels.

    Parameters
    ----------
    probs_or_mask : array
        ``(C, *S)`` float probabilities; or a ``(*S)`` bool foreground mask; or a ``(*S)``
        integer class map such as :func:`~biounet.inference.postprocess.semantic` returns.
        ``S`` is ``(Y, X)`` or ``(Z, Y, X)``. Float arrays are always read as ``(C, *S)``:
        pass a single foreground probability ``p`` as ``np.stack([1 - p, p])`` or as the mask
        ``p > 0.5``.
    foreground_class : int or sequence of int, default 1
        Class(es) of the objects; several are pooled (probabilities summed), e.g. ``(1, 2)``
        for the interior and border classes of a 3-class net.
    threshold : float in (0, 1) or None, default 0.5
        Probabilities only: foreground where the foreground probability exceeds it. None:
        where the argmax is a foreground class.
    separate : {"watershed", "none"}, default "watershed"
        "none": each connected component is one object.
    h : float, default 2.0
        Depth of the seeds, in ``spacing`` units (px by default): a maximum of the distance
        transform seeds its own object only if it rises at least ``h`` above the saddle that
        joins it to a higher or equal maximum (h-maxima). Two overlapping disks of radius
        ``r`` are separated when their neck is narrower than ``2 (r - h)``.
    border_prob : (*S) array of float in [0, 1], or int, optional
        Predicted probability of the boundaries between cells, or the index of its class in
        ``probs`` (a border class, or the background class 0 of a 2-class net). Seeds then come
        from the mask where it is below 0.5, and the watershed floods it instead of the
        distance transform, so that the cuts follow the predicted boundaries.
    fill_holes : bool, default True
        Fill the background that an object encloses on its own (see
        :func:`~biounet.inference.postprocess.fill_holes`); background enclosed by several
        objects together (a lumen) stays. Seeds and distances are computed on the mask with
        all its holes filled.
    min_size : int, default 0
        Objects with fewer pixels (voxels) than this, holes included, are set to 0.
    connectivity : int, default 1
        Neighbourhood of the objects, 1 (faces) to ``ndim`` (faces, edges and corners).
    spacing : float or sequence of float, optional
        Pixel size per axis for the distance transform, e.g. ``(2.0, 0.5, 0.5)`` µm; default 1.

    Returns
    -------
    (Y, X) or (Z, Y, X) array of int32
        0 background, objects ``1..n``.

    Notes
    -----
    Seeds are the regional maxima of the reconstruction by dilation of ``dist - h`` under
    ``dist``. Unlike ``peak_local_max`` with a minimum distance, they do not cut elongated
    cells along their flat ridge and need no scale but the depth of the neck. Every connected
    component gets a seed, so no foreground is lost. The watershed floods ``-dist`` (or
    ``border_prob``) inside the mask without drawing lines: touching objects stay touching.
    Each connected component is processed in its own bounding box, so time and memory (about
    100 bytes per pixel of the largest box) follow the objects, not the image.

    Examples
    --------
    Two overlapping disks of radius 8, 12 px apart (the neck is 2 x 5.3 px wide):

    >>> yy, xx = np.mgrid[:24, :40]
    >>> mask = ((yy - 12) ** 2 + (xx - 14) ** 2 <= 64) | ((yy - 12) ** 2 + (xx - 26) ** 2 <= 64)
    >>> int(instances(mask).max()), int(instances(mask, separate="none").max())
    (2, 1)
    """
    a = np.asarray(probs_or_mask)
    classes = _as_classes(foreground_class)
    sep = look_up(separate, ("watershed", "none"), "separate")
    if h <= 0:
        raise ValueError(f"h must be > 0 (px or spacing units), got {h}")
    check_min_size(min_size)
    if threshold is not None:
        check_fraction(threshold, "threshold")
    mask, probs = _foreground(a, classes, threshold, foreground_class)
    conn = check_connectivity(connectivity, mask.ndim)
    border = _border(border_prob, probs, mask.shape)
    sampling = check_spacing(spacing, mask.ndim)

    filled = ndi.binary_fill_holes(mask, hole_structure(mask.ndim, conn)) if fill_holes else mask
    labels, _ = ndi.label(filled, ndi.generate_binary_structure(mask.ndim, conn))
    labels = np.asarray(labels, np.int32)
    if sep == "watershed":
        labels = _split(labels, border, h, conn, sampling)
    if fill_holes:
        labels[~mask] = 0
        labels = fill_object_holes(labels, conn)
    if min_size > 1:
        labels = remove_small(labels, min_size)
        if fill_holes:  # a small object removed from a hole leaves it to the enclosing object
            labels = fill_object_holes(labels, conn)
    return np.asarray(relabel_sequential(labels)[0], np.int32)


def _split(
    comps: np.ndarray, border: np.ndarray | None, h: float, conn: int, spacing: tuple[float, ...]
) -> np.ndarray:
    """Seeded watershed of each connected component, in its bounding box (+1 px margin)."""
    out, count = np.zeros_like(comps), 0
    for i, box in enumerate(ndi.find_objects(comps), start=1):
        if box is None:
            continue
        box = tuple(slice(max(b.start - 1, 0), b.stop + 1) for b in box)
        obj = comps[box] == i
        core = obj if border is None else obj & (border[box] < 0.5)
        dist = ndi.distance_transform_edt(core, sampling=spacing)
        seeds = _seeds(dist, core, h) if core.any() else obj.astype(np.int32)  # no core: 1 seed
        landscape = -dist if border is None else border[box]
        lab = watershed(landscape, seeds, connectivity=conn, mask=obj)
        out[box] += np.where(lab > 0, lab + count, 0).astype(out.dtype)
        count += int(seeds.max())
    return out


def _seeds(dist: np.ndarray, core: np.ndarray, h: float) -> np.ndarray:
    """Labelled h-maxima of the distance transform ``dist`` of ``core``: one seed per h-dome."""
    rec = reconstruction(dist - h, dist, method="dilation")
    rec[~core] = -h - 1.0  # below every value inside, so each component has its own maxima
    peaks = local_maxima(rec, connectivity=core.ndim, allow_borders=True).astype(bool) & core
    seeds, _ = ndi.label(peaks, ndi.generate_binary_structure(core.ndim, core.ndim))
    return np.asarray(seeds, np.int32)


def _foreground(
    a: np.ndarray,
    classes: tuple[int, ...],
    threshold: float | None,
    foreground_class: int | Sequence[int],
) -> tuple[np.ndarray, np.ndarray | None]:
    """The ``(*S)`` bool foreground of a mask, a class map or ``(C, *S)`` probabilities.

    Returns the mask and the checked probabilities (None for a mask or a class map).
    """
    if a.dtype == bool:
        return check_spatial(a, "mask"), None
    if np.issubdtype(a.dtype, np.integer):
        return np.isin(check_spatial(a, "class map"), classes), None
    probs = check_probs(a, "probs")
    if max(classes) >= probs.shape[0]:
        raise ValueError(f"foreground_class {foreground_class} is not in probs {probs.shape}")
    if threshold is None:
        return np.isin(np.argmax(probs, axis=0), classes), probs
    fg = probs[list(classes)].sum(axis=0)  # pooled classes: their probabilities add up
    check_probabilities(fg, f"probs[{foreground_class}]")
    return fg > threshold, probs


def _border(
    border_prob: np.ndarray | int | None, probs: np.ndarray | None, shape: tuple[int, ...]
) -> np.ndarray | None:
    """The ``(*S)`` boundary probability map: given, or class ``border_prob`` of ``probs``."""
    if border_prob is None:
        return None
    if isinstance(border_prob, (int, np.integer)) and not isinstance(border_prob, bool):
        if probs is None:
            raise ValueError(f"border_prob={border_prob} is a class index, which needs probs")
        if not 0 <= border_prob < probs.shape[0]:
            raise ValueError(f"border_prob class {border_prob} is not in probs {probs.shape}")
        return np.asarray(probs[border_prob])
    b = np.asarray(border_prob)
    if b.shape != shape or not np.issubdtype(b.dtype, np.floating):
        raise ValueError(
            f"border_prob must be a float map of the spatial shape {shape}, "
            f"got shape {b.shape} and dtype {b.dtype}"
        )
    check_probabilities(b, "border_prob")
    return b


def _as_classes(foreground_class: int | Sequence[int]) -> tuple[int, ...]:
    """The foreground class(es) as a tuple of class indices >= 0."""
    given: Any = foreground_class
    classes = tuple(given) if isinstance(given, Sequence | np.ndarray) else (given,)
    if not classes or any(not is_whole(c) or c < 0 for c in classes):
        raise ValueError(f"foreground_class must be class indices >= 0, got {foreground_class!r}")
    return tuple(int(c) for c in classes)
