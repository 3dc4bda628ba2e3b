import numpy as np
import pytest
import torch

from biounet.model import Geometry, UNet, is_valid_size, margin, nearest_valid_sizes, output_shape

from .conftest import small_net


def test_paper_numbers() -> None:
    g = Geometry(depth=4)
    assert g.output_size(572) == 388
    assert g.margin == 92
    assert g.trace(572) == ([568, 280, 136, 64, 28], [52, 100, 196, 388])
    assert g.alignment == 16
    assert margin(depth=4) == 92


@pytest.mark.parametrize("depth", [0, 1, 2, 3, 4, 5])
def test_valid_sizes_follow_closed_form(depth: int) -> None:
    # two 3x3 convs per level: valid inputs are 2**d * k + 4 * (2**d - 1), margin 12 * 2**d - 8
    g = Geometry(depth=depth)
    a = 2**depth
    valid = g.valid_sizes(1, 40 * a)
    assert valid
    assert all((n - 4 * (a - 1)) % a == 0 for n in valid)
    assert [valid[i + 1] - valid[i] for i in range(len(valid) - 1)] == [a] * (len(valid) - 1)
    for n in valid:
        assert n - g.output_size(n) == 2 * g.margin == 2 * (6 * a - 4)


@pytest.mark.parametrize(
    ("kwargs", "n", "expected"),
    [
        (dict(depth=4), 572, 388),
        (dict(depth=4), 188, 4),
        (dict(depth=1), 20, 4),
        (dict(depth=2, padding="same"), 12, 12),
        (dict(depth=3, padding="same"), 8, 8),
        (dict(depth=2, upsample="nearest"), 44, 4),
        (dict(depth=2, upsample="linear"), 52, 6),
        (dict(depth=2, convs_per_block=1), 22, 2),
        (dict(depth=2, kernel_size=5), 88, 8),
    ],
)
def test_output_size_table(kwargs: dict, n: int, expected: int) -> None:
    assert Geometry(**kwargs).output_size(n) == expected


@pytest.mark.parametrize(
    ("kwargs", "n", "below", "above"),
    [
        (dict(depth=4), 570, 556, 572),
        (dict(depth=4), 572, 572, 572),
        (dict(depth=4), 10, None, 188),
        (dict(depth=3, padding="same"), 30, 24, 32),
        (dict(depth=2), 45, 44, 48),
    ],
)
def test_nearest_valid_sizes(kwargs: dict, n: int, below: int | None, above: int) -> None:
    assert Geometry(**kwargs).nearest_valid_sizes(n) == (below, above)
    assert nearest_valid_sizes(n, **kwargs) == (below, above)


def test_invalid_size_names_the_nearest_valid_sizes() -> None:
    with pytest.raises(
        ValueError, match=r"size 570 px is not valid.*nearest valid sizes are 556 or 572"
    ):
        Geometry(depth=4).output_size(570)
    with pytest.raises(ValueError, match=r"axis 1 of shape \(572, 571\).*556 or 572"):
        output_shape((572, 571), depth=4)
    with pytest.raises(ValueError, match=r"multiple of 8.*24 or 32"):
        Geometry(depth=3, padding="same").output_size(30)
    assert not is_valid_size(570, depth=4)


def test_3d_and_anisotropic_shapes() -> None:
    g = Geometry(depth=3)
    assert g.output_shape((92, 100, 108)) == (4, 12, 20)
    assert g.is_valid_shape((92, 100)) and not g.is_valid_shape((92, 101))


def test_input_size_for_output() -> None:
    g = Geometry(depth=4)
    assert g.input_size_for_output(388) == 572
    assert g.input_size_for_output(389) == 588
    assert g.input_size_for_output(1) == 188


def test_bad_configuration() -> None:
    with pytest.raises(ValueError, match="padding must be one of"):
        Geometry(depth=2, padding="full")
    with pytest.raises(ValueError, match="odd"):
        Geometry(depth=2, kernel_size=4)


def test_model_methods_delegate() -> None:
    net = UNet.from_preset("ronneberger2015")
    assert net.margin == 92
    assert net.output_shape((572, 572)) == (388, 388)
    assert net.is_valid_input((572, 588)) and not net.is_valid_input((572, 570))
    assert not net.is_valid_input((572,))
    assert net.nearest_valid_sizes(500) == (492, 508)
    with pytest.raises(ValueError, match="expected 2 spatial axes"):
        net.output_shape((572, 572, 572))


