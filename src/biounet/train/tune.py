"""The instance rule chosen on the validation images at the end of a run (seed depth, size).

The rule derived from the training objects' sizes (:meth:`InstanceRule.from_sizes`) uses
fractions measured on a few data sets; how deep a seed must be depends on how sharply a
particular network marks the boundaries of particular cells. At the end of a run with
instance annotations and validation images, the fractions are chosen among a small grid by
AP@0.5 on those images, with ``best.pt``'s network, and the winner is stored in ``best.pt``.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import torch

from biounet.checkpoint import instance_entry_for, load, update_checkpoint
from biounet.data.objects import ObjectSizes
from biounet.data.tiles import TrainImage
from biounet.inference.postprocess.rule import H_FRACTION, MIN_SIZE_FRACTION, InstanceRule
from biounet.metrics.instances import InstanceAccumulator
from biounet.model.unet import UNet

log = logging.getLogger(__name__)

__all__ = ["H_FRACTIONS", "MIN_SIZE_FRACTIONS", "THRESHOLDS", "tune_best", "tune_rule"]

#: the seed depths tried, as fractions of the training objects' median radius
H_FRACTIONS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.8)
#: the smallest objects kept, as fractions of the 5th-percentile training object area
MIN_SIZE_FRACTIONS = (0.25, 0.5, 1.0)
#: the foreground thresholds tried (the first is the default)
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


def tune_rule(
    model: UNet,
    images: list[TrainImage],
    sizes: ObjectSizes | None,
    target: str,
    device: torch.device,
    *,
    scale: float = 1.0,
    spacing: tuple[float, ...] | None = None,
) -> tuple[InstanceRule, dict[str, float]] | None:
    """The rule of the best AP@0.5 on ``images`` among the grid, and the scores it was chosen by.

    Parameters
    ----------
    model : UNet
        The network to predict with (``best.pt``'s), in eval mode.
    images : list of TrainImage
        Validation images (normalised, on their own grid) with their true objects.
    sizes : ObjectSizes or None
        The training objects' sizes; None: nothing to tune (returns None).
    target : {"two_class", "three_class"}
    device : torch.device
    scale : float
        The factor the network's training images were resampled by.
    spacing : tuple of float, optional
        The voxel spacing relative to the finest axis, for the rules' distances
        (:attr:`InstanceRule.spacing`).

    Returns
    -------
    (InstanceRule, dict) or None
        The chosen rule, its ``source`` naming the choice, and ``{"ap_50": chosen,
        "ap_50_sizes": the rule from the sizes alone}``; None without sizes or true objects.
        A tie keeps the default fractions (they are tried first).
    """
    from biounet.inference.predictor import predict

    pairs = [
        (t.instances, predict(model, t.image, device=device, normalize=False, scale=scale))
        for t in images
        if t.instances is not None
    ]
    if sizes is None or not pairs:
        return None
    known = sizes

    def ap_of(f: float, m: float, t: float) -> tuple[float, InstanceRule]:
        rule = InstanceRule.from_sizes(
            known, target, h_fraction=f, min_size_fraction=m, threshold=t
        )
        rule = replace(rule, spacing=spacing)
        acc = InstanceAccumulator(thresholds=(0.5,))
        for truth, probs in pairs:
            acc.update(truth, rule(probs))
        return float(acc.scores()["ap_50"]), rule

    # one setting at a time, each with the best of those before it: the foreground
    # threshold, the seed depth, the smallest object (5 + 6 + 2 = 13 evaluations, not 105)
    f0, m0, t0 = H_FRACTION[target], MIN_SIZE_FRACTION, THRESHOLDS[0]
    first = ap_of(f0, m0, t0)
    best, best_f, best_t = first, f0, t0
    for t in THRESHOLDS[1:]:
        if (tried := ap_of(f0, m0, t))[0] > best[0]:
            best, best_t = tried, t
    for f in H_FRACTIONS:
        if f != f0 and (tried := ap_of(f, m0, best_t))[0] > best[0]:
            best, best_f = tried, f
    for m in MIN_SIZE_FRACTIONS:
        if m != m0 and (tried := ap_of(best_f, m, best_t))[0] > best[0]:
            best = tried
    ap, rule = best
    n = len(pairs)
    rule = replace(rule, source=f"{rule.source}; chosen on {n} validation image(s), AP@0.5 "
                   f"{ap:.3f} (the default fractions: {first[0]:.3f})")  # fmt: skip
    log.info("instance rule chosen on the validation images: %s", rule.describe())
    return rule, {"ap_50": ap, "ap_50_sizes": first[0]}


def tune_best(
    best: Path,
    images: list[TrainImage],
    sizes: ObjectSizes | None,
    target: str,
    device: torch.device,
    spacing: tuple[float, ...] | None = None,
) -> InstanceRule | None:
    """Choose the rule with the network of checkpoint ``best`` and store it there.

    Returns the chosen rule (None: nothing to tune, ``best`` unchanged). The checkpoint is
    rewritten atomically with its ``instances`` entry replaced; everything else stays.
    """
    model = load(best, device=device)
    tuned = tune_rule(model.net, images, sizes, target, device, scale=model.scale, spacing=spacing)
    if tuned is None:
        return None
    rule, scores = tuned
    update_checkpoint(best, instances=instance_entry_for(rule, sizes), rule_choice=scores)
    return rule
