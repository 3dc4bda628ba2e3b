"""Training end to end on tiny synthetic data: runs, splits, best checkpoints, resume, DDP."""

import dataclasses
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import biounet
from biounet.checkpoint import load_checkpoint, save_checkpoint
from biounet.config import (
    build_config,
    load_config,
    parse_override,
    resume_config,
)
from biounet.data import Sample, write_image
from biounet.data.synthetic import make_cells
from biounet.reporting.runlog import read_metrics
from biounet.train import split

from .conftest import TINY, cells


def split_of(samples, cfg):
    """The split of ``samples`` under ``cfg``'s data settings and seed."""
    return split(samples, cfg.data, cfg.seed)


def write_folder(root: Path, n=4, size=64) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for s in cells(n, size):
        write_image(root / "images" / f"{s.name}.tif", (s.image[0] * 65535).astype(np.uint16))
        write_image(root / "labels" / f"{s.name}.tif", s.annotation.astype(np.uint16))
    return root


def test_fit_writes_a_complete_run(tmp_path) -> None:
    cfg = build_config("cpu", overrides=[TINY, {"iterations": 10, "val_every": 2}])
    result = biounet.fit(cfg, tmp_path / "run", samples=cells(), progress=False)
    run = result.run
    for name in ("config.yaml", "last.pt", "best.pt", "metrics.jsonl", "learning_curves.png"):
        assert (run / name).exists(), name
    records = read_metrics(run)
    assert [r["iteration"] for r in records if "loss" in r] == [2, 4, 6, 8, 10]
    assert [r["iteration"] for r in records if "val_iou" in r] == [2, 4, 6, 8, 10]
    ck = load_checkpoint(run / "last.pt")
    assert ck["iteration"] == 10 and ck["biounet_version"] == biounet.__version__
    assert (
        ck["class_names"] == ["background", "interior", "boundary"]  # the preset's 3-class
        and ck["normalize"]["mode"] == "percentile"
    )
    for key in ("optimizer", "scheduler", "scaler", "rng", "train_config"):
        assert key in ck
    model = biounet.load(run)
    assert model.normalizer is not None and not model.net.training
    img = (make_cells((40, 50), seed=9)[0] * 1000).astype(np.float32)  # another intensity scale
    probs = biounet.predict(model, img)
    assert probs.shape == (3, 40, 50)
    # the stored normalisation makes the prediction independent of the raw intensity scale
    np.testing.assert_allclose(biounet.predict(model, img * 3 + 7), probs, atol=1e-4)


def test_split_is_seeded_disjoint_and_named(tmp_path) -> None:
    samples = cells(10, size=16)
    names = [s.name for s in samples]
    cfg = build_config("cpu", data={"val_fraction": 0.3})
    train, val = split_of(samples, cfg)
    assert len(val) == 3 and len(train) == 7
    assert sorted(s.name for s in train + val) == sorted(names)  # disjoint, nothing lost
    assert [s.name for s in split_of(samples, cfg)[1]] == [s.name for s in val]  # deterministic
    other = [
        s.name
        for s in split_of(samples, build_config("cpu", seed=1, data={"val_fraction": 0.3}))[1]
    ]
    assert other != [s.name for s in val]  # the seed draws the split
    assert split_of(samples, build_config("cpu", data={"val_fraction": 0.0}))[1] == []
    assert len(split_of(samples[:2], build_config("cpu", data={"val_fraction": 0.1}))[1]) == 1
    numbered = [Sample(str(i), s.image, s.annotation) for i, s in enumerate(samples)]
    train, val = split_of(numbered, build_config("cpu", data={"val_names": [3, 7]}))  # YAML numbers
    assert [s.name for s in val] == ["3", "7"] and len(train) == 8
    named = [Sample(f"{i:02d}", s.image, s.annotation) for i, s in enumerate(samples)]
    train, val = split_of(named, build_config("cpu", data={"val_names": ["03", "07"]}))
    assert [s.name for s in val] == ["03", "07"] and len(train) == 8
    with pytest.raises(
        ValueError, match=r"no samples named \['3', '7'\].*quote names with leading zeros"
    ):
        split_of(named, build_config("cpu", data={"val_names": [3, 7]}))
    with pytest.raises(ValueError, match=r"data\.val_names: no samples named \['zz'\]$"):
        split_of(named, build_config("cpu", data={"val_names": ["zz"]}))
    data = write_folder(tmp_path / "val", n=2, size=16)
    train, val = split_of(samples, build_config("cpu", data={"val_path": str(data)}))
    assert train == samples and [s.name for s in val] == ["c0", "c1"]
    both = dataclasses.replace(
        cfg, data=dataclasses.replace(cfg.data, val_path=str(data), val_names=["c0"])
    )
    with pytest.raises(ValueError, match="data.val_path .* and data.val_names .* give only one"):
        split_of(samples, both)


