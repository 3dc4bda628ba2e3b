"""Validation during training: whole validation images segmented, pixel scores and loss pooled."""

from __future__ import annotations

import numpy as np
import torch

from biounet.data.tiles import TrainImage
from biounet.metrics.pixel import ConfusionMatrix
from biounet.model.unet import UNet
from biounet.train.losses import probability_cross_entropy

__all__ = ["HIGHER_IS_BETTER", "improves", "validate"]

#: validation scores where a higher value is better (the others: lower is better)
HIGHER_IS_BETTER = ("iou", "dice")


def validate(
    model: UNet, images: list[TrainImage], num_classes: int, device: torch.device
) -> dict[str, float]:
    """Whole-image overlap-tile inference on ``images``; pixel scores over all of them.

    Returns the scores of :meth:`biounet.metrics.ConfusionMatrix.scores` (``pixel_error``,
    ``iou``, ``dice``, ...) pooled over all images, and ``loss``: the mean cross-entropy of the
    predicted probabilities over all annotated pixels (see
    :func:`biounet.train.losses.probability_cross_entropy`; no weight map, no Dice term).
    """
    from biounet.inference.predictor import predict  # at call time: tests spy on it

    cm = ConfusionMatrix(num_classes)
    nll = 0.0
    for t in images:
        probs = predict(model, t.image, device=device, normalize=False)  # (K, *S) float32
        cm.update(t.classes, probs.argmax(0))
        target = torch.from_numpy(np.asarray(t.classes, np.int64))[None]
        p = torch.from_numpy(np.asarray(probs, np.float32))[None]
        nll += float(probability_cross_entropy(p, target, reduction="sum"))
    scores = cm.scores()
    scores["loss"] = nll / max(int(cm.matrix.sum()), 1)  # over the annotated pixels
    return scores


def improves(metric: str, value: float, best: dict[str, object] | None) -> bool:
    """Whether ``value`` of ``metric`` beats the best so far (``best["value"]``; None: yes)."""
    if best is None:
        return True
    previous = float(best["value"])  # type: ignore[arg-type]
    return value > previous if metric in HIGHER_IS_BETTER else value < previous
