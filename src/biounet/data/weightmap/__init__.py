"""Pixel-wise loss weights and separating borders for instance label images (U-Net paper, eq. 2).

Ronneberger et al. (2015) train with a weighted cross entropy whose weight map

    w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))**2 / (2 * sigma**2))

balances the classes (``w_c``) and strongly weights the thin background gaps between touching
cells (the border term), and they insert "separating background labels between touching cells"
into the targets. This package computes both from an integer instance label image, 2D ``(Y, X)``
or 3D ``(Z, Y, X)``: 0 is background (see ``background=``) and every object has its own positive
label; labels need not be consecutive.

- :mod:`biounet.data.weightmap.borders`: :func:`weight_map` (eq. 2),
  :func:`separation_borders` and :func:`with_separation`;
- :mod:`biounet.data.weightmap.nearest`: the distances ``d1``, ``d2`` to the two nearest
  objects, windowed per object (how it is fast and when it is exact);
- :mod:`biounet.data.weightmap.classes`: the class-balancing term ``w_c``;
- :mod:`biounet.data.weightmap.config`: :class:`WeightConfig`, the weights of a training run.

References
----------
O. Ronneberger, P. Fischer, T. Brox. U-Net: Convolutional Networks for Biomedical Image
Segmentation. MICCAI 2015, section 3, eq. 2.
"""

from __future__ import annotations

from biounet.data.weightmap.borders import separation_borders, weight_map, with_separation
from biounet.data.weightmap.classes import balanced_class_weights, class_frequencies
from biounet.data.weightmap.config import WeightConfig

__all__ = [
    "WeightConfig",
    "balanced_class_weights",
    "class_frequencies",
    "separation_borders",
    "weight_map",
    "with_separation",
]
