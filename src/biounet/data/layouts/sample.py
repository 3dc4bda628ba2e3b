"""One sample of a dataset, and the checks every layout applies to an annotation it reads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from biounet.data.io import ImageFile

__all__ = ["Sample", "annotation_array", "check_same_size"]


@dataclass
class Sample:
    """One image with (optionally) its annotation.

    ``image`` is ``(C, *S)`` (a NumPy array, or a lazy memmap/Zarr array or a lazy view of
    one: anything with ``shape``, ``dtype`` and NumPy slicing, and ``numpy.asarray`` loads
    it); ``annotation`` is ``(*S)`` or None; ``name`` identifies it in messages and outputs.
    ``spacing`` is the physical size of a step along each spatial axis of ``S``, in order
    (Z, Y, X for 3D, Y, X for 2D), in µm where the image file's unit converts (see
    :attr:`biounet.data.io.ImageFile.spacing`); None unless the file declares it for every
    spatial axis (:func:`~biounet.data.layouts.channels.sample_spacing`).
    """

    name: str
    image: Any
    annotation: np.ndarray | None = None
    image_path: Path | None = None
    annotation_path: Path | None = None
    spacing: tuple[float, ...] | None = None


def annotation_array(f: ImageFile, ndim: int) -> np.ndarray:
    """The annotation of file ``f`` as an ``ndim``-D array ``(*S)``, loaded.

    A grey image saved as RGB(A) (all colour channels equal) is read as its first channel.

    Raises
    ------
    ValueError
        A real colour image (the channels differ), or an array of another number of axes.
    """
    a = np.asarray(f.data)
    if a.ndim == ndim + 1 and a.shape[-1] in (3, 4) and f.axes and f.axes.endswith("S"):
        if not (a[..., :3] == a[..., :1]).all():
            raise ValueError(f"{f.path}: a colour annotation image; save masks as single-channel")
        a = a[..., 0]
    if a.ndim != ndim:
        raise ValueError(f"{f.path}: annotation of shape {a.shape} is not {ndim}D")
    return a


def check_same_size(image: Any, annotation: np.ndarray, img_name: str, ann_name: str) -> None:
    """Raise ValueError naming both files unless image ``(C, *S)`` and annotation ``(*S)`` agree."""
    if tuple(image.shape[1:]) != tuple(annotation.shape):
        raise ValueError(
            f"size mismatch: {img_name} has spatial shape {tuple(image.shape[1:])} but "
            f"{ann_name} has {tuple(annotation.shape)}"
        )
