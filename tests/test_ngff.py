"""OME-Zarr out: write_segmentation's containers validated by an NGFF library, and predict's
--format ome-zarr (the default for OME-Zarr inputs) with the input's pixel size carried."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import zarr

import biounet
from biounet.checkpoint import save_checkpoint
from biounet.cli import main
from biounet.data import write_image
from biounet.data.io import read_image_file
from biounet.data.ngff import is_ome_zarr, write_segmentation
from biounet.data.normalize import Normalizer
from biounet.segment import PredictOptions, predict_files

RNG = np.random.default_rng(0)


def probabilities(k, shape):
    p = RNG.random((k, *shape)).astype(np.float32)
    return p / p.sum(0)


def validated(path):
    """The container as ome-zarr-models reads it (an NGFF 0.5 image), or a failing test."""
    models = pytest.importorskip("ome_zarr_models")
    image = models.open_ome_zarr(zarr.open_group(str(path), mode="r"))
    assert type(image).__module__ == "ome_zarr_models.v05.image"
    return image


def ome(group):
    return dict(zarr.open_group(str(group), mode="r").attrs)["ome"]


@pytest.mark.parametrize("shape, spacing", [((40, 30), (0.5, 0.25)), ((5, 40, 30), (2, 0.5, 0.25))])
def test_a_container_is_valid_ngff_with_the_pixel_size(tmp_path, shape, spacing) -> None:
    p = probabilities(3, shape)
    classes, inst = p.argmax(0), (p.argmax(0) > 0) * np.arange(p[0].size).reshape(shape) % 5
    path = write_segmentation(tmp_path / "a.ome.zarr", p, classes, instances=inst,
                              spacing=spacing, class_names=["bg", "cell", "edge"])  # fmt: skip
    image = validated(path)
    assert image.labels is not None
    axes = "czyx"[-len(p.shape) :] if len(shape) == 3 else "cyx"
    root = ome(path)["multiscales"][0]
    assert [a["name"] for a in root["axes"]] == list(axes)
    assert [a.get("unit") for a in root["axes"]] == [None] + ["micrometer"] * len(shape)
    assert root["datasets"][0]["coordinateTransformations"][0]["scale"] == [1.0, *spacing]
    assert ome(path / "labels")["labels"] == ["classes", "instances"]
    for name, want, dtype in (("classes", classes, np.uint8), ("instances", inst, np.uint32)):
        label = ome(path / "labels" / name)
        assert label["image-label"]["source"] == {"image": "../../"}
        scale = label["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"]
        assert scale == list(map(float, spacing))
        arr = zarr.open_array(str(path / "labels" / name / "0"), mode="r")
        assert arr.dtype == dtype and arr.metadata.dimension_names == tuple(axes[1:])
        np.testing.assert_array_equal(arr[...], want)
    props = ome(path / "labels" / "classes")["image-label"]["properties"]
    assert props == [{"label-value": 0, "class": "bg"}, {"label-value": 1, "class": "cell"},
                     {"label-value": 2, "class": "edge"}]  # fmt: skip
    back = read_image_file(path)  # biounet reads the probabilities back, at their pixel size
    np.testing.assert_array_equal(back.data[...], p)
    assert back.spacing == dict(zip("ZYX"[-len(shape) :], map(float, spacing)))


def test_without_a_pixel_size_no_units_are_claimed(tmp_path) -> None:
    p = probabilities(2, (20, 24))
    path = write_segmentation(tmp_path / "b.ome.zarr", p, p.argmax(0))
    validated(path)
    root = ome(path)["multiscales"][0]
    assert all("unit" not in a for a in root["axes"])
    assert root["datasets"][0]["coordinateTransformations"][0]["scale"] == [1.0, 1.0, 1.0]
    assert ome(path / "labels")["labels"] == ["classes"]
    names = ome(path / "labels" / "classes")["image-label"]["properties"]
    assert [n["class"] for n in names] == ["class 0", "class 1"]


def test_bad_arguments_name_the_container(tmp_path) -> None:
    p = probabilities(2, (20, 24))
    with pytest.raises(ValueError, match=r"c\.ome\.zarr: probabilities \(2, 20, 24\) and classes"):
        write_segmentation(tmp_path / "c.ome.zarr", p, p.argmax(0)[:10])
    with pytest.raises(ValueError, match="classes must be 0..1"):
        write_segmentation(tmp_path / "c.ome.zarr", p, p.argmax(0) + 1)
    assert not (tmp_path / "c.ome.zarr").exists() and not list(tmp_path.iterdir())  # no debris


def test_is_ome_zarr_reads_only_metadata(tmp_path) -> None:
    p = probabilities(2, (8, 8))
    assert is_ome_zarr(write_segmentation(tmp_path / "a.ome.zarr", p, p.argmax(0)))
    write_image(tmp_path / "plain.zarr", p)  # a plain array: not OME
    assert not is_ome_zarr(tmp_path / "plain.zarr")
    v04 = tmp_path / "old.zarr"
    v04.mkdir()
    (v04 / ".zattrs").write_text(json.dumps({"multiscales": [{"version": "0.4"}]}))
    assert is_ome_zarr(v04)
    (tmp_path / "broken.zarr").mkdir()
    (tmp_path / "broken.zarr" / "zarr.json").write_text("{not json")
    assert not is_ome_zarr(tmp_path / "broken.zarr")


@pytest.fixture
def model(tmp_path):
    torch.manual_seed(0)
    net = biounet.UNet(depth=2, base_width=4)
    path = save_checkpoint(tmp_path / "m.pt", net, normalize=Normalizer().to_dict(),
                           class_names=["background", "cell"], tile=44)  # fmt: skip
    return biounet.load(path)


def test_predict_writes_one_container_per_input(model, tmp_path) -> None:
    image = RNG.integers(0, 255, (37, 45), dtype=np.uint8)
    write_image(tmp_path / "im.png", image)
    opts = PredictOptions(instances=True, output_format="ome-zarr")
    (done,) = predict_files(model, [tmp_path / "im.png"], tmp_path / "out", opts, progress=False)
    assert done == {"ome": tmp_path / "out" / "im.ome.zarr"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["im.ome.zarr"]
    validated(done["ome"])
    probs = biounet.predict(model, image)
    stored = zarr.open_group(str(done["ome"]), mode="r")
    np.testing.assert_allclose(stored["0"][...], probs, atol=1e-6)
    np.testing.assert_array_equal(stored["labels/classes/0"][...], probs.argmax(0))
    assert stored["labels/instances/0"].shape == (37, 45)
    names = ome(done["ome"] / "labels" / "classes")["image-label"]["properties"]
    assert [n["class"] for n in names] == ["background", "cell"]
    # a second run skips the input (its output exists), as for the other formats
    assert predict_files(model, [tmp_path / "im.png"], tmp_path / "out", opts) == []


def test_an_ome_zarr_input_gets_ome_zarr_out_at_its_pixel_size(model, tmp_path) -> None:
    out = tmp_path / "out"
    # a one-channel OME-Zarr image, z, y, x
    one = tmp_path / "in2" / "stack.ome.zarr"
    one.parent.mkdir()
    group = zarr.open_group(str(one), mode="w", zarr_format=3)
    arr = group.create_array("0", shape=(3, 40, 50), dtype=np.uint8, chunks=(1, 40, 50),
                             dimension_names=["z", "y", "x"])  # fmt: skip
    arr[...] = RNG.integers(0, 255, (3, 40, 50), dtype=np.uint8)
    axes = [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"]
    group.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [
            {
                "axes": axes,
                "datasets": [
                    {
                        "path": "0",
                        "coordinateTransformations": [{"type": "scale", "scale": [1.5, 0.4, 0.3]}],
                    }
                ],
            }
        ],
    }
    before = sorted(str(f.relative_to(one)) for f in one.rglob("*"))
    assert main(["predict", str(model.source), str(one), "--out", str(out), "--no-progress"]) == 0
    made = out / "stack.ome.zarr"
    validated(made)
    root = ome(made)["multiscales"][0]
    assert [a["name"] for a in root["axes"]] == ["c", "z", "y", "x"]
    assert root["datasets"][0]["coordinateTransformations"][0]["scale"] == [1.0, 1.5, 0.4, 0.3]
    stored = zarr.open_group(str(made), mode="r")["0"][...]
    want = np.stack([biounet.predict(model, arr[z]) for z in range(3)], axis=1)
    np.testing.assert_allclose(stored, want, atol=1e-6)
    assert sorted(str(f.relative_to(one)) for f in one.rglob("*")) == before  # input untouched
