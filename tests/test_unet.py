import itertools
import math

import pytest
import torch

from biounet import UNet, UNetConfig
from biounet.model import PRESETS

from .conftest import small_net

SHAPES = [
    # (options, input spatial shape, output spatial shape)
    (dict(ndim=2, depth=1, padding="valid"), (20, 36), (4, 20)),
    (dict(ndim=2, depth=2, padding="valid"), (44, 60), (4, 20)),
    (dict(ndim=2, depth=3, padding="valid"), (92, 100), (4, 12)),
    (dict(ndim=2, depth=2, padding="same"), (12, 40), (12, 40)),
    (dict(ndim=2, depth=3, padding="same"), (8, 24), (8, 24)),
    (dict(ndim=2, depth=2, padding="valid", upsample="nearest"), (44, 48), (4, 8)),
    (dict(ndim=2, depth=2, padding="valid", upsample="linear"), (52, 68), (6, 22)),
    (dict(ndim=2, depth=2, padding="same", upsample="linear"), (16, 20), (16, 20)),
    # 1x1 convolutions: linear up-sampling still drops its border pixel per side
    (dict(ndim=2, depth=1, padding="valid", upsample="linear", kernel_size=1), (8, 12), (6, 10)),
    (dict(ndim=2, depth=2, padding="valid", upsample="linear", kernel_size=1), (16, 24), (10, 18)),
    (dict(ndim=2, depth=2, norm="batch"), (44, 44), (4, 4)),
    (dict(ndim=2, depth=2, norm="instance"), (44, 44), (4, 4)),
    (dict(ndim=2, depth=2, norm="group", base_width=8), (44, 44), (4, 4)),
    (dict(ndim=3, depth=1, padding="valid"), (20, 22, 24), (4, 6, 8)),
    (dict(ndim=3, depth=2, padding="valid"), (44, 44, 52), (4, 4, 12)),
    (dict(ndim=3, depth=2, padding="same"), (4, 8, 12), (4, 8, 12)),
    (
        dict(ndim=3, depth=1, padding="valid", upsample="nearest", norm="batch"),
        (20, 20, 20),
        (4, 4, 4),
    ),
]


@pytest.mark.parametrize(("options", "shape_in", "shape_out"), SHAPES)
def test_forward_shape_table(options: dict, shape_in: tuple, shape_out: tuple) -> None:
    net = small_net(in_channels=2, num_classes=3, **options)
    assert net.output_shape(shape_in) == shape_out
    y = net(torch.randn(2, 2, *shape_in))
    assert y.shape == (2, 3, *shape_out)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize(("options", "shape_in", "shape_out"), SHAPES[:4] + SHAPES[13:15])
def test_every_parameter_receives_a_gradient(
    options: dict, shape_in: tuple, shape_out: tuple
) -> None:
    net = small_net(in_channels=1, num_classes=2, dropout=0.3, **options).train()
    y = net(torch.randn(2, 1, *shape_in))
    y.square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_paper_preset_is_the_paper_network() -> None:
    net = UNet.from_preset("ronneberger2015")
    c = net.config
    assert (c.in_channels, c.num_classes, c.ndim, c.depth, c.base_width) == (1, 2, 2, 4, 64)
    assert (c.padding, c.norm, c.upsample, c.dropout) == ("valid", "none", "transposed", 0.5)
    assert net.count_parameters() == 31_030_658
    assert net.count_conv_layers() == 23
    assert sum(isinstance(m, torch.nn.ConvTranspose2d) for m in net.modules()) == 4
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in net.modules()) == 4
    widths = sorted({m.out_channels for m in net.modules() if isinstance(m, torch.nn.Conv2d)})
    assert widths == [2, 64, 128, 256, 512, 1024]
    dropouts = [m for m in net.modules() if isinstance(m, torch.nn.Dropout)]
    assert len(dropouts) == 1 and dropouts[0].p == 0.5
    assert net.output_shape((572, 572)) == (388, 388)


@pytest.mark.slow
def test_paper_preset_forward_572_to_388() -> None:
    net = UNet.from_preset("ronneberger2015").eval()
    with torch.inference_mode():
        y = net(torch.randn(1, 1, 572, 572))
    assert y.shape == (1, 2, 388, 388)


