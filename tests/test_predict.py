"""``biounet.predict``: overlap-tile inference equals one pass over the mirror-padded image."""

import copy
import io
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import zarr

import biounet
from biounet import UNet, predict
from biounet.core.device import resolve_device
from biounet.inference.predictor import choose_tile
from biounet.inference.tiling import plans

from .conftest import small_net


def full_pass(net: UNet, image: np.ndarray, tile: tuple, stride: tuple) -> np.ndarray:
    """Independent reference: mirror-pad the whole image (numpy), one forward pass, crop."""
    m = net.margin
    pads = [(0, 0)]
    for n, t, s in zip(image.shape[1:], tile, stride):
        out_t = net.geometry.axes[0].output_size(t)
        count = max(1, math.ceil((n - out_t) / s) + 1)
        covered = (count - 1) * s + out_t  # output extent of all tiles
        pads.append((m, covered - n + m))
    padded = np.pad(image, pads, mode="reflect")
    with torch.no_grad():
        probs = torch.softmax(net(torch.from_numpy(padded)[None].double()), 1)[0].numpy()
    return probs[(slice(None), *[slice(0, n) for n in image.shape[1:]])]


@pytest.mark.parametrize(
    ("options", "shape", "tile"),
    [
        (dict(depth=2), (511, 237), None),
        (dict(depth=2), (511, 237), (92, 60)),
        (dict(depth=2, norm="batch", in_channels=2), (61, 47), (60, 76)),
        (dict(depth=3), (1, 1), None),
        (dict(depth=3), (150, 97), (108, 116)),  # output tiles 20 x 28, strides 16 x 24
        (dict(depth=2), (3, 130), (44, 44)),
        (dict(depth=2, upsample="linear"), (100, 70), (68, 84)),
        (dict(depth=1, ndim=3), (16, 15, 7), None),
        (dict(depth=1, ndim=3), (16, 15, 7), (20, 28, 36)),
        (dict(depth=2, ndim=3, norm="batch"), (30, 9, 50), (52, 44, 60)),
        # 1x1 convolutions with linear up-sampling: the interpolation border is still cropped
        (dict(depth=2, kernel_size=1, upsample="linear"), (37, 23), None),
    ],
)
def test_tiled_equals_one_pass_over_the_mirror_padded_image(options, shape, tile) -> None:
    net = small_net(**options).double()
    c = net.config.in_channels
    image = np.random.default_rng(0).random((c, *shape))
    t, s = choose_tile(net, shape, tile)
    assert all(si % net.geometry.axes[0].alignment == 0 for si in s)
    got = predict(net.float(), image if c > 1 else image[0], tile_shape=tile, batch_size=2)
    assert got.shape == (3, *shape) and got.dtype == np.float32
    want = full_pass(net.double(), image, t, s)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_several_tiles_really_are_used() -> None:
    net = small_net(depth=2)
    calls = []
    net.register_forward_hook(lambda mod, inp, out: calls.append(tuple(inp[0].shape)))
    predict(net, np.zeros((100, 100), np.float32), tile_shape=(44, 60))
    assert calls and all(c[2:] == (44, 60) for c in calls)
    # output tiles 4 x 20 px, strides 4 x 20 (multiples of 2**depth = 4)
    assert sum(c[0] for c in calls) == 25 * 5


@pytest.mark.parametrize("shape", [(33, 50), (1, 7)])
def test_tta_prediction_is_invariant_to_flips_and_rotations(shape) -> None:
    net = small_net(depth=2)
    image = np.random.default_rng(1).random(shape).astype(np.float32)
    p = predict(net, image, tta=True)
    np.testing.assert_allclose(p.sum(0), 1.0, atol=1e-5)
    for axis in (0, 1):
        q = predict(net, np.flip(image, axis).copy(), tta=True)
        np.testing.assert_allclose(np.flip(q, axis + 1), p, atol=1e-5)
    r = predict(net, np.rot90(image).copy(), tta=True)
    np.testing.assert_allclose(np.rot90(r, -1, axes=(1, 2)), p, atol=1e-5)
    # and TTA does change the prediction of a net that is not itself invariant
    assert np.abs(predict(net, image) - p).max() > 1e-4


