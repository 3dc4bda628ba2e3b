"""The napari plugin: manifest, sample data, reader, and the widget segmenting in a worker.

Skipped without napari (``pip install "biounet[napari]"``). Without a display the widget runs
on a canvas-free ``ViewerModel`` under Qt's offscreen platform; with one (an X server, or Xvfb
through pytest-xvfb) a real viewer opens the sample, the outputs and the dock widget too.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("qtpy.QtWidgets")  # a Qt binding
pytest.importorskip("pytestqt")
os.environ.setdefault("QT_QPA_PLATFORM", "xcb" if os.environ.get("DISPLAY") else "offscreen")

import npe2
import torch

import biounet
from biounet.checkpoint import save_checkpoint
from biounet.data.normalize import Normalizer
from biounet.segment import PredictOptions, predict_files

display = pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs a display (Xvfb)")


@pytest.fixture
def model_path(tmp_path):
    torch.manual_seed(0)
    net = biounet.UNet(depth=2, base_width=4)
    return save_checkpoint(tmp_path / "m.pt", net, normalize=Normalizer().to_dict(),
                           class_names=["background", "cell"], tile=44)  # fmt: skip


def plugin_manager():
    pm = npe2.PluginManager.instance()
    pm.discover()
    return pm


def test_the_manifest_contributes_a_widget_a_sample_and_a_reader() -> None:
    pm = plugin_manager()
    manifest = pm.get_manifest("biounet")
    assert [w.display_name for w in manifest.contributions.widgets] == ["Segment"]
    assert [s.key for s in manifest.contributions.sample_data] == ["cells"]
    assert "*.ome.zarr" in manifest.contributions.readers[0].filename_patterns


def test_the_sample_is_synthetic_cells() -> None:
    (image, meta, kind), (labels, _, lkind) = (
        plugin_manager().get_command("biounet.sample_cells").exec()
    )
    assert (kind, lkind) == ("image", "labels") and image.shape == labels.shape == (256, 256)
    assert labels.max() > 5 and meta["name"] == "synthetic cells"


@pytest.fixture
def outputs(model_path, tmp_path):
    """predict's outputs of one OME-TIFF image with a pixel size: files and an OME-Zarr."""
    import tifffile

    image = np.random.default_rng(0).integers(0, 255, (40, 52), dtype=np.uint8)
    src = tmp_path / "in" / "im.ome.tif"
    src.parent.mkdir()
    tifffile.imwrite(src, image, ome=True, metadata={
        "axes": "YX", "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.5})  # fmt: skip
    model = biounet.load(model_path)
    files = PredictOptions(instances=True, probabilities=True, mask_format="tif")
    (done,) = predict_files(model, [src], tmp_path / "files", files, progress=False)
    ome = PredictOptions(instances=True, output_format="ome-zarr")
    (made,) = predict_files(model, [src], tmp_path / "ome", ome, progress=False)
    return {**done, **made}, biounet.predict(model, image)


def test_the_reader_opens_predict_outputs_at_their_pixel_size(outputs) -> None:
    paths, probs = outputs
    for kind, path in paths.items():
        layers, _ = npe2.io_utils.read_get_reader([str(path)], stack=False, plugin_name="biounet")
        got = {meta["name"]: (data, meta, t) for data, meta, t in layers}
        for _, meta, _ in got.values():
            assert meta.get("scale") == (0.5, 0.25), (kind, meta["name"])
        if kind == "mask":
            ((data, _, t),) = got.values()
            assert t == "labels"
            np.testing.assert_array_equal(data, probs.argmax(0))
        elif kind == "labels":
            ((data, _, t),) = got.values()
            assert t == "labels" and data.shape == (40, 52)
        elif kind == "probs":
            ((data, meta, t),) = got.values()
            assert t == "image" and meta["channel_axis"] == 0
            np.testing.assert_allclose(data, probs, atol=1e-6)
        else:  # the OME-Zarr container: probabilities, classes, instances
            assert [t for _, _, t in got.values()] == ["image", "labels", "labels"]
            np.testing.assert_array_equal(got["im classes"][0], probs.argmax(0))
    from biounet.napari.layers import reader_for  # it declines other files

    assert reader_for("photo.png") is None and reader_for(["a_mask.png", "b"]) is not None


def wait_for(worker, qtbot) -> None:
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        pass


def test_the_widget_segments_a_layer_in_a_worker(model_path, qtbot) -> None:
    from napari.components import ViewerModel

    from biounet.napari.widget import SegmentWidget

    viewer = ViewerModel()
    image = np.random.default_rng(1).integers(0, 255, (70, 90)).astype(np.uint8)
    viewer.add_image(image, name="cells", scale=(0.5, 0.5))
    widget = SegmentWidget(viewer)
    qtbot.addWidget(widget)
    assert [widget.layer.itemText(i) for i in range(widget.layer.count())] == ["cells"]
    widget.model.setCurrentText(str(model_path))
    worker = widget.run()
    wait_for(worker, qtbot)
    qtbot.waitUntil(lambda: "cells objects" in viewer.layers, timeout=10_000)
    names = [layer.name for layer in viewer.layers]
    assert names == ["cells", "cells p(background)", "cells p(cell)", "cells classes",
                     "cells objects"]  # fmt: skip
    probs = biounet.predict(biounet.load(model_path), image)
    np.testing.assert_allclose(viewer.layers["cells p(cell)"].data, probs[1], atol=1e-6)
    np.testing.assert_array_equal(viewer.layers["cells classes"].data, probs.argmax(0))
    assert tuple(viewer.layers["cells objects"].scale) == (0.5, 0.5)
    assert widget.progress.value() == widget.progress.maximum() > 0  # every tile reported
    assert widget.status.text().startswith("done: 4 layers")
    assert widget.run_button.isEnabled()


def test_the_widget_segments_a_stack_plane_by_plane(model_path, qtbot) -> None:
    from napari.components import ViewerModel

    from biounet.napari.widget import SegmentWidget

    viewer = ViewerModel()
    stack = np.random.default_rng(2).random((3, 40, 44)).astype(np.float32)
    viewer.add_image(stack, name="stack")
    widget = SegmentWidget(viewer)
    qtbot.addWidget(widget)
    widget.model.setCurrentText(str(model_path))
    widget.instances.setChecked(False)
    wait_for(widget.run(), qtbot)
    qtbot.waitUntil(lambda: "stack classes" in viewer.layers, timeout=10_000)
    model = biounet.load(model_path)
    want = np.stack([biounet.predict(model, p)[1] for p in stack])
    np.testing.assert_allclose(viewer.layers["stack p(cell)"].data, want, atol=1e-6)
    assert "stack objects" not in viewer.layers


def test_the_widget_says_what_is_missing(qtbot, tmp_path) -> None:
    from napari.components import ViewerModel

    from biounet.napari.widget import SegmentWidget

    viewer = ViewerModel()
    widget = SegmentWidget(viewer)
    qtbot.addWidget(widget)
    assert widget.run() is None and "no image layer" in widget.status.text()
    viewer.add_image(np.zeros((20, 20)), name="x")
    widget.model.setCurrentText(str(tmp_path / "gone.pt"))
    assert widget.run() is None and "gone.pt: no such checkpoint" in widget.status.text()


@display
def test_in_a_viewer(make_napari_viewer, model_path, outputs, qtbot, tmp_path) -> None:
    viewer = make_napari_viewer()
    layers = viewer.open_sample("biounet", "cells")
    assert [layer.name for layer in layers] == ["synthetic cells", "true cells"]
    _, widget = viewer.window.add_plugin_dock_widget("biounet", "Segment")
    widget.model.setCurrentText(str(model_path))
    widget.layer.setCurrentText("synthetic cells")
    wait_for(widget.run(), qtbot)
    qtbot.waitUntil(lambda: "synthetic cells objects" in viewer.layers, timeout=10_000)
    assert viewer.layers["synthetic cells classes"].data.shape == (256, 256)
    paths, _ = outputs
    opened = viewer.open(str(paths["ome"]), plugin="biounet")
    assert [layer.name for layer in opened][-2:] == ["im classes", "im instances"]
    shot = viewer.screenshot(canvas_only=False, flash=False)
    assert shot.ndim == 3 and shot.std() > 0  # something was drawn
