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


class ConvBlock(nn.Sequential):
    """``convs`` times: convolution -> normalisation -> ReLU.

    ``(N, C_in, *S) -> (N, C_out, *S')`` with ``S' = S - convs * (k - 1)`` for ``padding="valid"``
    and ``S' = S`` for ``"same"``.
    """

    def __init__(
        self,
        ndim: int,
        in_channels: int,
        out_channels: int,
        *,
        convs: int = 2,
        kernel_size: int = 3,
        padding: str = "valid",
        norm: str = "none",
    ) -> None:
        layers: list[nn.Module] = []
        pad = 0 if padding == "valid" else kernel_size // 2
        for i in range(convs):
            layers.append(
                conv_layer(ndim)(
                    in_channels if i == 0 else out_channels,
                    out_channels,
                    kernel_size,
                    padding=pad,
                    bias=norm == "none",
                )
            )
            layers.append(norm_layer(norm, ndim, out_channels))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class Down(nn.Sequential):
    """2x2 max-pooling with stride 2, then a :class:`ConvBlock`: ``(N, C, *S) -> (N, C', *S')``."""

    def __init__(self, ndim: int, in_channels: int, out_channels: int, **block: int | str) -> None:
        pool = {2: nn.MaxPool2d, 3: nn.MaxPool3d}[ndim](2)
        super().__init__(pool, ConvBlock(ndim, in_channels, out_channels, **block))  # type: ignore[arg-type]


class Up(nn.Module):
    """Up-sample x2 halving the channels, crop-and-concatenate the skip, then a :class:`ConvBlock`.

    ``x (N, C, *S)`` and ``skip (N, C/2, *S_skip)`` -> ``(N, C/2, *S'')``.
    ``mode="transposed"`` is the paper's 2x2 up-convolution (a transposed convolution with
    stride 2); ``"nearest"`` and ``"linear"`` interpolate, then a 1x1 convolution halves the
    channels. With valid padding, ``"linear"`` drops one pixel per side after interpolating so
    that no output depends on values beyond the map's border.
    """

    def __init__(
        self,
        ndim: int,
        in_channels: int,
        out_channels: int,
        *,
        mode: str = "transposed",
        convs: int = 2,
        kernel_size: int = 3,
        padding: str = "valid",
        norm: str = "none",
    ) -> None:
        super().__init__()
        self.mode = mode
        self.crop_border = mode == "linear" and padding == "valid"
        half = in_channels // 2
        if mode == "transposed":
            cls = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[ndim]
            self.up: nn.Module = cls(in_channels, half, kernel_size=2, stride=2)
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
            x = F.interpolate(x, scale_factor=2.0, mode=self.interp)
            if self.crop_border:
                x = x[(slice(None), slice(None)) + (slice(1, -1),) * (x.ndim - 2)]
        skip = center_crop(skip, tuple(x.shape[2:]))
        y: torch.Tensor = self.conv(torch.cat([skip, x], dim=1))  # (N, C/2, *S'')
        return y
