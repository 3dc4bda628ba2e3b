"""Size arithmetic of a U-Net, as pure functions (no torch).

A U-Net with ``valid`` (unpadded) convolutions shrinks its input: every 3x3 convolution removes
one pixel per side, every 2x2 max-pooling needs an even size, and every skip connection crops the
contracting path's map to the expanding path's size. Only some input sizes work, and the output is
smaller than the input by a fixed *margin* per side. For the paper's network (depth 4, two 3x3
convolutions per level) the margin is 92 px and 572 px in gives 388 px out.

The margin is the context per side that an output tile needs when the tile starts on the
pooling grid (a multiple of ``2**depth`` px): such a tile of ``n`` px depends on exactly the
``n + 2 * margin`` input px around it, which is what overlap-tile inference relies on. It is not
the receptive field of a single output pixel: that one depends on where the pixel sits relative
to the pooling grid and reaches further than the margin on one side (for the paper's network a
single pixel sees 188 to 204 input px, up to 107 px on one side, against ``2 * 92 + 1 = 185``).

A ``same`` padded U-Net keeps the size; it needs sizes divisible by ``2**depth``. It sees the
same context as the valid network of the same topology; :attr:`Geometry.margin` reports it for
both.

All sizes are in pixels (voxels in 3D), per spatial axis. :class:`Geometry` is the arithmetic
of one axis. An axis may be *coarse* for the first few levels (``coarse``; voxels 2.2x longer
along z than across, say): there its convolutions have kernel 1 and the poolings after those
levels leave it alone, as nnU-Net plans anisotropic data, so its alignment and margin are
smaller. :class:`biounet.model.shapes.ShapeGeometry` holds one :class:`Geometry` per axis and
answers for whole shapes.

Examples
--------
>>> g = Geometry(depth=4)
>>> g.output_size(572), g.margin
(388, 92)
>>> g.nearest_valid_sizes(570)
(556, 572)
>>> g.output_shape((572, 188))
(388, 4)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from biounet.core.checks import check_nonnegative_int, check_positive_int, int_tuple, whole_px

PADDINGS = ("valid", "same")
UPSAMPLINGS = ("transposed", "nearest", "linear")


@dataclass(frozen=True)
class Geometry:
    """The size arithmetic of one U-Net configuration (per spatial axis).

    Parameters
    ----------
    depth : int
        Number of 2x2 max-poolings (the paper: 4).
    padding : {"valid", "same"}
        ``"valid"``: unpadded convolutions, the output is smaller than the input (the paper).
        ``"same"``: zero-padded convolutions, output size equals input size.
    convs_per_block : int
        Convolutions per level (the paper: 2).
    kernel_size : int
        Odd convolution kernel size (the paper: 3).
    upsample : {"transposed", "nearest", "linear"}
        How the expanding path doubles the size. ``"linear"`` in a valid network crops one
        pixel per side after interpolating, because the border pixels of a linear interpolation
        depend on values outside the map.
    coarse : int
        Levels ``0 .. coarse - 1`` treat this axis as coarse: kernel 1 along it (no context,
        no shrinking), and the poolings after them (and the up-samplings back) leave it
        alone. In ``[0, depth]``; 0 (the default): the paper's arithmetic.
    """

    depth: int
    padding: str = "valid"
    convs_per_block: int = 2
    kernel_size: int = 3
    upsample: str = "transposed"
    coarse: int = 0

    def __post_init__(self) -> None:
        check_nonnegative_int(self.depth, "depth")
        check_positive_int(self.convs_per_block, "convs_per_block")
        if check_positive_int(self.kernel_size, "kernel_size") % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd integer, got {self.kernel_size}")
        if self.padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {self.padding!r}")
        if self.upsample not in UPSAMPLINGS:
            raise ValueError(f"upsample must be one of {UPSAMPLINGS}, got {self.upsample!r}")
        if not 0 <= check_nonnegative_int(self.coarse, "coarse") <= self.depth:
            raise ValueError(f"coarse levels must be in [0, depth={self.depth}], got {self.coarse}")

    # ------------------------------------------------------------------ per axis
    @property
    def alignment(self) -> int:
        """The pooling grid, ``2**pools`` px: shifts by multiples of it commute with the net."""
        return int(2**self.pools)

    @property
    def pools(self) -> int:
        """How many poolings halve this axis: ``depth - coarse``."""
        return self.depth - self.coarse

    def pooled(self, level: int) -> bool:
        """Whether the pooling into ``level`` (1..depth) halves this axis."""
        return level > self.coarse

    def kernel(self, level: int) -> int:
        """The convolution kernel along this axis at ``level`` (1 while the axis is coarse)."""
        return 1 if level < self.coarse else self.kernel_size

    def _shrink(self, level: int) -> int:
        """Pixels the convolutions of ``level`` remove along this axis (0 when same padded)."""
        return 0 if self.padding == "same" else self.convs_per_block * (self.kernel(level) - 1)

    def trace(self, n: int) -> tuple[list[int], list[int]] | None:
        """Feature-map sizes for input size ``n``, or None if ``n`` is not valid.

        Returns ``(contracting, expanding)``: the size after the convolutions of each level
        ``0..depth`` going down (the last is the bottleneck), and the size after the
        convolutions of each level ``depth-1..0`` going up (the last is the output).

        >>> Geometry(depth=4).trace(572)
        ([568, 280, 136, 64, 28], [52, 100, 196, 388])
        """
        n = whole_px(n)
        s = n
        down: list[int] = []
        for level in range(self.depth + 1):
            if level and self.pooled(level):
                if s % 2:
                    return None
                s //= 2
            s -= self._shrink(level)
            if s < 1:
                return None
            down.append(s)
        up: list[int] = []
        for level in reversed(range(self.depth)):
            skip = down[level]
            if self.pooled(level + 1):
                # valid + linear: the interpolation's border pixel per side is dropped (blocks.Up)
                s = 2 * s - (2 if self.upsample == "linear" and self.padding == "valid" else 0)
            # the skip map is centre-cropped to s: it must be at least as large, by an even amount
            if s < 1 or s > skip or (skip - s) % 2:
                return None
            s -= self._shrink(level)
            if s < 1:
                return None
            up.append(s)
        return down, up

    def output_size(self, n: int) -> int:
        """Output size for input size ``n``; raises ValueError naming the nearest valid sizes."""
        out = self.output_or_none(whole_px(n))
        if out is None:
            raise ValueError(self.invalid_size_message(n))
        return out

    def output_or_none(self, n: int) -> int | None:
        """Output size for input size ``n`` px, or None where ``n`` is not valid."""
        sizes = self.trace(n) if n >= 1 else None
        if sizes is None:
            return None
        return (sizes[1] or sizes[0])[-1]

    def is_valid_size(self, n: int) -> bool:
        """Whether an input of ``n`` px along an axis passes through the network."""
        return self.output_or_none(whole_px(n)) is not None

    @property
    def min_input_size(self) -> int:
        """The smallest valid input size."""
        n = 1
        while not self.is_valid_size(n):
            n += 1
        return n

    @property
    def margin(self) -> int:
        """Context per side in px of an output tile that starts on the pooling grid (paper: 92).

        An output tile starting at a multiple of ``2**depth`` px depends on exactly ``margin``
        px of input beyond it on each side; that is what tiling needs. For a valid network it
        is exactly ``(input - output) / 2``; a same network is given the margin of the valid
        network of its topology. A single output pixel's receptive field is not
        ``2 * margin + 1``: it depends on the pixel's pooling phase (see the module docstring).
        """
        g = (
            self
            if self.padding == "valid"
            else Geometry(
                self.depth,
                "valid",
                self.convs_per_block,
                self.kernel_size,
                self.upsample,
                self.coarse,
            )
        )
        n = g.min_input_size
        return (n - g.output_size(n)) // 2

    @property
    def shrink(self) -> int:
        """Input size minus output size, per axis (``2 * margin`` valid, 0 same)."""
        return 2 * self.margin if self.padding == "valid" else 0

    def nearest_valid_sizes(self, n: int) -> tuple[int | None, int]:
        """The largest valid size <= ``n`` (None if there is none) and the smallest >= ``n``."""
        n = whole_px(n)
        below: int | None = None
        m = n
        while m >= 1:
            if self.is_valid_size(m):
                below = m
                break
            m -= 1
        m = max(n, 1)
        while not self.is_valid_size(m):
            m += 1
        return below, m

    def valid_sizes(self, lo: int, hi: int) -> list[int]:
        """All valid input sizes in ``[lo, hi]``."""
        lo, hi = whole_px(lo, "lo"), whole_px(hi, "hi")
        return [n for n in range(max(lo, 1), hi + 1) if self.is_valid_size(n)]

    def input_size_for_output(self, out: int) -> int:
        """The smallest valid input size whose output is at least ``out`` px."""
        out = whole_px(out, "out")
        n = self.min_input_size
        step = self.alignment
        # valid sizes repeat with period 2**depth; walk in steps, then settle on the exact size
        while self.output_size(n) < out:
            n += step
            while not self.is_valid_size(n):
                n += 1
        return n

    def invalid_size_message(self, n: int) -> str:
        """Why ``n`` px is not a valid input size, naming the rule and the nearest valid sizes.

        Used by :meth:`output_size` and :func:`biounet.inference.predictor.predict` so that
        every refusal of a size words it the same way.

        >>> Geometry(depth=4).invalid_size_message(570)  # doctest: +ELLIPSIS
        'size 570 px is not valid for this U-Net (depth 4, valid padding; ...are 556 or 572'
        """
        below, above = self.nearest_valid_sizes(n)
        near = f"{below} or {above}" if below is not None and below != above else f"{above}"
        rule = (
            f"a multiple of {self.alignment} (2**{'depth' if not self.coarse else 'poolings'})"
            if self.padding == "same"
            else "a size whose every pooling input is even and whose output is at least 1 px"
        )
        coarse = f", coarse for {self.coarse} level(s)" if self.coarse else ""
        return (
            f"size {n} px is not valid for this U-Net (depth {self.depth}, {self.padding} "
            f"padding{coarse}; it needs {rule}); the nearest valid sizes are {near}"
        )

    # ------------------------------------------------------------------ whole shapes
    def output_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        """Output spatial shape for an input spatial shape; ValueError names the axis and fix."""
        out = []
        items = int_tuple(shape, "shape")
        for axis, n in enumerate(items):
            o = self.output_or_none(n)
            if o is None:
                raise ValueError(f"axis {axis} of shape {items}: {self.invalid_size_message(n)}")
            out.append(o)
        return tuple(out)

    def is_valid_shape(self, shape: Sequence[int]) -> bool:
        """Whether every axis of ``shape`` is a valid size."""
        return all(self.is_valid_size(n) for n in int_tuple(shape, "shape"))


# ---------------------------------------------------------------------- functional forms
def output_shape(
    input_shape: Sequence[int], *, depth: int, padding: str = "valid", **kwargs: int | str
) -> tuple[int, ...]:
    """Output spatial shape of a U-Net for ``input_shape`` (see :class:`Geometry`).

    >>> output_shape((572, 572), depth=4)
    (388, 388)
    >>> output_shape((20, 21, 22), depth=1)
    Traceback (most recent call last):
    ...
    ValueError: axis 1 of shape (20, 21, 22): size 21 px is not valid ... are 20 or 22
    """
    return Geometry(depth, padding, **kwargs).output_shape(input_shape)  # type: ignore[arg-type]


def margin(*, depth: int, padding: str = "valid", **kwargs: int | str) -> int:
    """Context per side in px of a U-Net's output tiles on the pooling grid (see Geometry.margin).

    >>> margin(depth=4)
    92
    """
    return Geometry(depth, padding, **kwargs).margin  # type: ignore[arg-type]


def is_valid_size(n: int, *, depth: int, padding: str = "valid", **kwargs: int | str) -> bool:
    """Whether ``n`` px along an axis is a valid input size.

    >>> is_valid_size(572, depth=4), is_valid_size(570, depth=4)
    (True, False)
    """
    return Geometry(depth, padding, **kwargs).is_valid_size(n)  # type: ignore[arg-type]


def nearest_valid_sizes(
    n: int, *, depth: int, padding: str = "valid", **kwargs: int | str
) -> tuple[int | None, int]:
    """The nearest valid input sizes below (or None) and above ``n``.

    >>> nearest_valid_sizes(500, depth=4)
    (492, 508)
    """
    return Geometry(depth, padding, **kwargs).nearest_valid_sizes(n)  # type: ignore[arg-type]
