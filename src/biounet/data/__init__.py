"""Training data: file I/O, dataset layouts, annotations, normalisation, tiles, synthetic data.

``biounet.data.synthetic`` (``make_cells``, ``make_membranes``, ...) is the embedded default
data for demos and tests.
"""

from __future__ import annotations

from biounet.core.files import clean_stale_parts
from biounet.core.lazy import lazy_exports
from biounet.data.annotations import IGNORE_INDEX, AnnotationSpec, Target, to_target
from biounet.data.io import ImageFile, read_image, read_image_file, write_image
from biounet.data.layouts import (
    Sample,
    find_dataset,
    load_ctc,
    load_pairs,
    load_stacks,
    to_channels_first,
)
from biounet.data.maps import (
    mask_classes,
    mask_values,
    write_labels,
    write_mask,
    write_probabilities,
)
from biounet.data.normalize import Normalizer

__all__ = [
    "IGNORE_INDEX",
    "AnnotationSpec",
    "ImageFile",
    "Normalizer",
    "Sample",
    "Target",
    "TileDataset",
    "TrainImage",
    "WeightConfig",
    "clean_stale_parts",
    "find_dataset",
    "load_ctc",
    "load_pairs",
    "load_stacks",
    "make_cells",
    "make_membranes",
    "mask_classes",
    "mask_values",
    "prepare",
    "read_image",
    "read_image_file",
    "to_channels_first",
    "to_target",
    "write_image",
    "write_labels",
    "write_mask",
    "write_probabilities",
]

_LAZY = {
    "TileDataset": "biounet.data.tiles",
    "TrainImage": "biounet.data.tiles",
    "WeightConfig": "biounet.data.weightmap",
    "prepare": "biounet.data.tiles",
    "make_cells": "biounet.data.synthetic",
    "make_membranes": "biounet.data.synthetic",
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
