"""The configurable 2D/3D U-Net, with the network of Ronneberger et al. (2015) as a preset."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch
from torch import nn

from biounet.core.checks import check_positive_int, look_up
from biounet.model.blocks import NORMS, ConvBlock, Down, Up
from biounet.model.geometry import PADDINGS, UPSAMPLINGS, Geometry
from biounet.model.presets import PRESETS
from biounet.model.shapes import ShapeGeometry


@dataclass(frozen=True)
class UNetConfig:
    """Everything that defines a U-Net's architecture (serialised into checkpoints).

    Attributes
    ----------
    in_channels : int
        Channels of the input image.
    num_classes : int
        Output channels: one logit per class (softmax over them gives probabilities).
    ndim : int
        2 for images, 3 for volumes.
    depth : int
        Number of 2x2 max-poolings (the paper: 4, i.e. 5 resolution levels).
    base_width : int
        Feature channels at the first level; level ``l`` has ``base_width * 2**l``.
    padding : {"valid", "same"}
        Unpadded convolutions (the paper; output smaller than input) or size-preserving ones.
    norm : {"none", "batch", "instance", "group"}
        Normalisation after every 3x3 convolution. Batch norm in eval mode is pointwise, so
        tiled inference stays exact; instance and group norm use per-tile statistics.
    dropout : float
        Dropout probability at the end of the contracting path (the paper: 0.5).
    upsample : {"transposed", "nearest", "linear"}
        The paper's 2x2 up-convolution, or interpolation followed by a 1x1 convolution.
    convs_per_block : int
        Convolutions per level (the paper: 2).
    kernel_size : int
        Convolution kernel size (the paper: 3).
    coarse_levels : tuple of int
        Per spatial axis, the number of first levels at which that axis is coarse (its voxels
        at least twice as long as the finest axis's at that level): kernel 1 along it and no
        pooling, until pooling the other axes has caught up (see
        :func:`biounet.model.plan.coarse_levels`, which plans it from the voxel spacing).
        Empty or all 0 (the default): every axis alike.
    """

    in_channels: int = 1
    num_classes: int = 2
    ndim: int = 2
    depth: int = 4
    base_width: int = 64
    padding: str = "valid"
    norm: str = "none"
    dropout: float = 0.0
    upsample: str = "transposed"
    convs_per_block: int = 2
    kernel_size: int = 3
    coarse_levels: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for name in ("in_channels", "num_classes", "base_width", "convs_per_block"):
            value = check_positive_int(getattr(self, name), name)
            object.__setattr__(self, name, value)  # a NumPy integer becomes a plain int
        if self.ndim not in (2, 3):
            raise ValueError(f"ndim must be 2 (images) or 3 (volumes), got {self.ndim!r}")
        look_up(self.padding, PADDINGS, "padding")
        look_up(self.norm, NORMS, "norm")
        look_up(self.upsample, UPSAMPLINGS, "upsample")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        levels = tuple(int(c) for c in self.coarse_levels)
        if levels and len(levels) != self.ndim:
            raise ValueError(
                f"coarse_levels {self.coarse_levels} must give one number per spatial axis "
                f"({self.ndim}), or none"
            )
        object.__setattr__(self, "coarse_levels", levels if any(levels) else ())
        # raises for a bad depth, kernel size or coarse level
        self.geometry  # noqa: B018

    @property
    def geometry(self) -> ShapeGeometry:
        """The size arithmetic of this architecture, per spatial axis."""
        g = Geometry(
            self.depth, self.padding, self.convs_per_block, self.kernel_size, self.upsample
        )
        return ShapeGeometry.of(g, ndim=self.ndim, coarse=self.coarse_levels)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (JSON/YAML-ready: ``coarse_levels`` is a list)."""
        d = asdict(self)
        d["coarse_levels"] = list(self.coarse_levels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UNetConfig:
        """Build from a dict; an unknown key gets a did-you-mean."""
        return cls(**_checked_options(d))


class UNet(nn.Module):
    """A U-Net for 2D images or 3D volumes.

    ``forward``: logits ``(N, num_classes, *S_out)`` for an input ``(N, in_channels, *S_in)``;
    ``S_out = S_in - 2 * margin`` for valid padding (use :meth:`output_shape`), ``S_in`` for same.
    Probabilities are ``softmax(logits, dim=1)``.

    Parameters
    ----------
    in_channels, num_classes, **options
        The fields of :class:`UNetConfig`.

    Examples
    --------
    >>> net = UNet.from_preset("ronneberger2015")
    >>> net.count_parameters(), net.margin, net.output_shape((572, 572))
    (31030658, 92, (388, 388))
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, **options: Any) -> None:
        super().__init__()
        cfg = UNetConfig(in_channels=in_channels, num_classes=num_classes, **options)
        self.config = cfg
        self.geometry = cfg.geometry
        axes = self.geometry.axes
        block: dict[str, Any] = {
            "convs": cfg.convs_per_block,
            "padding": cfg.padding,
            "norm": cfg.norm,
        }

        def kernel(level: int) -> tuple[int, ...]:
            return tuple(a.kernel(level) for a in axes)

        def pool(level: int) -> tuple[int, ...]:  # the pooling into ``level``
            return tuple(2 if a.pooled(level) else 1 for a in axes)

        widths = [cfg.base_width * 2**level for level in range(cfg.depth + 1)]
        self.inc = ConvBlock(cfg.ndim, cfg.in_channels, widths[0], kernel_size=kernel(0), **block)
        self.downs = nn.ModuleList(
            Down(cfg.ndim, widths[i], widths[i + 1], pool=pool(i + 1), kernel_size=kernel(i + 1),
                 **block)
            for i in range(cfg.depth)
        )  # fmt: skip
        # the paper: "drop-out layers at the end of the contracting path"
        self.dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.ups = nn.ModuleList(
            Up(cfg.ndim, widths[i + 1], widths[i], mode=cfg.upsample, factor=pool(i + 1),
               kernel_size=kernel(i), **block)
            for i in reversed(range(cfg.depth))
        )  # fmt: skip
        conv = nn.Conv2d if cfg.ndim == 2 else nn.Conv3d
        self.head = conv(widths[0], cfg.num_classes, kernel_size=1)
        self.reset_parameters()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, config: UNetConfig | dict[str, Any]) -> UNet:
        """Build from a :class:`UNetConfig` or its dict."""
        if isinstance(config, dict):
            config = UNetConfig.from_dict(config)
        return cls(**config.to_dict())

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> UNet:
        """A named architecture (see ``biounet.model.presets.PRESETS``), with fields overridden.

        >>> UNet.from_preset("ronneberger2015", num_classes=3).config.num_classes
        3
        """
        name = look_up(name, list(PRESETS), "preset")
        cfg = replace(UNetConfig(**PRESETS[name].options), **_checked_options(overrides))
        return cls.from_config(cfg)

    def reset_parameters(self) -> None:
        """He initialisation (the paper): normal with std ``sqrt(2 / fan_in)``, zero biases.

        ``fan_in`` is the number of inputs that feed one output: ``C_in * prod(kernel)`` for a
        convolution and ``C_in * prod(kernel) / prod(stride)`` (= ``C_in``) for the 2x2
        up-convolution, whose stride equals its kernel.
        """
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Conv3d):
                fan_in = m.in_channels * math.prod(m.kernel_size)
            elif isinstance(m, nn.ConvTranspose2d | nn.ConvTranspose3d):
                fan_in = m.in_channels * math.prod(m.kernel_size) // math.prod(m.stride)
            else:
                continue
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_in))
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    # ------------------------------------------------------------------ size arithmetic
    @property
    def ndim(self) -> int:
        """Number of spatial axes (2 or 3)."""
        return self.config.ndim

    @property
    def margin(self) -> int:
        """Context per side, px, of an output tile on the ``2**depth`` grid (paper: 92).

        See :attr:`biounet.model.Geometry.margin`; it is not a single pixel's receptive field.
        A network with a coarse axis has one per axis (:attr:`margins`, what tiling needs);
        this is then the largest of them.
        """
        return max(self.margins)

    @property
    def margins(self) -> tuple[int, ...]:
        """Context per side, px, per spatial axis (see :attr:`margin`)."""
        return self.geometry.margins

    def output_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        """Spatial output shape for a spatial input shape (ValueError if not valid)."""
        self._check_spatial_rank(input_shape)
        return self.geometry.output_shape(input_shape)

    def is_valid_input(self, input_shape: Sequence[int]) -> bool:
        """Whether a spatial input shape passes through the network."""
        return len(input_shape) == self.ndim and self.geometry.is_valid_shape(input_shape)

    def nearest_valid_sizes(self, n: int, axis: int = -1) -> tuple[int | None, int]:
        """The valid input sizes nearest to ``n`` px along ``axis`` (below or None, above)."""
        return self.geometry.axes[axis].nearest_valid_sizes(n)

    def count_parameters(self, trainable_only: bool = False) -> int:
        """Number of parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def count_conv_layers(self) -> int:
        """Convolution layers, the 2x2 up-convolutions and the 1x1 head included (paper: 23)."""
        kinds = (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)
        return sum(isinstance(m, kinds) for m in self.modules())

    def _check_spatial_rank(self, shape: Sequence[int]) -> None:
        """Raise ValueError unless ``shape`` has one entry per spatial axis."""
        if len(shape) != self.ndim:
            raise ValueError(
                f"expected {self.ndim} spatial axes for this {self.ndim}D U-Net, got shape "
                f"{tuple(shape)}"
            )

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes, *S_out)`` for ``x`` of shape ``(N, in_channels, *S_in)``."""
        if x.ndim != self.ndim + 2 or x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"expected input of shape (N, {self.config.in_channels}, "
                f"{', '.join('S' + str(i) for i in range(self.ndim))}) for this "
                f"{self.ndim}D U-Net with {self.config.in_channels} input channel(s), "
                f"got {tuple(x.shape)}"
            )
        if not torch.compiler.is_compiling():
            # a clear error for an invalid size (int(): under torch.jit.trace sizes are tensors)
            self.geometry.output_shape(tuple(int(n) for n in x.shape[2:]))
        skips = [self.inc(x)]  # (N, w0, *S)
        for down in self.downs:
            skips.append(down(skips[-1]))  # (N, w0 * 2**l, *S / 2**l)
        y = self.dropout(skips.pop())  # the bottleneck, (N, w0 * 2**depth, ...)
        for up in self.ups:
            y = up(y, skips.pop())
        logits: torch.Tensor = self.head(y)  # (N, num_classes, *S_out)
        return logits

    def extra_repr(self) -> str:
        """Short architecture summary for ``repr``."""
        c = self.config
        return (
            f"ndim={c.ndim}, in_channels={c.in_channels}, num_classes={c.num_classes}, "
            f"depth={c.depth}, base_width={c.base_width}, padding={c.padding!r}, "
            f"norm={c.norm!r}, dropout={c.dropout}, upsample={c.upsample!r}"
            + (f", coarse_levels={c.coarse_levels}" if c.coarse_levels else "")
        )


def _checked_options(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` unchanged if every key is a :class:`UNetConfig` field, else a did-you-mean."""
    names = [f.name for f in fields(UNetConfig)]
    for key in options:
        look_up(key, names, "U-Net option")
    return options
