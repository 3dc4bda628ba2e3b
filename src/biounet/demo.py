"""``biounet demo``: the whole path on data that needs no download, in one command.

Generates the synthetic cells dataset (touching cells, see :mod:`biounet.data.synthetic`), writes
it as ordinary files into the run folder, trains the ``cpu`` preset for a few minutes,
segments held-out images with overlap-tile inference, scores them and writes a report page.
With ``data=`` the same runs on a user's dataset, its validation images serving as the
held-out set (they also chose ``best.pt``, so those scores lean optimistic; the headline says
so). An EM dataset with membrane masks (ISBI 2012: ``images/`` + ``labels/``, membranes 0 and
cells 255) is scored with ``task="membranes"``: V_Rand, V_Info and the pixel error.

The run folder::

    RUN/
      data/train/{images,masks}/   synthetic images (8-bit PNG) and instance labels (16-bit PNG)
      data/test/{images,masks}/    held-out synthetic images and their labels
      config.yaml  metrics.jsonl  best.pt  last.pt  learning_curves.png    (from training)
      predictions/                 <name>_mask.png, <name>_labels.tif (cells) or
                                   <name>_probs.tif (membranes), <name>_overlay.png
      evaluation.json  evaluation.csv                                       (scores)
      report.html                                                           (the page)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from biounet.config import DataConfig, TrainConfig, build_config
from biounet.core.checks import look_up, tqdm_disable
from biounet.core.files import ensure_folder
from biounet.data.layouts import Sample, find_dataset
from biounet.data.synthetic import write_synthetic
from biounet.reporting.advice import under_trained
from biounet.segment.options import PredictOptions

if TYPE_CHECKING:  # torch is loaded only once the demo trains
    from biounet.inference.trained import TrainedModel
    from biounet.segment.outputs import Outputs

log = logging.getLogger("biounet")

__all__ = ["HEADLINE", "TASKS", "DemoResult", "default_run", "run_demo"]

#: the scores printed at the end, per task: (keys in the evaluation summary, the first one
#: present is shown; label)
HEADLINE: dict[str, list[tuple[tuple[str, ...], str]]] = {
    "cells": [
        (("pooled_iou",), "IoU"),
        (("seg",), "SEG"),
        (("ap_50",), "AP@0.5"),
        (("f1",), "F1@0.5"),
        (("mean_ap",), "AP@0.5:0.95"),
    ],
    "semantic": [
        (("pooled_iou",), "IoU"),
        (("pooled_dice",), "Dice"),
        (("pooled_pixel_error",), "pixel error"),
    ],
    "membranes": [  # the stack figure of ISBI 2012 where given, else the per-image mean
        (("v_rand", "mean_v_rand"), "V_Rand"),
        (("v_info", "mean_v_info"), "V_Info"),
        (("pooled_pixel_error", "pixel_error", "mean_pixel_error"), "pixel error"),
    ],
}
TASKS = tuple(HEADLINE)

#: with binary masks the foreground (cells) is class 1: the membranes are class 0
MEMBRANE_CLASS = 0

#: what the scores of a demo on a user's dataset were measured on
VALIDATION_NOTE = "validation images, which also chose best.pt: optimistic"


@dataclass
class DemoResult:
    """What :func:`run_demo` made: the run folder, the page and the scores.

    ``scored_on`` says what the held-out scores were measured on: ``"synthetic test images"``
    (never seen in training), or, with a user's dataset, :data:`VALIDATION_NOTE`.
    """

    run: Path
    report: Path | None
    task: str
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    minutes: float
    scored_on: str = "synthetic test images"

    def headline(self) -> str:
        """The headline scores on one line, e.g. ``IoU 0.93  SEG 0.85  AP@0.5 0.95``.

        Scores of validation images (a user's dataset) end with ``(validation images, which
        also chose best.pt: optimistic)``.
        """
        parts = []
        for keys, label in HEADLINE[self.task]:
            value = next(
                (self.summary[k] for k in keys if isinstance(self.summary.get(k), float)), None
            )
            if value is not None:
                parts.append(f"{label} {value:.3f}")
        line = "  ".join(parts)
        if self.scored_on == VALIDATION_NOTE:
            line += f" ({VALIDATION_NOTE})"
        why = under_trained(self.task, self.rows, self.summary)
        if why:  # e.g. a one-minute demo: say so rather than let the scores speak for biounet
            line += f"\nthe model looks under-trained ({why}): train longer, e.g. --minutes 20"
        return line


def default_run(base: str = "biounet-demo") -> Path:
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
    """The ``cpu`` preset with the demo's budget, ``overrides`` and data folder."""
    base: dict[str, Any] = {"max_minutes": minutes, "iterations": 100_000}
    if synthetic:
        base["data"] = {"annotation": "instances", "val_fraction": 0.2}
        # plain cross-entropy with the paper's weight map separates touching cells best here
        # (benchmarks/weightmap_effect.py)
        base["loss"] = {"ce": 1.0, "dice": 0.0}
    return build_config("cpu", None, [base, *overrides, {"data": {"path": str(data_path)}}])


