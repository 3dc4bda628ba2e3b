"""The tiler on its own: it knows nothing of U-Nets, so trivial predictors pin it down exactly."""

import io
import itertools
import sys

import numpy as np
import pytest
import torch
import zarr

from biounet.inference.tiling import (
    dihedral_transforms,
    mirror_indices,
    plan_blend,
    plan_crop,
    tile_apply,
)
from biounet.inference.tiling.apply import _progress_bar


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


@pytest.mark.parametrize("size", [5, 64, 65, 100, 200, 300, 1000])
@pytest.mark.parametrize("align", [1, 4, 16])
@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5, 0.9])
def test_plan_blend_starts_on_the_grid_and_covers_once(size, align, overlap) -> None:
    tile = 64
    tiles = plan_blend(size, tile, overlap, align=align)
    total = np.zeros(size)
    for t in tiles:
        assert t.in_start % align == 0 and t.out_start == t.in_start
        lo, hi = t.keep
        assert max(t.in_start, 0) == lo and hi == min(t.in_start + tile, size)
        total[lo:hi] += t.weight
    np.testing.assert_allclose(total, 1.0)
    if size > tile:
        steps = {b.in_start - a.in_start for a, b in itertools.pairwise(tiles)}
        assert len(steps) == 1 and steps.pop() % align == 0  # one step, on the grid
        assert tiles[0].in_start == 0 and tiles[-1].in_start + tile >= size


def test_plan_blend_aligned_examples() -> None:
    # 300 px, tile 96, overlap 0.5: the step 48 is on the 16 px grid; the last tile runs past
    assert [t.in_start for t in plan_blend(300, 96, 0.5, align=16)] == [0, 48, 96, 144, 192, 240]
    # step 96 * 0.6 = 57.6 -> 57 -> 56 on the 8 px grid
    assert [t.in_start for t in plan_blend(200, 96, 0.4, align=8)] == [0, 56, 112]
    # an image smaller than the tile: centred as far as the grid allows (27 px -> 16 px)
    assert plan_blend(10, 64, 0.5, align=16)[0].in_start == -16
    assert plan_blend(10, 64, 0.5)[0].in_start == -27
    with pytest.raises(ValueError, match=r"align must be in \[1, tile=8\] px, got 16"):
        plan_blend(100, 8, 0.5, align=16)


@pytest.mark.parametrize("align", [1, 8])
def test_blend_mode_pointwise_is_exact_with_alignment(align: int) -> None:
    image = np.random.default_rng(6).random((1, 203, 77)).astype(np.float32)
    out = tile_apply(
        lambda x: 2 * x + 1, image, tile_shape=(40, 24), mode="blend", overlap=0.5, align=align
    )
    np.testing.assert_allclose(out, 2 * image + 1, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["crop", "blend"])
@pytest.mark.parametrize("batch_size", [3, 8])
def test_transforms_with_batches_of_non_square_tiles(mode: str, batch_size: int) -> None:
    """A batch never mixes transforms: the transposed image's tiles have another shape."""
    # 5 (crop) or 7 (blend) tiles per transform: batches of 3 or 8 would straddle transforms
    image = np.random.default_rng(7).random((2, 45, 25)).astype(np.float32)
    margin = 1 if mode == "crop" else 0
    shapes = []

    def fn(x: torch.Tensor) -> torch.Tensor:
        shapes.append(tuple(x.shape[2:]))
        core = x[..., margin : x.shape[-2] - margin, margin : x.shape[-1] - margin]
        return torch.cat([core * torch.arange(core.shape[-1]), core.square()], 1)

    group = dihedral_transforms(2)
    kw = dict(tile_shape=(12, 30), margin=margin, mode=mode, transforms=group)
    want = tile_apply(fn, image, batch_size=1, **kw)
    shapes.clear()
    got = tile_apply(fn, image, batch_size=batch_size, **kw)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert set(shapes) == {(12, 30), (30, 12)}


