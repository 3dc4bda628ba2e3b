"""Segmenting files in batches: inputs expanded and sharded, outputs named, written atomically.

``inputs`` (paths, folders and patterns expanded; shards), ``options`` (what to write, checked
up front), ``outputs`` (output names; :func:`write_outputs` turns probabilities into masks,
instance labels, probabilities and overlays), ``files`` (:func:`predict_files`). The
overlays are drawn by :func:`biounet.reporting.pictures.overlay`, re-exported here.
"""

from biounet.reporting.pictures import overlay
from biounet.segment.files import predict_files
from biounet.segment.inputs import expand_inputs, shard_of
from biounet.segment.options import MASK_FORMATS, OUTPUT_FORMATS, PredictOptions, check_options
from biounet.segment.outputs import Outputs, output_paths, write_outputs

__all__ = [
    "MASK_FORMATS",
    "OUTPUT_FORMATS",
    "Outputs",
    "PredictOptions",
    "check_options",
    "expand_inputs",
    "output_paths",
    "overlay",
    "predict_files",
    "shard_of",
    "write_outputs",
]
