import numpy as np
import pytest
import torch

from biounet.augment import (
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
