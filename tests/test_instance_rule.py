"""The instance rule: derived from object sizes, stored with the model, applied by predict."""

import math

import numpy as np
import pytest
import torch

import biounet
from biounet.checkpoint import instance_entry, save_checkpoint
from biounet.cli import main
from biounet.data import Normalizer, read_image, write_image
from biounet.data.annotations import three_class_target
from biounet.data.objects import ObjectSizes, object_sizes
from biounet.data.synthetic import make_cells
from biounet.describe import describe_checkpoint
from biounet.inference.postprocess import InstanceRule, instances, instances_from_probabilities
from biounet.segment import PredictOptions, predict_files


def touching_disks(r: int = 8, apart: int = 15, speck: bool = False) -> np.ndarray:
    """Two disks of radius ``r``, centres ``apart`` px apart (touching), and a 2-px speck."""
    yy, xx = np.mgrid[: 2 * r + 8, : 2 * r + apart + 8]
    c = r + 4
    left = (yy - c) ** 2 + (xx - c) ** 2 <= r * r
    right = (yy - c) ** 2 + (xx - c - apart) ** 2 <= r * r
    lab = np.where(left, 1, np.where(right, 2, 0)).astype(np.int32)
    if speck:
        lab[0, -2:] = 3
    return lab


def one_hot(classes: np.ndarray, k: int) -> np.ndarray:
    return np.stack([classes == i for i in range(k)]).astype(np.float32)


def sizes_of_radius(r: float, ndim: int = 2) -> ObjectSizes:
    area = math.pi * r * r
    return ObjectSizes(50, 0.5 * area, 0.8 * area, area, 1.2 * area, 1.5 * area, 2 * r, ndim)


def test_the_rule_follows_the_sizes_of_the_training_objects() -> None:
    sizes = sizes_of_radius(20)  # median radius 20 px, 5th-percentile area 200 pi px
    two, three = (InstanceRule.from_sizes(sizes, t) for t in ("two_class", "three_class"))
    assert (two.target, two.h, two.min_size) == ("two_class", 3.0, round(0.25 * 200 * math.pi))
    assert (three.target, three.h, three.min_size) == ("three_class", 6.0, two.min_size)
    assert two.fill_holes and "50 training objects" in two.source
    tiny = InstanceRule.from_sizes(sizes_of_radius(2), "two_class")
    assert tiny.h == 1.0 and tiny.min_size == 2  # h never below 1 px
    default = InstanceRule.from_sizes(None, "three_class")
    assert (default.h, default.min_size, default.target) == (2.0, 0, "three_class")
    assert "defaults" in default.source
    # from real labels, through object_sizes
    areas = np.bincount(touching_disks().ravel())[1:]
    rule = InstanceRule.from_sizes(object_sizes([touching_disks()]), "two_class")
    assert rule.min_size == round(0.25 * np.quantile(areas, 0.05))


def test_round_trip_and_bad_values() -> None:
    rule = InstanceRule.from_sizes(sizes_of_radius(10), "three_class")
    d = rule.to_dict()
    assert set(d) == {"target", "min_size", "h", "fill_holes", "source", "threshold", "spacing"}
    assert InstanceRule.from_dict(d) == rule
    voxels = InstanceRule("three_class", h=2.0, spacing=(2.2, 1, 1))
    assert voxels.to_dict()["spacing"] == [2.2, 1.0, 1.0]
    assert (
        InstanceRule.from_dict(voxels.to_dict()) == voxels and "voxel spacing" in voxels.describe()
    )
    with pytest.raises(ValueError, match="rule spacing"):
        InstanceRule(spacing=(0, 1))
    # a rule stored before the threshold was part of it reads with the default 0.5
    old = {k: v for k, v in d.items() if k != "threshold"}
    assert InstanceRule.from_dict(old).threshold == 0.5
    with pytest.raises(ValueError, match="instance rule threshold"):
        InstanceRule(threshold=1.0)
    with pytest.raises(ValueError, match=r"unknown keys \['size'\]"):
        InstanceRule.from_dict({**d, "size": 3})
    with pytest.raises(ValueError, match="unknown instance rule target 'two'"):
        InstanceRule("two")
    with pytest.raises(ValueError, match="h must be a number of pixels > 0, got 0"):
        InstanceRule(h=0)
    with pytest.raises(ValueError, match="min_size must be a whole number"):
        InstanceRule(min_size=-1)


