"""Named U-Net architectures. ``UNet.from_preset(name, **overrides)`` builds one.

``ronneberger2015``
    The network of Ronneberger, Fischer & Brox (MICCAI 2015), exactly: one input channel, two
    classes, widths 64-128-256-512-1024, two unpadded 3x3 convolutions + ReLU per level, 2x2
    max-pooling, 2x2 up-convolutions halving the channels, crop-and-concatenate skips, a 1x1
    head; 23 convolution layers, 31,030,658 parameters, 572x572 in -> 388x388 out (margin 92 px),
    dropout 0.5 at the end of the contracting path.
``narrow``
    The same topology at a quarter of the width (16-256; 1.94 M parameters, about 1/16 of the
    arithmetic) with batch normalisation: trains and segments in minutes on a laptop CPU. Batch
    norm in eval mode is pointwise, so tiled inference stays exact.
``narrow3d``
    A 3D U-Net for volumes: depth 3, widths 16-128, unpadded 3x3x3 convolutions, batch norm
    (margin 44 voxels; 132^3 in -> 44^3 out is the smallest tile above 128).
``compact3d``
    The 3D network of the ``cpu3d`` training preset: depth 3, widths 16-128, *same* padded
    3x3x3 convolutions, batch norm, blended tiles. Valid padding would cost 44 voxels of
    context per side, more than many stacks are deep (a 100^3 tile gives 12^3 outputs); same
    padding gives an output per input voxel, and Gaussian-blended overlapping tiles hide the
    zero padding at tile borders. Coarse axes are planned from the voxel spacing at training
    (:mod:`biounet.model.plan`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Preset:
    """A named architecture: a one-line description and the ``UNetConfig`` fields it sets."""

    description: str
    options: dict[str, Any] = field(default_factory=dict)
    #: the default inference tile (network input, px per axis) that suits it on a CPU
    tile: int = 572


PRESETS: dict[str, Preset] = {
    "ronneberger2015": Preset(
        "the paper's network: widths 64..1024, valid convs, dropout 0.5 (31.0 M parameters)",
        dict(
            in_channels=1,
            num_classes=2,
            ndim=2,
            depth=4,
            base_width=64,
            padding="valid",
            norm="none",
            dropout=0.5,
            upsample="transposed",
        ),
        tile=572,
    ),
    "narrow": Preset(
        "the paper's topology at widths 16..256 with batch norm, for CPUs (1.9 M parameters)",
        dict(
            in_channels=1,
            num_classes=2,
            ndim=2,
            depth=4,
            base_width=16,
            padding="valid",
            norm="batch",
            dropout=0.1,
            upsample="transposed",
        ),
        tile=700,
    ),
    "narrow3d": Preset(
        "a 3D U-Net for volumes: depth 3, widths 16..128, valid 3x3x3 convs, batch norm",
        dict(
            in_channels=1,
            num_classes=2,
            ndim=3,
            depth=3,
            base_width=16,
            padding="valid",
            norm="batch",
            dropout=0.1,
            upsample="transposed",
        ),
        tile=132,
    ),
}
PRESETS["compact3d"] = Preset(
    "a 3D U-Net for CPUs: depth 3, widths 16..128, same-padded 3x3x3 convs, batch norm",
    {**PRESETS["narrow3d"].options, "padding": "same"},
    tile=96,
)
