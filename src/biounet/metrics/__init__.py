"""Metrics of the field on NumPy arrays: pixel scores, ISBI 2012 scores, instances, SEG.

Pixel-level scores come from a confusion matrix summed over a dataset
(:class:`ConfusionMatrix`); instance scores from counts pooled over images
(:class:`InstanceAccumulator`), not means of per-image means.
"""

from biounet.metrics.instances import (
    AP_THRESHOLDS,
    InstanceAccumulator,
    average_precision,
    match_instances,
    seg_score,
)
from biounet.metrics.isbi import (
    ISBI_THRESHOLDS,
    adapted_rand_error,
    info_scores,
    isbi_scores,
    rand_scores,
    topology_errors,
    warping_error,
)
from biounet.metrics.pixel import ConfusionMatrix, pixel_scores

__all__ = [
    "AP_THRESHOLDS",
    "ISBI_THRESHOLDS",
    "ConfusionMatrix",
    "InstanceAccumulator",
    "adapted_rand_error",
    "average_precision",
    "info_scores",
    "isbi_scores",
    "match_instances",
    "pixel_scores",
    "rand_scores",
    "seg_score",
    "topology_errors",
    "warping_error",
]
