"""Batch-norm statistics recomputed exactly over many tiles (biounet.train.batchnorm)."""

import torch

from biounet import UNet
from biounet.train.batchnorm import has_batch_norm, recalibrate, recalibrated


def batches(n: int = 5, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(3, 2, 6, 6, generator=g) * (k + 1) + k for k in range(n)]


def test_statistics_are_the_exact_means_over_the_batches() -> None:
    bn = torch.nn.BatchNorm2d(2, momentum=0.1)
    model = torch.nn.Sequential(torch.nn.Dropout(0.5), bn)
    xs = batches()
    assert recalibrate(model, xs, device=torch.device("cpu")) == 5
    means = torch.stack([x.mean(dim=(0, 2, 3)) for x in xs])
    variances = torch.stack([x.transpose(0, 1).reshape(2, -1).var(dim=1) for x in xs])
    # dropout was off: the statistics are those of the inputs themselves
    torch.testing.assert_close(bn.running_mean, means.mean(0))
    torch.testing.assert_close(bn.running_var, variances.mean(0))
    assert bn.momentum == 0.1 and model.training  # settings and mode restored


def test_recalibrated_restores_the_training_statistics_and_needs_batch_norm() -> None:
    net = UNet(depth=1, base_width=2, norm="batch", padding="same").eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = [torch.randn(2, 1, 8, 8) for _ in range(3)]
    with recalibrated(net, x, device=torch.device("cpu")) as n:
        assert n == 3
        changed = [k for k, v in net.state_dict().items() if not torch.equal(v, before[k])]
        assert any("running_mean" in k for k in changed)
        assert not any("weight" in k or "bias" in k for k in changed)
    after = net.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())
    assert not net.training
    assert has_batch_norm(net) and not has_batch_norm(UNet(depth=1, base_width=2))
    assert recalibrate(net, [], device=torch.device("cpu")) == 0  # no batches: untouched
    assert all(torch.equal(net.state_dict()[k], v) for k, v in before.items())
