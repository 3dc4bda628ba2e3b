"""Resampling (data.scale): the arithmetic, lazy views, predict on the training grid, training."""

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.transform import resize

import biounet
from biounet.checkpoint import load_checkpoint
from biounet.config import build_config
from biounet.data.objects import SCALE_DIAMETER, ObjectSizes, auto_scale
from biounet.data.resample import resample, resample_labels, scaled_shape
from biounet.data.views import Resampled
from biounet.describe import describe_checkpoint
from biounet.inference.trained import TrainedModel

from .conftest import TINY, cells, small_net


def test_shrinking_equals_an_anti_aliased_resize_and_enlarging_a_linear_zoom() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((2, 40, 52)).astype(np.float32)
    for shape in [(24, 31), (10, 52), (13, 17)]:  # skimage: Gaussian (s - 1) / 2, then linear
        want = np.stack([resize(c.astype(np.float64), shape, order=1, mode="edge",
                                anti_aliasing=True) for c in x])  # fmt: skip
        np.testing.assert_allclose(resample(x, shape), want, atol=1e-6)
    small = x[:, :13, :17]
    for shape in [(26, 34), (39, 17)]:  # pixel centres aligned: scipy's grid mode
        zoom = (shape[0] / 13, shape[1] / 17)
        want = np.stack([ndi.zoom(c, zoom, order=1, mode="nearest", grid_mode=True) for c in small])
        np.testing.assert_allclose(resample(small, shape), want, atol=1e-6)
    assert resample(np.full((1, 9, 7), 3.5), (4, 3)).tolist() == np.full((1, 4, 3), 3.5).tolist()


@pytest.mark.parametrize("shape", [(20, 23, 30), (7, 50, 9)])
def test_a_region_equals_that_region_of_the_whole(shape) -> None:
    x = np.random.default_rng(1).random((1, 14, 37, 21)).astype(np.float32)
    whole = resample(x, shape)
    rng = np.random.default_rng(2)
    for _ in range(10):
        region = []
        for n in shape:
            a = int(rng.integers(0, n))
            region.append(slice(a, int(rng.integers(a + 1, n + 1))))
        np.testing.assert_array_equal(resample(x, shape, region), whole[(slice(None), *region)])


def test_labels_take_the_nearest_pixel_and_a_whole_factor_round_trips() -> None:
    lab = np.array([[0, 1, 1, 2], [3, 3, 0, 2]], np.uint16)
    big = resample_labels(lab, (4, 8))
    assert big.dtype == np.uint16 and set(np.unique(big)) == {0, 1, 2, 3}
    np.testing.assert_array_equal(big, np.kron(lab, np.ones((2, 2), np.uint16)))
    np.testing.assert_array_equal(resample_labels(big, (2, 4)), lab)
    with pytest.raises(ValueError, match="has 3 axes, the labels 2"):
        resample_labels(lab, (1, 2, 3))
    assert scaled_shape((1022, 1024), 0.6) == (613, 614) and scaled_shape((1,), 0.1) == (1,)
    with pytest.raises(ValueError, match="scale must be a number > 0"):
        scaled_shape((4,), 0.0)


def test_the_lazy_view_reads_what_is_sliced() -> None:
    x = np.random.default_rng(3).random((2, 30, 41)).astype(np.float32)
    view = Resampled(x, (17, 23))
    whole = resample(x, (17, 23))
    assert view.shape == (2, 17, 23) and view.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(view), whole)
    np.testing.assert_array_equal(view[:, 3:9, 10:], whole[:, 3:9, 10:])
    np.testing.assert_array_equal(view[1, -1], whole[1, -1])
    np.testing.assert_array_equal(view[:, 4, 2:5], whole[:, 4, 2:5])
    with pytest.raises(TypeError, match="step-1 slices"):
        view[:, ::2]
    with pytest.raises(IndexError, match="out of bounds"):
        view[:, 17]


