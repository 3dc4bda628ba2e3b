"""``biounet demo``: the run folder it writes, its scores checked from the files, its errors."""

import json

import numpy as np
import pytest

from biounet.cli import main
from biounet.data import read_image, write_image
from biounet.data.synthetic import make_dataset, write_synthetic
from biounet.demo import VALIDATION_NOTE, default_run, run_demo

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
    # a run of a few iterations is under-trained, and the summary says so before the page
    assert out[2].startswith("the model looks under-trained (") and "--minutes" in out[2]
    assert out[3] == f"report: {(run / 'report.html').resolve()}"
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
    out = capsys.readouterr().out
    # the held-out images are validation images, which also chose best.pt: the headline says so
    assert "IoU " in out and f"({VALIDATION_NOTE})" in out


def isbi_like(root, n: int = 4):  # type: ignore[no-untyped-def]
    """An ISBI 2012-like folder: EM-like images/ and labels/ with membranes 0, cells 255."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i, (image, cells) in enumerate(make_dataset("membranes", n, shape=(64, 64), seed=5)):
        write_image(root / "images" / f"{i:02d}.png", np.rint(image * 255).astype(np.uint8))
        write_image(root / "labels" / f"{i:02d}.png", ((cells > 0) * 255).astype(np.uint8))
    return root


def test_demo_membranes_on_an_isbi_like_folder(tmp_path) -> None:
    from biounet.metrics import isbi_scores

    data = isbi_like(tmp_path / "isbi")
    result = run_demo(
        tmp_path / "run",
        data=data,
        minutes=0.1,
        task="membranes",
        overrides=[{"val_every": 5, "data": {"val_names": ["01"]}}],
        report=False,
        progress=False,
    )
    line, *advice = result.headline().splitlines()
    assert line.startswith("V_Rand ") and " V_Info " in line and " pixel error " in line
    assert line.endswith(f"({VALIDATION_NOTE})")
    assert all(a.startswith("the model looks under-trained") for a in advice)
    (row,) = result.rows
    assert row["image"] == "01"
    probs = read_image(tmp_path / "run" / "predictions" / "01_probs.tif")
    assert probs.shape == (2, 64, 64)
    membranes = read_image(data / "labels" / "01.png") == 0  # ISBI: membranes are black
    expected = isbi_scores(probs[0].astype(np.float64), membranes)  # class 0: the membranes
    assert row["v_rand"] == pytest.approx(expected["v_rand"])
    assert row["v_info"] == pytest.approx(expected["v_info"])
    assert (tmp_path / "run" / "predictions" / "01_overlay.png").exists()


def test_early_errors_leave_no_run_folder(tmp_path) -> None:
    run = tmp_path / "run"
    with pytest.raises(FileNotFoundError, match="nowhere: no such file or folder"):
        run_demo(run, data=tmp_path / "nowhere", minutes=0.1)
    data = write_synthetic(tmp_path / "mine", 2, shape=(64, 64), seed=3)
    with pytest.raises(ValueError, match="no validation images to score"):
        run_demo(run, data=data, minutes=0.1, overrides=[{"data": {"val_fraction": 0.0}}])
    with pytest.raises(ValueError, match=r"unknown key in the config 'iteratons'"):
        run_demo(run, minutes=0.1, overrides=[{"iteratons": 3}])
    with pytest.raises(ValueError, match=r"task 'membranes' needs an EM dataset"):
        run_demo(run, minutes=0.1, task="membranes")
    with pytest.raises(ValueError, match=r"task 'membranes' needs binary masks"):
        inst = [{"data": {"annotation": "instances"}}]
        run_demo(run, data=data, minutes=0.1, task="membranes", overrides=inst)
    with pytest.raises(ValueError, match=r"unknown demo task 'cell': did you mean 'cells'"):
        run_demo(run, minutes=0.1, task="cell")
    assert not run.exists()


def test_segmenting_passes_progress_unchanged(tmp_path, monkeypatch) -> None:
    import biounet.inference.predictor

    seen = []
    real = biounet.inference.predictor.predict

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(kwargs.get("progress", "not given"))
        return real(*args, **kwargs)

    monkeypatch.setattr(biounet.inference.predictor, "predict", spy)
    overrides = [{"val_every": 5}]
    run_demo(tmp_path / "r", minutes=0.05, n_train=2, n_test=2, size=64, overrides=overrides,
             report=False, progress=None)  # fmt: skip
    assert seen[-2:] == [None, None]  # the 2 held-out images: tqdm decides by the terminal


def test_demo_refuses_a_used_folder(demo_run, capsys) -> None:
    assert main(["demo", "--out", str(demo_run), *TINY]) == 2
    assert capsys.readouterr().err.strip() == (
        f"biounet demo: error: {demo_run} is not empty; give a new --out folder for the demo"
    )


def test_default_run_folder_is_never_reused(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert str(default_run()) == "biounet-demo"
    (tmp_path / "biounet-demo").mkdir()
    assert str(default_run()) == "biounet-demo"  # empty: usable
    (tmp_path / "biounet-demo" / "x").write_text("")
    (tmp_path / "biounet-demo-2").mkdir()
    (tmp_path / "biounet-demo-2" / "x").write_text("")
    assert str(default_run()) == "biounet-demo-3"


def test_the_headline_says_when_the_model_looks_under_trained(tmp_path) -> None:
    from biounet.demo import DemoResult

    rows = [{"image": "a", "objects": 83, "found": 4000}]
    poor = DemoResult(tmp_path, None, "cells", rows, {"ap_50": 0.02, "seg": 0.1}, 1.0)
    line = poor.headline()
    assert "SEG 0.100" in line and "AP@0.5 0.020" in line
    assert line.splitlines()[1] == (
        "the model looks under-trained (found 4000 objects for 83 true ones, AP@0.5 0.02): "
        "train longer, e.g. --minutes 20"
    )
    fine = DemoResult(tmp_path, None, "cells", [{"objects": 83, "found": 85}], {"ap_50": 0.9}, 5)
    assert "under-trained" not in fine.headline()
    semantic = DemoResult(tmp_path, None, "semantic", [], {"pooled_iou": 0.3}, 1.0)
    assert "under-trained (IoU 0.30)" in semantic.headline()
