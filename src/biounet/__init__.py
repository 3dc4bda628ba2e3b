"""biounet: U-Net (Ronneberger, Fischer & Brox, MICCAI 2015) for biomedical image segmentation.

The public API, imported lazily so that ``import biounet`` (and the ``biounet`` command) start
fast; torch is loaded on first use of a name that needs it.

>>> import biounet
>>> net = biounet.UNet.from_preset("ronneberger2015")
>>> net.output_shape((572, 572))
(388, 388)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from biounet._version import __version__

if TYPE_CHECKING:
    from biounet.checkpoint import load
    from biounet.config.schema import build_config, dump_config, resume_config
    from biounet.data.io import read_image
    from biounet.data.weightmap import weight_map
    from biounet.evaluation.scoring import EvalOptions, evaluate
    from biounet.inference.predictor import predict
    from biounet.inference.tiling import tile_apply
    from biounet.model import PRESETS, Geometry, UNet, UNetConfig
    from biounet.train.loop import fit

_LAZY = {
    "UNet": "biounet.model.unet",
    "UNetConfig": "biounet.model.unet",
    "Geometry": "biounet.model.geometry",
    "PRESETS": "biounet.model.presets",
    "predict": "biounet.inference.predictor",
    "fit": "biounet.train.loop",
    "load": "biounet.checkpoint",
    "tile_apply": "biounet.inference.tiling",
    "weight_map": "biounet.data.weightmap",
    "build_config": "biounet.config.schema",
    "dump_config": "biounet.config.schema",
    "resume_config": "biounet.config.schema",
    "read_image": "biounet.data.io",
    "evaluate": "biounet.evaluation.scoring",
    "EvalOptions": "biounet.evaluation.scoring",
}

__all__ = [
    "PRESETS",
    "EvalOptions",
    "Geometry",
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


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'biounet' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
