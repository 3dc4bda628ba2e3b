"""The summary of an evaluation: the means over the images between the task's set-level scores.

Every task's summary has one layout: ``images`` (their number), the entries the task puts
first (membranes: the stack figure), ``mean_m`` of every row metric ``m``, then the entries it
puts last (cells: the pooled instance scores; the ``pooled_*`` scores of one confusion matrix
of all pixels).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from biounet.metrics import ConfusionMatrix

__all__ = ["POOLED_KEYS", "pooled_scores", "row_means", "summarize"]

#: the scores of the pooled confusion matrix that every task reports
POOLED_KEYS = ("pixel_error", "iou", "dice")


def row_means(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """``mean_m``, the mean over the rows of every metric ``m`` of the first row.

    The image name and the thresholds (``*_threshold``) have no mean; a row whose ``m`` is
    NaN (such as SEG without reference objects) or not a number is left out of ``mean_m``,
    which is NaN when no row is left.
    """
    means: dict[str, float] = {}
    for key in rows[0] if rows else {}:
        if key == "image" or key.endswith("_threshold"):
            continue
        vals = [r[key] for r in rows if isinstance(r[key], int | float) and not math.isnan(r[key])]
        means[f"mean_{key}"] = float(np.mean(vals)) if vals else float("nan")
    return means


def pooled_scores(total: ConfusionMatrix, keys: Sequence[str] = POOLED_KEYS) -> dict[str, float]:
    """``pooled_m`` for each ``m`` of ``keys``: the scores of the confusion matrix of all pixels."""
    scores = total.scores()
    return {f"pooled_{m}": scores[m] for m in keys}


def summarize(
    rows: Sequence[Mapping[str, Any]],
    *,
    first: Mapping[str, Any] | None = None,
    last: Mapping[str, Any],
) -> dict[str, Any]:
    """The summary of ``rows``: ``images``, then ``first``, the row means, then ``last``.

    Parameters
    ----------
    rows : sequence of dict
        The scores of each image, ``image`` and the task's metrics.
    first, last : dict, optional
        The task's set-level scores, before and after the means.

    Returns
    -------
    dict of str to Any
        In that order (it is the order of the report's columns).
    """
    return {"images": len(rows), **(first or {}), **row_means(rows), **last}
