"""Small helpers shared across the package: option look-up, integer test, progress switch."""

from __future__ import annotations

import difflib
import numbers
from collections.abc import Sequence
from typing import TypeGuard


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
