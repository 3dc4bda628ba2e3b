"""Metrics of the field on NumPy arrays: pixel scores, instance scores, SEG, ISBI 2012 scores.

One module per concern, each a set of pure functions (numpy in, floats out):

- :mod:`~biounet.metrics.pixel`: confusion matrix, pixel error, IoU and Dice of class maps;
- :mod:`~biounet.metrics.contingency`: the core of the label metrics: checked label pairs and
  the pixel counts of each pair of labels;
- :mod:`~biounet.metrics.instances`: IoU matching, average precision, panoptic quality, SEG;
- :mod:`~biounet.metrics.rand_info`: foreground-restricted V_Rand and V_Info, adapted Rand;
- :mod:`~biounet.metrics.membranes`: membrane masks, their regions and border thinning;
- :mod:`~biounet.metrics.isbi`: the ISBI 2012 scores of a membrane probability map;
- :mod:`~biounet.metrics.warping`: the warping error and its topology errors.

Pixel-level scores come from a confusion matrix summed over a dataset
(:class:`ConfusionMatrix`); instance scores from counts pooled over images
(:class:`InstanceAccumulator`), not means of per-image means.
"""

from biounet.metrics.instances import (
    AP_THRESHOLDS,
    InstanceAccumulator,
    average_precision,
    match_instances,
    merges_and_splits,
    seg_score,
)
from biounet.metrics.isbi import ISBI_THRESHOLDS, isbi_scores
from biounet.metrics.pixel import ConfusionMatrix
from biounet.metrics.rand_info import adapted_rand_error, info_scores, rand_scores
from biounet.metrics.warping import topology_errors, warping_error

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
    "merges_and_splits",
    "rand_scores",
    "seg_score",
    "topology_errors",
    "warping_error",
]