def test_touching_disks_are_separated_in_both_targets() -> None:
    lab = touching_disks()
    rule_sizes = object_sizes([lab])
    p2 = one_hot((lab > 0).astype(int), 2)  # touching: only the distance transform splits them
    r2 = InstanceRule.from_sizes(rule_sizes, "two_class")
    out2 = r2(p2)
    assert out2.max() == 2
    np.testing.assert_array_equal(out2, instances(p2, h=r2.h, min_size=r2.min_size))
    p3 = one_hot(three_class_target(lab), 3)
    out3 = InstanceRule.from_sizes(rule_sizes, "three_class")(p3)
    assert out3.max() == 2
    # each object is one of the true disks, boundary pixels included
    for i in (1, 2):
        assert len(np.unique(out3[lab == i])) == 1
    assert ((out3 > 0) == (lab > 0)).all()


def test_a_missed_boundary_is_split_by_the_distance_transform() -> None:
    lab = touching_disks()
    p3 = one_hot(three_class_target(lab), 3)
    p3[1][p3[2] > 0], p3[2][:] = 1.0, 0.0  # no boundary predicted at all: one interior blob
    assert InstanceRule("three_class", h=2.4)(p3).max() == 2


def test_specks_below_min_size_are_dropped_unless_overridden() -> None:
    lab = touching_disks(speck=True)
    p2 = one_hot((lab > 0).astype(int), 2)
    rule = InstanceRule("two_class", min_size=5, h=2.0)
    assert rule(p2).max() == 2
    assert rule(p2, min_size=0).max() == 3  # a user's option wins
    p3 = one_hot(three_class_target(lab), 3)
    assert InstanceRule("three_class", min_size=5, h=2.4)(p3).max() == 2


def test_the_rule_needs_probabilities_of_its_target() -> None:
    p2 = one_hot((touching_disks() > 0).astype(int), 2)
    with pytest.raises(ValueError, match="target is 'three_class' .* probs have 2 classes"):
        InstanceRule("three_class")(p2)


def test_instances_from_probabilities_takes_a_rule() -> None:
    lab = touching_disks(speck=True)
    p3 = one_hot(three_class_target(lab), 3)
    rule = InstanceRule("three_class", min_size=5, h=2.4)
    np.testing.assert_array_equal(instances_from_probabilities(p3, rule=rule), rule(p3))
    np.testing.assert_array_equal(
        instances_from_probabilities(p3, rule=rule, min_size=0), rule(p3, min_size=0)
    )
    with pytest.raises(ValueError, match="applies to kind='cells', not 'membranes'"):
        instances_from_probabilities(p3, kind="membranes", rule=rule)


# ---------------------------------------------------------------- stored with the model