def _check_task(task: str | None, d: DataConfig, data: str | Path | None) -> str:
    """The task to score: given (and fitting the data), else from the annotation kind."""
    if task is None:
        return "cells" if d.annotation == "instances" else "semantic"
    look_up(task, TASKS, "demo task")
    if task == "membranes":
        if data is None:
            raise ValueError(
                "task 'membranes' needs an EM dataset with membrane masks (--data, e.g. the "
                "ISBI 2012 folder); the synthetic demo data are cells"
            )
        if d.annotation != "binary":
            raise ValueError(
                f"task 'membranes' needs binary masks (membranes and cells, as ISBI 2012), "
                f"got annotation {d.annotation!r}; use --annotation binary"
            )
    return task


@dataclass
class _Setup:
    """What a demo trains and scores: the configuration, the task and the held-out images."""

    cfg: TrainConfig
    task: str
    held_out: list[Sample]
    scored_on: str


def _synthetic_setup(
    run: Path,
    minutes: float,
    overrides: list[dict[str, Any]],
    task: str | None,
    *,
    n_train: int,
    n_test: int,
    size: int,
    seed: int,
) -> _Setup:
    """Check the settings, then make the run folder and write the synthetic cells into it."""
    train_dir, test_dir = run / "data" / "train", run / "data" / "test"
    cfg = _config(train_dir, minutes, overrides, synthetic=True)
    task = _check_task(task, cfg.data, None)
    ensure_folder(run, "run folder")
    log.info("writing %d + %d synthetic cell images to %s", n_train, n_test, run / "data")
    write_synthetic(train_dir, n_train, shape=(size, size), seed=seed)
    write_synthetic(test_dir, n_test, shape=(size, size), seed=seed + 10_000)
    return _Setup(cfg, task, find_dataset(test_dir), "synthetic test images")


def _dataset_setup(
    run: Path, data: Path, minutes: float, overrides: list[dict[str, Any]], task: str | None
) -> _Setup:
    """Check the settings and a user's dataset (validation images held out), then make the run."""
    from biounet.train import split
    from biounet.train.data import load_samples

    cfg = _config(data, minutes, overrides, synthetic=False)
    task = _check_task(task, cfg.data, data)
    _, held_out = split(load_samples(cfg.data), cfg.data, cfg.seed)
    if not held_out:
        raise ValueError(
            f"{data}: no validation images to score; set --val-fraction above 0 or --val-names"
        )
    ensure_folder(run, "run folder")
    return _Setup(cfg, task, held_out, VALIDATION_NOTE)


def _output_options(task: str) -> PredictOptions:
    """The outputs of a held-out image for ``task`` (see the module docstring)."""
    return PredictOptions(
        instances=task != "semantic",  # cells: the labels; membranes: the overlay's regions
        instance_kind="membranes" if task == "membranes" else "cells",
        membrane_class=MEMBRANE_CLASS,
        probabilities=task == "membranes",  # the ISBI scores sweep their threshold
        overlays=True,
    )


