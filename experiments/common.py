"""What the studies share: their folders, resumable runs, the data splits, scores and tables.

A study (``isbi.py``, ``ablations.py``, ``peers.py``) is a list of named runs. Each run lives in
``OUT/runs/NAME/`` and is done when its ``result.json`` exists: a rerun of the study skips it.
A run interrupted while training resumes from its ``last.pt`` (biounet's own resume, the time
budget counting the minutes already spent); one interrupted before its first checkpoint is
moved aside (``NAME.incomplete-N``) and started again. Nothing outside ``OUT`` is written but
the study's results (``experiments/results/STUDY/``: ``results.md``, ``results.json``,
figures), rewritten from the runs' ``result.json`` files at the end of every invocation.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
#: where the real data sets are looked for (``--data-root`` changes it)
DATA_ROOT = ROOT.parent / "shared" / "data"
RESULTS = HERE / "results"

#: the ISBI 2012 protocol: train on slices 00-24, test on 25-29
ISBI_TRAIN = tuple(f"{i:02d}" for i in range(25))
ISBI_TEST = tuple(f"{i:02d}" for i in range(25, 30))

#: the scores of the ISBI tables: key in biounet's membranes summary -> column title
ISBI_SCORES = {
    "pooled_pixel_error": "pixel error",
    "v_rand": "V_Rand",
    "v_info": "V_Info",
    "pooled_warping_error": "warping error",
    "mean_rand_error": "adapted Rand error",
}


def machine() -> dict[str, Any]:
    """The machine, the software and the commit a study ran on."""
    import torch

    import biounet

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):  # a copy of the sources: say which
        commit = os.environ.get("STUDY_COMMIT", "")
    return {
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "biounet": biounet.__version__,
        "commit": commit,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def link_slices(src: Path, dst: Path, names: Iterable[str]) -> Path:
    """A dataset folder ``dst`` of ``images/`` and ``labels/`` linking to ``names`` of ``src``.

    The links point at the real files, so nothing is copied; an existing ``dst`` is checked
    to hold exactly these names.
    """
    names = list(names)
    for sub in ("images", "labels"):
        folder = dst / sub
        if folder.is_dir():
            have = sorted(p.stem for p in folder.iterdir())
            if have != sorted(names):
                raise ValueError(f"{folder} holds {have}, not the split's {sorted(names)}")
            continue
        folder.mkdir(parents=True)
        for n in names:
            target = src / sub / f"{n}.png"
            if not target.exists():
                raise FileNotFoundError(f"{target}: missing (is --data-root right?)")
            (folder / f"{n}.png").symlink_to(target.resolve())
    return dst


def isbi_folds(k: int) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """The protocol split (``k`` 1) or ``k`` folds of consecutive slices: (name, train, test)."""
    if k <= 1:
        return [("", ISBI_TRAIN, ISBI_TEST)]
    names = [f"{i:02d}" for i in range(30)]
    folds = np.array_split(np.arange(30), k)
    out = []
    for j, idx in enumerate(folds):
        test = tuple(names[i] for i in idx)
        out.append((f"fold{j}", tuple(n for n in names if n not in test), test))
    return out


def isbi_split(out: Path, fold: str) -> tuple[Path, Path]:
    """The training and test folders of a fold ("" is the protocol split), made on first use."""
    src = DATA_ROOT / "isbi2012"  # read at call time: --data-root sets it
    for name, train, test in isbi_folds(5 if fold else 1):
        if name == fold:
            tag = fold or "protocol"
            return (
                link_slices(src, out / "data" / tag / "train", train),
                link_slices(src, out / "data" / tag / "test", test),
            )
    raise ValueError(f"no fold {fold!r}")


def read_truths(folder: Path) -> dict[str, np.ndarray]:
    """The label images of a dataset folder, by name."""
    from biounet.data.io import read_image

    return {p.stem: np.asarray(read_image(p)) for p in sorted((folder / "labels").glob("*.png"))}


def read_images(folder: Path) -> dict[str, np.ndarray]:
    """The images of a dataset folder, by name."""
    from biounet.data.io import read_image

    return {p.stem: np.asarray(read_image(p)) for p in sorted((folder / "images").glob("*.png"))}


def score_membranes(probs: dict[str, np.ndarray], truths: dict[str, np.ndarray]) -> dict[str, Any]:
    """The ISBI scores of membrane predictions (``(2, Y, X)``, class 0 membrane) over a stack.

    Scored by :func:`biounet.evaluate` (what ``biounet evaluate --task membranes`` runs), the
    slices as one stack, as the challenge scores it.
    """
    import biounet

    pairs = [(n, probs[n], truths[n]) for n in sorted(truths)]
    _, summary = biounet.evaluate(pairs, biounet.EvalOptions("membranes"))
    return {k: float(v) for k, v in summary.items() if isinstance(v, (int, float))}


def biounet_membranes(model: Any, images: dict[str, np.ndarray], tta: bool) -> dict[str, Any]:
    """A trained model's probabilities for each image, and the inference speed."""
    import biounet

    t0 = time.monotonic()
    probs = {n: np.asarray(biounet.predict(model, im, tta=tta)) for n, im in images.items()}
    seconds = time.monotonic() - t0
    pixels = sum(im.size for im in images.values())
    return {"probs": probs, "seconds": seconds, "mpix_per_s": pixels / 1e6 / seconds}