def test_out_is_not_touched_before_the_channel_count_is_known() -> None:
    img = np.random.default_rng(8).random((1, 10, 10)).astype(np.float32)
    calls = []

    def fn(x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return x

    group = dihedral_transforms(2)
    out = np.full((2, 10, 10), 5.0, np.float32)
    with pytest.raises(ValueError, match=r"out has shape \(2, 10, 10\), expected \(1, 10, 10\)"):
        tile_apply(fn, img, tile_shape=(8, 8), transforms=group, out=out)
    assert (out == 5.0).all()  # the error came before anything was zeroed or written
    calls.clear()
    # with the channel count given, the check comes before fn ever runs
    with pytest.raises(ValueError, match=r"out has shape \(2, 10, 10\), expected \(1, 10, 10\)"):
        tile_apply(fn, img, tile_shape=(8, 8), transforms=group, out=out, channels=1)
    assert not calls and (out == 5.0).all()
    with pytest.raises(ValueError, match=r"out has shape \(10, 10\), expected \(K, 10, 10\)"):
        tile_apply(fn, img, tile_shape=(8, 8), out=np.zeros((10, 10), np.float32))
    with pytest.raises(ValueError, match=r"the predictor returned 1 channels, expected 2"):
        tile_apply(fn, img, tile_shape=(8, 8), channels=2)
    with pytest.raises(ValueError, match=r"out must have a floating dtype \(float32\).*got int32"):
        tile_apply(fn, img, tile_shape=(8, 8), out=np.zeros((1, 10, 10), np.int32))
    assert not calls[1:]  # only the channels=2 call reached fn
    into = np.zeros((1, 10, 10), np.float64)
    assert tile_apply(fn, img, tile_shape=(8, 8), out=into, channels=1) is into
    np.testing.assert_array_equal(into, img)


def test_a_predictor_may_return_numpy() -> None:
    img = np.random.default_rng(9).random((2, 19, 13)).astype(np.float32)
    out = tile_apply(lambda x: x.numpy() * 2, img, tile_shape=(8, 8))
    np.testing.assert_array_equal(out, 2 * img)
    with pytest.raises(TypeError, match=r"the predictor must return a tensor \(or a NumPy array\)"):
        tile_apply(lambda x: "tile", img, tile_shape=(8, 8))  # type: ignore[arg-type,return-value]


def test_non_finite_values_are_found_in_image_coordinates() -> None:
    img = np.zeros((2, 20, 30), np.float32)
    img[1, 13, 7] = np.inf
    # under a transposition and a flip, with mirrored reads, the pixel is still named as is
    g = [t for t in dihedral_transforms(2) if t.perm == (1, 0) and t.flips == (True, False)]
    with pytest.raises(ValueError, match=r"NaN or infinite values .*inf at index \(1, 13, 7\)"):
        tile_apply(lambda x: x, img, tile_shape=(16, 16), transforms=g)
    # finite in float64 but beyond float32: caught after the cast
    big = np.zeros((1, 12, 12))
    big[0, 3, 4] = 1e300
    with pytest.raises(ValueError, match=r"value 1e\+300 at index \(0, 3, 4\).*beyond float32"):
        tile_apply(lambda x: x, big, tile_shape=(8, 8))
    # a predictor that overflows: the image region of the tile is named
    with pytest.raises(
        ValueError,
        match=r"predictor returned NaN or infinite values for the image region \[0:8, 0:8\]",
    ):
        tile_apply(lambda x: x * 1e38 * 1e38, img[:1] + 1, tile_shape=(8, 8))


def test_integer_arguments_are_checked() -> None:
    img = np.zeros((1, 10, 10), np.float32)
    with pytest.raises(TypeError, match=r"batch_size must be a positive integer, got 2\.5"):
        tile_apply(lambda x: x, img, tile_shape=(8, 8), batch_size=2.5)  # type: ignore[arg-type]
    with pytest.raises(
        TypeError, match=r"axis 0 of tile_shape \(8\.5, 8\) must be an integer.*got 8\.5"
    ):
        tile_apply(lambda x: x, img, tile_shape=(8.5, 8))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"tile_shape must be an integer or a sequence"):
        tile_apply(lambda x: x, img, tile_shape=8.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"dtype complex128; biounet takes real-valued images"):
        tile_apply(lambda x: x, img.astype(complex), tile_shape=(8, 8))
    # numpy integers and nested lists are fine
    out = tile_apply(lambda x: x, img.tolist(), tile_shape=np.array([8, 8]), batch_size=np.int64(2))
    np.testing.assert_array_equal(out, img)


def test_progress_none_lets_tqdm_decide(monkeypatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert _progress_bar(3, False).disable and not _progress_bar(3, True).disable
    assert _progress_bar(3, None).disable  # pytest's captured stderr is not a terminal
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert not _progress_bar(3, None).disable  # a terminal: shown
    assert _progress_bar(3, False).disable
    tile_apply(lambda x: x, np.zeros((1, 10, 10)), tile_shape=(8, 8), progress=None)
    assert "tiles" in sys.stderr.getvalue()


def test_every_batch_must_keep_the_first_channel_count() -> None:
    # without channels=, the first output sets the count; a later batch that differs is an
    # error, not a silent broadcast into the result
    calls = []

    def fn(x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return x.repeat(1, 2 if len(calls) == 1 else 1, 1, 1)

    image = np.zeros((1, 64, 64), np.float32)
    with pytest.raises(ValueError, match="returned 1 channels, expected 2"):
        tile_apply(fn, image, tile_shape=(32, 32), margin=0, batch_size=1)
