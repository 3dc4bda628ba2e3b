import numpy as np
import pytest
import torch

from biounet.data.augment import (
    AugmentConfig,
    Params,
    _cubic_matrix,
    draw,
    elastic_field,
    intensity,
    sampling_grid,
    warp,
)


def identity(ndim: int) -> Params:
    return draw(AugmentConfig.off(), ndim, np.random.default_rng(0))


@pytest.mark.parametrize("shape", [(20, 30), (9, 10, 11)])
def test_zero_displacement_is_the_identity(shape) -> None:
    ndim = len(shape)
    labels = torch.from_numpy(np.random.default_rng(0).integers(0, 7, (1, *shape)))
    image = torch.rand(2, *shape)
    tile = tuple(n - 4 for n in shape)
    centre = np.array([2 + (t - 1) / 2 for t in tile])
    coords = sampling_grid(identity(ndim), tile, centre)
    crop = (slice(None),) + tuple(slice(2, 2 + t) for t in tile)
    assert torch.equal(warp(labels, coords, "nearest"), labels[crop])  # exactly
    torch.testing.assert_close(warp(image, coords, "linear"), image[crop])
    torch.testing.assert_close(warp(image, coords, "cubic"), image[crop], atol=1e-5, rtol=0)


def test_label_values_are_preserved() -> None:
    rng = np.random.default_rng(1)
    labels = torch.from_numpy(rng.choice([0, 3, 17, 255], size=(1, 40, 40)))
    for seed in range(5):
        p = draw(AugmentConfig(), 2, np.random.default_rng(seed))
        out = warp(labels, sampling_grid(p, (32, 32), np.array([19.5, 19.5])), "nearest")
        assert set(out.unique().tolist()) <= {0, 3, 17, 255}
        assert out.dtype == labels.dtype


def test_a_shift_moves_a_marker_where_expected() -> None:
    # a marker at (y=12, x=30); the tile reads source = centre + offset + shift
    img = torch.zeros(1, 40, 50)
    img[0, 12, 30] = 1.0
    p = identity(2)
    p.shift = np.array([3.0, -5.0])
    out = warp(img, sampling_grid(p, (40, 50), np.array([19.5, 24.5])), "nearest")
    assert tuple(torch.nonzero(out[0])[0].tolist()) == (12 - 3, 30 + 5)


def test_a_known_displacement_field_moves_a_marker() -> None:
    # a constant coarse displacement of (+4 px in y, -2 px in x) moves content by (-4, +2)
    img = torch.zeros(1, 30, 30)
    img[0, 15, 10] = 1.0
    p = identity(2)
    p.coarse = np.stack([np.full((3, 3), 4.0), np.full((3, 3), -2.0)])
    out = warp(img, sampling_grid(p, (30, 30), np.array([14.5, 14.5])), "nearest")
    assert tuple(torch.nonzero(out[0])[0].tolist()) == (11, 12)


def test_axes_are_not_transposed() -> None:
    # an asymmetric image: a transposition or an x/y swap in the grid would move the bar
    img = torch.zeros(1, 20, 40)
    img[0, 5, 3:30] = 1.0  # a horizontal bar in row 5
    out = warp(img, sampling_grid(identity(2), (20, 40), np.array([9.5, 19.5])), "linear")
    torch.testing.assert_close(out, img, atol=1e-5, rtol=0)
    p = identity(2)
    p.matrix = np.array([[1.0, 0.0], [0.0, -1.0]])  # flip x only
    out = warp(img, sampling_grid(p, (20, 40), np.array([9.5, 19.5])), "nearest")
    assert out[0, 5].sum() == 27 and out[0, 5, 39 - 3] == 1 and out[0, 5, 3] == 0


def test_image_and_labels_stay_aligned_under_a_full_draw() -> None:
    rng = np.random.default_rng(3)
    labels = torch.from_numpy(rng.integers(0, 2, (1, 64, 64))).float()
    image = labels.clone()  # the image is the label map itself
    for seed in range(4):
        p = draw(AugmentConfig(noise=0, brightness=0), 2, np.random.default_rng(seed))
        c = sampling_grid(p, (40, 40), np.array([31.5, 31.5]))
        a, b = warp(image, c, "nearest"), warp(labels, c, "nearest")
        assert torch.equal(a, b)
        lin = warp(image, c, "linear")
        assert ((lin > 0.5) == (b > 0.5)).float().mean() > 0.9


def test_same_seed_same_draw() -> None:
    a = draw(AugmentConfig(), 3, np.random.default_rng(7))
    b = draw(AugmentConfig(), 3, np.random.default_rng(7))
    assert np.array_equal(a.coarse, b.coarse) and np.array_equal(a.matrix, b.matrix)
    img = torch.rand(1, 16, 16)
    torch.testing.assert_close(intensity(img, a), intensity(img, b))


