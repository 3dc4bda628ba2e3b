"""Checks of the arguments both synthetic generators take: the shape, ranges, strengths."""

from __future__ import annotations

from collections.abc import Sequence

from biounet.core.checks import int_tuple

__all__ = ["check_nonnegative", "check_range", "check_shape"]


def check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    """``shape`` as 2 or 3 ints of at least 8 px each (TypeError for non-integers).

    >>> check_shape([64, 48])
    (64, 48)
    """
    out = int_tuple(shape, "shape")
    if len(out) not in (2, 3) or min(out) < 8:
        raise ValueError(f"shape must be 2 or 3 integers of at least 8 px, got {out}")
    return out


def check_range(value: tuple[float, float], name: str, *, low: float) -> tuple[float, float]:
    """``value`` as floats ``(lo, hi)`` with ``low <= lo <= hi``; ValueError naming ``name``."""
    lo, hi = (float(v) for v in value)
    if not low <= lo <= hi:
        raise ValueError(f"{name} must be a range (lo, hi) with {low} <= lo <= hi, got {value}")
    return lo, hi


def check_nonnegative(**values: float) -> None:
    """Raise ValueError naming the first of ``values`` that is negative or NaN."""
    for name, v in values.items():
        if not v >= 0:  # written so that NaN fails too
            raise ValueError(f"{name} must be non-negative, got {v}")
