"""Inference: overlap-tile prediction of whole images, and probabilities turned into objects.

``tiling`` (any tile-wise predictor over an image of any size, knows nothing of U-Nets),
``trained`` (a network with its normalisation and class names), ``predictor`` (``predict``: a
U-Net over a whole image), ``postprocess`` (masks and instance labels from probabilities).
"""

from biounet.inference.predictor import choose_tile, predict
from biounet.inference.tiling import tile_apply
from biounet.inference.trained import TrainedModel

__all__ = ["TrainedModel", "choose_tile", "predict", "tile_apply"]