def test_tta_3d_flip_invariance() -> None:
    net = small_net(depth=1, ndim=3)
    image = np.random.default_rng(2).random((9, 14, 11)).astype(np.float32)
    p = predict(net, image, tta=True)
    q = predict(net, np.flip(image, 1).copy(), tta=True)
    np.testing.assert_allclose(np.flip(q, 2), p, atol=1e-5)


def test_same_padded_net_blends_tiles() -> None:
    net = small_net(depth=2, padding="same")
    image = np.random.default_rng(3).random((70, 90)).astype(np.float32)
    p = predict(net, image, tile_shape=32, overlap=0.5)
    assert p.shape == (3, 70, 90)
    np.testing.assert_allclose(p.sum(0), 1.0, atol=1e-5)
    # an image that fits one tile is one forward pass
    small = image[:32, :32]
    with torch.no_grad():
        want = torch.softmax(net(torch.from_numpy(small)[None, None]), 1)[0].numpy()
    np.testing.assert_allclose(predict(net, small, tile_shape=32), want, atol=1e-5)


def test_predict_runs_in_inference_mode_and_restores_the_model() -> None:
    net = small_net(depth=2).train()
    modes = []
    net.register_forward_hook(
        lambda *a: modes.append((torch.is_inference_mode_enabled(), net.training))
    )
    predict(net, np.zeros((20, 20), np.float32))
    assert modes and all(m == (True, False) for m in modes)
    assert net.training


def test_output_into_zarr_on_disk(tmp_path) -> None:
    net = small_net(depth=2)
    image = np.random.default_rng(4).random((90, 70)).astype(np.float32)
    src = zarr.open_array(
        str(tmp_path / "img.zarr"), mode="w", shape=image.shape, chunks=(32, 32), dtype="f4"
    )
    src[...] = image
    dst = zarr.open_array(
        str(tmp_path / "p.zarr"), mode="w", shape=(3, 90, 70), chunks=(3, 40, 40), dtype="f4"
    )
    assert predict(net, src, out=dst) is dst
    np.testing.assert_allclose(np.asarray(dst), predict(net, image), atol=1e-6)


def test_uint16_and_memmap_inputs(tmp_path) -> None:
    net = small_net(depth=2)
    image = (np.random.default_rng(5).random((50, 40)) * 60000).astype(np.uint16)
    mm = np.lib.format.open_memmap(
        tmp_path / "img.npy", mode="w+", dtype=np.uint16, shape=image.shape
    )
    mm[...] = image
    np.testing.assert_array_equal(predict(net, mm), predict(net, image.astype(np.float32)))


def test_device_is_chosen_automatically(monkeypatch) -> None:
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    # "auto" never picks MPS: CUDA, else the CPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("mps") == torch.device("mps")  # when asked for by name
    with pytest.raises(ValueError, match=r"unknown device 'gpu0'"):
        resolve_device("gpu0")


