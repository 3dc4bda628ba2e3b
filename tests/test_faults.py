"""Faults and careless use: what is on disk afterwards, byte for byte where it can be said.

Output safety (an output never replaces an input or another output; nothing written when a
conflict is found), run-folder locks, interrupted and failed runs, a full disk, link loops,
stale temporary files, values refused before any work, and spreadsheet-safe CSV.
"""

import logging
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import biounet
from biounet.checkpoint import save_checkpoint
from biounet.cli import main
from biounet.data import Normalizer, write_image

from .conftest import TINY, cells


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (links not followed) by relative path, with its bytes."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[str(p.relative_to(root))] = p.read_bytes()
    return out


@pytest.fixture
def model_path(tmp_path) -> Path:
    torch.manual_seed(0)
    net = biounet.UNet(depth=2, base_width=4)
    (tmp_path / "models").mkdir()
    return save_checkpoint(
        tmp_path / "models" / "m.pt",
        net,
        normalize=Normalizer().to_dict(),
        class_names=["background", "cell"],
        tile=44,
    )


def image(path: Path, seed: int = 0, shape=(30, 41)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    write_image(path, rng.integers(0, 255, shape, dtype=np.uint8))
    return path


def predict(model: Path, *args: str) -> int:
    return main(["predict", str(model), *args, "--no-progress"])


# ----------------------------------------------------------------------------- predict
def test_an_output_never_replaces_an_input(model_path, tmp_path, capsys) -> None:
    d = tmp_path / "d"
    image(d / "a.png")
    image(d / "a_mask.png", seed=1)  # the user's own mask, or another image
    before = snapshot(d)
    assert predict(model_path, str(d), "--out", str(d), "--overwrite") == 2
    err = capsys.readouterr().err
    assert "would replace the input" in err and "a_mask.png" in err
    assert snapshot(d) == before


def test_the_input_folder_is_no_output_folder(model_path, tmp_path, capsys) -> None:
    d = tmp_path / "d"
    image(d / "a.png")
    before = snapshot(d)
    assert predict(model_path, str(d), "--out", str(d)) == 2
    assert "would be written into the input folder" in capsys.readouterr().err
    assert snapshot(d) == before
    # a file named alone counts too: its folder is an input folder
    assert predict(model_path, str(d / "a.png"), "--out", str(d)) == 2
    assert snapshot(d) == before
    # an output folder inside the input folder is fine: a folder's own files are its inputs
    assert predict(model_path, str(d), "--out", str(d / "out")) == 0
    assert sorted(snapshot(d / "out")) == ["a_mask.png"]
    assert predict(model_path, str(d), "--out", str(d / "out")) == 0  # resumes: skips a


@pytest.mark.parametrize(
    "layout",
    [
        ("d/a.png", "d/a.tif"),  # one name in two formats
        ("d1/a.png", "d2/a.png"),  # one name in two folders
    ],
)
def test_inputs_sharing_an_output_are_refused_before_anything_is_written(
    model_path, tmp_path, capsys, layout
) -> None:
    for i, rel in enumerate(layout):
        image(tmp_path / rel, seed=i)
    dirs = sorted({str(tmp_path / Path(rel).parent) for rel in layout})
    before = snapshot(tmp_path)
    assert predict(model_path, *dirs, "--out", str(tmp_path / "out")) == 2
    assert "are one file" in capsys.readouterr().err
    assert snapshot(tmp_path) == before and not (tmp_path / "out").exists()


def test_a_recursive_pattern_reaching_the_labels_is_refused(model_path, tmp_path, capsys) -> None:
    image(tmp_path / "data" / "images" / "a.png")
    image(tmp_path / "data" / "labels" / "a.png", seed=3)
    before = snapshot(tmp_path)
    pattern = str(tmp_path / "data" / "**" / "*.png")
    assert predict(model_path, pattern, "--out", str(tmp_path / "out")) == 2
    assert "are one file" in capsys.readouterr().err
    assert snapshot(tmp_path) == before


def test_stale_temporary_files_of_a_killed_predict_are_removed(model_path, tmp_path) -> None:
    image(tmp_path / "d" / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".a_mask.png.x1y2.part"
    stale.write_bytes(b"half a PNG")
    keep = out / "notes.txt"
    keep.write_text("mine")
    assert predict(model_path, str(tmp_path / "d"), "--out", str(out)) == 0
    assert not stale.exists() and keep.read_text() == "mine"
    assert sorted(snapshot(out)) == ["a_mask.png", "notes.txt"]


def test_skipped_images_are_counted_in_a_warning(model_path, tmp_path, caplog) -> None:
    image(tmp_path / "d" / "a.png")
    image(tmp_path / "d" / "b.png", seed=1)
    out = tmp_path / "out"
    assert predict(model_path, str(tmp_path / "d"), "--out", str(out)) == 0
    (out / "b_mask.png").unlink()
    a = (out / "a_mask.png").stat().st_mtime_ns
    time.sleep(0.01)
    with caplog.at_level(logging.WARNING):
        assert predict(model_path, str(tmp_path / "d"), "--out", str(out)) == 0
    assert (out / "a_mask.png").stat().st_mtime_ns == a and (out / "b_mask.png").exists()
    assert "1 of 2 image(s) skipped: all their outputs exist" in caplog.text


def test_a_link_loop_among_the_inputs_is_one_line(model_path, tmp_path, capsys) -> None:
    d = tmp_path / "d"
    image(d / "a.png")
    os.symlink(d / "loop.png", d / "loop.png")
    assert predict(model_path, str(d / "loop.png"), "--out", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err.strip()
    assert "loop.png" in err and "loop" in err.split("loop.png", 1)[1] and "\n" not in err


# ----------------------------------------------------------------------------- export, evaluate
def export(model: Path, out: Path) -> int:
    return main(["export", str(model), "--format", "torchscript", "--out", str(out), "--no-check"])


def test_export_never_replaces_the_model_it_reads(model_path, tmp_path, capsys) -> None:
    before = model_path.read_bytes()
    assert export(model_path, model_path) == 2
    assert "would replace the model it exports" in capsys.readouterr().err
    assert model_path.read_bytes() == before
    assert sorted(p.name for p in model_path.parent.iterdir()) == ["m.pt"]


def test_export_on_a_full_disk_stops_before_writing(model_path, tmp_path, monkeypatch, capsys):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
    out = tmp_path / "exp"
    out.mkdir()
    assert export(model_path, out / "m.pt") == 2
    err = capsys.readouterr().err.strip()
    assert "not enough free space for the export" in err and str(out / "m.pt") in err
    assert list(out.iterdir()) == []


def test_evaluate_never_writes_over_its_inputs(tmp_path, capsys) -> None:
    pred, truth = tmp_path / "pred", tmp_path / "truth"
    pred.mkdir()
    truth.mkdir()
    write_image(pred / "a_mask.png", np.zeros((8, 8), np.uint8))
    write_image(truth / "a.png", np.zeros((8, 8), np.uint8))
    before = snapshot(tmp_path)
    for flag, target in (("--json", truth / "a.png"), ("--csv", pred / "a_mask.png")):
        assert main(["evaluate", str(pred), str(truth), flag, str(target)]) == 2
        assert "would replace" in capsys.readouterr().err
    assert main(["evaluate", str(pred), str(truth), "--json", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "a folder, not a file" in err and ".part" not in err
    assert main(["evaluate", str(pred), str(truth), "--json", str(tmp_path / "no" / "s.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert snapshot(tmp_path) == before


# ----------------------------------------------------------------------------- train
def tiny(**extra):
    from biounet.config import build_config

    return build_config("cpu", overrides=[TINY, {"log_every": 1}, extra])


def test_a_run_folder_in_use_is_refused_and_left_alone(tmp_path) -> None:
    from biounet.core.files import FolderLock

    run = tmp_path / "run"
    biounet.fit(tiny(iterations=2, val_every=2), run, samples=cells(3), progress=False)
    before = snapshot(run)
    with FolderLock(run):  # as another process training there holds it (rewriting .lock)
        before[".lock"] = (run / ".lock").read_bytes()
        with pytest.raises(BlockingIOError, match="run folder is in use by process"):
            biounet.fit(tiny(iterations=4, val_every=2), run, resume=True, samples=cells(3))
        with pytest.raises(FileExistsError):  # a new run there: refused before the lock
            biounet.fit(tiny(iterations=2), run, samples=cells(3), progress=False)
    assert snapshot(run) == before
    # released: the lock of a process that ended (however) does not stay
    biounet.fit(tiny(iterations=4, val_every=2), run, resume=True, samples=cells(3), progress=False)


def test_a_failed_resume_changes_nothing(tmp_path, monkeypatch) -> None:
    import biounet.train.loop as loop

    run = tmp_path / "run"
    biounet.fit(tiny(iterations=2, val_every=2), run, samples=cells(3), progress=False)
    # all but the weight-map cache and the lock file (which names its last holder)
    before = {k: v for k, v in snapshot(run).items() if not k.startswith(("cache", ".lock"))}

    def broken(*args, **kwargs):
        raise ValueError("a bad tile")

    monkeypatch.setattr(loop, "train_step", broken)
    with pytest.raises(ValueError, match="a bad tile"):  # fails at its first step
        biounet.fit(tiny(iterations=6, val_every=2), run, resume=True, samples=cells(3))
    after = {k: v for k, v in snapshot(run).items() if not k.startswith(("cache", ".lock"))}
    assert after == before  # config.yaml (iterations 2), metrics.jsonl, checkpoints


def test_ctrl_c_saves_the_iteration_it_reached(tmp_path, monkeypatch) -> None:
    import signal

    import biounet.train.loop as loop
    from biounet.checkpoint import load_checkpoint

    step = loop.train_step
    calls = []

    def pressed(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # Ctrl-C during the third step: it completes, then the run stops
            os.kill(os.getpid(), signal.SIGINT)
        return step(*args, **kwargs)

    monkeypatch.setattr(loop, "train_step", pressed)
    run = tmp_path / "run"
    cfg = tiny(iterations=8, val_every=100, checkpoint_minutes=60)
    # as in a terminal (a job started in the background ignores SIGINT, and so does fit)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            biounet.fit(cfg, run, samples=cells(3), progress=False)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    finally:
        signal.signal(signal.SIGINT, previous)
    assert load_checkpoint(run / "last.pt")["iteration"] == 3
    monkeypatch.setattr(loop, "train_step", step)
    result = biounet.fit(cfg, run, resume=True, samples=cells(3), progress=False)
    assert load_checkpoint(run / "last.pt")["iteration"] == 8 and result.run == run


def test_a_full_disk_while_training_keeps_the_old_checkpoint(tmp_path, monkeypatch) -> None:
    import biounet.checkpoint as checkpoint

    run = tmp_path / "run"
    biounet.fit(tiny(iterations=2, val_every=2), run, samples=cells(3), progress=False)
    last = (run / "last.pt").read_bytes()
    save = torch.save

    def full(obj, f, *args, **kwargs):
        if "iteration" in obj and obj["iteration"] >= 3:
            raise RuntimeError(
                "[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed "
                "writing file data/3: file write failed"
            )
        return save(obj, f, *args, **kwargs)

    monkeypatch.setattr(checkpoint.torch, "save", full)
    cfg = tiny(iterations=4, val_every=100, checkpoint_every=1)
    with pytest.raises(OSError, match="no space left on the device") as e:
        biounet.fit(cfg, run, resume=True, samples=cells(3), progress=False)
    assert e.value.errno == 28 and e.value.filename == str(run / "last.pt")
    assert (run / "last.pt").read_bytes() == last
    assert not list(run.rglob(".*.part"))


# ----------------------------------------------------------------------------- early errors
def test_values_are_refused_before_any_work(model_path, tmp_path, capsys) -> None:
    d = tmp_path / "d"
    image(d / "a.png")
    out = tmp_path / "out"
    cases = [
        (["--instances", "--min-size", "-1"], "--min-size must be a number of pixels >= 0"),
        (["--instances", "--h", "0"], "--h must be a depth in pixels > 0"),
        (["--threshold", "2"], "threshold must be in (0, 1), got 2.0"),
        (["--truth", str(d), "--task", "membranes", "--membrane-class", "5"],
         "--membrane-class 5 is not a class of the model (0..1)"),
    ]  # fmt: skip
    for flags, message in cases:
        assert predict(model_path, str(d), "--out", str(out), *flags) == 2
        assert message in capsys.readouterr().err
        assert not out.exists()


def test_a_key_given_twice_in_a_config_file_is_refused(tmp_path, capsys) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("iterations: 5\noptim:\n  lr: 0.1\n  lr: 0.2\n")
    assert main(["train", "--config", str(cfg), "--print-config"]) == 2
    err = capsys.readouterr().err
    assert "c.yaml: the key 'lr' is given twice (lines 3 and 4)" in err


def test_evaluation_errors_name_the_files_and_suggest_the_task(tmp_path, capsys) -> None:
    lab = np.zeros((32, 32), np.uint16)
    lab[2:10, 2:10], lab[12:20, 12:20], lab[22:30, 3:9] = 1, 2, 3
    (tmp_path / "truth").mkdir()
    write_image(tmp_path / "truth" / "a.png", ((lab > 0) * 255).astype(np.uint8))
    (tmp_path / "inst").mkdir()
    write_image(tmp_path / "inst" / "a.tif", lab)
    assert main(["evaluate", str(tmp_path / "inst"), str(tmp_path / "truth")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "inst" / "a.tif") in err and "--task cells" in err
    assert main(["evaluate", str(tmp_path / "inst"), str(tmp_path / "truth"), "--task",
                 "cells"]) == 0  # fmt: skip


def test_a_complex_image_is_named(model_path, tmp_path, capsys) -> None:
    import tifffile

    (tmp_path / "d").mkdir()
    tifffile.imwrite(tmp_path / "d" / "c.tif", np.zeros((16, 16), np.complex64))
    assert predict(model_path, str(tmp_path / "d"), "--out", str(tmp_path / "out")) == 2
    assert f"{tmp_path / 'd' / 'c.tif'}: the image has dtype complex64" in capsys.readouterr().err


def test_csv_cells_never_start_a_formula(tmp_path) -> None:
    from biounet.reporting.tables import write_reports

    rows = [{"image": '=HYPERLINK("http://x")', "iou": -0.5}, {"image": "@SUM(A1)", "iou": 1}]
    write_reports(rows, {}, csv_path=tmp_path / "s.csv")
    text = (tmp_path / "s.csv").read_text().splitlines()
    assert text[1].startswith("\"'=HYPERLINK(") and text[1].endswith(",-0.5")
    assert text[2] == "'@SUM(A1),1"


def test_a_new_run_replaces_no_file_and_stays_out_of_the_data(tmp_path, capsys) -> None:
    from biounet.data import Sample

    own = tmp_path / "mine"
    own.mkdir()
    (own / "config.yaml").write_text("iterations: 3\n")  # the user's own config, say
    before = snapshot(own)
    with pytest.raises(FileExistsError, match="holds config.yaml, which a new run would replace"):
        biounet.fit(tiny(iterations=2), own, samples=cells(3), progress=False)
    assert snapshot(own) == before
    data = tmp_path / "data"
    samples = [Sample(s.name, s.image, s.annotation, image_path=data / f"{s.name}.tif")
               for s in cells(3)]  # fmt: skip
    data.mkdir()
    with pytest.raises(ValueError, match="is a folder of the training data"):
        biounet.fit(tiny(iterations=2), data, samples=samples, progress=False)
    assert list(data.iterdir()) == []


def test_predictions_never_go_into_the_truth_folder(model_path, tmp_path, capsys) -> None:
    image(tmp_path / "d" / "a.png")
    truth = tmp_path / "truth"
    image(truth / "a.png")
    before = snapshot(truth)
    assert predict(model_path, str(tmp_path / "d"), "--out", str(truth), "--truth", str(truth)) == 2
    assert "is the folder of the ground truth" in capsys.readouterr().err
    assert snapshot(truth) == before


def test_a_run_that_ignores_ctrl_c_keeps_ignoring_it() -> None:
    import signal

    from biounet.train.interrupt import interruptible

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as nohup / a background job
    try:
        with interruptible() as stop:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)
            assert not stop.requested
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
