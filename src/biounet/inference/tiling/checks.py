"""Argument checks of the tiler: the image as a readable array; the dtype and shape of ``out``."""

from __future__ import annotations

from typing import Any

import numpy as np

from biounet.core.checks import InputTypeError

__all__ = ["as_image_array", "check_out"]


def as_image_array(image: Any) -> Any:
    """``image`` as something with ``shape``, ``dtype`` and NumPy slicing, of real values.

    Arrays (ndarray, memmap, Zarr, ...) pass unchanged and stay lazy; nested lists become an
    ndarray. A complex or non-numeric dtype raises
    :class:`~biounet.core.checks.InputTypeError`.

    >>> as_image_array([[0, 1], [2, 3]]).shape
    (2, 2)
    """
    if not (hasattr(image, "shape") and hasattr(image, "__getitem__")):
        try:
            image = np.asarray(image)
        except (TypeError, ValueError) as e:
            raise InputTypeError(
                f"the image must be an array (numpy, memmap, Zarr) or nested lists of numbers, "
                f"got {type(image).__name__}: {e}"
            ) from e
    dtype = getattr(image, "dtype", None)
    if dtype is not None:
        try:
            kind = np.dtype(dtype).kind
        except TypeError:
            kind = "?"
        if kind not in "biuf":
            raise InputTypeError(
                f"the image has dtype {dtype}; biounet takes real-valued images (bool, integer "
                "or floating); for a complex image pass e.g. numpy.abs(image) or image.real"
            )
    return image


def check_out(out: Any, channels: int | None, spatial: tuple[int, ...]) -> None:
    """Check an output array: a floating dtype and shape ``(channels, *spatial)``.

    ``channels=None`` checks the spatial axes only. Raises InputTypeError for something that
    is not an array, ValueError for the wrong dtype or shape.

    >>> check_out(np.zeros((2, 8, 8), np.float32), 2, (8, 8))
    """
    dtype = getattr(out, "dtype", None)
    shape = getattr(out, "shape", None)
    if dtype is None or shape is None:
        raise InputTypeError(
            f"out must be an array with shape and dtype (numpy, memmap, Zarr), got "
            f"{type(out).__name__}"
        )
    if np.dtype(dtype).kind != "f":
        raise ValueError(
            f"out must have a floating dtype (float32) to hold probabilities, got {dtype}"
        )
    shape = tuple(int(n) for n in shape)
    if channels is None:
        ok = len(shape) == len(spatial) + 1 and shape[1:] == spatial
        want = f"(K, {', '.join(map(str, spatial))})"
    else:
        ok = shape == (channels, *spatial)
        want = str((channels, *spatial))
    if not ok:
        raise ValueError(f"out has shape {shape}, expected {want} (channels, *spatial)")
