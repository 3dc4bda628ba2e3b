"""biounet: U-Net (Ronneberger, Fischer & Brox, MICCAI 2015) for biomedical image segmentation.

The public API, imported lazily so that ``import biounet`` (and the ``biounet`` command) start
fast; torch is loaded on first use of a name that needs it.

>>> import biounet
>>> net = biounet.UNet.from_preset("ronneberger2015")
>>> net.output_shape((572, 572))
(388, 388)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from biounet._version import __version__
from biounet.core.lazy import lazy_exports

if TYPE_CHECKING:
    from biounet.checkpoint import load
    from biounet.config import build_config, dump_config, resume_config
    from biounet.data.io import read_image
    from biounet.data.weightmap import weight_map
    from biounet.evaluation import EvalOptions, evaluate
    from biounet.inference import TrainedModel, predict, tile_apply
    from biounet.model import PRESETS, Geometry, UNet, UNetConfig
    from biounet.train import TrainResult, fit

#: each public name and the module it comes from, imported on first use
_LAZY = {
    "UNet": "biounet.model",
    "UNetConfig": "biounet.model",
    "Geometry": "biounet.model",
    "PRESETS": "biounet.model",
    "predict": "biounet.inference",
    "tile_apply": "biounet.inference",
    "TrainedModel": "biounet.inference",
    "fit": "biounet.train",
    "TrainResult": "biounet.train",
    "load": "biounet.checkpoint",
    "weight_map": "biounet.data.weightmap",
    "build_config": "biounet.config",
    "dump_config": "biounet.config",
    "resume_config": "biounet.config",
    "read_image": "biounet.data.io",
    "evaluate": "biounet.evaluation",
    "EvalOptions": "biounet.evaluation",
}

__all__ = [
    "PRESETS",
    "EvalOptions",
    "Geometry",
    "TrainResult",
    "TrainedModel",
    "UNet",
    "UNetConfig",
    "__version__",
    "build_config",
    "dump_config",
    "evaluate",
    "fit",
    "load",
    "predict",
    "read_image",
    "resume_config",
    "tile_apply",
    "weight_map",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