def test_existing_run_is_not_overwritten(tmp_path) -> None:
    cfg = build_config("cpu", overrides=[TINY, {"iterations": 2, "val_every": 2}])
    biounet.fit(cfg, tmp_path / "run", samples=cells(2), progress=False)
    with pytest.raises(FileExistsError, match="already holds a run; use --resume"):
        biounet.fit(cfg, tmp_path / "run", samples=cells(2), progress=False)


@pytest.mark.parametrize("metric", ["iou", "dice", "pixel_error", "loss", "ap_50", "f1"])
def test_best_checkpoint_holds_the_best_validation(tmp_path, metric) -> None:
    cfg = build_config(
        "cpu", overrides=[TINY, {"iterations": 10, "val_every": 2, "best_metric": metric}]
    )
    result = biounet.fit(cfg, tmp_path / "run", samples=cells(3), progress=False)
    val = [r for r in read_metrics(result.run) if "val_pixel_error" in r]
    assert [r["iteration"] for r in val] == [2, 4, 6, 8, 10]
    values = [r[f"val_{metric}"] for r in val]
    assert all(np.isfinite(values))
    best = (max if metric in ("iou", "dice", "ap_50", "f1") else min)(values)
    want = val[values.index(best)]["iteration"]  # the first of equals: only improvements count
    ck = load_checkpoint(result.run / "best.pt")
    assert ck["iteration"] == want and ck["metrics"][metric] == best
    assert result.best == {"metric": metric, "value": best, "iteration": want}


def test_instances_pick_best_by_ap_and_the_run_stores_its_instance_rule(tmp_path) -> None:
    cfg = build_config("cpu", overrides=[TINY, {"iterations": 4, "val_every": 2}])
    assert cfg.best_metric == "auto" and cfg.selection_metric() == "ap_50"
    assert build_config("cpu", data={"annotation": "binary"}).selection_metric() == "iou"
    with pytest.raises(ValueError, match="best_metric='f1' scores objects and needs instance"):
        build_config("cpu", best_metric="f1", data={"annotation": "binary"})
    result = biounet.fit(cfg, tmp_path / "run", samples=cells(3), progress=False)
    val = [r for r in read_metrics(result.run) if "val_ap_50" in r]
    # val_every 2, but a run validates 5 times if it has the iterations: here every one
    assert len(val) == 4 and all(0 <= r["val_ap_50"] <= 1 and "val_f1" in r for r in val)
    assert result.best["metric"] == "ap_50"
    ck = load_checkpoint(result.run / "best.pt")
    sizes = ck["instances"]["object_sizes"]
    truth = np.concatenate([np.bincount(s.annotation.ravel())[1:] for s in cells(3)])
    assert sizes["count"] > 0 and sizes["area_p95"] <= truth.max()
    model = biounet.load(result.run)
    assert (
        model.instance_rule is not None and model.instance_rule.to_dict() == ck["instances"]["rule"]
    )
    # the seeds were chosen on the validation images at the end, with best.pt's network
    choice = ck["rule_choice"]
    assert 0 <= choice["ap_50_sizes"] <= choice["ap_50"] <= 1
    assert "validation image(s)" in model.instance_rule.source
    assert result.model.instance_rule == model.instance_rule