def read_log(run: Path) -> list[dict[str, Any]]:
    """The records of a run's ``metrics.jsonl``."""
    path = run / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def train_resumable(cfg: Any, run: Path) -> dict[str, Any]:
    """Train ``cfg`` into ``run``, resuming an interrupted run; what the training took.

    The return (also written to ``run/trained.json``, which marks the training done):
    ``train_seconds`` (wall time of the sessions that ended), ``clock_seconds`` (the training
    time on the trainer's own clock, which ``max_minutes`` budgets: it resumes from the last
    checkpoint, so a killed session's work after that checkpoint is neither kept nor
    counted), ``iterations``, ``sessions``.
    """
    import biounet
    from biounet.config import resume_config

    done = run / "trained.json"
    if done.exists():
        return dict(json.loads(done.read_text()))
    previous = run / "sessions.json"
    sessions = json.loads(previous.read_text()) if previous.exists() else []
    resume = (run / "last.pt").exists()
    if run.exists() and not resume:  # interrupted before its first checkpoint: set aside
        n = 0
        while (aside := run.with_name(f"{run.name}.incomplete-{n}")).exists():
            n += 1
        run.rename(aside)
    if resume:
        cfg = resume_config(run, [{"max_minutes": cfg.max_minutes, "iterations": cfg.iterations}])
    t0 = time.monotonic()
    biounet.fit(cfg, run, resume=resume, progress=False)
    sessions.append(time.monotonic() - t0)
    previous.write_text(json.dumps(sessions))
    records = read_log(run)
    out = {
        "train_seconds": float(sum(sessions)),
        "clock_seconds": clock_seconds(run),
        "sessions": len(sessions),
        "iterations": max((r.get("iteration", 0) for r in records), default=0),
    }
    done.write_text(json.dumps(out, indent=1))
    return out


def clock_seconds(run: Path) -> float | None:
    """The training time on the trainer's clock, s, from the run's ``last.pt`` (None without)."""
    from biounet.checkpoint import load_checkpoint

    if not (run / "last.pt").exists():
        return None
    return float(load_checkpoint(run / "last.pt").get("train_seconds", 0.0))


def run_once(
    out: Path, name: str, work: Callable[[Path], dict[str, Any]], *, redo: bool = False
) -> dict[str, Any]:
    """The result of run ``name``: read from ``OUT/runs/NAME/result.json`` or made by ``work``.

    ``work(folder)`` trains and scores into ``folder`` and returns the result, which is
    written (atomically) with the run's name and wall time.
    """
    folder = out / "runs" / name
    path = folder / "result.json"
    if path.exists() and not redo:
        return dict(json.loads(path.read_text()))
    print(f"[{time.strftime('%H:%M:%S')}] {name}: running", flush=True)
    t0 = time.monotonic()
    result = {"run": name, **work(folder)}
    result.setdefault("wall_seconds", time.monotonic() - t0)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.part")
    tmp.write_text(json.dumps(result, indent=1, default=_plain))
    tmp.replace(path)
    print(f"[{time.strftime('%H:%M:%S')}] {name}: done", flush=True)
    return result


def _plain(x: Any) -> Any:
    """JSON for numpy scalars and paths."""
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON: {type(x).__name__}")


def config_dict(cfg: Any) -> dict[str, Any]:
    """A training configuration as the nested dict its ``config.yaml`` holds."""
    from biounet.config.coerce import to_dict

    return dict(to_dict(cfg))


def fmt(v: Any, digits: int = 4) -> str:
    """A table cell: floats to ``digits`` significant places, the rest as text."""
    if isinstance(v, float):
        if v != v:  # NaN
            return "n/a"
        if abs(v) < 10 ** (digits - 1):
            return f"{v:.{digits}g}"
        return f"{round(v, digits - 1 - math.floor(math.log10(abs(v)))):,.0f}"  # no exponent
    if isinstance(v, int):
        return f"{v:,}"
    return "" if v is None else str(v)


def markdown_table(rows: Sequence[dict[str, Any]], columns: dict[str, str]) -> str:
    """A Markdown table of ``rows``: ``columns`` maps each key to its title."""
    head = "| " + " | ".join(columns.values()) + " |"
    rule = "| --- |" + " ---: |" * (len(columns) - 1)
    body = ["| " + " | ".join(fmt(r.get(k)) for k in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def mean_sd(values: Sequence[float]) -> str:
    """``mean ± sd`` of the seeds' values (just the value for one)."""
    v = np.asarray([x for x in values if x == x], dtype=float)
    if v.size == 0:
        return "n/a"
    if v.size == 1:
        return fmt(float(v[0]))
    return f"{fmt(float(v.mean()))} ± {fmt(float(v.std(ddof=1)), 2)}"


def write_results(study: str, text: str, data: dict[str, Any]) -> Path:
    """Write ``results.md`` and ``results.json`` of ``study`` under ``experiments/results``."""
    folder = RESULTS / study
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.md").write_text(text.rstrip() + "\n")
    (folder / "results.json").write_text(json.dumps(data, indent=1, default=_plain) + "\n")
    return folder


def peak_rss_mib() -> float:
    """The peak resident memory of this process so far, MiB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_missing(script: str, out: Path, names: Sequence[str], args: Sequence[str] = ()) -> None:
    """Run each of ``names`` whose ``result.json`` is missing, each in a fresh process.

    The process runs ``script --out OUT --only NAME ARGS`` (a fresh process per run: memory
    peaks are the run's own, and nothing carries over between runs).
    """
    import sys

    for name in names:
        if (out / "runs" / name / "result.json").exists():
            continue
        cmd = [sys.executable, script, "--out", str(out), "--only", name, *args]
        subprocess.run(cmd, check=True)
