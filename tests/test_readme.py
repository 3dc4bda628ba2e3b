"""The README stays true: CI runs its test command, and every command it shows runs.

The commands run as written, in a scratch folder holding a small synthetic ``DATA`` (instance
labels, as the README says), with flags appended that only make them quick (fewer iterations,
a narrower network, a shorter demo): argparse takes the last value of a repeated flag.
"""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from biounet.cli import main
from biounet.data.synthetic import write_synthetic

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()

QUICK = {
    "train": [
        "--iterations", "2", "--tile", "188", "--set", "model.base_width=4",
        "--set", "val_every=1", "--no-progress",
    ],
    "demo": ["--minutes", "0.05", "--images", "2", "--test-images", "1", "--size", "64",
             "--set", "model.base_width=4", "--no-progress"],
    "predict": ["--no-progress"],
}  # fmt: skip


def blocks(lang: str, text: str = README) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)\n```", text, flags=re.S)


def quickstart() -> list[str]:
    return blocks("bash", README.split("## Quickstart", 1)[1].split("\n## ", 1)[0])[:2]


def commands() -> list[str]:
    """Every command line of the README's bash blocks, but the two set-up commands."""
    setup = set(quickstart())
    lines = []
    for block in blocks("bash"):
        if block in setup:
            continue
        for line in block.splitlines():
            line = line.split("  #", 1)[0].strip()
            if line:
                lines.append(line)
    return lines


def test_quickstart_has_two_commands_and_ci_runs_the_test_command() -> None:
    install, test = quickstart()
    assert "pip install torch==2.13.0" in install and "pip install -e ." in install
    assert install.split("&&")[-1].strip() == "biounet demo"
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test in ci, "the README's test command must appear verbatim in .ci/run"
    assert ci.index("pip install -q torch==2.13.0") < ci.index(test)


def test_readme_shows_the_commands_a_user_needs() -> None:
    verbs = {shlex.split(c)[1] for c in commands() if c.startswith("biounet ")}
    assert verbs == {
        "demo", "train", "plot", "report", "predict", "evaluate", "inspect", "export", "models"
    }  # fmt: skip
    assert any(c.startswith("torchrun ") for c in commands())
    assert (ROOT / "docs" / "report.png").exists(), "the README shows docs/report.png"


def write_isbi_like(folder: Path, names: list[str]) -> None:
    """EM-like slices in the ISBI 2012 layout: images/NN.png, labels/NN.png (membranes 0)."""
    import numpy as np

    from biounet.data.io import write_image
    from biounet.data.synthetic import make_membranes

    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    for k, name in enumerate(names):
        image, membranes, _ = make_membranes((64, 64), seed=k)
        write_image(folder / "images" / f"{name}.png", np.rint(image * 255).astype(np.uint8))
        write_image(folder / "labels" / f"{name}.png", (255 * (1 - membranes)).astype(np.uint8))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    root = tmp_path_factory.mktemp("readme")
    write_synthetic(root / "DATA", 3, shape=(64, 64), seed=1)
    write_isbi_like(root / "ISBI", ["00", "01", "02", "25", "26", "27", "28", "29"])
    return root


def test_main_job_of_the_readme_runs(scratch, monkeypatch, capsys) -> None:
    monkeypatch.chdir(scratch)
    job = shlex.split(quickstart()[0].split("&&")[-1])
    assert main([*job[1:], *QUICK["demo"]]) == 0
    out = capsys.readouterr().out
    assert "run folder: biounet-demo" in out and "SEG " in out
    assert (scratch / "biounet-demo" / "report.html").exists()


def test_notebook_example_runs(scratch, monkeypatch, capsys) -> None:
    (code,) = blocks("python")
    assert len([line for line in code.splitlines() if line.strip()]) <= 7
    # the demo's data folder, as the README says: train/ to train on, test/ held out
    assert '"biounet-demo/data/train"' in code and "biounet-demo/data/test/images/" in code
    quick = code.replace("max_minutes=5", "max_minutes=5, iterations=2, tile=188")
    quick = quick.replace("biounet-demo/data/", "notebook-data/")  # not the demo test's folder
    assert quick != code
    write_synthetic(scratch / "notebook-data" / "train", 3, shape=(64, 64), seed=1)
    write_synthetic(scratch / "notebook-data" / "test", 1, shape=(64, 64), seed=2)
    monkeypatch.chdir(scratch)
    namespace: dict = {}
    exec(compile(quick, "README.md", "exec"), namespace)
    # the cpu preset's 3-class target on instances; the cells made by the model's own rule
    assert 0.0 <= namespace["probs"].min() and namespace["probs"].shape == (3, 64, 64)
    assert namespace["cells"].shape == (64, 64) and namespace["cells"].dtype.kind == "i"
    printed = capsys.readouterr().out
    assert "'seg'" in printed and "'ap_50'" in printed  # the evaluation's summary


def test_every_command_runs(scratch, monkeypatch, capsys) -> None:
    monkeypatch.chdir(scratch)
    for line in commands():
        argv = shlex.split(line)
        if argv[0] == "torchrun":
            continue  # test_torchrun_command
        assert argv[0] == "biounet", line
        args = argv[1:] + QUICK.get(argv[1], [])
        if argv[1] == "export":
            pytest.importorskip("onnxruntime")
        if argv[1] == "train" and "--resume" in args:
            args += ["--iterations", "3"]
        assert main(args) == 0, f"README command failed: {line}\n{capsys.readouterr().err}"
    capsys.readouterr()
    assert (scratch / "runs" / "mine" / "report.html").exists()
    assert (scratch / "segmented" / "cells_000_labels.tif").exists()
    assert (scratch / "checked" / "evaluation.json").exists()
    assert (scratch / "mine.onnx").exists() and (scratch / "mine.pt").exists()
    # the ISBI 2012 section: slices 25-29 segmented, regions between membranes, scored
    assert sorted(p.name for p in (scratch / "isbi-seg").glob("*_probs.tif")) == [
        f"{k}_probs.tif" for k in range(25, 30)
    ]
    assert (scratch / "isbi-seg" / "25_labels.tif").exists()
    assert "v_rand" in (scratch / "isbi-scores.json").read_text()
    # the shipped EM model, used by name and fine-tuned
    assert len(list((scratch / "em-seg").glob("*_probs.tif"))) == 8
    assert (scratch / "runs" / "my-em" / "best.pt").exists()


def test_torchrun_command(scratch, monkeypatch) -> None:
    (line,) = [c for c in commands() if c.startswith("torchrun ")]
    argv = shlex.split(line)
    cmd = [sys.executable, "-m", "torch.distributed.run", *argv[1:], *QUICK["train"]]
    cmd = [c.replace("runs/ddp", "runs/ddp-test") for c in cmd]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=scratch, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (scratch / "runs" / "ddp-test" / "best.pt").exists()