def test_a_collection_mixing_grey_and_colour_images_trains_as_grey(tmp_path, caplog) -> None:
    grey = cells(2)
    colour = [
        Sample(f"rgb{i}", np.repeat((s.image * 200).astype(np.uint8), 3, axis=0), s.annotation)
        for i, s in enumerate(cells(2, size=80))
    ]
    cfg = build_config("cpu", overrides=[TINY, {"iterations": 2, "val_every": 2}])
    with caplog.at_level(logging.INFO, logger="biounet.train"):
        result = biounet.fit(cfg, tmp_path / "run", samples=grey + colour, progress=False)
    assert "colour image(s) read as grey" in caplog.text
    assert result.model.config.in_channels == 1
    rgb = np.repeat((cells(1)[0].image * 200).astype(np.uint8), 3, axis=0)  # (3, Y, X)
    np.testing.assert_allclose(
        biounet.predict(result.model, rgb), biounet.predict(result.model, rgb[:1]), atol=1e-6
    )
    two = [Sample("two", np.zeros((2, 64, 64), np.float32), grey[0].annotation)]
    with pytest.raises(ValueError, match="different numbers of channels \\(c0 has 1, two has 2\\)"):
        biounet.fit(cfg, tmp_path / "bad", samples=grey + two, progress=False)
    assert not (tmp_path / "bad").exists()


def test_validation_loss_is_the_pooled_cross_entropy_of_annotated_pixels() -> None:
    from biounet.data.tiles import TrainImage
    from biounet.train.validate import validate

    model = biounet.UNet(depth=1, base_width=2, padding="same").eval()
    rng = np.random.default_rng(0)
    images = []
    for shape in ((12, 16), (20, 8)):
        classes = rng.integers(0, 2, shape)
        classes[:3] = -1  # unannotated rows
        image = rng.random((1, *shape)).astype(np.float32)
        images.append(TrainImage("x", image, classes, np.ones(shape, np.float32), np.zeros(0)))
    scores = validate(model, images, 2, torch.device("cpu"))
    nll = []
    for t in images:
        probs = biounet.predict(model, t.image, normalize=False, device="cpu")
        keep = t.classes >= 0
        nll.append(-np.log(np.take_along_axis(probs, np.clip(t.classes, 0, 1)[None], 0)[0][keep]))
    # over all annotated pixels of all images (not the mean of the per-image means)
    assert scores["loss"] == pytest.approx(np.concatenate(nll).mean(), rel=1e-5)
    assert scores["loss"] != pytest.approx(np.mean([x.mean() for x in nll]), rel=1e-5)


def _train(tmp_path, iterations=4, name="run", samples=None, **settings):
    """A tiny run with a constant learning rate (so that extending it changes nothing before)."""
    overrides = [
        TINY,
        {"iterations": iterations, "val_every": 2, "optim": {"schedule": "constant"}},
    ]
    cfg = build_config("cpu", overrides=overrides, **settings)
    biounet.fit(cfg, tmp_path / name, samples=samples or cells(3), progress=False)
    return cfg, tmp_path / name


def test_resume_extends_the_run_to_new_iterations(tmp_path, caplog) -> None:
    _, run = _train(tmp_path, 4)
    longer = resume_config(run, [parse_override("iterations=8")])
    assert longer.iterations == 8
    with caplog.at_level(logging.INFO, logger="biounet.train"):
        biounet.fit(longer, run, resume=True, samples=cells(3), progress=False)
    assert f"resuming {run} at iteration 4 (of 8)" in caplog.text
    ck = load_checkpoint(run / "last.pt")
    assert ck["iteration"] == 8 and ck["planned_iterations"] == 8
    assert load_config(run / "config.yaml").iterations == 8
    assert [r["iteration"] for r in read_metrics(run) if "loss" in r] == [2, 4, 6, 8]
    # the same as training 8 iterations at once
    _, straight = _train(tmp_path, 8, name="straight")
    expected = load_checkpoint(straight / "last.pt")["state_dict"]
    for k, v in expected.items():
        torch.testing.assert_close(ck["state_dict"][k], v, rtol=1e-6, atol=1e-6)


