"""A human-readable summary of a U-Net architecture (``biounet inspect``)."""

from __future__ import annotations

import math

import torch

from biounet.model.geometry import Geometry
from biounet.model.presets import PRESETS
from biounet.model.unet import UNet


def flops_per_output_pixel(model: UNet, tile: int) -> float:
    """FLOPs (2 per multiply-add) of one forward pass per output pixel, for a cubic/square tile.

    Counted with ``torch.utils.flop_counter`` on the ``meta`` device (nothing is computed).
    """
    from torch.utils.flop_counter import FlopCounterMode

    shape = model.geometry.valid_shape(tile)  # a coarse axis may need another size
    with torch.device("meta"):
        meta = UNet.from_config(model.config)
        x = torch.empty(1, model.config.in_channels, *shape)
        with FlopCounterMode(display=False) as counter:
            meta(x)
    out = math.prod(model.geometry.output_shape(shape))
    return float(counter.get_total_flops() / out)


def valid_sizes_near(geometry: Geometry, near: int, count: int = 3) -> list[int]:
    """Up to ``count`` valid input sizes below ``near`` and ``count`` at or above it."""
    below: list[int] = []
    n = near - 1
    while n >= 1 and len(below) < count:
        if geometry.is_valid_size(n):
            below.insert(0, n)
        n -= 1
    above: list[int] = []
    n = max(near, 1)
    while len(above) < count:
        if geometry.is_valid_size(n):
            above.append(n)
        n += 1
    return below + above


def describe_preset(
    name: str, *, near: int | None = None, count: int = 3, flops: bool = True
) -> str:
    """A multi-line summary of preset ``name``: layers, sizes, parameters, margin, tiles."""
    preset = PRESETS[name]
    return describe_model(
        UNet.from_preset(name),
        f"{name}: {preset.description}",
        near=near if near is not None else preset.tile,
        count=count,
        flops=flops,
    )


def describe_model(
    model: UNet, title: str, *, near: int, count: int = 3, flops: bool = True
) -> str:
    """A multi-line summary of ``model`` under the line ``title``.

    Layers, feature-map sizes for the valid tile nearest ``near`` px, parameters, margin, the
    valid tiles near ``near`` and the FLOPs per output pixel. The margin is the context per
    side of an output tile aligned to the ``2**depth`` pooling grid (what tiling needs), not a
    single pixel's receptive field, which depends on the pixel's pooling phase.
    """
    c, g = model.config, model.geometry.axes[-1]  # the last axis is never coarse
    widths = [c.base_width * 2**level for level in range(c.depth + 1)]
    tile = g.nearest_valid_sizes(near)[1]
    trace = g.trace(tile)
    if trace is None:  # pragma: no cover - nearest_valid_sizes returns valid sizes
        raise RuntimeError(f"tile {tile} is not valid")
    down, up = trace
    px = "px" if c.ndim == 2 else "voxels"
    k = "x".join([str(c.kernel_size)] * c.ndim)
    two = "x".join(["2"] * c.ndim)
    lines = [
        title,
        f"  {c.ndim}D U-Net: {c.in_channels} input channel(s), {c.num_classes} classes, "
        f"depth {c.depth}, widths {'-'.join(map(str, widths))}",
        f"  {c.convs_per_block} x {c.padding} {k} conv "
        f"+ {'' if c.norm == 'none' else c.norm + ' norm + '}ReLU per level, {two} max-pool, "
        f"{two + ' up-convolution' if c.upsample == 'transposed' else c.upsample + ' up-sampling'}"
        f", dropout {c.dropout} at the end of the contracting path",
        f"  convolution layers: {model.count_conv_layers()} (with the up-convolutions and the "
        f"1x1 head)",
        f"  parameters: {model.count_parameters():,}",
        f"  margin: {g.margin} {px} per side (the context of an output tile that starts on "
        f"the {g.alignment} {px} pooling grid)",
        f"  tile {tile} -> output {g.output_size(tile)} {px}; feature-map sizes per level:",
        "    level  width  contracting  expanding",
    ]
    for level in range(c.depth + 1):
        exp = up[c.depth - 1 - level] if level < c.depth else "-"
        lines.append(f"    {level:>5}  {widths[level]:>5}  {down[level]:>11}  {exp!s:>9}")
    sizes = valid_sizes_near(g, near, count)
    listed = "  ".join(
        f"[{n}->{g.output_size(n)}]" if n == tile else f"{n}->{g.output_size(n)}" for n in sizes
    )
    lines.append(f"  valid tile sizes near {near} (input->output): {listed}")
    lines.append(f"  tile strides for seamless tiling: multiples of {g.alignment} {px} (2**depth)")
    for axis, a in enumerate(model.geometry.axes):
        if a.coarse:
            lines.append(
                f"  axis {axis} is coarse for {a.coarse} level(s) (kernel 1, not pooled): margin "
                f"{a.margin}, pooling grid {a.alignment}, valid sizes near {near}: "
                f"{a.nearest_valid_sizes(near)}"
            )
    if flops:
        f = flops_per_output_pixel(model, tile)
        lines.append(
            f"  FLOPs per output pixel at tile {tile}: {f / 1e6:.3f} M "
            f"({f * g.output_size(tile) ** c.ndim / 1e9:.1f} GFLOP per tile)"
        )
    return "\n".join(lines)