def test_paper_parameter_count_by_hand() -> None:
    # 3x3 convs (weights + biases), 2x2 up-convs, the 1x1 head: counted independently
    widths = [64, 128, 256, 512, 1024]
    conv = lambda i, o, k: i * o * k * k + o  # noqa: E731
    total = conv(1, 64, 3) + conv(64, 64, 3)
    for a, b in itertools.pairwise(widths):
        total += conv(a, b, 3) + conv(b, b, 3)
    for a, b in itertools.pairwise(widths[::-1]):
        total += conv(a, b, 2) + conv(a, b, 3) + conv(b, b, 3)  # up-conv, then 2b -> b, b -> b
    total += conv(64, 2, 1)
    assert total == 31_030_658 == UNet.from_preset("ronneberger2015").count_parameters()


def test_he_initialisation() -> None:
    net = UNet(depth=2, base_width=32)
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3):
            fan_in = m.in_channels * 9
            assert m.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.15)
            assert (m.bias == 0).all()
        if isinstance(m, torch.nn.ConvTranspose2d):
            assert m.weight.std().item() == pytest.approx(math.sqrt(2 / m.in_channels), rel=0.15)


def test_presets_build_and_are_documented() -> None:
    from biounet.model import presets

    for name, preset in PRESETS.items():
        net = UNet.from_preset(name)
        assert net.margin > 0
        assert net.is_valid_input((preset.tile,) * net.ndim), name
        assert name in (presets.__doc__ or "")
    assert UNet.from_preset("narrow3d").ndim == 3


def test_preset_overrides_and_did_you_mean() -> None:
    net = UNet.from_preset("ronneberger2015", in_channels=3, num_classes=4, padding="same")
    assert (net.config.in_channels, net.config.num_classes, net.config.padding) == (3, 4, "same")
    with pytest.raises(
        ValueError, match=r"unknown preset 'ronneberger': did you mean 'ronneberger2015'"
    ):
        UNet.from_preset("ronneberger")
    with pytest.raises(
        ValueError, match=r"unknown U-Net option 'num_class': did you mean 'num_classes'"
    ):
        UNet.from_preset("narrow", num_class=3)
    with pytest.raises(ValueError, match=r"unknown norm 'bach': did you mean 'batch'"):
        UNet(norm="bach")


def test_config_round_trip() -> None:
    net = UNet.from_preset("narrow", num_classes=5)
    again = UNet.from_config(net.config.to_dict())
    assert again.config == net.config
    assert UNetConfig.from_dict(net.config.to_dict()) == net.config
    with pytest.raises(ValueError, match="did you mean 'depth'"):
        UNetConfig.from_dict({"dept": 3})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(ndim=4), "ndim must be 2"),
        (dict(in_channels=0), "in_channels must be >= 1, got 0"),
        (dict(dropout=1.0), r"dropout must be in \[0, 1\)"),
        (dict(depth=-1), "depth must be >= 0, got -1"),
    ],
)
def test_bad_configuration_messages(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        UNet(**kwargs)


def test_forward_errors_are_clear() -> None:
    net = small_net(num_classes=2)
    with pytest.raises(
        ValueError, match=r"expected input of shape \(N, 1, S0, S1\).*got \(1, 3, 44, 44\)"
    ):
        net(torch.zeros(1, 3, 44, 44))
    with pytest.raises(ValueError, match=r"got \(44, 44\)"):
        net(torch.zeros(44, 44))
    with pytest.raises(
        ValueError, match=r"axis 1 of shape \(44, 45\).*nearest valid sizes are 44 or 48"
    ):
        net(torch.zeros(1, 1, 44, 45))


def test_batch_norm_eval_is_pointwise_and_channels_last_matches() -> None:
    net = small_net(norm="batch")
    x = torch.randn(1, 1, 60, 60)
    y = net(x)
    y_cl = net.to(memory_format=torch.channels_last)(
        x.contiguous(memory_format=torch.channels_last)
    )
    torch.testing.assert_close(y, y_cl, rtol=1e-5, atol=1e-5)
