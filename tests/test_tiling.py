"""The tiler on its own: it knows nothing of U-Nets, so trivial predictors pin it down exactly."""

import numpy as np
import pytest
import torch
import zarr

from biounet.tiling import (
    dihedral_transforms,
    mirror_indices,
    plan_blend,
    plan_crop,
    tile_apply,
)


def crop_fn(margin: int, ndim: int):
    """A 'valid' predictor: pointwise (2x + 1) on the centre, dropping ``margin`` per side."""

    def fn(x: torch.Tensor) -> torch.Tensor:
        core = x[(slice(None), slice(None), *[slice(margin, -margin or None)] * ndim)]
        return 2 * core + 1

    return fn


@pytest.mark.parametrize("size", [1, 2, 3, 5, 17])
@pytest.mark.parametrize(("start", "stop"), [(-40, 3), (-3, 25), (0, 1), (10, 60)])
def test_mirror_indices_match_numpy_reflect(size: int, start: int, stop: int) -> None:
    a = np.arange(size)
    padded = np.pad(a, (100, 100), mode="reflect")
    assert np.array_equal(a[mirror_indices(start, stop, size)], padded[start + 100 : stop + 100])


@pytest.mark.parametrize("shape", [(1, 1), (511, 237), (16, 15, 7), (9, 40), (1, 64, 3)])
@pytest.mark.parametrize("margin", [0, 3])
def test_crop_mode_pointwise_is_exact(shape: tuple, margin: int) -> None:
    rng = np.random.default_rng(1)
    image = rng.random((2, *shape), dtype=np.float32)
    ndim = len(shape)
    tile = tuple([8 + 2 * margin, 12 + 2 * margin, 6 + 2 * margin][:ndim])
    out = tile_apply(crop_fn(margin, ndim), image, tile_shape=tile, margin=margin, batch_size=3)
    np.testing.assert_array_equal(out, 2 * image + 1)


def test_identity_returns_the_input_exactly() -> None:
    image = np.random.default_rng(2).random((3, 100, 77)).astype(np.float32)
    out = tile_apply(lambda x: x, image, tile_shape=(32, 32), margin=0)
    np.testing.assert_array_equal(out, image)


@pytest.mark.parametrize("shape", [(7, 9), (511, 237), (16, 15, 7)])
def test_blend_mode_pointwise_is_exact(shape: tuple) -> None:
    image = np.random.default_rng(3).random((1, *shape)).astype(np.float32)
    tile = tuple([32, 24, 8][: len(shape)])
    out = tile_apply(lambda x: 2 * x + 1, image, tile_shape=tile, mode="blend", overlap=0.5)
    np.testing.assert_allclose(out, 2 * image + 1, rtol=1e-5, atol=1e-5)


def test_plan_crop_covers_each_pixel_once() -> None:
    for size in [1, 5, 16, 17, 100, 387, 388, 389]:
        tiles = plan_crop(size, out_tile=36, stride=32, margin=92)
        covered = np.zeros(size, int)
        for t in tiles:
            covered[t.keep[0] : t.keep[1]] += 1
            assert t.in_start == t.out_start - 92
            assert t.out_start % 32 == 0
            assert t.keep[1] - t.out_start <= 36
        assert (covered == 1).all(), size
    with pytest.raises(ValueError, match="stride must be in"):
        plan_crop(10, out_tile=4, stride=8, margin=0)


def test_plan_blend_weights_sum_to_one() -> None:
    for size in [5, 64, 65, 200, 1000]:
        tiles = plan_blend(size, tile=64, overlap=0.5)
        total = np.zeros(size)
        for t in tiles:
            total[t.keep[0] : t.keep[1]] += t.weight
        np.testing.assert_allclose(total, 1.0)
    with pytest.raises(ValueError, match="overlap must be in"):
        plan_blend(100, 10, 1.0)


def test_dihedral_group() -> None:
    group = dihedral_transforms(2)
    assert len(group) == 8
    x = np.arange(12.0).reshape(1, 3, 4)
    images = {g.apply(x).tobytes() + bytes(g.shape((3, 4))) for g in group}
    assert len(images) == 8  # 8 distinct images: the square's symmetries
    for g in group:
        np.testing.assert_array_equal(g.invert(g.apply(x)), x)
    assert len(dihedral_transforms(3)) == 8  # flips only in 3D


def test_transforms_average_is_invariant() -> None:
    image = np.random.default_rng(4).random((1, 21, 34)).astype(np.float32)

    def fn(x: torch.Tensor) -> torch.Tensor:  # neither flip- nor rotation-invariant
        return torch.cat([x[..., 1:-1, 1:-1] * torch.arange(x.shape[-1] - 2), x[..., 2:, 1:-1]], 1)

    group = dihedral_transforms(2)
    a = tile_apply(fn, image, tile_shape=(12, 10), margin=1, transforms=group)
    for g in group:
        # the tiles follow the image: a transposed image gets the transposed tile
        gx = np.ascontiguousarray(g.apply(image))
        b = tile_apply(fn, gx, tile_shape=g.shape((12, 10)), margin=1, transforms=group)
        np.testing.assert_allclose(g.invert(b), a, rtol=1e-5, atol=1e-5)


def test_zarr_in_zarr_out_and_memmap(tmp_path) -> None:
    rng = np.random.default_rng(5)
    data = rng.random((1, 130, 70)).astype(np.float32)
    src = zarr.open_array(
        str(tmp_path / "in.zarr"), mode="w", shape=data.shape, chunks=(1, 32, 32), dtype="f4"
    )
    src[...] = data
    dst = zarr.open_array(
        str(tmp_path / "out.zarr"), mode="w", shape=data.shape, chunks=(1, 50, 50), dtype="f4"
    )
    result = tile_apply(crop_fn(2, 2), src, tile_shape=(20, 24), margin=2, out=dst)
    assert result is dst
    np.testing.assert_array_equal(np.asarray(dst), 2 * data + 1)
    mm = np.lib.format.open_memmap(tmp_path / "in.npy", mode="w+", dtype="f4", shape=data.shape)
    mm[...] = data
    np.testing.assert_array_equal(
        tile_apply(crop_fn(2, 2), mm, tile_shape=(20, 24), margin=2), 2 * data + 1
    )


def test_tiles_are_batched() -> None:
    seen = []

    def fn(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.shape[0])
        return x

    tile_apply(fn, np.zeros((1, 50, 50), np.float32), tile_shape=(10, 10), batch_size=4)
    assert sum(seen) == 25 and max(seen) == 4


def test_tiler_errors() -> None:
    img = np.zeros((1, 10, 10), np.float32)
    with pytest.raises(ValueError, match=r"tile_shape \(4, 4\) leaves no output"):
        tile_apply(lambda x: x, img, tile_shape=(4, 4), margin=2)
    with pytest.raises(
        ValueError,
        match=r"predictor returned a tensor of shape \(1, 1, 8, 8\).*expected \(B, K, 6, 6\)",
    ):
        tile_apply(lambda x: x, img, tile_shape=(8, 8), margin=1)
    with pytest.raises(ValueError, match="mode must be 'crop' or 'blend'"):
        tile_apply(lambda x: x, img, tile_shape=(8, 8), mode="average")
    with pytest.raises(ValueError, match=r"out has shape \(2, 10, 10\), expected \(1, 10, 10\)"):
        tile_apply(lambda x: x, img, tile_shape=(8, 8), out=np.zeros((2, 10, 10), np.float32))
    bad = img.copy()
    bad[0, 3, 4] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinite values.*numpy\.nan_to_num"):
        tile_apply(lambda x: x, bad, tile_shape=(8, 8))