def _affected(
    net: UNet, shape: tuple[int, ...], rows: list[int], block: slice, axis: int = 0
) -> list[int]:
    """Input positions along ``axis`` whose impulse changes any output in ``block`` there."""
    x = torch.zeros(1, 1, *shape, dtype=torch.float64)

    def at(i: int | slice) -> tuple:
        index: list = [slice(None)] * len(shape)
        index[axis] = i
        return (0, slice(None), *index)

    hits = []
    with torch.no_grad():
        base = net(x)[at(block)]
        for p in rows:
            for sign in (1.0, -1.0):
                y = x.clone()
                y[(0, 0, *at(p)[2:])] = sign * 1e3  # a whole slab: the impulse reaches every phase
                if (net(y)[at(block)] - base).abs().max() > 0:
                    hits.append(p)
                    break
    return hits


@pytest.mark.parametrize(
    ("options", "shape"),
    [
        (dict(depth=1), (52, 20)),
        (dict(depth=2), (108, 44)),
        (dict(depth=3), (204, 92)),
        (dict(depth=2, upsample="nearest"), (108, 44)),
        (dict(depth=2, upsample="linear"), (116, 52)),
        (dict(depth=1, ndim=3), (52, 20, 20)),
    ],
)
def test_margin_equals_context_measured_with_impulses(options: dict, shape: tuple) -> None:
    """An output tile on the pooling grid depends on exactly ``margin`` px of input per side."""
    net = small_net(num_classes=2, **options).double()
    g, m = net.geometry.axes[0], net.margin
    start = g.alignment  # an aligned output tile of the smallest valid output size
    size = g.output_size(g.min_input_size)
    assert start + size <= net.output_shape(shape)[0]
    hits = _affected(net, shape, list(range(shape[0])), slice(start, start + size))
    # output pixel j sits on input pixel j + m: the tile reads input [start, start + size + 2m)
    assert (min(hits), max(hits)) == (start, start + size + 2 * m - 1)
    assert hits == list(range(start, start + size + 2 * m))


@pytest.mark.parametrize(
    ("options", "shape", "axis"),
    [
        (dict(depth=2), (44, 108), 1),
        (dict(depth=2, upsample="linear", kernel_size=5), (88, 128), 1),
        (dict(depth=1, ndim=3), (20, 24, 52), 2),  # anisotropic volume, the last axis
        (dict(depth=1, ndim=3), (20, 52, 28), 1),
    ],
)
def test_margin_along_other_axes(options: dict, shape: tuple, axis: int) -> None:
    net = small_net(num_classes=2, **options).double()
    g, m = net.geometry.axes[0], net.margin
    start, size = g.alignment, g.output_size(g.min_input_size)
    assert start + size <= net.output_shape(shape)[axis]
    hits = _affected(net, shape, list(range(shape[axis])), slice(start, start + size), axis)
    assert hits == list(range(start, start + size + 2 * m))


def test_margin_of_the_paper_net_matches_impulses() -> None:
    net = UNet.from_preset("ronneberger2015").eval().double()
    s, t, m = 32, 4, 92  # the output tile [32, 36) of a 388-px-tall output
    hits = _affected(net, (572, 188), [s - 1, s, s + t + 2 * m - 1, s + t + 2 * m], slice(s, s + t))
    assert hits == [s, s + t + 2 * m - 1]


def test_sizes_must_be_integers() -> None:
    g = Geometry(depth=4)
    with pytest.raises(TypeError, match=r"size must be an integer number of px, got 572\.7"):
        g.is_valid_size(572.7)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"axis 0 of shape \(572\.5, 572\) must be an integer"):
        g.output_shape((572.5, 572))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"size must be an integer number of px, got True"):
        g.output_size(True)
    with pytest.raises(TypeError, match=r"got '572'"):
        nearest_valid_sizes("572", depth=4)  # type: ignore[arg-type]
    with pytest.raises(
        TypeError, match=r"shape must be a sequence of integers \(px per axis\), got 572"
    ):
        output_shape(572, depth=4)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"kernel_size must be a positive integer, got 3\.0"):
        Geometry(depth=2, kernel_size=3.0)  # type: ignore[arg-type]
    # numpy integers are integers
    assert g.output_size(np.int64(572)) == 388
    assert g.output_shape(np.array([572, 188])) == (388, 4)
    assert g.nearest_valid_sizes(np.int32(570)) == (556, 572)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_kernel_size_1_with_linear_upsampling_matches_the_network(depth: int) -> None:
    """The interpolation's border pixel is cropped whatever the kernel size."""
    g = Geometry(depth=depth, kernel_size=1, upsample="linear")
    net = small_net(depth=depth, kernel_size=1, upsample="linear")
    assert g.margin == 2**depth - 1  # one pixel per up-sampling, at its own resolution
    for n in g.valid_sizes(1, 6 * 2**depth):
        assert tuple(net(torch.zeros(1, 1, n, n)).shape[2:]) == (g.output_size(n),) * 2
    assert Geometry(depth=1, kernel_size=1, upsample="linear").output_size(8) == 6