@pytest.fixture
def images(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    rng = np.random.default_rng(0)
    write_image(d / "im0.png", rng.integers(0, 255, (30, 41), dtype=np.uint8))
    return d


def checkpoint(tmp_path, rule: InstanceRule | None, sizes: ObjectSizes | None = None):
    torch.manual_seed(0)
    extra = {}
    if rule is not None:
        sizes_dict = sizes.to_dict() if sizes is not None else None
        extra["instances"] = {"rule": rule.to_dict(), "object_sizes": sizes_dict}
    return save_checkpoint(
        tmp_path / "m.pt",
        biounet.UNet(depth=2, base_width=4),
        normalize=Normalizer().to_dict(),
        class_names=["background", "cell"],
        tile=44,
        **extra,
    )


def test_load_reads_the_rule_and_old_checkpoints_have_none(tmp_path) -> None:
    sizes = sizes_of_radius(6)
    rule = InstanceRule.from_sizes(sizes, "two_class")
    model = biounet.load(checkpoint(tmp_path, rule, sizes))
    # compared as dicts: pytest's doctest collection may import the module a second time
    assert model.instance_rule is not None
    assert model.instance_rule.to_dict() == rule.to_dict()
    read, no_sizes = instance_entry({"instances": {"rule": rule.to_dict(), "object_sizes": None}})
    assert read is not None and read.to_dict() == rule.to_dict() and no_sizes is None
    assert biounet.load(checkpoint(tmp_path, None)).instance_rule is None
    with pytest.raises(ValueError, match="x.pt: its 'instances' entry does not read"):
        instance_entry({"path": "x.pt", "instances": {"rule": {"h": "deep"}}})


def test_predict_applies_the_model_rule_and_options_win(images, tmp_path) -> None:
    rule = InstanceRule("two_class", min_size=10**6, h=3.0)  # drops every object
    model = biounet.load(checkpoint(tmp_path, rule))
    probs = biounet.predict(model, read_image(images / "im0.png"))
    assert instances(probs).max() > 0  # the defaults would keep objects
    predict_files(model, [images], tmp_path / "a", PredictOptions(instances=True), progress=False)
    assert read_image(tmp_path / "a" / "im0_labels.tif").max() == 0
    opts = PredictOptions(instances=True, postprocess={"min_size": 0})
    predict_files(model, [images], tmp_path / "b", opts, progress=False)
    np.testing.assert_array_equal(
        read_image(tmp_path / "b" / "im0_labels.tif"), instances(probs, h=3.0, min_size=0)
    )


def test_the_predict_command_overrides_the_rule(images, tmp_path) -> None:
    rule = InstanceRule("two_class", min_size=10**6, h=3.0)
    path = checkpoint(tmp_path, rule)
    out = tmp_path / "c"
    args = ["predict", str(path), str(images), "--out", str(out), "--instances", "--no-progress"]
    assert main([*args, "--min-size", "0", "--h", "5"]) == 0
    probs = biounet.predict(biounet.load(path), read_image(images / "im0.png"))
    np.testing.assert_array_equal(
        read_image(out / "im0_labels.tif"), instances(probs, h=5.0, min_size=0)
    )


def test_inspect_shows_the_sizes_and_the_rule(tmp_path) -> None:
    sizes = sizes_of_radius(6)
    rule = InstanceRule.from_sizes(sizes, "two_class")
    text = describe_checkpoint(checkpoint(tmp_path, rule, sizes), flops=False)
    assert f"training objects: {sizes.describe()}" in text
    assert f"(--h, --min-size override): {rule.describe()}" in text
    old = describe_checkpoint(checkpoint(tmp_path, None), flops=False)
    assert "training objects: not stored" in old and "uses h 2 px, min_size 0" in old


def test_the_rule_is_chosen_on_validation_images(monkeypatch) -> None:
    from scipy import ndimage as ndi

    import biounet.inference.predictor as predictor
    from biounet.data.tiles import TrainImage
    from biounet.train.tune import H_FRACTIONS, MIN_SIZE_FRACTIONS, THRESHOLDS, tune_rule

    labels = [make_cells((128, 128), gap=0, seed=s)[1] for s in range(3)]
    # blurred ideal probabilities: touching cells without gaps, so the seed depth decides
    fake = {}
    images = []
    for i, lab in enumerate(labels):
        fg = ndi.gaussian_filter((lab > 0).astype(np.float32), 2.0)
        fake[i] = np.stack([1 - fg, fg]).astype(np.float32)
        image = np.full((1, 128, 128), float(i), np.float32)  # tells the fake which image
        images.append(TrainImage(f"v{i}", image, lab > 0, lab, np.zeros(0), lab.astype(np.int32)))
    monkeypatch.setattr(predictor, "predict", lambda net, image, **kw: fake[int(image[0, 0, 0])])
    sizes = object_sizes(labels)
    rule, scores = tune_rule(None, images, sizes, "two_class", torch.device("cpu"))

    def ap(r: InstanceRule) -> float:
        from biounet.metrics.instances import InstanceAccumulator

        acc = InstanceAccumulator(thresholds=(0.5,))
        for lab, p in zip(labels, fake.values()):
            acc.update(lab, r(p))
        return float(acc.scores()["ap_50"])

    default = InstanceRule.from_sizes(sizes, "two_class")
    assert scores["ap_50_sizes"] == pytest.approx(ap(default))
    assert scores["ap_50"] == pytest.approx(ap(rule)) and scores["ap_50"] >= scores["ap_50_sizes"]
    # the best threshold, then the best seed depth at it, then the best size with both
    by_t = max(ap(InstanceRule.from_sizes(sizes, "two_class", threshold=t)) for t in THRESHOLDS)
    t = rule.threshold
    by_h = max(
        ap(InstanceRule.from_sizes(sizes, "two_class", h_fraction=f, threshold=t))
        for f in H_FRACTIONS
    )
    assert scores["ap_50"] >= by_h >= by_t - 1e-12 and t in THRESHOLDS
    assert (
        any(rule.min_size == round(m * sizes.area_p05) for m in MIN_SIZE_FRACTIONS)
        and "chosen on 3 validation image(s)" in rule.source
    )
    # a tie (nothing found at any depth) keeps the default fractions
    empty = np.stack([np.ones((128, 128)), np.zeros((128, 128))]).astype(np.float32)
    monkeypatch.setattr(predictor, "predict", lambda net, image, **kw: empty)
    tie, tie_scores = tune_rule(None, images, sizes, "two_class", torch.device("cpu"))
    assert (tie.h, tie.min_size, tie.threshold) == (default.h, default.min_size, 0.5)
    assert tie_scores["ap_50"] == 0
    assert tune_rule(None, images, None, "two_class", torch.device("cpu")) is None
