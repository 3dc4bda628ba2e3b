"""Test-time augmentation transforms: flips and transpositions of an image's spatial axes."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Transform", "dihedral_transforms", "identity"]


@dataclass(frozen=True)
class Transform:
    """A flip and transposition of the spatial axes: ``g(x) = transpose(flip(x, flips), perm)``.

    Axis ``k`` of ``g(x)`` is axis ``perm[k]`` of ``x``, reversed where ``flips[perm[k]]``.

    Attributes
    ----------
    perm : tuple of int
        A permutation of ``0..ndim-1``: the source axis of each axis of ``g(x)``.
    flips : tuple of bool
        Per source axis, whether it is reversed.
    """

    perm: tuple[int, ...]
    flips: tuple[bool, ...]

    def shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        """Spatial shape (px per axis) of the transformed image, for spatial ``shape``."""
        return tuple(shape[p] for p in self.perm)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Apply to ``x`` ``(C, *S)``; returns ``(C, *g(S))`` (a view where NumPy allows)."""
        for axis, f in enumerate(self.flips):
            if f:
                x = np.flip(x, axis + 1)
        out: np.ndarray = x.transpose(0, *(p + 1 for p in self.perm))
        return out

    def invert(self, y: np.ndarray) -> np.ndarray:
        """Map ``y`` of shape ``(K, *g(S))`` back to the original orientation ``(K, *S)``."""
        inv = np.argsort(self.perm)
        y = y.transpose(0, *(int(i) + 1 for i in inv))
        for axis, f in enumerate(self.flips):
            if f:
                y = np.flip(y, axis + 1)
        return y


def dihedral_transforms(ndim: int, rotations: bool = True) -> list[Transform]:
    """The test-time augmentation group for ``ndim`` spatial axes.

    2D with ``rotations``: the 8 flips/rotations of the square (dihedral group D4: the two axis
    orders times the four flip combinations). 3D (or ``rotations=False``): the ``2**ndim`` flips.

    >>> len(dihedral_transforms(2)), len(dihedral_transforms(2, rotations=False))
    (8, 4)
    """
    perms = (
        list(itertools.permutations(range(ndim)))
        if ndim == 2 and rotations
        else [tuple(range(ndim))]
    )
    return [
        Transform(tuple(p), tuple(f))
        for p in perms
        for f in itertools.product((False, True), repeat=ndim)
    ]


def identity(ndim: int) -> Transform:
    """The identity transform for ``ndim`` spatial axes (no flip, axes in order)."""
    return Transform(tuple(range(ndim)), (False,) * ndim)
