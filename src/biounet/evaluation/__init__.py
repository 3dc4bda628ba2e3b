"""Evaluation: predictions paired with ground truth, read as each task needs, and scored."""

from biounet.evaluation.scoring import (
    EvalOptions,
    evaluate,
    evaluate_files,
    metric_keys,
    pair_files,
)

__all__ = ["EvalOptions", "evaluate", "evaluate_files", "metric_keys", "pair_files"]
