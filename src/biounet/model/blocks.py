"""Building blocks of the U-Net, for 2D and 3D (``ndim``), as small ``nn.Module`` classes.

Shapes use ``N`` for the batch, ``C`` for channels and ``*S`` for the ``ndim`` spatial axes.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

NORMS = ("none", "batch", "instance", "group")


def conv_layer(ndim: int) -> type[nn.Module]:
    """``nn.Conv2d`` or ``nn.Conv3d``."""
    return {2: nn.Conv2d, 3: nn.Conv3d}[ndim]


def norm_layer(kind: str, ndim: int, channels: int) -> nn.Module:
    """A normalisation layer by name; ``"group"`` uses ``gcd(channels, 8)`` groups."""
    if kind == "none":
        return nn.Identity()
    if kind == "batch":
        return {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[ndim](channels)
    if kind == "instance":
        return {2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}[ndim](channels, affine=True)
    if kind == "group":
        return nn.GroupNorm(math.gcd(channels, 8), channels)
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


def center_crop(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Crop the spatial axes of ``x`` ``(N, C, *S)`` to ``shape``, equally on both sides."""
    slices = [slice(None), slice(None)]
    for have, want in zip(x.shape[2:], shape):
        start = (have - want) // 2
        slices.append(slice(start, start + want))
    return x[tuple(slices)]


#: a size per spatial axis, or one for all
Sizes = int | tuple[int, ...]


def per_axis(value: Sizes, ndim: int) -> tuple[int, ...]:
    """``value`` as one size per spatial axis."""
    return (value,) * ndim if isinstance(value, int) else tuple(value)


class ConvBlock(nn.Sequential):
    """``convs`` times: convolution -> normalisation -> ReLU.

    ``(N, C_in, *S) -> (N, C_out, *S')`` with ``S' = S - convs * (k - 1)`` for ``padding="valid"``
    and ``S' = S`` for ``"same"``; ``kernel_size`` may differ per axis (1 along a coarse axis).
    """

    def __init__(
        self,
        ndim: int,
        in_channels: int,
        out_channels: int,
        *,
        convs: int = 2,
        kernel_size: Sizes = 3,
        padding: str = "valid",
        norm: str = "none",
    ) -> None:
        layers: list[nn.Module] = []
        kernel = per_axis(kernel_size, ndim)
        pad = tuple(0 if padding == "valid" else k // 2 for k in kernel)
        for i in range(convs):
            layers.append(
                conv_layer(ndim)(
                    in_channels if i == 0 else out_channels,
                    out_channels,
                    kernel,
                    padding=pad,
                    bias=norm == "none",
                )
            )
            layers.append(norm_layer(norm, ndim, out_channels))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class Down(nn.Sequential):
    """2x2 max-pooling with stride 2, then a :class:`ConvBlock`: ``(N, C, *S) -> (N, C', *S')``.

    ``pool`` may differ per axis: 1 leaves a coarse axis alone.
    """

    def __init__(
        self,
        ndim: int,
        in_channels: int,
        out_channels: int,
        *,
        pool: Sizes = 2,
        **block: Sizes | str,
    ) -> None:
        window = per_axis(pool, ndim)
        pooling = {2: nn.MaxPool2d, 3: nn.MaxPool3d}[ndim](window, stride=window)
        super().__init__(pooling, ConvBlock(ndim, in_channels, out_channels, **block))  # type: ignore[arg-type]


class Up(nn.Module):
    """Up-sample x2 halving the channels, crop-and-concatenate the skip, then a :class:`ConvBlock`.

    ``x (N, C, *S)`` and ``skip (N, C/2, *S_skip)`` -> ``(N, C/2, *S'')``.
    ``mode="transposed"`` is the paper's 2x2 up-convolution (a transposed convolution with
    stride 2); ``"nearest"`` and ``"linear"`` interpolate, then a 1x1 convolution halves the
    channels. With valid padding, ``"linear"`` drops one pixel per side after interpolating so
    that no output depends on values beyond the map's border. ``factor`` may differ per axis:
    1 along a coarse axis that the matching pooling left alone.
    """

    def __init__(
        self,
        ndim: int,
        in_channels: int,
        out_channels: int,
        *,
        mode: str = "transposed",
        factor: Sizes = 2,
        convs: int = 2,
        kernel_size: Sizes = 3,
        padding: str = "valid",
        norm: str = "none",
    ) -> None:
        super().__init__()
        self.mode = mode
        self.factor = per_axis(factor, ndim)
        crop = mode == "linear" and padding == "valid"
        # valid + linear: one pixel per side dropped along the axes that were interpolated
        self.crop = tuple(slice(1, -1) if crop and f > 1 else slice(None) for f in self.factor)
        half = in_channels // 2
        if mode == "transposed":
            cls = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[ndim]
            self.up: nn.Module = cls(in_channels, half, self.factor, stride=self.factor)  # type: ignore[arg-type]
        elif mode in ("nearest", "linear"):
            self.up = conv_layer(ndim)(in_channels, half, kernel_size=1)
        else:
            raise ValueError(f"upsample must be transposed, nearest or linear, got {mode!r}")
        self.interp = {"nearest": "nearest", "linear": {2: "bilinear", 3: "trilinear"}[ndim]}.get(
            mode
        )
        # the concatenation holds the skip's C/2 channels and the up-sampled C/2 channels
        self.conv = ConvBlock(
            ndim,
            in_channels,
            out_channels,
            convs=convs,
            kernel_size=kernel_size,
            padding=padding,
            norm=norm,
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """Up-sample ``x``, concatenate the centre-cropped ``skip`` and convolve."""
        x = self.up(x)  # transposed: (N, C/2, *2S); interpolating: the 1x1 conv, (N, C/2, *S)
        if self.interp is not None:
            # a 1x1 convolution commutes with interpolation, so it runs first, on 4x fewer pixels
            size = tuple(n * f for n, f in zip(x.shape[2:], self.factor))
            x = F.interpolate(x, size=size, mode=self.interp)
            x = x[(slice(None), slice(None)) + self.crop]
        skip = center_crop(skip, tuple(x.shape[2:]))
        y: torch.Tensor = self.conv(torch.cat([skip, x], dim=1))  # (N, C/2, *S'')
        return y
