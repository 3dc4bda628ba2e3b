"""Metrics of the field on NumPy arrays: pixel scores, ISBI 2012 scores, instances, SEG."""

from .pixel import ConfusionMatrix, pixel_scores

__all__ = ["ConfusionMatrix", "pixel_scores"]