def test_paper_elastic_statistics() -> None:
    p = draw(AugmentConfig(), 2, np.random.default_rng(0))
    assert p.coarse.shape == (2, 3, 3)
    coarse = np.concatenate(
        [draw(AugmentConfig(), 2, np.random.default_rng(s)).coarse.ravel() for s in range(300)]
    )
    assert abs(coarse.std() - 10.0) < 0.5  # 10 px standard deviation


def test_cubic_upsampling_hits_the_grid_points_and_keeps_linear_fields() -> None:
    w = _cubic_matrix(3, 9)
    np.testing.assert_allclose(w.sum(1), 1.0)
    np.testing.assert_allclose(w[[0, 4, 8]], np.eye(3), atol=1e-12)
    ramp = np.stack(np.meshgrid(np.arange(3.0), np.arange(3.0), indexing="ij")) * 5
    field = elastic_field(ramp, (9, 9))
    np.testing.assert_allclose(field[0][:, 0], np.linspace(0, 10, 9))


def test_intensity_changes() -> None:
    img = torch.linspace(0, 1, 256).reshape(1, 16, 16)
    p = identity(2)
    p.brightness = 0.2
    torch.testing.assert_close(intensity(img, p), img + 0.2)
    p = identity(2)
    p.gamma = 2.0
    torch.testing.assert_close(intensity(img, p), img**2)
    p = identity(2)
    p.blur = 2.0
    blurred = intensity(img, p)
    assert blurred.std() < img.std() and abs(blurred.mean() - img.mean()) < 0.02
    p = identity(2)
    p.noise, p.seed = 0.1, 3
    assert 0.08 < (intensity(img, p) - img).std() < 0.12


def test_3d_draw_and_warp() -> None:
    p = draw(AugmentConfig(), 3, np.random.default_rng(0))
    vol = torch.rand(1, 20, 20, 20)
    out = warp(vol, sampling_grid(p, (8, 9, 10), np.array([10.0, 10, 10])), "cubic")
    assert out.shape == (1, 8, 9, 10) and torch.isfinite(out).all()


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="did you mean 'cubic'"):
        AugmentConfig(image_interp="cubc")
    with pytest.raises(ValueError, match="scale must be a range"):
        AugmentConfig(scale=(1.2, 0.8))


# --- the training device ------------------------------------------------------------------------


def full_draw(ndim: int, seed: int = 0):
    # every part on, blur always: coordinates, sizes, kernels and noise all get created
    cfg = AugmentConfig(noise=0.1, blur=1.5, blur_p=1.0)
    return draw(cfg, ndim, np.random.default_rng(seed))


@pytest.mark.parametrize(("shape", "tile"), [((30, 34), (20, 22)), ((12, 14, 16), (6, 8, 8))])
def test_everything_is_created_on_the_input_device(shape, tile, monkeypatch) -> None:
    # the "meta" device holds no data: any tensor made on the CPU and mixed in raises, except
    # in a convolution's weights, which are checked here
    from torch.nn import functional as F

    for name in ("conv2d", "conv3d"):
        real = getattr(F, name)

        def checked(x, weight, *args, _real=real, **kwargs):
            assert weight.device == x.device, f"kernel on {weight.device}, input on {x.device}"
            return _real(x, weight, *args, **kwargs)

        monkeypatch.setattr(F, name, checked)
    p = full_draw(len(shape))
    assert p.blur > 0 and p.noise > 0 and p.coarse.any()
    coords = sampling_grid(p, tile, np.array([(n - 1) / 2 for n in shape]))
    image = torch.zeros(2, *shape, device="meta")
    labels = torch.zeros(1, *shape, dtype=torch.int64, device="meta")
    for mode in ("cubic", "linear", "nearest"):
        out = warp(image, coords, mode)
        assert out.device.type == "meta" and out.shape == (2, *tile)
    assert warp(labels, coords, "nearest").dtype == torch.int64
    out = intensity(warp(image, coords, "cubic"), p)
    assert out.device.type == "meta" and out.shape == (2, *tile)
    # coordinates given as a tensor on the CPU are moved too
    assert warp(image, torch.from_numpy(coords), "linear").device.type == "meta"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(("shape", "tile"), [((40, 44), (24, 30)), ((12, 14, 16), (6, 8, 8))])
def test_cuda_gives_the_cpu_result(shape, tile) -> None:
    p = full_draw(len(shape), seed=2)
    coords = sampling_grid(p, tile, np.array([(n - 1) / 2 for n in shape]))
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(2, *shape, generator=gen)
    labels = torch.randint(0, 5, (1, *shape), generator=gen)
    cuda = torch.device("cuda")
    assert torch.equal(
        warp(labels.to(cuda), coords, "nearest").cpu(), warp(labels, coords, "nearest")
    )
    for mode in ("linear", "cubic"):
        on_gpu = intensity(warp(image.to(cuda), coords, mode), p)
        assert on_gpu.device.type == "cuda"
        torch.testing.assert_close(
            on_gpu.cpu(), intensity(warp(image, coords, mode), p), atol=1e-4, rtol=1e-4
        )


# --- a displacement field that is not a shift ---------------------------------------------------


