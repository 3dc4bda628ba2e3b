"""The size arithmetic of a U-Net for whole shapes: one :class:`Geometry` per spatial axis.

A network whose axes are all alike applies the same :class:`~biounet.model.geometry.Geometry`
to each; one with a coarse axis (anisotropic voxels, :mod:`biounet.model.plan`) has another for
it, with a smaller pooling grid and margin. Sizes are px (voxels) per axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from biounet.core.checks import int_tuple
from biounet.model.geometry import Geometry

__all__ = ["ShapeGeometry"]


@dataclass(frozen=True)
class ShapeGeometry:
    """The size arithmetic of a U-Net for whole shapes: one :class:`Geometry` per spatial axis.

    The axes differ only where the network treats some as coarse (anisotropic voxels); else
    all are the same :class:`Geometry`.

    >>> g = ShapeGeometry.of(Geometry(depth=3, padding="same"), coarse=(1, 0, 0))
    >>> g.alignments, g.margins, g.output_shape((20, 64, 64))
    ((4, 8, 8), (20, 44, 44), (20, 64, 64))
    >>> g.valid_shape((50, 100, 100))
    (52, 104, 104)
    """

    axes: tuple[Geometry, ...]

    @classmethod
    def of(cls, g: Geometry, *, ndim: int = 0, coarse: Sequence[int] = ()) -> ShapeGeometry:
        """``g`` on each of ``ndim`` axes, or on ``len(coarse)`` axes with those coarse levels."""
        levels = tuple(coarse) or (0,) * ndim
        if not levels:
            raise ValueError("give ndim or one coarse level per axis")
        if ndim and len(levels) != ndim:
            raise ValueError(f"coarse levels {tuple(coarse)} must give one per axis ({ndim})")
        return cls(tuple(replace(g, coarse=int(c)) for c in levels))

    @property
    def ndim(self) -> int:
        """Number of spatial axes."""
        return len(self.axes)

    @property
    def isotropic(self) -> bool:
        """Whether every axis follows the same arithmetic (no coarse axis)."""
        return all(a == self.axes[0] for a in self.axes)

    @property
    def margins(self) -> tuple[int, ...]:
        """Context per side of a tile on the pooling grid, px per axis (Geometry.margin)."""
        return tuple(a.margin for a in self.axes)

    @property
    def alignments(self) -> tuple[int, ...]:
        """The pooling grid per axis, px (Geometry.alignment)."""
        return tuple(a.alignment for a in self.axes)

    @property
    def shrinks(self) -> tuple[int, ...]:
        """Input size minus output size per axis (Geometry.shrink)."""
        return tuple(a.shrink for a in self.axes)

    @property
    def min_input_shape(self) -> tuple[int, ...]:
        """The smallest valid input shape."""
        return tuple(a.min_input_size for a in self.axes)

    def _per_axis(self, shape: Sequence[int] | int) -> tuple[int, ...]:
        """``shape`` as one size per axis (a single number stands for every axis)."""
        if isinstance(shape, int) and not isinstance(shape, bool):
            return (shape,) * self.ndim
        return int_tuple(shape, "shape", self.ndim)

    def output_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        """Output shape for an input shape; ValueError names the axis and the nearest sizes."""
        items = self._per_axis(shape)
        out = []
        for axis, (g, n) in enumerate(zip(self.axes, items)):
            o = g.output_or_none(n)
            if o is None:
                raise ValueError(f"axis {axis} of shape {items}: {g.invalid_size_message(n)}")
            out.append(o)
        return tuple(out)

    def is_valid_shape(self, shape: Sequence[int]) -> bool:
        """Whether every axis of ``shape`` is a valid size for its axis."""
        items = int_tuple(shape, "shape")
        return len(items) == self.ndim and all(g.is_valid_size(n) for g, n in zip(self.axes, items))

    def valid_shape(self, shape: Sequence[int] | int) -> tuple[int, ...]:
        """The smallest valid input shape at least ``shape`` (one number: every axis)."""
        return tuple(g.nearest_valid_sizes(n)[1] for g, n in zip(self.axes, self._per_axis(shape)))

    def input_shape_for_output(self, out: Sequence[int] | int) -> tuple[int, ...]:
        """The smallest valid input shape whose output is at least ``out`` per axis."""
        items = self._per_axis(out)
        return tuple(g.input_size_for_output(n) for g, n in zip(self.axes, items))