def test_resume_refuses_settings_that_cannot_change(tmp_path) -> None:
    cfg, run = _train(tmp_path, 4)
    saved = (run / "config.yaml").read_bytes()
    with pytest.raises(
        ValueError,
        match=r"settings that cannot change on resume: optim\.lr \(0\.003 -> 0\.5\), "
        r"seed \(0 -> 3\)\. Only iterations, max_minutes, workers, ",
    ):
        resume_config(run, [parse_override("optim.lr=0.5"), {"seed": 3}])
    assert resume_config(run, [{"seed": 0}, {"workers": 0}]) == cfg  # unchanged values are fine
    with pytest.raises(ValueError, match=r"unknown key in the config 'iteration'"):
        resume_config(run, [{"iteration": 9}])
    with pytest.raises(ValueError, match=r"data\.val_path \('' -> 'v'\)"):  # a split stays one
        resume_config(run, [{"data": {"val_path": "v"}}])
    # fit itself refuses a configuration that differs from the run's, before writing anything
    with pytest.raises(
        ValueError, match=r"resuming .*last\.pt: settings that cannot change on resume: batch_size"
    ):
        biounet.fit(
            dataclasses.replace(cfg, batch_size=3),
            run,
            resume=True,
            samples=cells(3),
            progress=False,
        )
    with pytest.raises(
        ValueError, match=r"iterations=3 is below the iteration of .*last\.pt \(4\)"
    ):
        biounet.fit(
            resume_config(run, [{"iterations": 3}]),
            run,
            resume=True,
            samples=cells(3),
            progress=False,
        )
    assert (run / "config.yaml").read_bytes() == saved
    with pytest.raises(FileNotFoundError, match="nothing to resume .*no config.yaml"):
        resume_config(tmp_path / "elsewhere")


def test_resume_needs_a_resumable_checkpoint(tmp_path) -> None:
    cfg, run = _train(tmp_path, 2)
    shutil.copy(run / "best.pt", run / "last.pt")  # a model only: no optimiser state
    with pytest.raises(
        ValueError,
        match=r"last\.pt: not a resumable checkpoint \(no optimizer, scheduler, scaler, rng\)",
    ):
        biounet.fit(cfg, run, resume=True, samples=cells(3), progress=False)


def test_resume_from_moved_data_and_stale_temporary_files(tmp_path) -> None:
    data = write_folder(tmp_path / "data", n=3)
    _, run = _train(tmp_path, 2, data={"path": str(data)})
    moved = tmp_path / "moved"
    data.rename(moved)
    # what a SIGKILL during an atomic write leaves behind
    for stale in (run / ".last.pt.x1y2.part", run / "cache" / ".border-0.npy.abc.part"):
        stale.write_bytes(b"half")
    (run / ".keep").write_text("not ours")
    cfg = resume_config(run, [{"data": {"path": str(moved)}}, {"iterations": 4}])
    biounet.fit(cfg, run, resume=True, progress=False)
    assert load_checkpoint(run / "last.pt")["iteration"] == 4
    assert load_config(run / "config.yaml").data.path == str(moved)
    assert not list(run.rglob("*.part")) and (run / ".keep").exists()


def test_a_failed_set_up_leaves_no_run_folder(tmp_path) -> None:
    # instance labels read as binary masks: an error while preparing the data
    cfg = build_config("cpu", overrides=[TINY, {"iterations": 2, "deterministic": True}])
    # (the instance settings resolved 3 classes for the preset's 3-class target: back to 2)
    binary = dataclasses.replace(cfg.data, annotation="binary", num_classes=2)
    cfg = dataclasses.replace(cfg, data=binary)
    with pytest.raises(ValueError, match="a binary mask holds at most 2 values"):
        biounet.fit(cfg, tmp_path / "run", samples=cells(2), progress=False)
    assert not (tmp_path / "run").exists()
    assert not torch.are_deterministic_algorithms_enabled()  # restored after an error too
    (tmp_path / "mine").mkdir()  # a folder fit did not create stays, without a config.yaml
    with pytest.raises(ValueError, match="a binary mask holds at most 2 values"):
        biounet.fit(cfg, tmp_path / "mine", samples=cells(2), progress=False)
    assert (tmp_path / "mine").is_dir() and not list((tmp_path / "mine").glob("*.yaml"))
    # a configuration made by hand is checked before anything is written
    bad = dataclasses.replace(cfg, model={"dropuot": 0.2})
    with pytest.raises(ValueError, match="unknown key in model 'dropuot': did you mean 'dropout'"):
        biounet.fit(bad, tmp_path / "run2", samples=cells(2), progress=False)
    assert not (tmp_path / "run2").exists()


