import json
import logging
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from biounet import UNet
from biounet.data import Normalizer
from biounet.export import ExportCheckError, default_tile, export_model
from biounet.inference.trained import TrainedModel

from .conftest import small_net


def _eager(net: UNet, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return net(x).numpy()


def _load_torchscript(path: Path) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        # torch >= 2.10 deprecates TorchScript; loading still works
        warnings.filterwarnings(
            "ignore", message=r"`torch\.jit\.load` is deprecated", category=DeprecationWarning
        )
        return torch.jit.load(str(path))


def _no_leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------------------ TorchScript
@pytest.mark.parametrize(
    ("options", "tile", "other"),
    [
        (dict(norm="batch"), (60, 64), (44, 76)),  # valid 2D, non-square
        (dict(padding="same", norm="group"), 32, (16, 40)),  # same-padded 2D
        (dict(ndim=3, depth=1, base_width=2, norm="batch"), 24, (20, 22, 26)),  # valid 3D
    ],
)
def test_torchscript_round_trip(tmp_path: Path, options: dict, tile: object, other: tuple) -> None:
    net = small_net(in_channels=2, **options)
    report = export_model(net, tmp_path / "net.pt", tile_shape=tile)  # type: ignore[arg-type]
    assert report.format == "torchscript" and report.dynamic
    assert report.max_abs_diff is not None and report.max_abs_diff <= 1e-4
    assert report.bytes == (tmp_path / "net.pt").stat().st_size > 0
    loaded = _load_torchscript(tmp_path / "net.pt")
    spatial = report.input_shape[2:]
    for shape in (spatial, other):
        x = torch.randn(2, 2, *shape)
        with torch.no_grad():
            out = loaded(x).numpy()
        ref = _eager(net, x)
        assert out.shape == (2, 3, *net.output_shape(shape))
        np.testing.assert_allclose(out, ref, atol=1e-5, rtol=0)


def test_export_leaves_the_model_as_it_was(tmp_path: Path) -> None:
    net = small_net(norm="batch", dropout=0.5).train()
    export_model(net, tmp_path / "net.pt", tile_shape=44)
    assert net.training and next(net.parameters()).requires_grad


def test_sidecar_describes_the_network(tmp_path: Path) -> None:
    net = small_net(in_channels=2, norm="batch")
    model = TrainedModel(
        net,
        normalizer=Normalizer(mode="percentile", low=2.0, high=99.0),
        class_names=["background", "cell", "border"],
    )
    report = export_model(model, tmp_path / "net.pt", tile_shape=(48, 52))
    assert report.sidecar == tmp_path / "net.pt.json"
    meta = json.loads(report.sidecar.read_text())
    assert meta["file"] == "net.pt" and meta["format"] == "torchscript"
    assert meta["input"]["axes"] == "bcyx" and meta["output"]["axes"] == "bcyx"
    assert meta["input"]["channels"] == 2 and meta["num_classes"] == 3
    assert meta["input"]["example_shape"] == [2, 2, 48, 52]
    assert meta["output"]["example_shape"] == [2, 3, 8, 12]
    assert meta["class_names"] == ["background", "cell", "border"]
    assert meta["normalization"] == model.normalizer.to_dict()
    assert meta["margin"] == meta["output_offset"] == 20 and meta["padding"] == "valid"
    tiles = meta["valid_tile_sizes"]
    assert (tiles["min"], tiles["step"], tiles["dynamic"]) == (44, 4, True)
    assert tiles["examples"][:3] == [44, 48, 52]
    assert all(net.is_valid_input((n, n)) for n in tiles["examples"])
    assert meta["model_config"] == net.config.to_dict()
    assert meta["check"]["tiles"] == [[2, 2, 48, 52], [1, 2, 44, 48]]
    assert meta["check"]["max_abs_diff"] == report.max_abs_diff
    assert meta["biounet_version"] and meta["onnx_opset"] is None
    assert len(meta["sha256"]) == 64
    assert _no_leftovers(tmp_path) == ["net.pt", "net.pt.json"]


def test_sidecar_of_a_same_padded_3d_net(tmp_path: Path) -> None:
    net = small_net(ndim=3, depth=1, base_width=2, padding="same")
    report = export_model(net, tmp_path / "net.pt", tile_shape=(8, 10, 12), dynamic=False)
    meta = json.loads(report.sidecar.read_text())
    assert meta["input"]["axes"] == "bczyx" and meta["output_offset"] == 0
    assert meta["normalization"] is None and meta["class_names"] is None
    assert report.output_shape == (1, 3, 8, 10, 12) and not report.dynamic
    assert report.checked_tiles == ((1, 1, 8, 10, 12),)
    assert "fixed shape" in report.summary()


def _off_by(monkeypatch: pytest.MonkeyPatch, delta: float) -> None:
    """Make the exported file's logits differ from the eager model's by ``delta``."""
    from biounet.export import formats

    runner = formats.runner

    def shifted(format: str, tmp: Path):  # type: ignore[no-untyped-def]
        run = runner(format, tmp)
        return lambda x: run(x) + delta

    monkeypatch.setattr(formats, "runner", shifted)


def test_failing_check_raises_one_line_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _off_by(monkeypatch, 1e-3)
    out = tmp_path / "new" / "deeper" / "net.pt"
    with pytest.raises(
        ExportCheckError,
        match=r"max \|difference\| of logits 0.001 > 0.000\d+ \(atol 0.0001 \+ 1e-05 x",
    ) as e:
        export_model(small_net(), out, tile_shape=44)
    assert "\n" not in str(e.value) and str(out) in str(e.value)
    assert _no_leftovers(tmp_path) == []  # nor the folders made for it


def test_the_allowed_difference_grows_with_the_logits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = small_net()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(40.0)  # logits in the thousands, as float32 rounding then differs more
    x = torch.randn(1, 1, 44, 44, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        largest = float(net.eval()(x).abs().max())
    assert largest > 100
    _off_by(monkeypatch, 0.5e-5 * largest)  # within atol 1e-4 + 1e-5 x the largest logit
    export_model(net, tmp_path / "ok.pt", tile_shape=44, dynamic=False)
    _off_by(monkeypatch, 3e-5 * largest)
    with pytest.raises(ExportCheckError, match=r"\+ 1e-05 x largest \|logit\|"):
        export_model(net, tmp_path / "bad.pt", tile_shape=44, dynamic=False)


def test_negative_atol_is_refused_up_front(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from biounet.export import formats

    monkeypatch.setattr(formats, "export_torchscript", None)  # never reached
    for atol in (-1.0, float("nan")):
        with pytest.raises(ValueError, match=r"atol must be >= 0 .*, got (-1.0|nan)"):
            export_model(small_net(), tmp_path / "net.pt", tile_shape=44, atol=atol)
    assert _no_leftovers(tmp_path) == []


def test_missing_folder_is_created(tmp_path: Path) -> None:
    report = export_model(small_net(), tmp_path / "new" / "m.pt", tile_shape=44)
    assert report.path == tmp_path / "new" / "m.pt"
    assert _no_leftovers(tmp_path / "new") == ["m.pt", "m.pt.json"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match=r"file is a file"):
        export_model(small_net(), tmp_path / "file" / "m.pt", tile_shape=44)


def test_corrupted_export_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from biounet.export import formats

    runner = formats.runner

    def corrupt(format: str, tmp: Path):  # type: ignore[no-untyped-def]
        run = runner(format, tmp)
        return lambda x: run(x) + 1e-3

    monkeypatch.setattr(formats, "runner", corrupt)
    (tmp_path / "net.pt").write_bytes(b"old")
    with pytest.raises(ExportCheckError, match=r"does not match the eager model.*nothing was"):
        export_model(small_net(), tmp_path / "net.pt", tile_shape=44)
    assert _no_leftovers(tmp_path) == ["net.pt"]
    assert (tmp_path / "net.pt").read_bytes() == b"old"  # an existing file is left untouched


# ------------------------------------------------------------------------------ errors
def test_unknown_format_suggests_the_closest(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown export format 'onxx': did you mean 'onnx'\?"):
        export_model(small_net(), tmp_path / "net.onnx", format="onxx")


def test_invalid_tile_names_the_nearest_valid_sizes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"axis 1 .* nearest valid sizes are 60 or 64"):
        export_model(small_net(), tmp_path / "net.pt", tile_shape=(60, 62))
    with pytest.raises(ValueError, match=r"expected 2 spatial axes"):
        export_model(small_net(), tmp_path / "net.pt", tile_shape=(60, 60, 60))
    assert _no_leftovers(tmp_path) == []


def test_opset_is_for_onnx_only(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="opset applies to ONNX exports only"):
        export_model(small_net(), tmp_path / "net.pt", opset=17)


def test_missing_onnx_packages_say_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import raises ImportError
    with pytest.raises(ImportError, match=r"needs .*onnxscript.*pip install 'biounet\[export\]'"):
        export_model(small_net(), tmp_path / "net.onnx", format="onnx")
    assert _no_leftovers(tmp_path) == []


def test_default_tile() -> None:
    assert default_tile(UNet(depth=4, base_width=1)) == (572, 572)  # the paper's tile
    assert default_tile(UNet(depth=4, base_width=1, padding="same")) == (576, 576)
    assert default_tile(UNet.from_preset("narrow3d", base_width=1)) == (100, 100, 100)
    net = UNet(depth=2, base_width=1)
    assert default_tile(TrainedModel(net, tile=(64, 64))) == (64, 64)  # as stored by biounet.load
    assert default_tile(TrainedModel(net, tile=(62, 62))) == (572, 572)  # not valid: ignored


# ------------------------------------------------------------------------------ ONNX
@pytest.mark.slow  # the first ONNX export in a process takes ~10 s on a busy 2-core CPU
@pytest.mark.parametrize(
    ("options", "tile", "other"),
    [
        (dict(in_channels=2, norm="batch"), (60, 64), (44, 76)),
        (dict(padding="same", upsample="nearest"), 32, (16, 40)),
    ],
)
def test_onnx_round_trip(tmp_path: Path, options: dict, tile: object, other: tuple) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    net = small_net(**options)
    report = export_model(net, tmp_path / "net.onnx", format="onnx", tile_shape=tile)  # type: ignore[arg-type]
    assert report.format == "onnx" and report.dynamic and report.note == ""
    assert report.max_abs_diff is not None and report.max_abs_diff <= 1e-4
    assert json.loads(report.sidecar.read_text())["onnx_opset"] >= 17
    session = ort.InferenceSession(str(tmp_path / "net.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    assert [o.name for o in session.get_outputs()] == ["logits"]
    c = net.config.in_channels
    for shape in (report.input_shape[2:], other):
        x = torch.randn(2, c, *shape)
        (out,) = session.run(None, {"input": x.numpy()})
        assert out.shape == (2, 3, *net.output_shape(shape))
        np.testing.assert_allclose(out, _eager(net, x), atol=1e-4, rtol=0)
    assert _no_leftovers(tmp_path) == ["net.onnx", "net.onnx.json"]


def test_onnx_falls_back_to_a_fixed_shape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from biounet.export import formats

    def unsupported(net: UNet) -> None:
        raise RuntimeError("no dynamic shapes today")

    monkeypatch.setattr(formats, "dynamic_shapes", unsupported)
    net = small_net(depth=1)
    with caplog.at_level(logging.WARNING, logger="biounet.export"):
        report = export_model(net, tmp_path / "net.onnx", format="onnx", tile_shape=20)
    assert "no dynamic shapes today" in caplog.text
    assert not report.dynamic and "fixed shape" in report.note
    assert report.input_shape == (1, 1, 20, 20) and report.checked_tiles == ((1, 1, 20, 20),)
    session = ort.InferenceSession(str(tmp_path / "net.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [1, 1, 20, 20]
    assert json.loads(report.sidecar.read_text())["valid_tile_sizes"]["dynamic"] is False


def test_onnx_failing_check_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    _off_by(monkeypatch, 1e-2)
    with pytest.raises(ExportCheckError, match="onnx export .* does not match the eager model"):
        export_model(small_net(depth=1), tmp_path / "net.onnx", format="onnx", tile_shape=20)
    assert _no_leftovers(tmp_path) == []
