"""Input checks shared by every layer, each written once: options, integers, sizes, labels, spacing.

Each check returns the value in the form the caller needs (an ``int``, a tuple, an ``int64``
label array) or raises a one-line error that names the argument, what it got and what it may
be. Nothing here imports another part of biounet.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any, TypeGuard

import numpy as np

__all__ = [
    "check_labels",
    "check_positive_int",
    "check_spacing",
    "int_tuple",
    "is_int",
    "look_up",
    "tqdm_disable",
    "whole_px",
]

Spacing = float | Sequence[float] | None


def is_int(value: object) -> TypeGuard[numbers.Integral]:
    """True for Python and NumPy integers, False for bools, floats (even 4.0) and the rest.

    >>> is_int(3), is_int(True), is_int(4.0)
    (True, False, False)
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def look_up(value: str, choices: Sequence[str], what: str) -> str:
    """Return ``value`` if it is one of ``choices``, else raise a ValueError with a suggestion.

    >>> look_up("batch", ["none", "batch"], "norm")
    'batch'
    >>> look_up("bach", ["none", "batch"], "norm")
    Traceback (most recent call last):
    ...
    ValueError: unknown norm 'bach': did you mean 'batch'? (choices: 'none', 'batch')
    """
    if value in choices:
        return value
    close = difflib.get_close_matches(str(value), list(choices), n=1)
    hint = f": did you mean {close[0]!r}?" if close else ""
    listed = ", ".join(repr(c) for c in choices)
    raise ValueError(f"unknown {what} {value!r}{hint} (choices: {listed})")


def tqdm_disable(progress: bool | None) -> bool | None:
    """Tqdm's ``disable`` for a ``progress`` switch: None lets tqdm decide by the terminal.

    >>> tqdm_disable(None), tqdm_disable(True), tqdm_disable(False)
    (None, False, True)
    """
    return None if progress is None else not progress


# ------------------------------------------------------------------------- integers and sizes
def whole_px(value: object, what: str = "size") -> int:
    """``value`` as an int of pixels; TypeError for anything else (572.5 px is not truncated).

    >>> whole_px(572)
    572
    >>> whole_px(572.5, "tile")
    Traceback (most recent call last):
    ...
    TypeError: tile must be an integer number of px, got 572.5
    """
    if not is_int(value):
        raise TypeError(f"{what} must be an integer number of px, got {value!r}")
    return int(value)


def check_positive_int(value: object, name: str) -> int:
    """``value`` as an int >= 1 (TypeError for a non-integer, ValueError below 1).

    >>> check_positive_int(4, "batch_size")
    4
    >>> check_positive_int(0, "batch_size")
    Traceback (most recent call last):
    ...
    ValueError: batch_size must be >= 1, got 0
    """
    if not is_int(value):
        raise TypeError(f"{name} must be a positive integer, got {value!r}")
    if int(value) < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def int_tuple(value: object, name: str, ndim: int | None = None) -> tuple[int, ...]:
    """``value`` (an int, or a sequence of integers) as a tuple of ints, one per axis.

    An int is repeated ``ndim`` times. Raises TypeError for anything that is not an integer
    (a float such as 44.5 is not rounded) and ValueError when a sequence has another number
    of axes than ``ndim`` (None: any number; an int is then refused).

    >>> int_tuple(44, "tile_shape", 2), int_tuple([48, 52], "tile_shape", 2)
    ((44, 44), (48, 52))
    """
    if is_int(value):
        if ndim is None:
            raise TypeError(f"{name} must be a sequence of integers (px per axis), got {value!r}")
        return (int(value),) * ndim
    if isinstance(value, str) or not isinstance(value, Iterable):
        what = "a sequence of integers" if ndim is None else "an integer or a sequence of integers"
        raise TypeError(f"{name} must be {what}, got {value!r}")
    items = tuple(value)
    if not all(is_int(v) for v in items):
        raise TypeError(f"{name} must hold integers (px), got {items!r}")
    if ndim is not None and len(items) != ndim:
        raise ValueError(f"{name} {items} has {len(items)} axes; the image has {ndim}")
    return tuple(int(v) for v in items)