def test_fit_restores_global_state_and_warns_about_amp_on_cpu(tmp_path, caplog) -> None:
    assert not torch.are_deterministic_algorithms_enabled()
    cfg = build_config(
        "cpu",
        overrides=[
            TINY,
            {"iterations": 2, "val_every": 2, "deterministic": True, "amp": "bf16"},
            {"channels_last": True},
        ],
    )
    with caplog.at_level(logging.WARNING, logger="biounet.train"):
        biounet.fit(cfg, tmp_path / "run", samples=cells(3), progress=False)
    assert not torch.are_deterministic_algorithms_enabled()
    if not torch.cuda.is_available():
        assert "amp='bf16' needs CUDA: training in float32 on the cpu" in caplog.text
    assert load_checkpoint(tmp_path / "run" / "last.pt")["iteration"] == 2


@pytest.mark.parametrize(("minutes", "expected"), [(1e-9, [1, 2, 3, 4, 5, 6]), (5.0, [6])])
def test_last_checkpoint_is_written_by_time(tmp_path, monkeypatch, minutes, expected) -> None:
    import biounet.train.loop

    saved = []
    real = biounet.train.loop.save_checkpoint

    def spy(path, model, **extra):
        saved.append((Path(path).name, extra["iteration"]))
        return real(path, model, **extra)

    monkeypatch.setattr(biounet.train.loop, "save_checkpoint", spy)
    cfg = build_config(
        "cpu",
        overrides=[
            TINY,
            {"iterations": 6, "val_every": 100, "checkpoint_minutes": minutes},
            {"data": {"val_fraction": 0.0}},  # no validation, which also writes last.pt
        ],
    )
    biounet.fit(cfg, tmp_path / "run", samples=cells(2), progress=False)
    assert [i for name, i in saved if name == "last.pt"] == expected


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "biounet.cli", *args]


