"""``biounet.predict``: overlap-tile inference equals one pass over the mirror-padded image."""

import math

import numpy as np
import pytest
import torch
import zarr

import biounet
from biounet import UNet, predict
from biounet.inference import choose_tile, resolve_device

from .conftest import small_net


def full_pass(net: UNet, image: np.ndarray, tile: tuple, stride: tuple) -> np.ndarray:
    """Independent reference: mirror-pad the whole image (numpy), one forward pass, crop."""
    m = net.margin
    pads = [(0, 0)]
    for n, t, s in zip(image.shape[1:], tile, stride):
        out_t = net.geometry.output_size(t)
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
    ],
)
def test_tiled_equals_one_pass_over_the_mirror_padded_image(options, shape, tile) -> None:
    net = small_net(**options).double()
    c = net.config.in_channels
    image = np.random.default_rng(0).random((c, *shape))
    t, s = choose_tile(net, shape, tile)
    assert all(si % net.geometry.alignment == 0 for si in s)
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
    assert (
        resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
        or resolve_device("auto").type == "mps"
    )
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    with pytest.raises(ValueError, match=r"unknown device 'gpu0'"):
        resolve_device("gpu0")


def test_public_api_is_lazy_and_complete() -> None:
    assert biounet.predict is predict
    assert set(biounet.__all__) <= set(dir(biounet))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        biounet.nope  # noqa: B018


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
    computed = math.prod(c * net.geometry.output_size(t) for c, t in zip(count, tile))
    assert computed / 2048**2 - 1 <= 0.10  # at most 10% of the computed output is thrown away
    assert choose_tile(net, (1, 1)) == ((204, 204), (16, 16))