def test_auto_scale_shrinks_large_objects_only() -> None:
    def sizes(d: float) -> ObjectSizes:
        return ObjectSizes(10, 1.0, 2.0, np.pi * d * d / 4, 4.0, 5.0, d, 2)

    assert auto_scale(sizes(2 * SCALE_DIAMETER)) == 0.5
    assert auto_scale(sizes(53.0)) == 0.6
    assert auto_scale(sizes(SCALE_DIAMETER)) == 1.0 and auto_scale(sizes(8.0)) == 1.0
    assert auto_scale(None) == 1.0


def test_predict_works_on_the_training_grid_and_answers_on_the_image_grid() -> None:
    net = small_net(num_classes=2)
    image = np.random.default_rng(4).random((75, 61)).astype(np.float32)
    model = TrainedModel(net, scale=0.5)
    probs = biounet.predict(model, image)
    assert probs.shape == (2, 75, 61) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)
    # independently: shrink, one prediction on the small grid, enlarge (linear, pixel centres)
    small = resize(image.astype(np.float64), (38, 30), order=1, mode="edge", anti_aliasing=True)
    on_grid = biounet.predict(net, small.astype(np.float32))
    want = np.stack(
        [ndi.zoom(p, (75 / 38, 61 / 30), order=1, mode="nearest", grid_mode=True) for p in on_grid]
    )
    np.testing.assert_allclose(probs, want, atol=1e-4)
    # a given scale wins over the model's, into a given array in slabs, and 1 is the plain pass
    out = np.zeros((2, 75, 61), np.float32)
    assert biounet.predict(model, image, out=out) is out
    np.testing.assert_array_equal(out, probs)
    np.testing.assert_array_equal(biounet.predict(model, image, scale=1.0),
                                  biounet.predict(net, image))  # fmt: skip
    with pytest.raises(ValueError, match="scale must be a number > 0"):
        biounet.predict(net, image, scale=-1.0)


def test_a_run_with_a_scale_trains_on_the_resampled_grid_and_predict_follows(tmp_path) -> None:
    samples = cells(3, size=96)
    cfg = build_config("cpu", overrides=[TINY, {"iterations": 2, "val_every": 2,
                                                "data": {"scale": 0.5}}])  # fmt: skip
    result = biounet.fit(cfg, tmp_path / "run", samples=samples, progress=False)
    ck = load_checkpoint(result.run / "best.pt")
    assert ck["scale"] == 0.5 and result.model.scale == 0.5
    # the object sizes (and the rule) are those of the labels on their own grid
    areas = np.concatenate([np.bincount(s.annotation.ravel())[1:] for s in samples])
    assert ck["instances"]["object_sizes"]["area_median"] >= 0.5 * np.median(areas[areas > 0])
    model = biounet.load(result.run)
    assert model.scale == 0.5
    image = samples[0].image[0]
    probs = biounet.predict(model, image)
    assert probs.shape == (3, 96, 96)  # the cpu preset's 3-class target
    assert "images resampled by 0.5" in describe_checkpoint(result.run / "best.pt", flops=False)


def test_bad_scales_are_refused_and_old_checkpoints_read_as_one(tmp_path) -> None:
    for bad, match in (("big", "must be 'auto' or a number"), (0, r"must be in \(0, 8\]"),
                       (9.0, r"must be in \(0, 8\]")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            build_config("cpu", overrides=[{"data": {"scale": bad}}])
    assert build_config("cpu", overrides=[{"data": {"scale": "auto"}}]).data.scale == "auto"
    from biounet.checkpoint import save_checkpoint

    path = save_checkpoint(tmp_path / "old.pt", small_net())
    assert biounet.load(path).scale == 1.0
    save_checkpoint(tmp_path / "bad.pt", small_net(), scale=-2)
    with pytest.raises(ValueError, match="'scale' entry -2 is no number > 0"):
        biounet.load(tmp_path / "bad.pt")
