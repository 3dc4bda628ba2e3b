"""Validation during training: whole validation images segmented, scored as the task asks.

Pixel scores (IoU, Dice, pixel error) and the validation loss always; with instance
annotations also the instance scores (AP@0.5, F1@0.5) of the objects that ``predict
--instances`` makes of each whole image, by the run's instance rule, so that ``best.pt`` is
chosen by what the user asked for.
"""

from __future__ import annotations

import numpy as np
import torch

from biounet.data.tiles import TrainImage
from biounet.inference.postprocess.rule import InstanceRule
from biounet.metrics.instances import InstanceAccumulator
from biounet.metrics.pixel import ConfusionMatrix
from biounet.model.unet import UNet
from biounet.reporting.tensorboard import PICTURES, picture
from biounet.train.losses import probability_cross_entropy

__all__ = ["HIGHER_IS_BETTER", "improves", "validate"]

#: validation scores where a higher value is better (the others: lower is better)
HIGHER_IS_BETTER = ("iou", "dice", "ap_50", "f1")


def validate(
    model: UNet,
    images: list[TrainImage],
    num_classes: int,
    device: torch.device,
    *,
    instances: InstanceRule | None = None,
    scale: float = 1.0,
    pictures: list[tuple[str, np.ndarray]] | None = None,
) -> dict[str, float]:
    """Whole-image overlap-tile inference on ``images``; scores pooled over all of them.

    Returns the scores of :meth:`biounet.metrics.ConfusionMatrix.scores` (``pixel_error``,
    ``iou``, ``dice``, ...) pooled over all images, and ``loss``: the mean cross-entropy of the
    predicted probabilities over all annotated pixels (see
    :func:`biounet.train.losses.probability_cross_entropy`; no weight map, no Dice term). With
    ``instances`` (the rule that turns probabilities into objects) and images that carry their
    true objects, also ``ap_50`` and ``f1``: objects matched at IoU >= 0.5, counts pooled over
    the images (:class:`~biounet.metrics.InstanceAccumulator`). ``scale``: the factor the
    training images were resampled by; the validation images keep their own grid and are
    resampled by ``predict``, as a user's images are. ``pictures``: a list that gets
    ``(name, picture)`` of the first :data:`~biounet.reporting.tensorboard.PICTURES` images
    (:func:`~biounet.reporting.tensorboard.picture`, for TensorBoard).
    """
    from biounet.inference.predictor import predict  # at call time: tests spy on it

    cm = ConfusionMatrix(num_classes)
    objects = InstanceAccumulator()
    nll = 0.0
    for t in images:
        # (K, *S) float32, on the image's own grid
        probs = predict(model, t.image, device=device, normalize=False, scale=scale)
        cm.update(t.classes, probs.argmax(0))
        if pictures is not None and len(pictures) < PICTURES:
            pictures.append((t.name, picture(t.image, t.classes, probs)))
        target = torch.from_numpy(np.asarray(t.classes, np.int64))[None]
        p = torch.from_numpy(np.asarray(probs, np.float32))[None]
        nll += float(probability_cross_entropy(p, target, reduction="sum"))
        if instances is not None and t.instances is not None:
            objects.update(t.instances, instances(probs))
    scores = cm.scores()
    scores["loss"] = nll / max(int(cm.matrix.sum()), 1)  # over the annotated pixels
    if objects.n_images:
        counts = objects.scores()
        scores["ap_50"], scores["f1"] = counts["ap_50"], counts["f1"]
    return scores


def improves(metric: str, value: float, best: dict[str, object] | None) -> bool:
    """Whether ``value`` of ``metric`` beats the best so far (``best["value"]``; None: yes)."""
    if best is None:
        return True
    previous = float(best["value"])  # type: ignore[arg-type]
    return value > previous if metric in HIGHER_IS_BETTER else value < previous
