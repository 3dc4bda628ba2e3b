"""Plain-language advice from scores: when a model looks under-trained, say so and what to do."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["OBJECTS_PER_TRUE", "UNDER_TRAINED", "under_trained"]

#: below these a model is called under-trained: AP@0.5 (cells) and IoU (the other tasks)
UNDER_TRAINED = {"ap_50": 0.5, "iou": 0.5}
#: predicted objects per true object outside this range are an implausible count
OBJECTS_PER_TRUE = (0.5, 2.0)


def under_trained(
    task: str, rows: Sequence[Mapping[str, Any]], summary: Mapping[str, Any]
) -> str | None:
    """Why the scores say the model is under-trained, or None when they do not.

    Cells: far too many or too few objects (outside 0.5-2 predicted per true object, pooled
    over the images) or AP@0.5 below 0.5; other tasks: the pooled IoU below 0.5. A
    well-trained U-Net on the data it was made for clears these easily; below them the usual
    cause is too short a training run.

    >>> under_trained("cells", [{"objects": 83, "found": 4000}], {"ap_50": 0.02})
    'found 4000 objects for 83 true ones, AP@0.5 0.02'
    >>> under_trained("cells", [{"objects": 80, "found": 84}], {"ap_50": 0.9}) is None
    True
    """
    reasons = []
    if task == "cells":
        true = sum(int(r.get("objects", 0)) for r in rows)
        found = sum(int(r.get("found", 0)) for r in rows)
        low, high = OBJECTS_PER_TRUE
        if true and not low <= found / true <= high:
            reasons.append(f"found {found} objects for {true} true ones")
        ap = summary.get("ap_50")
        if isinstance(ap, float) and ap < UNDER_TRAINED["ap_50"]:
            reasons.append(f"AP@0.5 {ap:.2f}")
    else:
        iou = summary.get("pooled_iou")
        if isinstance(iou, float) and iou < UNDER_TRAINED["iou"]:
            reasons.append(f"IoU {iou:.2f}")
    return ", ".join(reasons) or None
