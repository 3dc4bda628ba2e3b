"""Losses for segmentation: the paper's weighted cross-entropy, soft Dice, and their sum.

Shapes: ``logits (N, K, *S)`` float (K classes, 2D or 3D), ``target (N, *S)`` int64 class
indices with ``ignore_index`` (default -1) where unannotated, ``weight (N, *S)`` float per-pixel
weights (the paper's weight map). Ignored pixels contribute nothing, not even to the mean's
denominator.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional as F

__all__ = ["dice_ce_loss", "soft_dice_loss", "weighted_cross_entropy"]


def _check(logits: torch.Tensor, target: torch.Tensor) -> None:
    if logits.ndim < 3 or target.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(
            f"logits (N, K, *S) and target (N, *S) disagree: got {tuple(logits.shape)} and "
            f"{tuple(target.shape)}"
        )


def weighted_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    *,
    ignore_index: int = -1,
) -> torch.Tensor:
    """Pixel-wise softmax cross-entropy weighted per pixel (Ronneberger et al. 2015, eq. 1).

    ``E = sum_x w(x) * -log p_{l(x)}(x) / sum_x [x annotated]``: the weighted sum over annotated
    pixels, divided by their number (so ``w = 1`` gives the usual mean cross-entropy).

    Parameters
    ----------
    logits : Tensor, shape ``(N, K, *S)``
    target : Tensor of int64, shape ``(N, *S)``
        Class indices; ``ignore_index`` marks pixels that do not count.
    weight : Tensor, shape ``(N, *S)``, optional
        Per-pixel weights (default 1).

    Returns
    -------
    Tensor
        A scalar.
    """
    _check(logits, target)
    valid = target != ignore_index
    per_pixel = F.cross_entropy(
        logits, torch.where(valid, target, torch.zeros_like(target)), reduction="none"
    )
    if weight is not None:
        if weight.shape != target.shape:
            raise ValueError(
                f"weight {tuple(weight.shape)} must have target's shape {tuple(target.shape)}"
            )
        per_pixel = per_pixel * weight
    per_pixel = torch.where(valid, per_pixel, torch.zeros_like(per_pixel))
    return per_pixel.sum() / valid.sum().clamp(min=1)


def soft_dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    class_weights: Sequence[float] | torch.Tensor | None = None,
    ignore_index: int = -1,
    include_background: bool = True,
    eps: float = 1.0,
) -> torch.Tensor:
    """Soft Dice loss, multi-class: ``1 - sum_k c_k D_k / sum_k c_k``.

    ``D_k = (2 sum p_k g_k + eps) / (sum p_k + sum g_k + eps)`` over all annotated pixels of the
    batch, with ``p = softmax(logits)`` and ``g`` the one-hot target; ``c_k`` the class weights
    (default 1; the background class is dropped with ``include_background=False``).
    """
    _check(logits, target)
    k = logits.shape[1]
    valid = (target != ignore_index).unsqueeze(1)  # (N, 1, *S)
    probs = torch.softmax(logits, dim=1) * valid
    onehot = F.one_hot(torch.where(valid[:, 0], target, 0), k).movedim(-1, 1) * valid
    dims = (0, *range(2, logits.ndim))
    inter = (probs * onehot).sum(dims)
    total = probs.sum(dims) + onehot.sum(dims)
    dice = (2 * inter + eps) / (total + eps)  # (K,)
    c = (
        torch.ones(k, dtype=dice.dtype, device=dice.device)
        if class_weights is None
        else (torch.as_tensor(class_weights, dtype=dice.dtype, device=dice.device))
    )
    if c.shape != (k,):
        raise ValueError(f"class_weights needs {k} values, got {tuple(c.shape)}")
    if not include_background:
        c = c.clone()
        c[0] = 0
    return 1 - (c * dice).sum() / c.sum()


def dice_ce_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    *,
    ce: float = 1.0,
    dice: float = 1.0,
    class_weights: Sequence[float] | torch.Tensor | None = None,
    ignore_index: int = -1,
) -> torch.Tensor:
    """``ce * weighted_cross_entropy + dice * soft_dice_loss`` (either factor may be 0)."""
    loss = logits.new_zeros(())
    if ce:
        loss = loss + ce * weighted_cross_entropy(logits, target, weight, ignore_index=ignore_index)
    if dice:
        loss = loss + dice * soft_dice_loss(
            logits, target, class_weights=class_weights, ignore_index=ignore_index
        )
    return loss