def _logged(text: bytes) -> list[int]:
    """Iterations of the training records in a metrics log (a partial last line is skipped)."""
    out = []
    for line in text.decode().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "loss" in record:
            out.append(record["iteration"])
    return out


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path) -> None:
    data = write_folder(tmp_path / "data")
    n = 40
    common = [
        *("--preset", "cpu", "--iterations", str(n), "--tile", "44", "--batch-size", "2"),
        *("--annotation", "instances", "--deterministic", "--no-progress"),
        *("--set", "model.depth=2", "--set", "model.base_width=4", "--set", "optim.warmup=0"),
        *("--set", "val_every=20", "--set", "checkpoint_every=8", "--set", "log_every=1"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full_err = tmp_path / "full.err"
    with open(full_err, "wb") as err:  # the uninterrupted run, alongside
        full = subprocess.Popen(
            _cli("train", str(data), "--out", str(tmp_path / "full"), *common),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    cut = tmp_path / "cut"
    proc = subprocess.Popen(
        _cli("train", str(data), "--out", str(cut), *common),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    last, log_file = cut / "last.pt", cut / "metrics.jsonl"
    # kill it once last.pt holds a later checkpoint (>= 8) and the log has gone past it, so that
    # some work is lost and redone; the process is stopped while that is checked (no races)
    cut_at, snapshot, deadline = None, b"", time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
        if (
            not log_file.exists()
            or not last.exists()
            or max(_logged(log_file.read_bytes()), default=0) < 9
        ):
            continue
        os.kill(proc.pid, signal.SIGSTOP)
        if not os.WIFSTOPPED(os.waitpid(proc.pid, os.WUNTRACED)[1]):
            break  # it ended meanwhile (and is reaped)
        at, snapshot = load_checkpoint(last)["iteration"], log_file.read_bytes()
        if at >= 8 and max(_logged(snapshot)) > at:
            cut_at = at
            proc.kill()
            break
        os.kill(proc.pid, signal.SIGCONT)
    proc.wait()
    assert cut_at is not None, "the run ended before it could be cut"
    assert proc.returncode == -signal.SIGKILL and 8 <= cut_at < n
    before = [line for line in snapshot.splitlines(keepends=True) if line.endswith(b"\n")]
    kept = [line for line in before if json.loads(line)["iteration"] <= cut_at]
    assert len(kept) < len(before)  # records past the checkpoint: lost work, to be redone
    resumed = subprocess.run(
        _cli("train", "--out", str(cut), "--resume", "--no-progress"),
        env=env,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming {cut} at iteration {cut_at} (of {n})" in resumed.stderr
    after = log_file.read_bytes().splitlines(keepends=True)
    assert after[: len(kept)] == kept  # the records up to the checkpoint were kept, not redone
    assert _logged(b"".join(after)) == list(range(1, n + 1))  # no repeats or gaps
    assert not list(cut.rglob(".*.part"))
    full.wait(timeout=240)
    assert full.returncode == 0, full_err.read_text()[-3000:]
    a, b = load_checkpoint(tmp_path / "full" / "last.pt"), load_checkpoint(last)
    assert a["iteration"] == b["iteration"] == n
    for k in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][k], b["state_dict"][k], rtol=1e-6, atol=1e-6)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_two_processes_end_with_identical_weights(tmp_path) -> None:
    worker = Path(__file__).parent / "helpers" / "ddp_worker.py"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--nnodes=1",
        f"--master_port={_free_port()}",
        str(worker),
        str(tmp_path),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    w0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert w0.keys() == w1.keys()
    for k in w0:
        assert torch.equal(w0[k], w1[k]), k
    start = biounet.UNet(depth=2, base_width=4)
    assert any(not torch.equal(w0[k], v) for k, v in start.state_dict().items())  # it trained
    # all the iterations, although rank 1's clock said the time budget was spent long ago
    assert load_checkpoint(tmp_path / "run" / "last.pt")["iteration"] == 6


def test_cli_train_and_plot(tmp_path, capsys) -> None:
    from biounet.cli import main

    data = write_folder(tmp_path / "data", n=3)
    args = [
        "train",
        str(data),
        "--out",
        str(tmp_path / "run"),
        "--iterations",
        "4",
        "--tile",
        "44",
        "--set",
        "model.depth=2",
        "--set",
        "model.base_width=4",
        "--annotation",
        "instances",
        "--set",
        "val_every=2",
        "--no-progress",
    ]
    assert main(args) == 0
    assert "run folder:" in capsys.readouterr().out
    (tmp_path / "run" / "learning_curves.png").unlink()
    assert main(["plot", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "learning_curves.png").stat().st_size > 1000
    assert main(["train", str(data), "--out", str(tmp_path / "run")]) == 2
    assert "already holds a run" in capsys.readouterr().err


def test_time_budget_fits_the_schedule(tmp_path) -> None:
    cfg = build_config(
        "cpu",
        overrides=[
            TINY,
            {
                "iterations": 100000,
                "max_minutes": 0.3,
                "val_every": 10**6,
                "optim": {"warmup": 0, "schedule": "cosine"},
            },
        ],
    )
    t0 = time.monotonic()
    result = biounet.fit(cfg, tmp_path / "run", samples=cells(2), progress=False)
    elapsed = time.monotonic() - t0
    ck = load_checkpoint(result.run / "last.pt")
    assert 20 < ck["iteration"] < 100000 and ck["planned_iterations"] == ck["iteration"]
    assert elapsed < 18 + 20  # 18 s of training, plus set-up and plots
    lrs = [r["lr"] for r in read_metrics(result.run) if "lr" in r]
    assert lrs[-1] < 0.05 * cfg.optim.lr  # the cosine schedule was fitted to the budget


@pytest.mark.slow
def test_compiled_training_writes_plain_checkpoints(tmp_path) -> None:
    cfg = build_config(
        "cpu",
        overrides=[TINY, {"iterations": 2, "val_every": 2}],
        compile=True,
        compile_backend="eager",
    )
    result = biounet.fit(cfg, tmp_path / "run", samples=cells(3), progress=False)
    ck = load_checkpoint(result.run / "last.pt")
    assert ck["iteration"] == 2 and ck["train_config"]["compile_backend"] == "eager"
    assert ck["state_dict"].keys() == result.model.net.state_dict().keys()
    biounet.load(result.run)
    net = biounet.UNet(depth=1, base_width=2)
    compiled = torch.compile(net, backend="eager")
    assert any("_orig_mod" in k for k in compiled.state_dict())
    save_checkpoint(tmp_path / "c.pt", compiled)  # unwrapped to the plain network
    assert load_checkpoint(tmp_path / "c.pt")["state_dict"].keys() == net.state_dict().keys()
