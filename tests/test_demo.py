"""``biounet demo``: the run folder it writes, its scores checked from the files, its errors."""

import json

import numpy as np
import pytest

from biounet.cli import main
from biounet.data import read_image, write_image
from biounet.demo import _default_run, write_synthetic

TINY = ["--minutes", "0.1", "--size", "64", "--no-progress", "--set", "val_every=5"]


def _iou(truth: np.ndarray, pred: np.ndarray) -> float:
    inter = np.logical_and(truth, pred).sum()
    return float(inter / np.logical_or(truth, pred).sum())


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("demo") / "run"
    argv = ["demo", "--out", str(run), "--images", "4", "--test-images", "2", *TINY]
    assert main([*argv, "--no-report"]) == 0
    return run


def test_demo_writes_a_complete_run_folder(demo_run) -> None:
    names = {p.name for p in demo_run.iterdir()}
    assert {"config.yaml", "metrics.jsonl", "best.pt", "last.pt", "learning_curves.png"} <= names
    assert {"data", "predictions", "evaluation.json", "evaluation.csv"} <= names
    train = sorted(p.name for p in (demo_run / "data" / "train" / "images").iterdir())
    assert train == [f"cells_{i:03d}.png" for i in range(4)]
    test = sorted(p.name for p in (demo_run / "data" / "test" / "masks").iterdir())
    assert test == ["cells_000.png", "cells_001.png"]
    preds = sorted(p.name for p in (demo_run / "predictions").iterdir())
    assert preds == [
        f"cells_00{i}_{kind}"
        for i in range(2)
        for kind in ("labels.tif", "mask.png", "overlay.png")
    ]
    overlay = read_image(demo_run / "predictions" / "cells_000_overlay.png")
    assert overlay.shape == (64, 64, 3) and overlay.dtype == np.uint8


def test_demo_scores_match_the_files(demo_run) -> None:
    report = json.loads((demo_run / "evaluation.json").read_text())
    assert [r["image"] for r in report["images"]] == ["cells_000", "cells_001"]
    summary = report["summary"]
    for key in ("pooled_iou", "seg", "ap_50", "f1", "mean_ap"):
        assert 0.0 <= summary[key] <= 1.0
    inter = union = 0
    for row in report["images"]:
        truth = read_image(demo_run / "data" / "test" / "masks" / f"{row['image']}.png") > 0
        labels = read_image(demo_run / "predictions" / f"{row['image']}_labels.tif")
        assert row["iou"] == pytest.approx(_iou(truth, labels > 0))
        assert row["found"] == len(np.unique(labels)) - 1
        inter += np.logical_and(truth, labels > 0).sum()
        union += np.logical_or(truth, labels > 0).sum()
    assert summary["pooled_iou"] == pytest.approx(inter / union)


def test_demo_prints_the_headline(tmp_path, capsys) -> None:
    run = tmp_path / "r"
    assert main(["demo", "--out", str(run), "--images", "2", "--test-images", "1", *TINY]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"run folder: {run} (")
    assert out[1].startswith("held-out images: 1; IoU ")
    for label in ("SEG ", "AP@0.5 ", "F1@0.5 "):
        assert label in out[1]
    assert out[2] == f"report: {(run / 'report.html').resolve()}"
    assert (run / "report.html").stat().st_size > 0


def test_demo_on_a_users_folder(tmp_path, capsys) -> None:
    # a binary-mask dataset (objects 255): semantic scores on its validation images
    data = write_synthetic(tmp_path / "mine", 4, shape=(64, 64), seed=3)
    for p in (data / "masks").iterdir():
        write_image(p, ((read_image(p) > 0) * 255).astype(np.uint8))
    run = tmp_path / "run"
    argv = ["demo", "--data", str(data), "--out", str(run), "--foreground", "255"]
    assert main([*argv, "--val-names", "cells_001", "--no-report", *TINY]) == 0
    report = json.loads((run / "evaluation.json").read_text())
    assert [r["image"] for r in report["images"]] == ["cells_001"]
    truth = read_image(data / "masks" / "cells_001.png") == 255
    mask = read_image(run / "predictions" / "cells_001_mask.png") == 255
    assert report["summary"]["pooled_iou"] == pytest.approx(_iou(truth, mask))
    assert "IoU " in capsys.readouterr().out


def test_demo_refuses_a_used_folder(demo_run, capsys) -> None:
    assert main(["demo", "--out", str(demo_run), *TINY]) == 2
    assert capsys.readouterr().err.strip() == (
        f"biounet demo: error: {demo_run} is not empty; give a new --out folder for the demo"
    )


def test_default_run_folder_is_never_reused(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert str(_default_run()) == "biounet-demo"
    (tmp_path / "biounet-demo").mkdir()
    assert str(_default_run()) == "biounet-demo"  # empty: usable
    (tmp_path / "biounet-demo" / "x").write_text("")
    (tmp_path / "biounet-demo-2").mkdir()
    (tmp_path / "biounet-demo-2" / "x").write_text("")
    assert str(_default_run()) == "biounet-demo-3"