def test_a_single_displaced_node_moves_markers_where_worked_out_by_hand() -> None:
    # a 61 x 61 tile read 1:1 (centre 30, 30) so each pixel p reads p + displacement(p); the
    # 3 x 3 coarse nodes sit on pixels 0, 30, 60 of each axis. Only the top-right node moves,
    # by d = (+6, -12). Cubic convolution (Keys, a = -0.5) passes through the nodes: d at
    # (0, 60), 0 at every other node. Half-way between nodes, with the linear end
    # extrapolation p[3] = 2 p[2] - p[1] (or p[-1] = 2 p[0] - p[1]), the weight of the moved
    # node is 0.5625 - 2 * 0.0625 = 0.4375 per axis.
    d = np.array([6.0, -12.0])
    p = identity(2)
    p.coarse = np.zeros((2, 3, 3))
    p.coarse[:, 0, 2] = d
    field = elastic_field(p.coarse, (61, 61))
    for (y, x), factor in {
        (0, 60): 1.0,
        (0, 45): 0.4375,
        (15, 60): 0.4375,
        (15, 45): 0.4375**2,
        (30, 30): 0.0,
        (0, 0): 0.0,
        (60, 60): 0.0,
        (0, 30): 0.0,
    }.items():
        np.testing.assert_allclose(field[:, y, x], factor * d, atol=1e-12)
    # markers at the sources those pixels read (rounded: nearest neighbour)
    img = torch.zeros(1, 61, 61)
    sources = {
        (0, 60): (6, 48),
        (0, 45): (3, 40),
        (15, 60): (18, 55),
        (15, 45): (16, 43),
        (30, 30): (30, 30),
    }  # e.g. (0, 45) reads (2.625, 39.75)
    for value, src in enumerate(sources.values(), start=1):
        img[0, src[0], src[1]] = value
    out = warp(img, sampling_grid(p, (61, 61), np.array([30.0, 30.0])), "nearest")
    for value, (y, x) in enumerate(sources, start=1):
        assert out[0, y, x] == value, ((y, x), out[0, y, x])
    # far from the moved node pixels move by under 0.07 px: the bottom-left quarter is a copy
    assert np.abs(field[:, 30:, :31]).max() < 0.07
    assert torch.equal(out[0, 30:, :31], img[0, 30:, :31])


# --- 3D -------------------------------------------------------------------------------------------


def blocky(shape, block: int, seed: int, values=(0, 1)) -> np.ndarray:
    """Random values on blocks of ``block`` px (so that interpolation barely changes them)."""
    rng = np.random.default_rng(seed)
    coarse = rng.choice(values, size=tuple(-(-n // block) for n in shape))
    out = coarse
    for axis in range(len(shape)):
        out = np.repeat(out, block, axis=axis)
    return out[tuple(slice(n) for n in shape)]


def test_3d_label_values_are_preserved() -> None:
    labels = torch.from_numpy(blocky((20, 22, 24), 1, 0, values=[0, 3, 17, 255]))[None]
    for seed in range(4):
        p = draw(AugmentConfig(), 3, np.random.default_rng(seed))
        assert p.coarse.shape == (3, 3, 3, 3) and p.coarse.any()
        out = warp(labels, sampling_grid(p, (12, 14, 16), np.array([9.5, 10.5, 11.5])), "nearest")
        assert out.dtype == labels.dtype and out.shape == (1, 12, 14, 16)
        assert set(out.unique().tolist()) <= {0, 3, 17, 255} and len(out.unique()) > 1


def test_3d_image_and_labels_stay_aligned_and_axes_are_not_transposed() -> None:
    labels = torch.from_numpy(blocky((24, 28, 32), 4, 1)).float()[None]
    image = labels.clone()
    for seed in range(4):
        p = draw(AugmentConfig(noise=0, brightness=0), 3, np.random.default_rng(seed))
        c = sampling_grid(p, (16, 18, 20), np.array([11.5, 13.5, 15.5]))
        lab = warp(labels, c, "nearest")
        assert torch.equal(warp(image, c, "nearest"), lab)
        lin = warp(image, c, "cubic")  # linear in 3D
        assert ((lin > 0.5) == (lab > 0.5)).float().mean() > 0.9
    # an asymmetric volume: a bar along x in plane z = 2, row y = 5; flipping z only moves it
    vol = torch.zeros(1, 8, 10, 12)
    vol[0, 2, 5, 1:9] = 1.0
    p = identity(3)
    out = warp(vol, sampling_grid(p, (8, 10, 12), np.array([3.5, 4.5, 5.5])), "linear")
    torch.testing.assert_close(out, vol, atol=1e-5, rtol=0)
    p.matrix = np.diag([-1.0, 1.0, 1.0])
    out = warp(vol, sampling_grid(p, (8, 10, 12), np.array([3.5, 4.5, 5.5])), "nearest")
    assert out[0, 7 - 2, 5, 1:9].sum() == 8 and out.sum() == 8
