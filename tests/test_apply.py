"""Segmenting files: inputs, outputs, skipping, sharding, the predict command."""

import numpy as np
import pytest
import tifffile
import torch
import zarr

import biounet
from biounet.apply import PredictOptions, expand_inputs, overlay, predict_files, shard_of
from biounet.checkpoint import save_checkpoint
from biounet.cli import main
from biounet.data import Normalizer, read_image, write_image


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
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


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
    assert main(["predict", str(model_path), str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"biounet predict: error: {bad}: cannot read the file")
    assert "corrupt or truncated" in err and len(err.splitlines()) == 1
    assert list(out.iterdir()) == []  # nothing half-written


def test_instance_labels_are_written(model_path, images, tmp_path) -> None:
    from biounet.postprocess import instances

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
