"""Segmentation results as files: class masks, instance labels and probability maps.

Each writer takes the ``spacing`` of the image the result belongs to (the physical size of a
pixel per spatial axis, :func:`biounet.data.spacing.spacing_values` of
:attr:`biounet.data.io.ImageFile.spacing`), so a result opens in Fiji or napari at the scale
of its input; formats and atomic writing are :func:`biounet.data.io.write_image`'s.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from biounet.core.checks import check_labels, check_positive_int
from biounet.data.io import format_suffix, write_image

__all__ = [
    "MASK_ON",
    "mask_classes",
    "mask_values",
    "write_labels",
    "write_mask",
    "write_probabilities",
]

#: the value of class 1 in the file of a 2-class mask (class 0 is 0): visible in any viewer
MASK_ON = 255

#: a spacing as the writers take it: µm per spatial axis, ``(Y, X)`` or ``(Z, Y, X)``
#: (:func:`biounet.data.spacing.spacing_values` makes it of an image's spacing)
Spacing = Sequence[float] | None


def mask_values(classes: Any, num_classes: int) -> np.ndarray:
    """Class indices ``0 .. num_classes - 1`` as a mask file holds them: uint8, 2 classes 0/255.

    Two classes are written 0/255, visible in any viewer; more (up to 256) as the class index.
    :func:`mask_classes` reads them back.

    >>> mask_values(np.array([[0, 1], [1, 0]]), 2).tolist(), mask_values([0, 2, 1], 3).tolist()
    ([[0, 255], [255, 0]], [0, 2, 1])
    """
    k, c = check_positive_int(num_classes, "num_classes"), np.asarray(classes)
    if k > 256 or c.dtype.kind not in "biu":
        raise ValueError(f"a mask holds up to 256 classes as integers, got {k} of dtype {c.dtype}")
    if c.size and (c.min() < 0 or c.max() >= k):
        raise ValueError(f"class indices must be 0..{k - 1}, got {c.min()}..{c.max()}")
    m = c.astype(np.uint8)
    return m * np.uint8(MASK_ON) if k == 2 else m


def mask_classes(mask: Any) -> np.ndarray:
    """A mask file's class indices (int64), the inverse of :func:`mask_values`.

    Only 0 and 255 (255 present): a 2-class mask, classes 0 and 1; else the indices as they are.

    >>> mask_classes(np.array([0, 255, 255], np.uint8)).tolist(), mask_classes([0, 2]).tolist()
    ([0, 1, 1], [0, 2])
    """
    m = np.asarray(mask)
    if m.size and m.max() == MASK_ON and np.all((m == 0) | (m == MASK_ON)):
        return np.asarray(m == MASK_ON, dtype=np.int64)
    return m.astype(np.int64)


def write_mask(
    path: str | os.PathLike[str],
    classes: Any,
    num_classes: int = 2,
    *,
    axes: str | None = None,
    spacing: Spacing = None,
) -> Path:
    """Write class indices (bool: 2 classes) as :func:`mask_values` gives them (8-bit)."""
    return write_image(path, mask_values(classes, num_classes), axes=axes, spacing=spacing)


def write_labels(
    path: str | os.PathLike[str],
    labels: np.ndarray,
    *,
    axes: str | None = None,
    spacing: Spacing = None,
) -> Path:
    """Write instance labels as 16-bit (if they fit) or 32-bit unsigned integers.

    TIFF, Zarr and ``.npy`` take both; PNG 16-bit only. ``axes`` as for :func:`write_image`.
    Labels must be whole numbers (floats too) in ``0 .. 2**32 - 1``.
    """
    lab = np.asarray(labels)
    check_labels(lab, f"{path}: instance labels", whole_floats=True)
    top = int(lab.max()) if lab.size else 0
    if top > np.iinfo(np.uint32).max:
        raise ValueError(
            f"{path}: label {top} does not fit 32 bits (at most {np.iinfo(np.uint32).max}); "
            "relabel the objects consecutively (e.g. skimage.segmentation.relabel_sequential)"
        )
    dtype = np.uint16 if top <= np.iinfo(np.uint16).max else np.uint32
    if dtype == np.uint32 and format_suffix(Path(path)) == ".png":
        raise ValueError(f"{path}: {top} labels need 32 bits, which PNG cannot hold; use .tif")
    return write_image(path, lab.astype(dtype), axes=axes, spacing=spacing)


def write_probabilities(
    path: str | os.PathLike[str],
    probs: np.ndarray,
    *,
    axes: str | None = None,
    spacing: Spacing = None,
) -> Path:
    """Write a probability map ``(C, *S)`` or ``(*S)`` as float32 (TIFF, Zarr or ``.npy``).

    ``axes`` as for :func:`write_image`, e.g. ``"CYX"`` or ``"CZYX"`` (``"ZCYX"`` for a stack
    of 2D maps). A PNG path stores a single-class 2D map scaled to 0..255 (for viewing).
    """
    p = np.asarray(probs, dtype=np.float32)
    if format_suffix(Path(path)) == ".png":
        if p.ndim != 2:
            raise ValueError(f"{path}: PNG takes one 2D probability map, got shape {p.shape}")
        return write_image(path, np.clip(np.rint(p * 255), 0, 255).astype(np.uint8))
    return write_image(path, p, axes=axes, spacing=spacing)