def test_missing_devices_are_one_clear_line(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    fix = r"; use device='cpu' or 'auto'$"
    for name in ("cuda", "cuda:1", torch.device("cuda:0")):
        with pytest.raises(
            ValueError, match=rf"device '{name}' is not available: no CUDA device here" + fix
        ):
            resolve_device(name)
    with pytest.raises(ValueError, match=r"device 'mps' is not available: no Apple MPS here" + fix):
        resolve_device("mps")
    with pytest.raises(ValueError, match=r"device 'cuda' is not available"):
        predict(small_net(), np.zeros((20, 20), np.float32), device="cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    assert resolve_device("cuda") == torch.device("cuda")
    with pytest.raises(
        ValueError,
        match=r"device 'cuda:1' is not available: this machine has 1 CUDA device\(s\) "
        r"\(cuda:0 to cuda:0\)" + fix,
    ):
        resolve_device("cuda:1")
    assert resolve_device("cpu") == torch.device("cpu")


def test_public_api_is_lazy_and_complete() -> None:
    assert biounet.predict is predict
    for name in biounet.__all__:
        assert getattr(biounet, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        biounet.nope  # noqa: B018
    # importing the package loads neither torch nor numpy: the names load on first use
    code = (
        "import sys, biounet; a = ('torch' in sys.modules, 'numpy' in sys.modules); "
        "biounet.UNet; print(*a, 'torch' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.split() == ["False", "False", "True"]


@pytest.mark.parametrize(
    ("image", "kwargs", "message"),
    [
        (np.zeros((5, 20, 20)), {}, r"5 channel\(s\) on axis 0, but the model expects 1"),
        (
            np.zeros((20, 20, 3)),
            dict(in_channels=3),
            r"the channels look last: pass numpy.moveaxis\(image, -1, 0\)",
        ),
        (np.zeros((20, 20)), dict(in_channels=2), r"no channel axis, but the model expects 2"),
        (np.zeros((2, 2, 20, 20)), {}, r"has 4 axes; this 2D model takes"),
        (np.zeros((0, 20)), {}, r"the image is empty"),
        (np.full((20, 20), np.inf), {}, r"NaN or infinite values"),
    ],
)
def test_bad_images_get_clear_errors(image, kwargs, message) -> None:
    net = small_net(depth=2, **kwargs)
    with pytest.raises(ValueError, match=message):
        predict(net, image)


def test_bad_tile_names_the_nearest_valid_sizes() -> None:
    net = UNet.from_preset("ronneberger2015")
    with pytest.raises(
        ValueError, match=r"tile_shape \(570, 570\), axis 0: size 570 px is not valid.*556 or 572"
    ):
        predict(net, np.zeros((10, 10), np.float32), tile_shape=570)
    with pytest.raises(
        ValueError, match=r"smaller than the pooling grid \(16 px\); use tiles of at least 204"
    ):
        predict(net, np.zeros((10, 10), np.float32), tile_shape=188)
    with pytest.raises(TypeError, match=r"model must be a biounet\.UNet"):
        predict(torch.nn.Identity(), np.zeros((10, 10)))  # type: ignore[arg-type]


def test_automatic_tiles_fit_the_image() -> None:
    net = UNet.from_preset("ronneberger2015")
    tile, stride = choose_tile(net, (2048, 2048))
    assert all(net.is_valid_input(tile) for _ in [0])
    count = [math.ceil(2048 / s) for s in stride]
    computed = math.prod(c * net.geometry.axes[0].output_size(t) for c, t in zip(count, tile))
    assert computed / 2048**2 - 1 <= 0.10  # at most 10% of the computed output is thrown away
    assert choose_tile(net, (1, 1)) == ((204, 204), (16, 16))


@pytest.mark.parametrize(
    ("padding", "shape", "tile"),
    [
        ("valid", (30, 90), None),  # automatic tile (72, 132): one tile per transform
        ("valid", (50, 90), (44, 60)),  # 13 x 5 tiles per transform
        ("same", (30, 200), None),
        ("same", (90, 40), (32, 48)),  # 5 x 1 tiles per transform
    ],
)
@pytest.mark.parametrize("batch_size", [3, 8])
def test_tta_with_batches_on_non_square_tiles(padding, shape, tile, batch_size) -> None:
    """Batches never mix the identity's tiles with the transposed image's tiles."""
    net = small_net(depth=2, padding=padding)
    image = np.random.default_rng(10).random(shape).astype(np.float32)
    t, _ = choose_tile(net, shape, tile)
    assert t[0] != t[1]
    want = predict(net, image, tile_shape=tile, tta=True, batch_size=1)
    got = predict(net, image, tile_shape=tile, tta=True, batch_size=batch_size)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_out_is_checked_before_anything_runs() -> None:
    net = small_net(depth=2)  # 3 classes
    calls = []
    net.register_forward_hook(lambda *a: calls.append(1))
    image = np.random.default_rng(11).random((20, 20)).astype(np.float32)
    with pytest.raises(
        ValueError,
        match=r"out must have a floating dtype \(float32\) to hold probabilities, got uint8",
    ):
        predict(net, image, out=np.zeros((3, 20, 20), np.uint8))
    with pytest.raises(ValueError, match=r"out has shape \(20, 20\), expected \(3, 20, 20\)"):
        predict(net, image, out=np.zeros((20, 20), np.float32))
    mine = np.full((2, 20, 20), 7.0, np.float32)
    with pytest.raises(ValueError, match=r"out has shape \(2, 20, 20\), expected \(3, 20, 20\)"):
        predict(net, image, tta=True, out=mine)
    assert not calls and (mine == 7.0).all()  # no forward pass, nothing zeroed
    with pytest.raises(TypeError, match=r"out must be an array with shape and dtype"):
        predict(net, image, out=[[0.0]])
    into = np.full((3, 20, 20), 7.0)  # float64 is fine
    assert predict(net, image, out=into, tta=True) is into
    np.testing.assert_allclose(into, predict(net, image, tta=True), atol=1e-6)


def _full_pass_same(net: UNet, image: np.ndarray, pad: int) -> np.ndarray:
    """One forward pass over the image mirror-padded by ``pad`` (and up to the grid), cropped."""
    a = net.geometry.axes[0].alignment
    pads = [(pad, pad + (-(n + 2 * pad)) % a) for n in image.shape]
    padded = np.pad(image, pads, mode="reflect")
    with torch.no_grad():
        probs = torch.softmax(net(torch.from_numpy(padded)[None, None]), 1)[0].numpy()
    return probs[(slice(None), *[slice(pad, pad + n) for n in image.shape])]


def test_same_padded_blending_is_consistent_with_one_pass(monkeypatch) -> None:
    """Blended tiles start on the pooling grid, so they agree with one pass inside the image.

    Measured (depth 2, tiles 128 px, overlap 0.5, 300 x 313 px, interior 32 px in from the
    border): 0.0014 with the starts on the 4 px grid, 0.58 with the former evenly spread starts
    0, 57, 115, 172 (neighbouring tiles then see different pooling phases).
    """
    net = small_net(depth=2, padding="same")
    image = np.random.default_rng(0).random((300, 313)).astype(np.float32)
    starts: list[int] = []
    plan = plans.plan_blend

    def spy(size, tile, overlap, align=1):
        tiles = plan(size, tile, overlap, align)
        starts.extend(t.in_start for t in tiles)
        return tiles

    monkeypatch.setattr(plans, "plan_blend", spy)
    got = predict(net, image, tile_shape=128, overlap=0.5)
    assert len(starts) == 8 and all(s % 4 == 0 for s in starts)  # 4 x 4 tiles on the grid
    want = _full_pass_same(net, image, pad=32)
    inner = (slice(None), slice(32, -32), slice(32, -32))
    assert np.abs(got - want)[inner].max() < 0.01


def test_float64_and_half_models_get_tiles_in_their_dtype() -> None:
    net = small_net(depth=2)
    image = np.random.default_rng(12).random((37, 41)).astype(np.float32)
    want = predict(net, image)
    p64 = predict(copy.deepcopy(net).double(), image, tta=True)
    assert p64.dtype == np.float32
    np.testing.assert_allclose(p64, predict(net, image, tta=True), atol=1e-5)
    p16 = predict(copy.deepcopy(net).half(), image)
    assert p16.dtype == np.float32
    np.testing.assert_allclose(p16, want, atol=2e-2)
    assert np.abs(p16 - want).max() > 0  # it really ran in half precision


def test_values_beyond_float32_and_nan_are_named() -> None:
    net = small_net(depth=2)
    big = np.zeros((20, 30))
    big[5, 17] = 1e300  # finite in float64, inf in float32
    with pytest.raises(ValueError, match=r"value 1e\+300 at index \(0, 5, 17\).*beyond float32"):
        predict(net, big)
    huge = np.full((20, 30), 1e38, np.float32)  # finite, but the network overflows
    with pytest.raises(ValueError, match=r"NaN or infinite values for the image region \[0:20"):
        predict(net, huge)
    nan = np.zeros((20, 30), np.float32)
    nan[13, 4] = np.nan
    # under TTA the pixel is still named in image coordinates
    with pytest.raises(ValueError, match=r"the first found: nan at index \(0, 13, 4\)"):
        predict(net, nan, tta=True)


def test_other_inputs_and_arguments() -> None:
    net = small_net(depth=2)
    image = np.random.default_rng(13).random((20, 24))
    want = predict(net, image)
    np.testing.assert_array_equal(predict(net, image.tolist()), want)  # a nested list
    np.testing.assert_array_equal(predict(net, image, batch_size=np.int64(2)), want)
    with pytest.raises(TypeError, match=r"batch_size must be a positive integer, got 2\.5"):
        predict(net, image, batch_size=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"batch_size must be >= 1, got 0"):
        predict(net, image, batch_size=0)
    with pytest.raises(TypeError, match=r"tile_shape must be an integer or a sequence.*44\.5"):
        predict(net, image, tile_shape=44.5)  # type: ignore[arg-type]
    with pytest.raises(
        TypeError, match=r"axis 0 of tile_shape \(44\.9, 44\) must be an integer.*got 44\.9"
    ):
        predict(net, image, tile_shape=(44.9, 44))  # type: ignore[arg-type]
    np.testing.assert_array_equal(predict(net, image, tile_shape=np.int64(44)), want)
    with pytest.raises(TypeError, match=r"dtype complex128; biounet takes real-valued images"):
        predict(net, image.astype(complex))
    with pytest.raises(TypeError, match=r"the image must be an array .* or nested lists"):
        predict(net, [[1.0, 2.0], [3.0]])
    with pytest.raises(ValueError, match=r"the image is empty: shape \(0, 20, 20\)"):
        predict(net, np.zeros((0, 20, 20)))
    with pytest.raises(ValueError, match=r"overlap must be in \[0, 1\), got 1\.0"):
        predict(small_net(padding="same"), image, overlap=1.0)


def test_progress_bar_switch(monkeypatch, capsys) -> None:
    net = small_net(depth=2)
    image = np.zeros((20, 20), np.float32)
    predict(net, image, progress=True)
    assert "tiles" in capsys.readouterr().err
    predict(net, image, progress=None)  # tqdm decides: the captured stderr is no terminal
    assert capsys.readouterr().err == ""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    predict(net, image, progress=None)
    assert "tiles" in sys.stderr.getvalue()
    monkeypatch.setattr(sys, "stderr", Terminal())
    predict(net, image, progress=False)
    assert sys.stderr.getvalue() == ""


def test_progress_callback_counts_every_tile(capsys) -> None:
    net = small_net(depth=2)
    image = np.random.default_rng(0).random((70, 90)).astype(np.float32)
    calls: list[tuple[int, int]] = []
    out = predict(
        net, image, tile_shape=44, progress=lambda done, total: calls.append((done, total))
    )
    np.testing.assert_array_equal(out, predict(net, image, tile_shape=44))
    total = calls[0][1]
    assert calls[0] == (0, total) and calls[-1] == (total, total) and total > 1
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)  # only ever grows
    assert capsys.readouterr().err == ""  # no bar besides the callback
    calls.clear()
    predict(net, image, tile_shape=44, tta=True, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (8 * total, 8 * total)  # 8 rotations/flips of every tile
