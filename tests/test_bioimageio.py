"""bioimage.io packages: valid by bioimage.io's own validation, passing its model test for each
weight format, and bioimage.io's inference giving what biounet.predict gives."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch

pytest.importorskip("bioimageio.spec")
core = pytest.importorskip("bioimageio.core")

import biounet  # noqa: E402
from biounet.checkpoint import save_checkpoint  # noqa: E402
from biounet.cli import main  # noqa: E402
from biounet.data.normalize import Normalizer  # noqa: E402
from biounet.export.bioimageio import export_bioimageio  # noqa: E402
from biounet.export.padded import PaddedUNet, axis_sizes  # noqa: E402


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.manual_seed(0)
    net = biounet.UNet(depth=3, base_width=4, norm="batch", num_classes=3, dropout=0.1)
    path = save_checkpoint(tmp_path_factory.mktemp("m") / "m.pt", net,
                           normalize=Normalizer().to_dict(),
                           class_names=["background", "cell", "edge"], tile=60)  # fmt: skip
    return biounet.load(path)


@pytest.fixture(scope="module")
def package(model, tmp_path_factory):
    out = tmp_path_factory.mktemp("p") / "cells.zip"
    image = np.random.default_rng(0).integers(0, 255, (150, 170)).astype(np.float32)
    image[:30] = 0  # a dark band
    return export_bioimageio(model, out, sample=image, authors=["A. Person"], license="MIT")


def test_the_padded_network_is_biounets_result_on_its_sizes(model) -> None:
    padded = PaddedUNet(**model.net.config.to_dict()).eval()
    padded.net.load_state_dict(model.net.state_dict())
    a = axis_sizes(model.net)[0]
    assert (a.min, a.step, a.halo) == (104, 8, 48)  # margin 44 rounded up to the step
    x = np.random.default_rng(1).random((1, a.min + a.step, a.min + 3 * a.step), np.float32)
    with torch.inference_mode():
        got = torch.softmax(padded(torch.from_numpy(x)[None]), 1)[0].numpy()
    np.testing.assert_allclose(got, biounet.predict(model.net, x), atol=1e-5)


def test_the_package_validates_and_passes_bioimageios_model_test(package) -> None:
    from bioimageio.spec import InvalidDescr, load_description

    descr = load_description(package, perform_io_checks=True)
    assert not isinstance(descr, InvalidDescr), descr.validation_summary.format()
    assert descr.inputs[0].pad.mode == "reflect"
    assert [c for c in descr.outputs[0].axes[1].channel_names] == ["background", "cell", "edge"]
    names = set(zipfile.ZipFile(package).namelist())
    assert {"rdf.yaml", "README.md", "cover.png", "weights.pt", "weights_torchscript.pt",
            "weights.onnx", "test_input.npy", "test_output.npy"} <= names  # fmt: skip
    for fmt in ("pytorch_state_dict", "torchscript", "onnx"):
        summary = core.test_model(package, weight_format=fmt, devices=["cpu"])
        assert summary.status == "passed", (fmt, summary.format())


def test_bioimageios_inference_is_biounets(model, package) -> None:
    from bioimageio.spec import load_description

    descr = load_description(package, perform_io_checks=False)
    x = np.load(zipfile.ZipFile(package).open("test_input.npy"))
    np.testing.assert_allclose(np.load(zipfile.ZipFile(package).open("test_output.npy"))[0],
                               biounet.predict(model, x[0]), atol=1e-5)  # fmt: skip
    # tiled by bioimage.io: tiles on the pooling grid, mirrored at the borders, halos cropped
    image = np.random.default_rng(2).integers(0, 255, (1, 1, 304, 272)).astype(np.float32)
    tiled = core.predict(model=descr, inputs=image, blocksize_parameter=1)
    got = tiled.members["probabilities"].data.to_numpy()[0]
    np.testing.assert_allclose(got, biounet.predict(model, image[0]), atol=1e-5)


def test_the_command_writes_a_folder_and_refuses_to_overwrite(model, tmp_path, capsys) -> None:
    out = tmp_path / "pkg"
    args = ["export", str(model.source), "--format", "bioimageio", "--out", str(out),
            "--author", "A. Person"]  # fmt: skip
    assert main(args) == 0
    assert (out / "rdf.yaml").exists() and "bioimage.io package" in capsys.readouterr().out
    assert main(args) == 2  # exists: nothing replaced
    assert "exists: give a new --out" in capsys.readouterr().err
