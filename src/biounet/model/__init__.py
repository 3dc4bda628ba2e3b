"""The U-Net, its building blocks, presets and size arithmetic."""

from biounet.model.geometry import (
    Geometry,
    is_valid_size,
    margin,
    nearest_valid_sizes,
    output_shape,
)
from biounet.model.presets import PRESETS, Preset
from biounet.model.unet import UNet, UNetConfig

__all__ = [
    "PRESETS",
    "Geometry",
    "Preset",
    "UNet",
    "UNetConfig",
    "is_valid_size",
    "margin",
    "nearest_valid_sizes",
    "output_shape",
]
