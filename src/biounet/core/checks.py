"""Input checks shared by every layer, each written once: options, integers, sizes, labels, spacing.

Each check returns the value in the form the caller needs (an ``int``, a tuple, an ``int64``
label array) or raises a one-line error that names the argument, what it got and what it may
be. A value of the wrong type given by the user raises :class:`InputTypeError` (a TypeError
that the command line reports as a user error, not as a bug). Nothing here imports another
part of biounet.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any, TypeGuard

import numpy as np

__all__ = [
    "InputTypeError",
    "check_fraction",
    "check_labels",
    "check_nonnegative_int",
    "check_positive_int",
    "check_probabilities",
    "check_spacing",
    "int_tuple",
    "is_int",
    "is_whole",
    "look_up",
    "tqdm_disable",
    "whole_px",
]

Spacing = float | Sequence[float] | None


class InputTypeError(TypeError):
    """A value of the wrong type given by the user: reported as a user error.

    The library raises it, rather than a plain TypeError, where it rejects a user's input by
    its type (a float tile size, a complex image); a plain TypeError stays a programming error
    (an object of the wrong kind handed over in code). Being a TypeError, it is caught by
    ``except TypeError`` as before.

    >>> issubclass(InputTypeError, TypeError)
    True
    """


def is_int(value: object) -> TypeGuard[numbers.Integral]:
    """True for Python and NumPy integers, False for bools, floats (even 4.0) and the rest.

    >>> is_int(3), is_int(True), is_int(4.0)
    (True, False, False)
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_whole(value: object) -> bool:
    """True for integers and for finite real numbers without a fraction (4.0); not for bools.

    The rule of a count given where a whole float is as good (``min_size=20.0`` read from
    JSON); :func:`is_int` is the stricter rule of sizes in px.

    >>> is_whole(3), is_whole(4.0), is_whole(4.5), is_whole(True), is_whole(float("inf"))
    (True, True, False, False, False)
    """
    if is_int(value):
        return True
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return False
    x = float(value)
    return math.isfinite(x) and x.is_integer()


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
    biounet.core.checks.InputTypeError: tile must be an integer number of px, got 572.5
    """
    if not is_int(value):
        raise InputTypeError(f"{what} must be an integer number of px, got {value!r}")
    return int(value)


def check_positive_int(value: object, name: str) -> int:
    """``value`` as an int >= 1 (InputTypeError for a non-integer, ValueError below 1).

    >>> check_positive_int(4, "batch_size")
    4
    >>> check_positive_int(0, "batch_size")
    Traceback (most recent call last):
    ...
    ValueError: batch_size must be >= 1, got 0
    """
    if not is_int(value):
        raise InputTypeError(f"{name} must be a positive integer, got {value!r}")
    if int(value) < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def check_nonnegative_int(value: object, name: str) -> int:
    """``value`` as an int >= 0 (InputTypeError for a non-integer, ValueError below 0).

    >>> check_nonnegative_int(0, "depth")
    0
    >>> check_nonnegative_int(-1, "depth")
    Traceback (most recent call last):
    ...
    ValueError: depth must be >= 0, got -1
    """
    if not is_int(value):
        raise InputTypeError(f"{name} must be a non-negative integer, got {value!r}")
    if int(value) < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return int(value)


def int_tuple(value: object, name: str, ndim: int | None = None) -> tuple[int, ...]:
    """``value`` (an int, or a sequence of integers) as a tuple of ints, one per axis.

    An int is repeated ``ndim`` times. Raises InputTypeError for anything that is not an
    integer, naming the first axis that is not (a float such as 44.5 is not rounded), and
    ValueError when a sequence has another number of axes than ``ndim`` (None: any number; an
    int is then refused).

    >>> int_tuple(44, "tile_shape", 2), int_tuple([48, 52], "tile_shape", 2)
    ((44, 44), (48, 52))
    >>> int_tuple((572.5, 572), "shape")
    Traceback (most recent call last):
    ...
    biounet.core.checks.InputTypeError: axis 0 of shape (572.5, 572) must be an integer number of px, got 572.5
    """  # noqa: E501
    if is_int(value):
        if ndim is None:
            raise InputTypeError(
                f"{name} must be a sequence of integers (px per axis), got {value!r}"
            )
        return (int(value),) * ndim
    if isinstance(value, str) or not isinstance(value, Iterable):
        what = "a sequence of integers" if ndim is None else "an integer or a sequence of integers"
        raise InputTypeError(f"{name} must be {what}, got {value!r}")
    # NumPy scalars shown as plain numbers: (572.5, 572), not (np.float64(572.5), ...)
    items = tuple(v.item() if isinstance(v, np.generic) else v for v in value)
    for i, v in enumerate(items):
        if not is_int(v):
            raise InputTypeError(
                f"axis {i} of {name} {items} must be an integer number of px, got {v!r}"
            )
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
    allow_negative: bool = False,
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
    allow_negative : bool
        Also take negative values: for an annotation image whose values are checked later, by
        their kind (a class map with a negative ignore value).

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
                f"{name} must hold whole numbers (integer labels stored as floats); got "
                f"{arr.dtype} values such as {arr[bad].flat[0].item()!r}"
            )
    elif not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            f"{name} must be an integer label image (0 = background, objects 1, 2, ...), got "
            f"dtype {arr.dtype}; label a mask first, e.g. with scipy.ndimage.label"
        )
    if arr.size and not allow_negative and arr.min() < 0:
        raise ValueError(
            f"{name} must be non-negative (background 0, objects 1, 2, ...), got minimum "
            f"{arr.min()}"
        )
    return arr.astype(np.int64, copy=False)


# --------------------------------------------------------------------------- probabilities
def check_probabilities(p: Any, name: str, *, tol: float = 1e-6) -> np.ndarray:
    """``p`` as an array, if every value is a probability in [0, 1] (up to ``tol``).

    ``tol`` lets the rounding of a float32 softmax (1.0000001) pass. NaN or infinite values,
    or values beyond ``[-tol, 1 + tol]``, raise a ValueError naming ``name`` and the range.

    >>> check_probabilities(np.array([0.0, 0.5, 1.0]), "probs").tolist()
    [0.0, 0.5, 1.0]
    >>> check_probabilities(np.array([0, 255]), "membrane_prob")
    Traceback (most recent call last):
    ...
    ValueError: membrane_prob must lie in [0, 1] (probabilities), got values in [0, 255]; scale it first (8-bit maps: divide by 255; logits: apply a softmax)
    """  # noqa: E501
    arr = np.asarray(p)
    if not arr.size:
        return arr
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must lie in [0, 1] (probabilities), got NaN or infinite values")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < -tol or hi > 1 + tol:
        raise ValueError(
            f"{name} must lie in [0, 1] (probabilities), got values in [{lo:.4g}, {hi:.4g}]; "
            "scale it first (8-bit maps: divide by 255; logits: apply a softmax)"
        )
    return arr


def check_fraction(value: object, name: str) -> float:
    """``value`` as a float strictly between 0 and 1 (a threshold on probabilities).

    >>> check_fraction(0.5, "threshold")
    0.5
    >>> check_fraction(1.5, "threshold")
    Traceback (most recent call last):
    ...
    ValueError: threshold must be in (0, 1), got 1.5
    """
    if not isinstance(value, numbers.Real):
        raise InputTypeError(f"{name} must be a number in (0, 1), got {value!r}")
    if not 0 < float(value) < 1:  # NaN fails too
        raise ValueError(f"{name} must be in (0, 1), got {value}")
    return float(value)


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