def _segment(
    model: TrainedModel, samples: list[Sample], out: Path, *, task: str, progress: bool | None
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Predict every sample and write its outputs; ``(name, prediction, truth)`` per sample.

    The prediction is what ``task`` scores: the mask (semantic), instance labels (cells) or
    the membrane probability, class 0 (membranes). Writes ``<name>_mask`` (PNG in 2D, TIFF in
    3D), ``_labels.tif`` (cells) or ``_probs.tif`` (membranes) and, in 2D, ``_overlay.png``
    (membranes: the regions they enclose), with :func:`biounet.segment.write_outputs`.
    """
    from tqdm.auto import tqdm

    from biounet.inference.predictor import predict  # looked up per call: tests spy on it
    from biounet.segment import output_paths, write_outputs

    out.mkdir(parents=True, exist_ok=True)
    options = _output_options(task)
    pairs = []
    for s in tqdm(samples, unit="image", desc="segmenting", disable=tqdm_disable(progress)):
        if s.annotation is None:
            raise ValueError(f"{s.image_path}: no annotation to score the prediction against")
        probs = predict(model, s.image, progress=progress)  # None: tqdm decides
        targets = output_paths(s.name, out, options, model.ndim)
        if task == "membranes":  # scored from the probabilities: the regions are only shown
            del targets["labels"]
        if model.ndim != 2:  # overlays are 2D pictures
            del targets["overlay"]
        rule = model.instance_rule  # the objects as predict makes them
        made = write_outputs([probs], targets, options, image=s.image, source=s.name, rule=rule)
        pairs.append((s.name, _prediction(task, probs, made), np.asarray(s.annotation)))
    return pairs


def _prediction(task: str, probs: np.ndarray, made: Outputs) -> np.ndarray:
    """What ``task`` scores of one image: its instance labels, membrane probability or mask."""
    if task == "membranes":
        return np.asarray(probs[MEMBRANE_CLASS])
    if task == "cells" and made.labels is not None:
        return np.asarray(made.labels[0])
    return np.asarray(made.masks[0])


def _score(
    pairs: list[tuple[str, np.ndarray, np.ndarray]], task: str, d: DataConfig, num_classes: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Score the ``(name, prediction, annotation)`` pairs: rows per image and the summary."""
    from biounet.evaluation import EvalOptions, evaluate

    opts = EvalOptions(task=task)
    if task in ("semantic", "membranes"):  # truth as the training saw it: class maps
        from biounet.data.annotations import to_target
        from biounet.data.maps import mask_classes

        spec = d.annotation_spec()
        classes = [(name, pred, to_target(t, spec).classes) for name, pred, t in pairs]
        if task == "semantic":  # ignored pixels are -1; binary masks were written 0/255
            pairs = [(n, mask_classes(p), c) for n, p, c in classes]
            opts.num_classes = num_classes
        else:  # membrane truth: 1 on class 0 (the pixels other than the foreground value)
            pairs = [(n, prob, (c == 0).astype(np.uint8)) for n, prob, c in classes]
            opts.truth_foreground, opts.membrane_class = 1, MEMBRANE_CLASS
            _warn_if_membranes_dominate(pairs)
    return evaluate(pairs, opts)


def _warn_if_membranes_dominate(pairs: list[tuple[str, np.ndarray, np.ndarray]]) -> None:
    """Warn when the membrane truth covers most pixels: the foreground is likely swapped."""
    share = float(np.mean([t.mean() for _, _, t in pairs]))
    if share > 0.5:
        log.warning(
            "membranes are %.0f%% of the truth pixels: are the membranes the foreground? "
            "Task membranes takes the pixels other than the foreground value (--foreground) "
            "as membrane",
            100 * share,
        )


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
        taken) in the working directory. It is made only once the settings and the data are
        checked.
    data : path, optional
        A dataset folder (any layout :func:`biounet.data.layouts.find_dataset` reads) instead
        of the synthetic cells; its validation images are segmented and scored. They also
        choose ``best.pt``, so their scores lean optimistic (the headline says so).
    minutes : float
        Training time budget, minutes (the number of iterations is fitted to it).
    n_train, n_test, size : int
        Synthetic data: training images (a fifth of them validate), held-out test images, and
        their side, px.
    seed : int
        Seed of the synthetic data and of training.
    overrides : list of dict, optional
        Settings over the ``cpu`` preset, as ``biounet train --set`` gives them.
    task : {"cells", "semantic", "membranes"}, optional
        Metrics; default ``cells`` for instance annotations, else ``semantic``. ``membranes``
        (with ``data`` of binary masks, as ISBI 2012): V_Rand, V_Info, the warping error and
        the pixel error of the membranes, which are the pixels other than the foreground value
        (ISBI: membranes 0, cells 255, the default foreground being the larger value).
    report : bool
        Write ``report.html``.
    progress : bool, optional
        Progress bars; None (default): when writing to a terminal (tqdm decides), False:
        never.

    Raises
    ------
    ValueError
        A bad setting, task or dataset (before the run folder is made).
    FileExistsError
        ``out`` is not empty.
    """
    from biounet.checkpoint import load
    from biounet.reporting.tables import write_reports
    from biounet.train import fit

    if minutes <= 0:
        raise ValueError(f"minutes must be positive, got {minutes}")
    if data is None and (n_train < 2 or n_test < 1 or size < 32):
        raise ValueError("the demo needs n_train >= 2, n_test >= 1 and size >= 32 px")
    run = default_run() if out is None else Path(out)
    if run.is_dir() and any(run.iterdir()):
        raise FileExistsError(f"{run} is not empty; give a new --out folder for the demo")
    t0 = time.monotonic()
    overrides = [{"seed": seed}, *(overrides or [])]
    # settings and data are checked before the run folder is made: an early error leaves none
    setup = (
        _synthetic_setup(
            run, minutes, overrides, task, n_train=n_train, n_test=n_test, size=size, seed=seed
        )
        if data is None
        else _dataset_setup(run, Path(data), minutes, overrides, task)
    )
    log.info("training the cpu preset for up to %.1f min into %s", minutes, run)
    fit(setup.cfg, run, progress=progress)
    model = load(run)
    pairs = _segment(model, setup.held_out, run / "predictions", task=setup.task, progress=progress)
    rows, summary = _score(pairs, setup.task, setup.cfg.data, model.num_classes)
    write_reports(rows, summary, json_path=run / "evaluation.json", csv_path=run / "evaluation.csv")
    page = None
    if report:
        from biounet.reporting.page import write_report

        page = write_report(run, progress=progress)
    minutes_taken = (time.monotonic() - t0) / 60
    return DemoResult(run, page, setup.task, rows, summary, minutes_taken, setup.scored_on)
