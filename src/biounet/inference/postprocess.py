"""From class probabilities to objects: class maps, instance labels and EM regions, 2D and 3D.

Probabilities are ``(C, *S)`` arrays: ``C >= 2`` classes (softmax over axis 0, class 0 =
background) over ``S = (Y, X)`` or ``(Z, Y, X)``. :func:`semantic` gives class maps,
:func:`instances` objects (touching cells separated by a seeded watershed),
:func:`membrane_regions` the regions between EM membranes, and
:func:`instances_from_probabilities` either of the last two from a network's output;
:func:`fill_holes` and
:func:`remove_small` are the label clean-ups. Instance labels are int32, 0 = background, for
:func:`biounet.data.write_labels` (16- or 32-bit TIFF).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import local_maxima, reconstruction
from skimage.segmentation import relabel_sequential, watershed

from biounet.core.checks import look_up

__all__ = [
    "INSTANCE_KINDS",
    "fill_holes",
    "instances",
    "instances_from_probabilities",
    "membrane_regions",
    "remove_small",
    "semantic",
]

#: what :func:`instances_from_probabilities` makes objects of
INSTANCE_KINDS = ("cells", "membranes")

Spacing = float | Sequence[float] | None


def semantic(probs: np.ndarray, *, threshold: float | None = None) -> np.ndarray:
    """The class of every pixel: argmax over classes, or ``probs[1] > threshold`` for 2 classes.

    Parameters
    ----------
    probs : (C, Y, X) or (C, Z, Y, X) array of float
        Per-class scores, ``C >= 2``. The argmax takes any scores (probabilities or logits);
        a threshold needs probabilities in [0, 1].
    threshold : float in (0, 1), optional
        Two classes only: foreground (1) where ``probs[1] > threshold``, else background (0).
        Default: argmax (equal to a threshold of 0.5 for 2 softmax probabilities, up to ties).

    Returns
    -------
    (Y, X) or (Z, Y, X) array of uint8 (int32 when C > 256)
        Class indices ``0..C-1``; ties go to the lower class.

    Examples
    --------
    >>> p1 = np.array([[0.2, 0.6], [0.7, 0.9]])
    >>> semantic(np.stack([1 - p1, p1]), threshold=0.8)
    array([[0, 0],
           [0, 1]], dtype=uint8)
    """
    p = _check_probs(probs, "probs")
    dtype = np.uint8 if p.shape[0] <= 256 else np.int32
    if threshold is None:
        return np.asarray(np.argmax(p, axis=0), dtype)
    _check_fraction(threshold, "threshold")
    if p.shape[0] != 2:
        raise ValueError(
            f"threshold needs 2 classes, got probs with {p.shape[0]} (shape {p.shape}); "
            "use threshold=None for the argmax"
        )
    _check_range(p[1], "probs[1]")
    return np.asarray(p[1] > threshold, dtype)


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
        integer class map such as :func:`semantic` returns. ``S`` is ``(Y, X)`` or
        ``(Z, Y, X)``. Float arrays are always read as ``(C, *S)``: pass a single foreground
        probability ``p`` as ``np.stack([1 - p, p])`` or as the mask ``p > 0.5``.
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
        Fill the background that an object encloses on its own (see :func:`fill_holes`);
        background enclosed by several objects together (a lumen) stays. Seeds and distances
        are computed on the mask with all its holes filled.
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
    _check_size(min_size)
    if threshold is not None:
        _check_fraction(threshold, "threshold")
    probs = None
    if a.dtype == bool:
        mask = _check_spatial(a, "mask")
    elif np.issubdtype(a.dtype, np.integer):
        mask = np.isin(_check_spatial(a, "class map"), classes)
    else:
        probs = _check_probs(a, "probs")
        if max(classes) >= probs.shape[0]:
            raise ValueError(f"foreground_class {foreground_class} is not in probs {probs.shape}")
        if threshold is None:
            mask = np.isin(np.argmax(probs, axis=0), classes)
        else:
            fg = probs[list(classes)].sum(axis=0)
            _check_range(fg, f"probs[{foreground_class}]")
            mask = fg > threshold
    conn = _check_connectivity(connectivity, mask.ndim)
    border = _border(border_prob, probs, mask.shape)
    sampling = _spacing(spacing, mask.ndim)

    filled = ndi.binary_fill_holes(mask, _hole_structure(mask.ndim, conn)) if fill_holes else mask
    labels, _ = ndi.label(filled, ndi.generate_binary_structure(mask.ndim, conn))
    labels = np.asarray(labels, np.int32)
    if sep == "watershed":
        labels = _split(labels, border, h, conn, sampling)
    if fill_holes:
        labels[~mask] = 0
        labels = _fill_holes(labels, conn)
    if min_size > 1:
        labels = remove_small(labels, min_size)
        if fill_holes:  # a small object removed from a hole leaves it to the enclosing object
            labels = _fill_holes(labels, conn)
    return np.asarray(relabel_sequential(labels)[0], np.int32)


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
    p = _check_spatial(np.asarray(membrane_prob), "membrane_prob")
    if not np.issubdtype(p.dtype, np.floating):
        raise ValueError(f"membrane_prob must be float probabilities, got dtype {p.dtype}")
    _check_fraction(threshold, "threshold")
    _check_range(p, "membrane_prob")
    _check_size(min_size)
    conn = _check_connectivity(connectivity, p.ndim)
    regions, _ = ndi.label(~(p > threshold), ndi.generate_binary_structure(p.ndim, conn))
    regions = remove_small(regions.astype(np.int32), min_size)
    if thin and regions.any():
        regions = watershed(p, regions, connectivity=conn, watershed_line=True)
    return np.asarray(relabel_sequential(regions)[0], np.int32)


def instances_from_probabilities(
    probs: np.ndarray,
    *,
    kind: str = "cells",
    membrane_class: int | None = None,
    **options: Any,
) -> np.ndarray:
    """Instance labels from a network's class probabilities: cells, or regions between membranes.

    Parameters
    ----------
    probs : (C, Y, X) or (C, Z, Y, X) array of float
        Per-class probabilities in [0, 1], ``C >= 2`` (``biounet predict``'s ``_probs``).
    kind : {"cells", "membranes"}, default "cells"
        "cells": :func:`instances` of ``probs`` (objects of the foreground class, touching
        cells separated by a seeded watershed). "membranes" (EM): :func:`membrane_regions` of
        ``probs[membrane_class]``, the regions the membranes enclose.
    membrane_class : int, optional
        "membranes" only: the class that is membrane; default 0, as for a 2-class net trained
        on ISBI 2012 labels (membrane 0 = class 0, cells 255 = class 1).
    **options
        Keywords of :func:`instances` ("cells": ``foreground_class``, ``threshold``, ``h``,
        ``min_size``, ...) or of :func:`membrane_regions` ("membranes": ``threshold``,
        ``min_size``, ``thin``, ``connectivity``).

    Returns
    -------
    (Y, X) or (Z, Y, X) array of int32
        0 background (cells) or membrane (membranes), objects ``1..n``.

    Examples
    --------
    >>> m = np.zeros((5, 5))
    >>> m[2, :] = m[:, 2] = 1.0  # class 0: membrane
    >>> labels = instances_from_probabilities(np.stack([m, 1 - m]), kind="membranes")
    >>> int(labels.max()), int(labels[2, 2])
    (4, 0)
    """
    what = look_up(kind, INSTANCE_KINDS, "kind")
    p = _check_probs(probs, "probs")
    if what == "cells":
        if membrane_class is not None:
            raise ValueError(
                f"membrane_class={membrane_class} applies to kind='membranes', not 'cells'; "
                "cells take foreground_class"
            )
        return instances(p, **options)
    k = 0 if membrane_class is None else membrane_class
    if isinstance(k, bool) or int(k) != k or not 0 <= k < p.shape[0]:
        raise ValueError(
            f"membrane_class {membrane_class!r} is not a class of probs {p.shape} "
            f"(classes 0..{p.shape[0] - 1})"
        )
    return membrane_regions(p[int(k)], **options)


def fill_holes(labels: np.ndarray, *, connectivity: int = 1) -> np.ndarray:
    """Give each object the background it encloses on its own.

    Parameters
    ----------
    labels : (Y, X) or (Z, Y, X) array of int
        Instance labels, 0 = background.
    connectivity : int, default 1
        Neighbourhood of the objects, 1 to ``ndim``. A background pixel is in a hole of object
        ``i`` when no path through pixels other than ``i`` leads out of the bounding box of
        ``i``; paths step through faces, edges and corners if ``connectivity`` is 1, else only
        through faces.

    Returns
    -------
    array of labels.dtype, labels.shape
        A copy. Background enclosed by several objects together stays 0; other objects inside
        a hole are kept.

    Examples
    --------
    >>> ring = np.ones((4, 4), np.int32)
    >>> ring[1:3, 1:3] = 0
    >>> int(fill_holes(ring).min())
    1
    """
    lab = _check_labels(_check_spatial(np.asarray(labels), "labels"))
    return _fill_holes(lab, _check_connectivity(connectivity, lab.ndim))


def remove_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Set objects with fewer than ``min_size`` pixels to 0, without renumbering the others.

    The rule of ``skimage.morphology.remove_small_objects(labels, min_size)``: 0 or 1 keeps
    all. ``labels``: an array of int, 0 = background. Returns a copy, same shape and dtype.

    >>> remove_small(np.array([0, 1, 1, 2, 3, 3, 3]), 2)
    array([0, 1, 1, 0, 3, 3, 3])
    """
    lab = _check_labels(np.asarray(labels))
    _check_size(min_size)
    if min_size <= 1 or not lab.size:
        return np.array(lab)
    small = np.bincount(lab.ravel()) < min_size
    small[0] = False
    return np.where(small[lab], 0, lab).astype(lab.dtype)


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


def _hole_structure(ndim: int, conn: int) -> np.ndarray:
    """Steps through background: the dual of the objects' connectivity."""
    return np.asarray(ndi.generate_binary_structure(ndim, ndim if conn == 1 else 1))


def _fill_holes(lab: np.ndarray, conn: int) -> np.ndarray:
    out = np.array(lab)
    structure = _hole_structure(lab.ndim, conn)
    for i, box in enumerate(ndi.find_objects(lab), start=1):
        if box is None:
            continue
        obj = lab[box] == i
        hole = ndi.binary_fill_holes(obj, structure) & ~obj & (lab[box] == 0)
        out[box][hole] = i
    return out


def _border(
    border_prob: np.ndarray | int | None, probs: np.ndarray | None, shape: tuple[int, ...]
) -> np.ndarray | None:
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
    _check_range(b, "border_prob")
    return b


def _as_classes(foreground_class: int | Sequence[int]) -> tuple[int, ...]:
    if isinstance(foreground_class, (int, np.integer)):
        classes: tuple[int, ...] = (foreground_class,)
    else:
        classes = tuple(foreground_class)
    if not classes or any(isinstance(c, bool) or int(c) != c or c < 0 for c in classes):
        raise ValueError(f"foreground_class must be class indices >= 0, got {foreground_class!r}")
    return tuple(int(c) for c in classes)


def _check_probs(probs: np.ndarray, name: str) -> np.ndarray:
    p = np.asarray(probs)
    if p.ndim not in (3, 4) or p.shape[0] < 2:
        raise ValueError(f"{name} must be (C, Y, X) or (C, Z, Y, X), C >= 2, got shape {p.shape}")
    if not np.issubdtype(p.dtype, np.floating):
        raise ValueError(f"{name} must be float scores, got dtype {p.dtype}")
    return p


def _check_labels(lab: np.ndarray) -> np.ndarray:
    if not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {lab.dtype}")
    if lab.size and lab.min() < 0:
        raise ValueError(f"labels must be >= 0, got {lab.min()}")
    return lab


def _check_spatial(a: np.ndarray, name: str) -> np.ndarray:
    if a.ndim not in (2, 3):
        raise ValueError(f"{name} must have shape (Y, X) or (Z, Y, X), got shape {a.shape}")
    return a


def _check_range(p: np.ndarray, name: str, tol: float = 1e-6) -> None:
    if p.size and not np.isfinite(p).all():
        raise ValueError(f"{name} must be probabilities in [0, 1], got NaN or infinite values")
    lo, hi = (float(p.min()), float(p.max())) if p.size else (0.0, 1.0)
    if lo < -tol or hi > 1 + tol:
        raise ValueError(
            f"{name} must be probabilities in [0, 1], got values in [{lo:.4g}, {hi:.4g}]; "
            "apply a softmax to logits first"
        )


def _check_fraction(value: float, name: str) -> None:
    if not 0 < value < 1:
        raise ValueError(f"{name} must be in (0, 1), got {value}")


def _check_size(min_size: int) -> None:
    if isinstance(min_size, bool) or int(min_size) != min_size or min_size < 0:
        raise ValueError(f"min_size must be a whole number of pixels >= 0, got {min_size!r}")


def _check_connectivity(connectivity: int, ndim: int) -> int:
    if connectivity not in range(1, ndim + 1):
        raise ValueError(f"connectivity must be 1..{ndim} for {ndim}D arrays, got {connectivity}")
    return int(connectivity)


def _spacing(spacing: Spacing, ndim: int) -> tuple[float, ...]:
    if spacing is None:
        return (1.0,) * ndim
    s = (spacing,) * ndim if isinstance(spacing, (int, float)) else tuple(spacing)
    if len(s) != ndim or min(s) <= 0:
        raise ValueError(f"spacing must be > 0, one value or {ndim} (one per axis), got {spacing}")
    return tuple(float(v) for v in s)
