"""Inference: overlap-tile prediction of whole images, and probabilities turned into objects.

``tiling`` (any tile-wise predictor over an image of any size, knows nothing of U-Nets),
``trained`` (a network with its normalisation and class names), ``predictor`` (``predict``: a
U-Net over a whole image), ``postprocess`` (masks and instance labels from probabilities).
The names below are imported on first use, so that post-processing (numpy and scipy only)
does not load torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from biounet.core.lazy import lazy_exports

if TYPE_CHECKING:
    from biounet.inference.predictor import choose_tile, predict
    from biounet.inference.tiling import tile_apply
    from biounet.inference.trained import TrainedModel

#: the names imported on first use, and their modules
_LAZY = {
    "TrainedModel": "biounet.inference.trained",
    "choose_tile": "biounet.inference.predictor",
    "predict": "biounet.inference.predictor",
    "tile_apply": "biounet.inference.tiling",
}

__all__ = ["TrainedModel", "choose_tile", "predict", "tile_apply"]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
