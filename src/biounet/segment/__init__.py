"""Segmenting files in batches: inputs expanded and sharded, outputs named, written atomically."""

from biounet.segment.files import PredictOptions, expand_inputs, predict_files, shard_of

__all__ = ["PredictOptions", "expand_inputs", "predict_files", "shard_of"]
