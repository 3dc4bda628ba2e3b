"""Anisotropic voxels: coarse axes in the network's arithmetic, its layers, tiling and training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from biounet.data.augment import AugmentConfig, draw
from biounet.model.geometry import Geometry
from biounet.model.plan import coarse_levels, physical_tile
from biounet.model.shapes import ShapeGeometry
from biounet.model.unet import UNet


# ------------------------------------------------------------------------------ arithmetic
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("upsample", ["transposed", "nearest", "linear"])
@pytest.mark.parametrize("coarse", [0, 1, 2])
def test_coarse_axis_arithmetic_matches_the_network(padding, upsample, coarse) -> None:
    """Every size the arithmetic calls valid passes through the network with that output."""
    net = UNet(ndim=3, depth=2, base_width=2, padding=padding, upsample=upsample,
               coarse_levels=(coarse, 0, 0)).eval()  # fmt: skip
    g = net.geometry
    z = g.axes[0]
    assert z.alignment == 2 ** (2 - coarse) and g.axes[1].alignment == 4
    inplane = g.axes[1].nearest_valid_sizes(20)[1]
    for n in range(1, 40):
        shape = (n, inplane, inplane)
        if not z.is_valid_size(n):
            with pytest.raises(ValueError, match="axis 0"):
                net(torch.zeros(1, 1, *shape))
            continue
        with torch.no_grad():
            out = net(torch.zeros(1, 1, *shape))
        assert tuple(out.shape[2:]) == g.output_shape(shape)


def test_a_coarse_axis_needs_less_context_and_a_smaller_grid() -> None:
    iso, coarse = Geometry(depth=3), Geometry(depth=3, coarse=1)
    # along the coarse axis levels 0 and 1 work at full resolution, level 0 with kernel 1:
    # 2 + 4 + 8 (down) + 4 + 2 (up) = 20 voxels per side, against 44 px
    assert (iso.margin, coarse.margin) == (44, 20)
    assert (iso.alignment, coarse.alignment) == (8, 4)
    assert Geometry(depth=3, coarse=3).alignment == 1  # never pooled
    with pytest.raises(ValueError, match="coarse levels must be in"):
        Geometry(depth=3, coarse=4)
    g = ShapeGeometry.of(Geometry(depth=3), coarse=(1, 0, 0))
    assert g.margins == (20, 44, 44) and not g.isotropic
    assert ShapeGeometry.of(Geometry(depth=3), ndim=2).isotropic


def test_margin_of_a_coarse_axis_is_its_context_measured_with_gradients() -> None:
    """Output planes ``[0, a)`` read exactly input planes ``[0, a + 2 * margin)`` along z."""
    torch.manual_seed(0)
    net = UNet(ndim=3, depth=2, base_width=2, coarse_levels=(1, 0, 0)).double().eval()
    g = net.geometry
    a, mz = g.alignments[0], g.margins[0]
    shape = g.valid_shape((a + 2 * mz + 8, 36, 36))
    x = torch.randn(1, 1, *shape, dtype=torch.float64, requires_grad=True)
    net(x)[0, :, :a].sum().backward()
    reach = np.flatnonzero(x.grad[0, 0].abs().sum(dim=(1, 2)).numpy() > 0)
    assert (reach.min(), reach.max()) == (0, a + 2 * mz - 1)


def test_coarse_levels_follow_the_spacing() -> None:
    assert coarse_levels((2.2, 1, 1), 3) == (1, 0, 0)
    assert coarse_levels((2.0, 1, 1), 3) == (1, 0, 0)  # twice as long: coarse at level 0
    assert coarse_levels((1.9, 1, 1), 3) == (0, 0, 0)
    assert coarse_levels((5.0, 1, 1), 3) == (2, 0, 0)
    assert coarse_levels((50.0, 4, 4), 3) == (3, 0, 0)  # at most depth
    assert coarse_levels((1, 1, 3.0), 4) == (0, 0, 1)  # any axis
    g = ShapeGeometry.of(Geometry(depth=3, padding="same"), coarse=(1, 0, 0))
    assert physical_tile(96, (2.2, 1, 1), g) == (44, 96, 96)
    assert physical_tile(96, None, g) == (96, 96, 96)


# ------------------------------------------------------------------------------ inference
@pytest.mark.parametrize("tile", [None, (22, 44, 48)])
def test_overlap_tile_equals_one_pass_with_a_coarse_axis(tile) -> None:
    """Crop-mode tiles of an anisotropic valid net equal one pass over the mirrored volume."""
    import math

    from biounet import predict
    from biounet.inference.predictor import choose_tile

    torch.manual_seed(0)
    net = UNet(ndim=3, depth=2, base_width=2, norm="batch", coarse_levels=(1, 0, 0))
    for m in net.modules():  # non-trivial running statistics
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    net = net.double().eval()
    image = np.random.default_rng(0).random((1, 13, 30, 27))
    g = net.geometry
    t, stride = choose_tile(net, image.shape[1:], tile)
    assert all(s % a == 0 for s, a in zip(stride, g.alignments))
    tiled = predict(net, image, tile_shape=t, backend="eager")
    pads = [(0, 0)]
    for n, ti, st, ga in zip(image.shape[1:], t, stride, g.axes):
        out_t = ga.output_size(ti)
        covered = (max(1, math.ceil((n - out_t) / st) + 1) - 1) * st + out_t
        pads.append((ga.margin, covered - n + ga.margin))
    padded = np.pad(image, pads, mode="reflect")
    with torch.no_grad():
        ref = torch.softmax(net(torch.from_numpy(padded)[None]), 1)[0].numpy()
    ref = ref[(slice(None), *(slice(0, n) for n in image.shape[1:]))]
    assert tiled.shape == (2, 13, 30, 27)
    np.testing.assert_allclose(tiled, ref, atol=1e-6)


def test_blended_tiles_of_a_same_net_with_a_coarse_axis_cover_the_volume() -> None:
    from biounet import predict

    net = UNet(ndim=3, depth=2, base_width=2, padding="same", coarse_levels=(1, 0, 0)).eval()
    image = np.random.default_rng(1).random((9, 40, 33), dtype=np.float32)
    probs = predict(net, image, tile_shape=(6, 16, 16), backend="eager")
    assert probs.shape == (2, 9, 40, 33)
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="axis 0.*multiple of 2"):
        predict(net, image, tile_shape=(5, 16, 16))


# ------------------------------------------------------------------------------ augmentation
def test_augmentation_keeps_physical_lengths_and_turns_only_square_planes() -> None:
    iso = AugmentConfig(elastic_sigma=10.0, shift=4.0)
    aniso = AugmentConfig(elastic_sigma=10.0, shift=4.0, spacing=(2.5, 1.0, 1.0))
    a = draw(iso, 3, np.random.default_rng(0))
    b = draw(aniso, 3, np.random.default_rng(0))
    np.testing.assert_allclose(b.coarse[0], a.coarse[0] / 2.5)  # z: fewer voxels, same length
    np.testing.assert_allclose(b.coarse[1:], a.coarse[1:])
    np.testing.assert_allclose(b.shift, a.shift / np.array([2.5, 1, 1]))
    assert b.matrix[0, 1:].tolist() == [0, 0] and b.matrix[1:, 0].tolist() == [0, 0]  # z alone
    flat = AugmentConfig(rotate=90.0, spacing=(1.0, 3.0))  # 2D pixels 3x longer along y
    for seed in range(20):
        m = draw(flat, 2, np.random.default_rng(seed)).matrix
        assert m[0, 1] == 0 and m[1, 0] == 0  # neither rotated nor transposed
    with pytest.raises(ValueError, match="augment.spacing"):
        AugmentConfig(spacing=(0.0, 1.0))


# ------------------------------------------------------------------------------ training
TINY3D = {
    "model": {"depth": 2, "base_width": 4},
    "tile": 32,
    "batch_size": 2,
    "iterations": 3,
    "val_every": 3,
    "log_every": 1,
    "optim": {"warmup": 0},
    "recalibrate_bn": 4,
}


def write_stacks(root, spacing=None, n=3):
    """``n`` nucleus stacks of 12 x 40 x 40 voxels (z 2.2x coarser) as images/ + masks/."""
    from biounet.data.io import write_image
    from biounet.data.maps import write_labels
    from biounet.data.synthetic import make_nuclei

    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        img, lab = make_nuclei((12, 40, 40), spacing=(2.2, 1, 1), coverage=0.05, seed=i)
        kw = {} if spacing is None else {"spacing": spacing}
        write_image(root / "images" / f"v{i}.tif", (img * 65535).astype(np.uint16), **kw)
        write_labels(root / "masks" / f"v{i}.tif", lab)
    return root


@pytest.mark.parametrize("where", ["metadata", "config"])
def test_a_run_plans_its_network_from_the_voxel_spacing_and_stores_it(tmp_path, where) -> None:
    import biounet
    from biounet.config import build_config
    from biounet.data.io import read_image
    from biounet.train.voxels import VoxelPlan

    data = write_stacks(tmp_path / "data", (2.2, 0.5, 0.5) if where == "metadata" else None)
    settings = {"path": str(data), "annotation": "instances", "val_fraction": 0.34}
    if where == "config":
        settings["spacing"] = [4.4, 1.0, 1.0]
    cfg = build_config("cpu", overrides=[TINY3D, {"data": {**settings, "ndim": 3}}])
    result = biounet.fit(cfg, tmp_path / "run", progress=False)
    spacing = (2.2, 0.5, 0.5) if where == "metadata" else (4.4, 1.0, 1.0)
    model = biounet.load(tmp_path / "run")
    assert model.spacing == pytest.approx(spacing) == result.model.spacing
    assert model.config.coarse_levels == (2, 0, 0)  # 4.4x: coarse for two of the 2 levels
    assert model.tile == (8, 32, 32)  # 32 px across cover about 8 planes of 4.4 px
    assert model.config.padding == "same"  # the cpu3d preset's network
    image = read_image(data / "images" / "v0.tif")
    probs = biounet.predict(model, image)
    assert probs.shape == (3, 12, 40, 40)
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)
    from biounet.describe import describe_checkpoint

    text = describe_checkpoint(tmp_path / "run", flops=False)
    assert "voxel spacing: [" in text and "coarse levels [2, 0, 0]" in text
    assert "axis 0 is coarse for 2 level(s)" in text
    plan = VoxelPlan(spacing)
    assert plan.weights(cfg.weights).spacing == pytest.approx((4.4, 1.0, 1.0))
    assert plan.augment(cfg.augment).spacing == pytest.approx((4.4, 1.0, 1.0))


def test_isotropic_and_unknown_spacings_change_nothing() -> None:
    from biounet.config import build_config
    from biounet.train.voxels import VoxelPlan

    cfg = build_config("cpu3d")
    for plan in (VoxelPlan(), VoxelPlan((1.2, 1.0, 1.0))):
        assert plan.unet_config(cfg, 1).coarse_levels == ()
        assert plan.weights(cfg.weights) == cfg.weights
        assert plan.augment(cfg.augment) == cfg.augment
        g = plan.unet_config(cfg, 1).geometry
        assert plan.tile(96, g) == (96, 96, 96)
    given = build_config("cpu3d", model={"coarse_levels": [0, 0, 0]})
    assert VoxelPlan((3.0, 1.0, 1.0)).unet_config(given, 1).coarse_levels == ()  # user's word


def test_spacing_settings_are_checked(tmp_path) -> None:
    import biounet
    from biounet.config import build_config
    from biounet.data.layouts import Sample
    from biounet.train.voxels import resolve_spacing

    cfg = build_config("cpu3d", data={"spacing": [2.2, 1.0]})
    with pytest.raises(ValueError, match=r"data.spacing \[2.2, 1.0\] must give one voxel size"):
        resolve_spacing(cfg, [])
    data = write_stacks(tmp_path / "data")
    bad = build_config(
        "cpu3d", overrides=[TINY3D, {"data": {"path": str(data), "spacing": [1, 2]}}]
    )
    with pytest.raises(ValueError, match="one voxel size per spatial axis"):
        biounet.fit(bad, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()  # refused before the run folder was made
    plain = build_config("cpu3d")
    a = Sample("a", np.zeros((1, 4, 4, 4)), spacing=(2.0, 1.0, 1.0))
    b = Sample("b", np.zeros((1, 4, 4, 4)), spacing=(3.0, 1.0, 1.0))
    assert resolve_spacing(plain, [a, b]) == (2.0, 1.0, 1.0)  # the first, with a warning
    assert resolve_spacing(plain, [Sample("c", np.zeros((1, 4, 4, 4)))]) is None


def test_class_weights_are_capped(tmp_path) -> None:
    from biounet.data.annotations import AnnotationSpec
    from biounet.data.layouts import Sample
    from biounet.data.normalize import Normalizer
    from biounet.data.tiles import prepare
    from biounet.data.weightmap import WeightConfig

    labels = np.zeros((40, 40), np.int32)
    labels[5:9, 5:9] = 1  # 1% foreground: balanced weight 99
    s = Sample("s", np.random.default_rng(0).random((1, 40, 40)), labels)
    spec = AnnotationSpec("instances")
    norm = Normalizer(mode="none")
    free = prepare([s], spec, norm, WeightConfig(w0=0.0))[0]
    capped = prepare([s], spec, norm, WeightConfig(w0=0.0, max_class_weight=10.0))[0]
    assert free.weights[6, 6] == pytest.approx(99.0)
    assert capped.weights[6, 6] == pytest.approx(10.0) and capped.weights[30, 30] == 1.0


# ------------------------------------------------------------------------------ one volume
def test_one_volume_is_cut_into_a_training_part_and_a_validation_block() -> None:
    from biounet.config import build_config
    from biounet.data.layouts import Sample
    from biounet.train.data import split

    image = np.arange(12 * 40 * 50, dtype=np.float32).reshape(1, 12, 40, 50)
    labels = np.arange(12 * 40 * 50, dtype=np.int32).reshape(12, 40, 50)
    vol = Sample("v", image, labels, spacing=(2.2, 1.0, 1.0))
    train, val = split([vol], build_config("cpu3d").data, seed=0)  # val_fraction 0.2
    assert [s.name for s in train + val] == ["v [x 0:40]", "v [x 40:50]"]
    assert train[0].image.shape == (1, 12, 40, 40) and val[0].image.shape == (1, 12, 40, 10)
    np.testing.assert_array_equal(val[0].image, image[..., 40:])
    np.testing.assert_array_equal(train[0].annotation, labels[..., :40])
    assert val[0].spacing == (2.2, 1.0, 1.0)
    nothing = split([vol], build_config("cpu3d", data={"val_fraction": 0.0}).data, seed=0)
    assert nothing == ([vol], [])
    tiny = Sample("t", np.zeros((1, 1, 1)), np.zeros((1, 1), np.int32))
    assert split([tiny], build_config("cpu").data, seed=0) == ([tiny], [])


def test_training_on_one_volume_validates_on_a_block_and_reports(tmp_path, caplog) -> None:
    import json

    import biounet
    from biounet.config import build_config
    from biounet.reporting.page import write_report

    data = write_stacks(tmp_path / "data", (2.2, 1.0, 1.0), n=1)
    settings = {"path": str(data), "annotation": "instances", "val_fraction": 0.25}
    cfg = build_config("cpu", overrides=[TINY3D, {"data": {**settings, "ndim": 3}}])
    biounet.fit(cfg, tmp_path / "run", progress=False)
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().split("\n")
               if x]  # fmt: skip
    assert any("val_iou" in r for r in records)  # the held-out block validated
    assert (tmp_path / "run" / "best.pt").exists() and (tmp_path / "run" / "last.pt").exists()
    page = write_report(tmp_path / "run", n_gallery=1).read_text()
    assert "v0 [y 30:40]" in page and "orthogonal views" in page  # the first longest axis
    alone = build_config("cpu", overrides=[TINY3D, {"data": {**settings, "ndim": 3,
                                                             "val_fraction": 0.0}}])  # fmt: skip
    with caplog.at_level("WARNING"):
        biounet.fit(alone, tmp_path / "alone", progress=False)
    assert "no validation images" in caplog.text


def test_the_instance_rule_measures_seed_depth_in_finest_axis_px() -> None:
    """Nuclei 18 px across span 8 planes: in voxels their centres are too shallow to seed."""
    from biounet.inference.postprocess import InstanceRule

    probs = np.zeros((2, 7, 21, 40), np.float32)
    zz, yy, xx = np.mgrid[:7, :21, :40]
    for cx in (10, 28):  # two touching balls of radius 9 px, sampled 2.2x coarser along z
        inside = ((zz - 3) * 2.2) ** 2 + (yy - 10) ** 2 + (xx - cx) ** 2 <= 9**2
        probs[1][inside] = 1.0
    probs[0] = 1 - probs[1]
    plain = InstanceRule("two_class", h=6.0)
    voxels = InstanceRule("two_class", h=6.0, spacing=(2.2, 1.0, 1.0))
    assert plain(probs).max() == 1  # counted in voxels the centres are shallow: merged
    assert voxels(probs).max() == 2  # in px of the finest axis they are deep enough: two


def test_one_tile_size_covers_as_many_um_along_a_coarse_axis() -> None:
    from biounet.inference.predictor import choose_tile
    from biounet.inference.trained import TrainedModel

    net = UNet(ndim=3, depth=3, base_width=2, padding="same", coarse_levels=(1, 0, 0))
    model = TrainedModel(net, spacing=(2.2, 0.5, 0.5), tile=(44, 96, 96))
    assert choose_tile(model, (51, 120, 122), 96)[0] == (24, 96, 96)  # 96 / 4.4, valid: 24
    assert choose_tile(model, (51, 120, 122), (8, 96, 96))[0] == (8, 96, 96)  # per axis: as given
    assert choose_tile(TrainedModel(net), (51, 120, 122), 96)[0] == (96, 96, 96)  # no spacing
    # without a tile, blended tiles are at least the training tile
    assert choose_tile(model, (51, 120, 122), None)[0] == (52, 96, 96)  # all 51 planes in one


def test_export_of_a_network_with_a_coarse_axis_states_its_geometry_per_axis(tmp_path) -> None:
    import json

    from biounet.export import export_model
    from biounet.inference.trained import TrainedModel

    torch.manual_seed(0)
    net = UNet(ndim=3, depth=2, base_width=2, coarse_levels=(1, 0, 0)).eval()
    model = TrainedModel(net, spacing=(2.2, 1.0, 1.0), tile=(22, 44, 48))
    report = export_model(model, tmp_path / "net.pt", format="torchscript")
    assert report.input_shape[1:] == (1, 22, 44, 48)  # the training tile
    side = json.loads(report.sidecar.read_text())
    assert side["voxel_spacing"] == [2.2, 1.0, 1.0]
    assert side["margin"] == [8, 20, 20] and side["output_offset"] == [8, 20, 20]
    assert side["valid_tile_sizes"]["step"] == [2, 4, 4]
    assert report.max_abs_diff is not None and report.max_abs_diff < 1e-5


def test_predict_warns_about_a_stack_in_other_proportions(tmp_path, caplog) -> None:
    from biounet.data.io import write_image
    from biounet.inference.trained import TrainedModel
    from biounet.segment import predict_files

    net = UNet(ndim=3, depth=2, base_width=2, padding="same", coarse_levels=(1, 0, 0)).eval()
    model = TrainedModel(net, spacing=(2.2, 1.0, 1.0))
    image = np.random.default_rng(0).integers(0, 999, (8, 24, 24)).astype(np.uint16)
    write_image(tmp_path / "same.tif", image, spacing=(1.1, 0.5, 0.5))  # the same proportions
    write_image(tmp_path / "deep.tif", image, spacing=(5.0, 0.5, 0.5))  # z steps 10x the pixel
    with caplog.at_level("WARNING"):
        done = predict_files(model, [tmp_path / "same.tif"], tmp_path / "a", progress=False)
    assert len(done) == 1 and "proportions" not in caplog.text
    with caplog.at_level("WARNING"):
        predict_files(model, [tmp_path / "deep.tif"], tmp_path / "b", progress=False)
    assert "deep.tif: voxel spacing [5.0, 0.5, 0.5] is not in the proportions" in caplog.text
    assert "fewer voxels along the first axis" in caplog.text


def test_a_3d_run_with_a_coarse_axis_resumes_to_the_straight_result(tmp_path) -> None:
    import biounet
    from biounet.checkpoint import load_checkpoint
    from biounet.config import build_config, parse_override, resume_config

    data = write_stacks(tmp_path / "data", (2.2, 1.0, 1.0))
    settings = {"data": {"path": str(data), "annotation": "instances", "val_fraction": 0.34},
                "optim": {"schedule": "constant"}, "val_every": 2}  # fmt: skip
    short = build_config("cpu3d", overrides=[TINY3D, settings, {"iterations": 2}])
    biounet.fit(short, tmp_path / "run", progress=False)
    longer = resume_config(tmp_path / "run", [parse_override("iterations=4")])
    biounet.fit(longer, tmp_path / "run", resume=True, progress=False)
    straight = build_config("cpu3d", overrides=[TINY3D, settings, {"iterations": 4}])
    biounet.fit(straight, tmp_path / "straight", progress=False)
    resumed = load_checkpoint(tmp_path / "run" / "last.pt")
    expected = load_checkpoint(tmp_path / "straight" / "last.pt")
    assert resumed["iteration"] == 4 and resumed["spacing"] == [2.2, 1.0, 1.0]
    assert resumed["model_config"]["coarse_levels"] == [1, 0, 0]
    for k, v in expected["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][k], v, rtol=1e-5, atol=1e-6)
