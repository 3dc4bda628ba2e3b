"""Segmenting files: inputs, outputs, skipping, sharding, the predict command."""

import numpy as np
import pytest
import tifffile
import torch
import zarr

import biounet
from biounet.checkpoint import save_checkpoint
from biounet.cli import main
from biounet.data import Normalizer, read_image, write_image
from biounet.data.normalize import apply_normalization
from biounet.reporting.pictures import display_scale
from biounet.segment import PredictOptions, expand_inputs, overlay, predict_files, shard_of


@pytest.fixture
def model_path(tmp_path):
    torch.manual_seed(0)
    net = biounet.UNet(depth=2, base_width=4)
    return save_checkpoint(
        tmp_path / "m.pt",
        net,
        normalize=Normalizer().to_dict(),
        class_names=["background", "cell"],
        tile=44,
    )


@pytest.fixture
def images(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        write_image(d / f"im{i}.png", rng.integers(0, 255, (30 + i, 41), dtype=np.uint8))
    return d


def test_expand_inputs(images, tmp_path) -> None:
    files = expand_inputs([images])
    assert [f.name for f in files] == ["im0.png", "im1.png", "im2.png"]
    assert expand_inputs([images / "im1.png", str(images / "im*.png")])[0].name == "im1.png"
    assert len(expand_inputs([images, images / "im0.png"])) == 3  # no duplicates
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        expand_inputs([tmp_path / "nope.png"])
    with pytest.raises(FileNotFoundError, match="the pattern matches no image files"):
        expand_inputs([str(tmp_path / "*.tif")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="the folder holds no images"):
        expand_inputs([tmp_path / "empty"])


def test_shards_cover_every_file_once(monkeypatch) -> None:
    files = [f"f{i}" for i in range(11)]
    parts = [shard_of(files, (i, 4)) for i in range(4)]  # type: ignore[arg-type]
    assert sorted(f for part in parts for f in part) == sorted(files)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert shard_of(files) == files[1::3]  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="need 0 <= i < n"):
        shard_of(files, (3, 3))  # type: ignore[arg-type]


def test_predict_files_writes_outputs_in_the_input_geometry(model_path, images, tmp_path) -> None:
    model = biounet.load(model_path)
    out = tmp_path / "out"
    opts = PredictOptions(probabilities=True, overlays=True)
    done = predict_files(model, [images], out, opts, progress=False)
    assert len(done) == 3
    mask = read_image(out / "im1_mask.png")
    probs = read_image(out / "im1_probs.tif")
    assert mask.shape == (31, 41) and probs.shape == (2, 31, 41)
    np.testing.assert_array_equal(mask, probs.argmax(0) * 255)
    raw = read_image(images / "im1.png")
    np.testing.assert_allclose(probs, biounet.predict(model, raw), atol=1e-6)
    assert read_image(out / "im1_overlay.png").shape == (31, 41, 3)
    assert not list(out.glob("*.part"))
    # existing outputs are skipped, unless overwrite
    assert predict_files(model, [images], out, opts, progress=False) == []
    opts.overwrite = True
    assert len(predict_files(model, [images], out, opts, progress=False)) == 3


def test_stack_and_zarr_inputs(model_path, tmp_path) -> None:
    model = biounet.load(model_path)
    rng = np.random.default_rng(1)
    stack = rng.integers(0, 4000, (3, 25, 30), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
    out = tmp_path / "out"
    predict_files(
        model, [tmp_path / "stack.tif"], out, PredictOptions(mask_format="tif"), progress=False
    )
    masks = read_image(out / "stack_mask.tif")
    assert masks.shape == (3, 25, 30)
    np.testing.assert_array_equal(masks[2], biounet.predict(model, stack[2]).argmax(0) * 255)
    z = zarr.open_array(
        str(tmp_path / "big.zarr"), mode="w", shape=(40, 50), chunks=(16, 16), dtype="u2"
    )
    z[...] = rng.integers(0, 4000, (40, 50))
    predict_files(
        model,
        [tmp_path / "big.zarr"],
        out,
        PredictOptions(masks=False, probabilities=True),
        progress=False,
    )
    probs = zarr.open_array(str(out / "big_probs.zarr"), mode="r")
    np.testing.assert_allclose(np.asarray(probs), biounet.predict(model, np.asarray(z)), atol=1e-5)


def test_overlay_picture() -> None:
    img = np.zeros((20, 20))
    lab = np.zeros((20, 20), int)
    lab[5:10, 5:10] = 1
    rgb = overlay(img, lab)
    assert rgb.shape == (20, 20, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[5, 5]) == (255, 255, 0)  # outline
    assert rgb[7, 7, 0] > rgb[7, 7, 1]  # red tint inside
    assert tuple(rgb[0, 0]) == (0, 0, 0)


def test_pictures_are_scaled_by_the_one_normalisation() -> None:
    img = np.random.default_rng(3).normal(100, 20, (40, 30)).astype(np.float32)
    grey = display_scale(img)
    stats = Normalizer("percentile", low=1.0, high=99.8).stats(img[None])
    np.testing.assert_array_equal(grey, np.clip(apply_normalization(img[None], *stats)[0], 0, 1))
    lo, hi = np.percentile(img, [1, 99.8])  # the scaling as it was written before
    np.testing.assert_allclose(grey, np.clip((img - lo) / (hi - lo), 0, 1), atol=1e-6)
    assert display_scale(np.full((4, 4), 7.0)).max() == 0.0  # flat: no division by 0
    assert display_scale(np.zeros((0, 5))).shape == (0, 5)


def test_predict_command(model_path, images, tmp_path, capsys) -> None:
    out = tmp_path / "cli"
    assert (
        main(
            [
                "predict",
                str(model_path),
                str(images),
                "--out",
                str(out),
                "--shard",
                "1/2",
                "--no-progress",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == ["im1_mask.png"]
    assert "1 image(s) segmented" in capsys.readouterr().out
    assert main(["predict", str(tmp_path / "missing.pt"), str(images), "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip().endswith("missing.pt: no such checkpoint")
    assert main(["predict", str(model_path), str(images), "--out", str(out), "--shard", "x"]) == 2
    assert "write it as I/N" in capsys.readouterr().err


def test_checkpoint_for_other_channels_is_a_clear_error(tmp_path, images, capsys) -> None:
    path = save_checkpoint(tmp_path / "rgb.pt", biounet.UNet(in_channels=3, depth=1, base_width=2))
    assert (
        main(["predict", str(path), str(images), "--out", str(tmp_path / "o"), "--no-progress"])
        == 2
    )
    err = capsys.readouterr().err
    assert (
        "im0.png: image of shape (1, 30, 41) has 1 channel(s) on axis 0, but the model expects 3; "
        "the model was trained on 3-channel images: convert the image (e.g. to 3 channels) or "
        "use a model trained on 1-channel images"
    ) in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()  # the folder made for the outputs is removed again


def test_output_folder_that_cannot_be_used_is_one_line(model_path, images, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    for out in (blocker, blocker / "sub"):
        assert main(["predict", str(model_path), str(images), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert err == (
            f"biounet predict: error: {out}: cannot use it as the output folder; {blocker} is a "
            "file. Give a folder path"
        )
    assert blocker.read_text() == "not a folder"


def test_unsupported_and_corrupt_inputs_are_one_line(model_path, tmp_path, capsys) -> None:
    odd = tmp_path / "scan.xyz"
    odd.write_text("?")
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "o"
    assert main(["predict", str(model_path), str(odd), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"biounet predict: error: {odd}: unknown image format '.xyz'")
    assert not out.exists()  # found before the output folder is made
    assert main(["predict", str(model_path), str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"biounet predict: error: {bad}: cannot read the file")
    assert "corrupt or truncated" in err and len(err.splitlines()) == 1
    assert not out.exists()  # nothing half-written, no empty folder


def test_instance_labels_are_written(model_path, images, tmp_path) -> None:
    from biounet.inference.postprocess import instances

    model = biounet.load(model_path)
    out = tmp_path / "inst"
    predict_files(
        model,
        [images / "im0.png"],
        out,
        PredictOptions(instances=True, overlays=True),
        progress=False,
    )
    labels = read_image(out / "im0_labels.tif")
    assert labels.dtype == np.uint16 and labels.shape == (30, 41)
    probs = biounet.predict(model, read_image(images / "im0.png"))
    np.testing.assert_array_equal(labels, instances(probs))
    assert (out / "im0_overlay.png").exists()


def test_predict_then_evaluate(model_path, images, tmp_path, capsys) -> None:
    truth = tmp_path / "truth"
    truth.mkdir()
    for i in range(3):
        write_image(truth / f"im{i}.png", np.zeros((30 + i, 41), np.uint8))
    out = tmp_path / "pe"
    assert (
        main(
            [
                "predict",
                str(model_path),
                str(images),
                "--out",
                str(out),
                "--truth",
                str(truth),
                "--no-progress",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "3 image(s) segmented" in text and "pixel_error" in text and "over all images" in text
    import json

    report = json.loads((out / "evaluation.json").read_text())
    assert [r["image"] for r in report["images"]] == ["im0", "im1", "im2"]
    assert report["summary"]["images"] == 3
    csv_lines = (out / "evaluation.csv").read_text().splitlines()
    assert csv_lines[0].startswith("image,") and len(csv_lines) == 4


# ------------------------------------------------------------------ stacks, volumes, options
@pytest.fixture
def stack_file(tmp_path):
    stack = np.random.default_rng(1).integers(0, 4000, (3, 25, 30), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
    return tmp_path / "stack.tif"


def test_stack_with_default_options_keeps_its_geometry(model_path, stack_file, tmp_path) -> None:
    model = biounet.load(model_path)
    out = tmp_path / "out"
    opts = PredictOptions(probabilities=True)  # default mask format: auto
    (done,) = predict_files(model, [stack_file], out, opts, progress=False)
    assert done["mask"] == out / "stack_mask.tif" and not (out / "stack_mask.png").exists()
    stack = read_image(stack_file)
    masks, probs = read_image(out / "stack_mask.tif"), read_image(out / "stack_probs.tif")
    assert masks.shape == (3, 25, 30) and probs.shape == (3, 2, 25, 30)  # (Z, C, Y, X)
    np.testing.assert_allclose(probs[1], biounet.predict(model, stack[1]), atol=1e-6)
    np.testing.assert_array_equal(masks, probs.argmax(1) * 255)
    # a rerun finds the automatic TIFF mask and skips the stack
    assert predict_files(model, [stack_file], out, opts, progress=False) == []


def test_volume_with_default_options_keeps_its_geometry(tmp_path) -> None:
    net = biounet.UNet(ndim=3, depth=1, base_width=2)
    path = save_checkpoint(tmp_path / "m3d.pt", net, normalize=Normalizer().to_dict())
    model = biounet.load(path)
    vol = np.random.default_rng(2).integers(0, 255, (10, 20, 22), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "vol.tif", vol, photometric="minisblack")
    out = tmp_path / "out"
    opts = PredictOptions(probabilities=True, instances=True)
    (done,) = predict_files(model, [tmp_path / "vol.tif"], out, opts, progress=False)
    assert sorted(p.name for p in done.values()) == [
        "vol_labels.tif",
        "vol_mask.tif",
        "vol_probs.tif",
    ]
    probs = read_image(out / "vol_probs.tif")
    assert probs.shape == (2, 10, 20, 22)  # (C, Z, Y, X)
    np.testing.assert_allclose(probs, biounet.predict(model, vol), atol=1e-6)
    assert read_image(out / "vol_mask.tif").shape == (10, 20, 22)
    assert read_image(out / "vol_labels.tif").shape == (10, 20, 22)


def test_png_mask_for_a_stack_is_refused_before_predicting(
    model_path, stack_file, tmp_path, monkeypatch
) -> None:
    import biounet.inference.predictor

    def never(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("predicted before the mask format was checked")

    monkeypatch.setattr(biounet.inference.predictor, "predict", never)
    with pytest.raises(
        ValueError,
        match=r"stack.tif is a stack of pages of shape \(3, 25, 30\), which a PNG mask cannot "
        r"hold; use mask_format 'tif' or 'auto'",
    ):
        predict_files(
            biounet.load(model_path),
            [stack_file],
            tmp_path / "out",
            PredictOptions(mask_format="png"),
            progress=False,
        )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(device="gpu"), r"^unknown device 'gpu'"),
        (dict(batch_size=0), r"^batch_size must be >= 1, got 0"),
        (dict(tile_shape=45), r"^tile_shape \(45, 45\), axis 0: .*nearest valid sizes"),
        (dict(mask_format="jpg"), r"^unknown mask format 'jpg'"),
        (dict(instance_kind="membrane"), r"^unknown instance kind 'membrane': did you mean"),
        (
            dict(instances=True, instance_kind="membranes", membrane_class=2),
            r"^membrane_class 2 is not a class of the model \(0..1\)",
        ),
    ],
)
def test_options_are_checked_before_the_files(model_path, images, tmp_path, options, message):
    # the error names the option, not the first image, and no output folder is made
    with pytest.raises(ValueError, match=message):
        predict_files(biounet.load(model_path), [images], tmp_path / "o", PredictOptions(**options))
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_one_clear_line(model_path, images, tmp_path, capsys) -> None:
    argv = ["predict", str(model_path), str(images), "--out", str(tmp_path / "o")]
    assert main([*argv, "--device", "cuda", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("biounet predict: error: ") and len(err.splitlines()) == 1
    assert "'cuda' is not available" in err and "im0.png" not in err
    assert not (tmp_path / "o").exists()


def test_progress_passes_unchanged_to_predict(model_path, images, tmp_path, monkeypatch) -> None:
    import biounet.inference.predictor

    seen = []
    real = biounet.inference.predictor.predict

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(kwargs["progress"])
        return real(*args, **kwargs)

    monkeypatch.setattr(biounet.inference.predictor, "predict", spy)
    model = biounet.load(model_path)
    predict_files(model, [images / "im0.png"], tmp_path / "a", progress=None)
    predict_files(model, [images / "im0.png"], tmp_path / "b", progress=False)
    predict_files(model, [images / "im0.png"], tmp_path / "c", progress=True)
    assert seen == [None, False, True]  # None: tqdm decides by the terminal


def test_interrupted_zarr_output_leaves_no_part_folder(model_path, tmp_path, monkeypatch) -> None:
    import biounet.inference.predictor

    z = zarr.open_array(str(tmp_path / "big.zarr"), mode="w", shape=(40, 50), dtype="u2")
    z[...] = 7

    def interrupted(model, image, *, out, **kwargs):  # type: ignore[no-untyped-def]
        out[:, :8] = 0.5  # a part is written, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(biounet.inference.predictor, "predict", interrupted)
    out = tmp_path / "out"
    opts = PredictOptions(masks=False, probabilities=True)
    with pytest.raises(KeyboardInterrupt):
        predict_files(biounet.load(model_path), [tmp_path / "big.zarr"], out, opts)
    assert not out.exists() or list(out.iterdir()) == []


def test_membrane_instances_are_the_regions_between_membranes(model_path, images, tmp_path):
    from biounet.inference.postprocess import membrane_regions

    model = biounet.load(model_path)
    out = tmp_path / "em"
    opts = PredictOptions(instances=True, instance_kind="membranes", postprocess={"min_size": 3})
    predict_files(model, [images / "im0.png"], out, opts, progress=False)
    labels = read_image(out / "im0_labels.tif")
    probs = biounet.predict(model, read_image(images / "im0.png"))
    expected = membrane_regions(probs[0], thin=True, min_size=3)  # class 0: membrane
    assert expected.max() >= 1
    np.testing.assert_array_equal(labels, expected)


# --- the input's pixel size carried into the outputs ----------------------------------------------


def ome_tiff(path, array, axes, **sizes):
    """An OME-TIFF with PhysicalSize{X,Y,Z} (nm for X and Y, µm for Z: units convert)."""
    meta = {"axes": axes}
    for a, v in sizes.items():
        meta[f"PhysicalSize{a}"] = v * (1000 if a in "XY" else 1)
        meta[f"PhysicalSize{a}Unit"] = "nm" if a in "XY" else "µm"
    tifffile.imwrite(path, array, ome=True, metadata=meta)
    return path


@pytest.mark.parametrize("kind", ["image", "stack", "volume"])
def test_outputs_carry_the_pixel_size_of_an_ome_tiff(model_path, tmp_path, kind) -> None:
    from biounet.data.io import read_image_file

    rng = np.random.default_rng(3)
    if kind == "volume":
        net = biounet.UNet(ndim=3, depth=1, base_width=2)
        model = biounet.load(save_checkpoint(tmp_path / "m3.pt", net,
                                             normalize=Normalizer().to_dict()))  # fmt: skip
    else:
        model = biounet.load(model_path)
    if kind == "image":
        src = ome_tiff(tmp_path / "a.ome.tif", rng.integers(0, 255, (33, 40), np.uint8), "YX",
                       X=0.2, Y=0.3)  # fmt: skip
        want = {"Y": 0.3, "X": 0.2}
    else:
        src = ome_tiff(tmp_path / "a.ome.tif", rng.integers(0, 255, (6, 33, 40), np.uint8),
                       "ZYX", X=0.2, Y=0.3, Z=1.5)  # fmt: skip
        want = {"Z": 1.5, "Y": 0.3, "X": 0.2}
    opts = PredictOptions(probabilities=True, instances=True, mask_format="tif")
    (done,) = predict_files(model, [src], tmp_path / "out", opts, progress=False)
    assert set(done) == {"mask", "labels", "probs"}
    for kind_, path in done.items():
        f = read_image_file(path)
        assert f.spacing is not None, kind_
        assert f.spacing.keys() == want.keys(), kind_
        for a, v in want.items():
            assert f.spacing[a] == pytest.approx(v, rel=1e-6), (kind_, a)
