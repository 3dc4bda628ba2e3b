import math

import pytest
import torch

from biounet.train.losses import (
    dice_ce_loss,
    probability_cross_entropy,
    soft_dice_loss,
    weighted_cross_entropy,
)


def test_weighted_ce_by_hand() -> None:
    # two pixels, two classes: logits (0, 0) and (ln 3, 0); targets 1 and 0; weights 2 and 1
    logits = torch.tensor([[[[0.0, math.log(3.0)]], [[0.0, 0.0]]]])  # (1, 2, 1, 2)
    target = torch.tensor([[[1, 0]]])
    weight = torch.tensor([[[2.0, 1.0]]])
    # -log p: pixel 0 has p1 = 1/2; pixel 1 has p0 = 3/4
    expected = (2 * math.log(2) + 1 * -math.log(0.75)) / 2
    assert weighted_cross_entropy(logits, target, weight).item() == pytest.approx(
        expected, rel=1e-6
    )
    unweighted = (math.log(2) - math.log(0.75)) / 2
    assert weighted_cross_entropy(logits, target).item() == pytest.approx(unweighted, rel=1e-6)


def test_ignored_pixels_do_not_count() -> None:
    logits = torch.randn(2, 3, 4, 5)
    target = torch.randint(0, 3, (2, 4, 5))
    sparse = target.clone()
    sparse[:, :2] = -1
    a = weighted_cross_entropy(logits, sparse)
    b = torch.nn.functional.cross_entropy(logits[:, :, 2:], target[:, 2:])
    assert a.item() == pytest.approx(b.item(), rel=1e-6)
    assert weighted_cross_entropy(logits, torch.full_like(target, -1)).item() == 0.0


def test_soft_dice_by_hand() -> None:
    # one pixel of class 0 predicted with p = (0.8, 0.2), one of class 1 with p = (0.4, 0.6)
    logits = torch.log(torch.tensor([[[0.8, 0.4]], [[0.2, 0.6]]]))[None]  # (1, 2, 1, 2)
    target = torch.tensor([[[0, 1]]])
    d0 = (2 * 0.8 + 1) / (0.8 + 0.4 + 1 + 1)
    d1 = (2 * 0.6 + 1) / (0.2 + 0.6 + 1 + 1)
    assert soft_dice_loss(logits, target).item() == pytest.approx(1 - (d0 + d1) / 2, rel=1e-6)
    weighted = 1 - (1 * d0 + 3 * d1) / 4
    assert soft_dice_loss(logits, target, class_weights=[1, 3]).item() == pytest.approx(
        weighted, rel=1e-6
    )
    assert soft_dice_loss(logits, target, include_background=False).item() == pytest.approx(
        1 - d1, rel=1e-6
    )


def test_perfect_prediction_has_zero_dice_loss() -> None:
    target = torch.randint(0, 3, (2, 6, 7, 5))
    logits = 50 * torch.nn.functional.one_hot(target, 3).movedim(-1, 1).double()
    assert soft_dice_loss(logits, target, eps=0).item() == pytest.approx(0, abs=1e-9)


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 2, 3, 4, 3)])
def test_gradcheck(shape) -> None:
    logits = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, shape[1], (shape[0], *shape[2:]))
    target.view(-1)[::5] = -1
    weight = torch.rand(target.shape, dtype=torch.float64) + 0.5
    assert torch.autograd.gradcheck(lambda x: weighted_cross_entropy(x, target, weight), (logits,))
    assert torch.autograd.gradcheck(
        lambda x: soft_dice_loss(x, target, class_weights=[1, 2, 3][: shape[1]]), (logits,)
    )
    assert torch.autograd.gradcheck(lambda x: dice_ce_loss(x, target, weight), (logits,))


def test_sum_of_both() -> None:
    logits = torch.randn(2, 2, 8, 8)
    target = torch.randint(0, 2, (2, 8, 8))
    w = torch.rand(2, 8, 8)
    total = dice_ce_loss(logits, target, w, ce=1.0, dice=0.5)
    parts = weighted_cross_entropy(logits, target, w) + 0.5 * soft_dice_loss(logits, target)
    assert total.item() == pytest.approx(parts.item(), rel=1e-6)


def test_shape_errors() -> None:
    with pytest.raises(ValueError, match=r"logits \(N, K, \*S\) and target \(N, \*S\) disagree"):
        weighted_cross_entropy(torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="weight .* must have target's shape"):
        weighted_cross_entropy(
            torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long), torch.ones(4, 4)
        )
    with pytest.raises(ValueError, match="class_weights needs 2 values"):
        soft_dice_loss(
            torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long), class_weights=[1, 2, 3]
        )


def test_probability_cross_entropy_by_hand() -> None:
    # pixel 0 is class 1 with p = 1/2, pixel 1 class 0 with p = 3/4, pixel 2 ignored
    probs = torch.tensor([[[[0.5, 0.75, 0.0]], [[0.5, 0.25, 1.0]]]])  # (1, 2, 1, 3)
    target = torch.tensor([[[1, 0, -1]]])
    expected = (math.log(2) - math.log(0.75)) / 2
    assert probability_cross_entropy(probs, target).item() == pytest.approx(expected, rel=1e-12)
    total = probability_cross_entropy(probs, target, reduction="sum").item()
    assert total == pytest.approx(2 * expected, rel=1e-12)
    # a probability of 0 for the true class costs -log(eps), not infinity
    assert probability_cross_entropy(
        probs, torch.tensor([[[1, 0, 0]]]), reduction="sum"
    ).item() == (pytest.approx(2 * expected - math.log(1e-7), rel=1e-9))
    assert probability_cross_entropy(probs, torch.full_like(target, -1)).item() == 0.0
    with pytest.raises(ValueError, match="reduction must be 'mean' or 'sum'"):
        probability_cross_entropy(probs, target, reduction="none")


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 2, 3, 4, 3)])
def test_probability_cross_entropy_of_softmax_is_the_unweighted_loss(shape) -> None:
    logits = torch.randn(*shape)
    target = torch.randint(0, shape[1], (shape[0], *shape[2:]))
    target.view(-1)[::3] = -1
    probs = torch.softmax(logits, dim=1)
    assert probability_cross_entropy(probs, target).item() == pytest.approx(
        weighted_cross_entropy(logits, target).item(), rel=1e-5
    )
