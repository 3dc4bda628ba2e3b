"""log.tensorboard: the metrics log's records and validation pictures as TensorBoard events."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from biounet.reporting.tensorboard import picture


def events(folder):
    """Scalars {tag: [(step, value)]} and images {tag: [(step, width, height)]} of a folder."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    tags = acc.Tags()
    scalars = {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in tags["scalars"]}
    images = {t: [(e.step, e.width, e.height) for e in acc.Images(t)] for t in tags["images"]}
    return scalars, images


def test_picture_panels() -> None:
    image = np.linspace(0, 1, 12, dtype=np.float32).reshape(1, 3, 4)
    classes = np.array([[0, 1, 1, -1]] * 3)
    probs = np.zeros((2, 3, 4), np.float32)
    probs[1, :, 1:] = 0.9
    probs[0] = 1 - probs[1]
    p = picture(image, classes, probs)
    assert p.shape == (3, 3, 16) and p.dtype == np.float32
    truth, pred, sure = p[:, :, 4:8], p[:, :, 8:12], p[:, :, 12:]
    assert (truth[:, :, 3] == 0.5).all()  # unannotated: grey
    assert (truth[:, :, 0] == 0).all() and (pred[:, :, 0] == 0).all()  # class 0: black
    assert (pred[:, :, 1:] == truth[:, :, 1:2]).all()  # class 1 predicted where it is true
    np.testing.assert_allclose(sure[0], np.maximum(probs[0], probs[1]))
    vol = picture(np.zeros((1, 5, 3, 4)), np.zeros((5, 3, 4), int), np.ones((2, 5, 3, 4)) / 2)
    assert vol.shape == (3, 3, 16)  # a volume shows its middle plane


@pytest.mark.slow
def test_a_run_writes_its_metrics_and_pictures(tmp_path) -> None:
    pytest.importorskip("tensorboard")
    import biounet
    from biounet.config import build_config
    from biounet.data.synthetic import write_synthetic

    data = write_synthetic(tmp_path / "data", 4, shape=(64, 64), seed=0)
    cfg = build_config("cpu", None, [{
        "data": {"path": str(data), "annotation": "instances", "val_fraction": 0.5},
        "model": {"preset": "narrow", "depth": 2}, "tile": 60, "iterations": 6,
        "val_every": 3, "log_every": 2, "compile": False, "recalibrate_bn": 0,
        "log": {"tensorboard": True},
    }])  # fmt: skip
    run = tmp_path / "run"
    biounet.fit(cfg, run, progress=False)
    scalars, images = events(run / "tensorboard")
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [(r["iteration"], r["loss"]) for r in records if "loss" in r]
    assert [s for s, _ in scalars["train/loss"]] == [s for s, _ in losses] == [2, 4, 6]
    np.testing.assert_allclose([v for _, v in scalars["train/loss"]], [v for _, v in losses],
                               rtol=1e-6)  # fmt: skip
    val = [(r["iteration"], r["val_iou"]) for r in records if "val_iou" in r]
    assert [s for s, _ in scalars["val/iou"]] == [s for s, _ in val]
    np.testing.assert_allclose([v for _, v in scalars["val/iou"]], [v for _, v in val], rtol=1e-6)
    assert "train/lr" in scalars and "val/ap_50" in scalars
    assert len(images) == 2  # two validation images, at each validation
    for shown in images.values():
        assert [s for s, _, _ in shown] == [s for s, _ in val]
        assert all((w, h) == (4 * 64, 64) for _, w, h in shown)


def test_a_resumed_log_drops_what_ran_again(tmp_path) -> None:
    pytest.importorskip("tensorboard")
    from biounet.reporting.runlog import MetricsLog

    with MetricsLog(tmp_path / "metrics.jsonl", tensorboard=True) as log:
        for it in range(1, 6):
            log.write(iteration=it, loss=float(it))
    with MetricsLog(tmp_path / "metrics.jsonl", after=3, tensorboard=True) as log:
        log.write(iteration=4, loss=40.0)  # iterations 4 and 5 ran again from the checkpoint
    scalars, _ = events(tmp_path / "tensorboard")
    assert scalars["train/loss"] == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0)]


def test_without_the_package_the_error_says_how_to_install_it(tmp_path, monkeypatch) -> None:
    from biounet.reporting.runlog import MetricsLog

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match=r"biounet\[tensorboard\]"):
        MetricsLog(tmp_path / "metrics.jsonl", tensorboard=True)
    assert not (tmp_path / "tensorboard").exists()
