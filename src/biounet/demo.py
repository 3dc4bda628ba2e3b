"""``biounet demo``: the whole path on data that needs no download, in one command.

Generates the synthetic cells dataset (touching cells, see :mod:`biounet.data.synthetic`), writes
it as ordinary files into the run folder, trains the ``cpu`` preset for a few minutes,
segments held-out images with overlap-tile inference, scores them and writes a report page.
With ``data=`` the same runs on a user's dataset, its validation images serving as the
held-out set.

The run folder::

    RUN/
      data/train/{images,masks}/   synthetic images (8-bit PNG) and instance labels (16-bit PNG)
      data/test/{images,masks}/    held-out synthetic images and their labels
      config.yaml  metrics.jsonl  best.pt  last.pt  learning_curves.png    (from training)
      predictions/                 <name>_mask.png, <name>_labels.tif, <name>_overlay.png
      evaluation.json  evaluation.csv                                       (scores)
      report.html                                                           (the page)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .config import TrainConfig, build_config
from .data.io import ensure_folder
from .data.layouts import Sample, find_dataset
from .data.synthetic import make_dataset

log = logging.getLogger("biounet")

__all__ = ["HEADLINE", "DemoResult", "run_demo", "write_synthetic"]

#: the scores printed at the end, per task: (key in the evaluation summary, label)
HEADLINE = {
    "cells": [
        ("pooled_iou", "IoU"),
        ("seg", "SEG"),
        ("ap_50", "AP@0.5"),
        ("f1", "F1@0.5"),
        ("mean_ap", "AP@0.5:0.95"),
    ],
    "semantic": [
        ("pooled_iou", "IoU"),
        ("pooled_dice", "Dice"),
        ("pooled_pixel_error", "pixel error"),
    ],
}


@dataclass
class DemoResult:
    """What :func:`run_demo` made: the run folder, the page and the scores."""

    run: Path
    report: Path | None
    task: str
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    minutes: float

    def headline(self) -> str:
        """The headline scores on one line, e.g. ``IoU 0.93  SEG 0.85  AP@0.5 0.95``."""
        parts = [
            f"{label} {self.summary[key]:.3f}"
            for key, label in HEADLINE[self.task]
            if isinstance(self.summary.get(key), float)
        ]
        return "  ".join(parts)


def write_synthetic(
    folder: str | Path, n: int, *, shape: tuple[int, int] = (256, 256), seed: int = 0
) -> Path:
    """Write ``n`` synthetic cell images and their instance labels as ``images/`` + ``masks/``.

    Images are 8-bit PNG (the generator's [0, 1] intensities scaled to 0..255), labels 16-bit
    PNG (0 background, 1..k cells). Returns ``folder``.
    """
    from .data.io import write_image, write_labels

    root = Path(folder)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for i, (image, labels) in enumerate(make_dataset("cells", n, shape=shape, seed=seed)):
        name = f"cells_{i:03d}.png"
        write_image(root / "images" / name, np.clip(np.rint(image * 255), 0, 255).astype(np.uint8))
        write_labels(root / "masks" / name, labels)
    return root


def _default_run(base: str = "biounet-demo") -> Path:
    """``base`` if it does not hold a run yet, else ``base-2``, ``base-3``, ..."""
    k = 1
    while True:
        run = Path(base if k == 1 else f"{base}-{k}")
        if not run.exists() or not any(run.iterdir()):
            return run
        k += 1


def _config(
    data_path: Path, minutes: float, overrides: list[dict[str, Any]], synthetic: bool
) -> TrainConfig:
    base: dict[str, Any] = {"max_minutes": minutes, "iterations": 100_000}
    if synthetic:
        base["data"] = {"annotation": "instances", "val_fraction": 0.2}
        # plain cross-entropy with the paper's weight map separates touching cells best here
        # (benchmarks/weightmap_effect.py)
        base["loss"] = {"ce": 1.0, "dice": 0.0}
    cfg = build_config("cpu", None, [base, *overrides, {"data": {"path": str(data_path)}}])
    return cfg


def _segment(
    model: Any, samples: list[Sample], out: Path, *, instances: bool, progress: bool | None
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Predict every sample, write its mask (and labels, overlay); (name, pred, truth) triples."""
    from tqdm.auto import tqdm

    from .apply import overlay
    from .data.io import write_image, write_labels
    from .inference import predict
    from .postprocess import instances as to_instances

    out.mkdir(parents=True, exist_ok=True)
    pairs = []
    for s in tqdm(samples, unit="image", desc="segmenting", disable=not progress):
        probs = predict(model, s.image)
        mask = probs.argmax(0).astype(np.uint8)
        if model.config.num_classes == 2:
            mask = mask * np.uint8(255)
        write_image(
            out / f"{s.name}_mask.png" if model.ndim == 2 else out / f"{s.name}_mask.tif", mask
        )
        pred: np.ndarray = mask
        if instances:
            pred = to_instances(probs)
            write_labels(out / f"{s.name}_labels.tif", pred)
        if model.ndim == 2:
            shown = pred if instances else (mask > 0).astype(np.int32)
            write_image(
                out / f"{s.name}_overlay.png",
                overlay(np.asarray(s.image), shown, instances=instances),
            )
        assert s.annotation is not None
        pairs.append((s.name, pred, np.asarray(s.annotation)))
    return pairs


def run_demo(
    out: str | Path | None = None,
    *,
    data: str | Path | None = None,
    minutes: float = 5.0,
    n_train: int = 16,
    n_test: int = 4,
    size: int = 256,
    seed: int = 0,
    overrides: list[dict[str, Any]] | None = None,
    task: str | None = None,
    report: bool = True,
    progress: bool | None = None,
) -> DemoResult:
    """Train, segment, evaluate and report in one go (see the module docstring).

    Parameters
    ----------
    out : path, optional
        Run folder; must be new or empty. Default: ``biounet-demo`` (``-2``, ``-3``, ... if
        taken) in the working directory.
    data : path, optional
        A dataset folder (any layout :func:`biounet.data.layouts.find_dataset` reads) instead
        of the synthetic cells; its validation images are segmented and scored.
    minutes : float
        Training time budget, minutes (the number of iterations is fitted to it).
    n_train, n_test, size : int
        Synthetic data: training images (a fifth of them validate), held-out test images, and
        their side, px.
    seed : int
        Seed of the synthetic data and of training.
    overrides : list of dict, optional
        Settings over the ``cpu`` preset, as ``biounet train --set`` gives them.
    task : {"cells", "semantic"}, optional
        Metrics; default ``cells`` for instance annotations, else ``semantic``.
    report : bool
        Write ``report.html``.
    progress : bool, optional
        Progress bars (default: when writing to a terminal).
    """
    from .checkpoint import load
    from .evaluation import EvalOptions, evaluate, write_reports
    from .train import fit, split

    if minutes <= 0:
        raise ValueError(f"minutes must be positive, got {minutes}")
    if data is None and (n_train < 2 or n_test < 1 or size < 32):
        raise ValueError("the demo needs n_train >= 2, n_test >= 1 and size >= 32 px")
    run = _default_run() if out is None else Path(out)
    if run.is_dir() and any(run.iterdir()):
        raise FileExistsError(f"{run} is not empty; give a new --out folder for the demo")
    ensure_folder(run, "run folder")
    t0 = time.monotonic()
    overrides = [{"seed": seed}, *(overrides or [])]
    if data is None:
        log.info("writing %d + %d synthetic cell images to %s", n_train, n_test, run / "data")
        train_dir = write_synthetic(run / "data" / "train", n_train, shape=(size, size), seed=seed)
        test_dir = write_synthetic(
            run / "data" / "test", n_test, shape=(size, size), seed=seed + 10_000
        )
        cfg = _config(train_dir, minutes, overrides, synthetic=True)
        held_out = find_dataset(test_dir)
    else:
        cfg = _config(Path(data), minutes, overrides, synthetic=False)
        samples = find_dataset(
            cfg.data.path, ndim=cfg.data.ndim, channel_axis=cfg.data.channel_axis
        )
        _, held_out = split(samples, cfg)
        if not held_out:
            raise ValueError(
                f"{data}: no validation images to score; set --val-fraction above 0 or --val-names"
            )
    log.info("training the cpu preset for up to %.1f min into %s", minutes, run)
    fit(cfg, run, progress=progress)
    model = load(run)
    task = task or ("cells" if cfg.data.annotation == "instances" else "semantic")
    pairs = _segment(
        model, held_out, run / "predictions", instances=task == "cells", progress=progress
    )
    opts = EvalOptions(task=task)
    if task == "semantic":  # truth as the training saw it: class maps (ignored pixels -1)
        from .data.annotations import AnnotationSpec, to_target

        spec = AnnotationSpec(
            cfg.data.annotation, cfg.data.foreground, cfg.data.num_classes, cfg.data.ignore
        )
        pairs = [
            (
                name,
                pred // 255 if model.config.num_classes == 2 else pred,
                to_target(t, spec).classes,
            )
            for name, pred, t in pairs
        ]
        opts.num_classes = model.config.num_classes
    rows, summary = evaluate(pairs, opts)
    write_reports(rows, summary, json_path=run / "evaluation.json", csv_path=run / "evaluation.csv")
    page = None
    if report:
        from .report import write_report

        page = write_report(run, progress=bool(progress))
    return DemoResult(run, page, task, rows, summary, (time.monotonic() - t0) / 60)