# ---------------------------------------------------------------------------- label images
def check_labels(
    labels: Any,
    name: str = "labels",
    *,
    ndims: Sequence[int] | None = None,
    whole_floats: bool = False,
) -> np.ndarray:
    """An integer label image (0 background, objects 1, 2, ...) checked, as ``int64``.

    Parameters
    ----------
    labels : array-like
        Integers >= 0 of any shape; bools become 0/1.
    name : str
        What the array is, for the error messages.
    ndims : sequence of int, optional
        The numbers of axes allowed, e.g. ``(2, 3)`` for ``(Y, X)`` or ``(Z, Y, X)``.
    whole_floats : bool
        Also take floating-point labels that are whole numbers (labels read from a float
        TIFF). By default a float array is refused: it is more likely a probability map or a
        mask than labels.

    Returns
    -------
    numpy.ndarray of int64
        The labels (no copy where they already are ``int64``).

    Raises
    ------
    ValueError
        The wrong number of axes, a non-integer dtype (or, with ``whole_floats``, floats that
        are not whole or not finite) or a negative label; the message names ``name``.

    Examples
    --------
    >>> check_labels(np.array([[0, 2], [2, 1]], np.uint8)).dtype
    dtype('int64')
    >>> check_labels(np.zeros((2, 2)), "truth")
    Traceback (most recent call last):
    ...
    ValueError: truth must be an integer label image (0 = background, objects 1, 2, ...), got dtype float64; label a mask first, e.g. with scipy.ndimage.label
    """  # noqa: E501
    arr = np.asarray(labels)
    if ndims is not None and arr.ndim not in ndims:
        allowed = " or ".join({2: "2D (Y, X)", 3: "3D (Z, Y, X)"}.get(n, f"{n}D") for n in ndims)
        raise ValueError(
            f"{name} must be a {allowed} label image; got a {arr.ndim}D array of shape {arr.shape}"
        )
    if arr.dtype == np.bool_:
        return arr.astype(np.int64)
    if whole_floats and np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            raise ValueError(
                f"{name} must hold whole numbers (instance labels); got {arr.dtype} values "
                f"such as {arr[bad].flat[0].item()!r}"
            )
    elif not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            f"{name} must be an integer label image (0 = background, objects 1, 2, ...), got "
            f"dtype {arr.dtype}; label a mask first, e.g. with scipy.ndimage.label"
        )
    if arr.size and arr.min() < 0:
        raise ValueError(
            f"{name} must be non-negative (background 0, objects 1, 2, ...), got minimum "
            f"{arr.min()}"
        )
    return arr.astype(np.int64, copy=False)


# --------------------------------------------------------------------------------- spacing
def check_spacing(spacing: Spacing, ndim: int | None, name: str = "spacing") -> tuple[float, ...]:
    """The pixel size per axis as positive finite floats (None: 1 per axis).

    With ``ndim``, one number is used for every axis and the result has ``ndim`` values;
    ``ndim=None`` (the axes are not known yet, as in a configuration) takes one number or any
    number of them and returns them as given.

    >>> check_spacing(None, 2), check_spacing(2, 3), check_spacing([50, 4, 4], 3)
    ((1.0, 1.0), (2.0, 2.0, 2.0), (50.0, 4.0, 4.0))
    >>> check_spacing([50, 4, 4], None)
    (50.0, 4.0, 4.0)
    """
    if spacing is None:
        return (1.0,) * (ndim or 1)
    try:
        s = np.atleast_1d(np.asarray(spacing, dtype=np.float64))
    except (TypeError, ValueError):
        s = np.array([math.nan])
    sizes = (1, ndim) if ndim is not None else (s.size,)
    if (
        s.ndim != 1
        or not s.size
        or s.size not in sizes
        or not np.all(np.isfinite(s))
        or np.any(s <= 0)
    ):
        if ndim is None:
            raise ValueError(
                f"{name} must be positive pixel sizes, one per spatial axis (e.g. [50, 4, 4]) "
                f"or one for all, got {spacing!r}"
            )
        raise ValueError(
            f"{name} must be one positive number or {ndim} (one per axis of the {ndim}D "
            f"image); got {spacing!r}"
        )
    return tuple(float(v) for v in (s if ndim is None else np.broadcast_to(s, (ndim,))))
