"""Losses for segmentation: the paper's weighted cross-entropy, soft Dice, and their sum.

Shapes: ``logits (N, K, *S)`` float (K classes, 2D or 3D), ``target (N, *S)`` int64 class
indices with ``ignore_index`` (default -1) where unannotated, ``weight (N, *S)`` float per-pixel
weights (the paper's weight map). Ignored pixels contribute nothing, not even to the mean's
denominator.

:func:`probability_cross_entropy` scores probabilities that are already computed (the
whole-image predictions of validation) the same way as the unweighted cross-entropy.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional as F

__all__ = ["dice_ce_loss", "probability_cross_entropy", "soft_dice_loss", "weighted_cross_entropy"]


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


def probability_cross_entropy(
    probs: torch.Tensor,
    target: torch.Tensor,
    *,
    ignore_index: int = -1,
    eps: float = 1e-7,
    reduction: str = "mean",
) -> torch.Tensor:
    """Cross-entropy of class probabilities: ``-log p_{l(x)}(x)`` over the annotated pixels.

    For ``probs = softmax(logits, dim=1)`` this equals :func:`weighted_cross_entropy` without
    weights. Used for the validation loss, from the probabilities of whole-image inference.

    Parameters
    ----------
    probs : Tensor, shape ``(N, K, *S)``
        Class probabilities (each pixel's sum 1). Values below ``eps`` count as ``eps``, so
        that a confidently wrong pixel costs ``-log(eps)`` (16.1 for the default) rather than
        infinity.
    target : Tensor of int64, shape ``(N, *S)``
        Class indices; ``ignore_index`` marks pixels that do not count.
    reduction : {"mean", "sum"}
        The mean over annotated pixels (0 if there are none), or their sum (to pool several
        images: add the sums, divide by the total count of annotated pixels).

    Returns
    -------
    Tensor
        A float64 scalar.

    Examples
    --------
    >>> p = torch.tensor([[[[0.5, 0.75]], [[0.5, 0.25]]]])  # (1, 2, 1, 2)
    >>> round(probability_cross_entropy(p, torch.tensor([[[1, 0]]])).item(), 6)  # ln 2, -ln 3/4
    0.490415
    """
    _check(probs, target)
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    valid = target != ignore_index
    index = torch.where(valid, target, torch.zeros_like(target)).unsqueeze(1)
    p = probs.double().gather(1, index).squeeze(1).clamp(min=eps)
    nll = torch.where(valid, -torch.log(p), torch.zeros_like(p))
    total = nll.sum()
    return total if reduction == "sum" else total / valid.sum().clamp(min=1)
