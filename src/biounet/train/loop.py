"""The training loop: ``fit`` runs plain PyTorch over random augmented tiles, top to bottom.

One iteration draws ``batch_size`` tiles per process (item ``i`` of the tile dataset depends
only on the seed and ``i``), takes one optimiser step, and every ``val_every`` iterations
segments the validation images whole with overlap-tile inference. ``RUN/last.pt`` is written
atomically at least every ``checkpoint_minutes`` and at every validation, ``RUN/best.pt`` when
the chosen metric improves; ``resume=True`` continues from ``last.pt`` exactly where it stopped
(data order, model, optimiser, schedule and random states restored), with the configuration
of :func:`biounet.config.resume_config`. Under ``torchrun`` each process trains its own share
of tiles (:mod:`biounet.train.distributed`); only rank 0 validates and writes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from biounet.checkpoint import instance_entry_for, rng_state, save_checkpoint, set_rng_state
from biounet.config import OptimConfig, TrainConfig, save_config, to_dict
from biounet.core.checks import tqdm_disable
from biounet.core.runtime import share_cores
from biounet.data.layouts import Sample
from biounet.data.tiles import TileDataset
from biounet.inference.trained import TrainedModel
from biounet.reporting.runlog import MetricsLog
from biounet.train.batchnorm import recalibrate, recalibrated, recalibration_batches
from biounet.train.budget import TimeBudget
from biounet.train.compiling import Compiler
from biounet.train.distributed import barrier, sync_buffers
from biounet.train.interrupt import interruptible
from biounet.train.optim import (
    build_optimizer,
    lr_factor,
    plan_next,
    set_lr,
    validation_interval,
)
from biounet.train.setup import Run, set_up
from biounet.train.state import CheckpointMeta, TrainResult, TrainState
from biounet.train.step import Precision, place, train_step
from biounet.train.tune import tune_best
from biounet.train.validate import improves, validate

log = logging.getLogger(__name__)

#: the validation scores with "_" in their names that the metrics log keeps (not per class)
SHOWN = ("pixel_error", "ap_50")

__all__ = ["fit"]


def fit(
    cfg: TrainConfig,
    out: str | Path,
    *,
    resume: bool = False,
    progress: bool | None = None,
    samples: list[Sample] | None = None,
) -> TrainResult:
    """Train as configured into the run folder ``out`` (``best.pt``, ``last.pt``, logs, plots).

    Parameters
    ----------
    cfg : TrainConfig
        The configuration (validated again here). To resume, pass the one of
        :func:`biounet.config.resume_config`: ``fit`` refuses settings that cannot change on
        resume, trains to ``cfg.iterations`` if that changed (or ``max_minutes`` did), and only
        then rewrites ``RUN/config.yaml``.
    out : str or Path
        The run folder: created, or with ``resume`` the one holding ``last.pt``.
    resume : bool
        Continue the run in ``out`` from its ``last.pt``.
    progress : bool, optional
        Show a progress bar (default: when writing to a terminal).
    samples : list of Sample, optional
        Training data (e.g. from :mod:`biounet.data.synthetic`) instead of ``cfg.data.path``.

    Raises
    ------
    ValueError
        A bad configuration or data, or a ``last.pt`` that cannot be resumed.
    FileExistsError
        ``out`` already holds a run and ``resume`` is False.
    FileNotFoundError
        Data that does not exist, or nothing to resume.

    Notes
    -----
    ``cfg.deterministic`` switches :func:`torch.use_deterministic_algorithms` on for the
    run; the previous setting (and ``cudnn.benchmark``) is restored when ``fit`` returns.
    """
    cfg.validate()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    benchmark = torch.backends.cudnn.benchmark
    cublas = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    t0 = time.monotonic()  # the time budget counts from here: set-up, training and the end
    try:
        run = set_up(cfg, Path(out), resume=resume, samples=samples)
        try:
            return _train(cfg, run, progress, t0)
        finally:
            if run.lock is not None:
                run.lock.release()
    finally:
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.backends.cudnn.benchmark = benchmark
        if cublas is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


def _train(cfg: TrainConfig, run: Run, progress: bool | None, t0: float) -> TrainResult:
    """The loop: one optimiser step per batch, then logging, budget, validation, checkpoint.

    ``t0`` is the ``time.monotonic()`` at which ``fit`` was called.
    """
    from tqdm.auto import tqdm

    model, ranks, device = run.model, run.ranks, run.device
    in_tile = run.in_tile
    precision = Precision.of(cfg, device)
    placement: dict[str, Any] = {"device": device, "memory_format": precision.memory_format}
    # the same tiles at every validation and at the end: drawn once (none without batch norm)
    bn_tiles = recalibration_batches(cfg, run.train_images, model, in_tile) if ranks.main else []
    place(model, precision)
    opt = build_optimizer(cfg.optim, model.parameters())
    scaler = precision.scaler()
    state = _start_state(cfg, run, opt, scaler, t0)
    state.budget = _budget(cfg, run, state.seconds_before)
    val_every = validation_interval(cfg)
    loader = _loader(cfg, run, in_tile, state.iteration)
    compiler = Compiler(_wrap(model, run), cfg, ranks, device)
    metrics = (
        MetricsLog(run.folder / "metrics.jsonl", after=state.iteration,
                   tensorboard=cfg.log.tensorboard) if ranks.main else None
    )  # fmt: skip
    spacing = None if run.plan.spacing is None else list(run.plan.spacing)
    meta = CheckpointMeta(run.normalizer.to_dict(), cfg.data.names(), list(in_tile), to_dict(cfg),
                          instance_entry_for(run.instance_rule, run.object_sizes), run.scale,
                          spacing)  # fmt: skip
    bar = tqdm(total=state.planned, initial=state.iteration, unit="it", dynamic_ncols=True,
               disable=tqdm_disable(progress), desc="training")  # fmt: skip
    compiler.net.train()
    ready, first = time.monotonic(), state.iteration
    with interruptible() as stop, metrics or contextlib.nullcontext():
        for batch in loader:
            if state.iteration >= state.planned:  # tiles prefetched before the plan shrank
                break
            state.data_time += time.monotonic() - ready  # waiting for tiles (loading, augmenting)
            loss = compiler.step(train_step, batch, opt, scaler, precision, cfg.loss, cfg.optim,
                                 state.iteration)  # fmt: skip
            state.iteration += 1
            if run.resumed is not None and ranks.main and state.iteration == first + 1:
                save_config(cfg, run.folder / "config.yaml")  # the resumed run has started
            state.losses.append(loss)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            # the plan and the rate of the next iteration (by time, on a budget)
            took = time.monotonic() - ready
            if device.type == "cpu":
                share_cores()  # fewer threads while other processes take cores
            by_time = plan_next(cfg, state, ranks, device, opt, took, time.monotonic())
            compiler.measured(took, state.planned - state.iteration)
            bar.total = state.planned
            if metrics and (state.iteration % cfg.log_every == 0 or
                            state.iteration == state.planned):  # fmt: skip
                _log_window(metrics, state, opt)
            due_val = bool(run.val_images) and (
                state.iteration % val_every == 0 or state.iteration == state.planned or by_time
            )
            if due_val and ranks.main:
                began = time.monotonic()
                with recalibrated(run.model, bn_tiles, **placement):
                    _validate(cfg, run, state, metrics, meta)
                compiler.net.train()
                if state.budget is not None:
                    state.budget.validated(time.monotonic() - began)
            if due_val:
                barrier(ranks)
            if ranks.main and (_checkpoint_due(cfg, state, due_val) or stop.requested):
                _save_last(run, state, opt, scaler, cfg.optim, meta)
            if stop.requested:
                log.warning("interrupted at iteration %d; last.pt holds it: --resume continues",
                            state.iteration)  # fmt: skip
                raise KeyboardInterrupt
            ready = time.monotonic()
    bar.close()
    if bn_tiles:  # the model fit returns (and best.pt if there was no validation)
        recalibrate(run.model, bn_tiles, **placement)
    return _finish(run, state, meta)


def _start_state(
    cfg: TrainConfig,
    run: Run,
    opt: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    t0: float,
) -> TrainState:
    """A fresh state, or the one ``last.pt`` saved (optimiser, scaler, random states too).

    The session's clocks start at ``t0`` (when ``fit`` was called).
    """
    saved = run.resumed
    if saved is None:
        set_lr(opt, cfg.optim.lr * lr_factor(cfg.optim, 0, cfg.iterations))
        return TrainState(0, cfg.iterations, started=t0, saved_at=t0, logged_at=t0)
    opt.load_state_dict(saved["optimizer"])  # its learning rate too: the schedule's last
    if saved["scaler"] or not scaler.is_enabled():
        scaler.load_state_dict(saved["scaler"])
    else:  # saved without a scaler (e.g. on a CPU): start a fresh one
        log.info("%s holds no gradient-scaler state; starting a fresh one", run.folder / "last.pt")
    set_rng_state(saved["rng"])
    # a changed iteration count or time budget is applied (the schedule follows it);
    # otherwise the plan continues as saved (it may have been fitted to the budget)
    changed = bool({"iterations", "max_minutes"} & run.changes.keys())
    planned = cfg.iterations if changed else int(saved.get("planned_iterations", cfg.iterations))
    state = TrainState(
        iteration=int(saved["iteration"]),
        planned=planned,
        best=saved.get("best"),
        seconds_before=float(saved.get("train_seconds", 0.0)),
        started=t0,
        saved_at=t0,
        logged_at=t0,
    )
    log.info("resuming %s at iteration %d (of %d)", run.folder, state.iteration, state.planned)
    return state


def _budget(cfg: TrainConfig, run: Run, seconds_before: float) -> TimeBudget | None:
    """The run's time budget (None without ``max_minutes``), after ``seconds_before`` s."""
    if not cfg.max_minutes:
        return None
    validates = bool(run.val_images)
    tunes = validates and run.instance_rule is not None
    return TimeBudget(cfg.max_minutes, cfg.iterations, seconds_before, validates, tunes)


def _loader(
    cfg: TrainConfig, run: Run, in_tile: tuple[int, ...], start: int
) -> torch.utils.data.DataLoader[dict[str, torch.Tensor]]:
    """Batches of augmented tiles for this rank, from iteration ``start`` on."""
    ranks = run.ranks
    out_tile = run.model.geometry.output_shape(in_tile)
    dataset = TileDataset(
        run.train_images,
        in_tile=in_tile,
        out_tile=out_tile,
        augment=run.plan.augment(cfg.augment),
        length=cfg.iterations * cfg.batch_size * ranks.world,
        seed=cfg.seed,
        oversample=cfg.oversample,
    )
    log.info(
        "%d training and %d validation images; tiles %s -> %s; %s, %d process(es)",
        len(run.train_images), len(run.val_images), in_tile, out_tile, run.device, ranks.world,
    )  # fmt: skip

    def indices() -> Iterator[int]:
        """The tiles of iteration ``it`` on this rank: a block of dataset indices."""
        for it in range(start, cfg.iterations):
            first = (it * ranks.world + ranks.rank) * cfg.batch_size
            yield from range(first, first + cfg.batch_size)

    return torch.utils.data.DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=indices(),
        num_workers=cfg.workers,
        pin_memory=run.device.type == "cuda",
        persistent_workers=cfg.workers > 0,
        # its own generator: starting the loader must not consume the global random state
        generator=torch.Generator().manual_seed(cfg.seed),
    )


def _wrap(model: torch.nn.Module, run: Run) -> torch.nn.Module:
    """The network as trained: wrapped in DDP across ranks."""
    if run.ranks.world == 1:
        return model
    local = [run.ranks.local] if run.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=local)


def _log_window(metrics: MetricsLog, state: TrainState, opt: torch.optim.Optimizer) -> None:
    """One record of the metrics log: the mean loss and the speed since the last record."""
    now = time.monotonic()
    metrics.write(
        iteration=state.iteration,
        loss=float(np.mean(state.losses)),
        lr=opt.param_groups[0]["lr"],
        seconds_per_it=(now - state.logged_at) / len(state.losses),
        data_share=state.data_time / max(now - state.logged_at, 1e-9),
    )
    state.losses, state.logged_at, state.data_time = [], now, 0.0


def _validate(
    cfg: TrainConfig,
    run: Run,
    state: TrainState,
    metrics: MetricsLog | None,
    meta: CheckpointMeta,
) -> None:
    """Validate on rank 0; write ``best.pt`` if the chosen metric improved, and log."""
    rule = run.instance_rule
    pictures: list[tuple[str, np.ndarray]] | None = [] if metrics and metrics.tensorboard else None
    scores = validate(run.model, run.val_images, cfg.data.num_classes, run.device,
                      instances=rule, scale=run.scale, pictures=pictures)  # fmt: skip
    key, it = cfg.selection_metric(), state.iteration
    if improves(key, scores[key], state.best):
        state.best = {"metric": key, "value": scores[key], "iteration": it}
        best = run.folder / "best.pt"
        save_checkpoint(best, run.model, iteration=it, metrics=scores, **meta.entries())
    if metrics:  # the class means and the pixel error, not every class's score
        shown = {f"val_{k}": v for k, v in scores.items() if "_" not in k or k in SHOWN}
        metrics.write(iteration=it, **shown)
        metrics.pictures(pictures or [], it)
    keys = ("pixel_error", "iou", "dice", "loss", "ap_50", "f1")
    summary = ", ".join(f"{k} {scores[k]:.4f}" for k in keys if k in scores)
    log.info("iteration %d: %s", it, summary)


def _checkpoint_due(cfg: TrainConfig, state: TrainState, validated: bool) -> bool:
    """``last.pt`` is due by time, by count, after a validation and at the end."""
    by_time = time.monotonic() - state.saved_at >= 60 * cfg.checkpoint_minutes
    by_count = bool(cfg.checkpoint_every) and state.iteration % cfg.checkpoint_every == 0
    return by_time or by_count or validated or state.iteration == state.planned


def _save_last(
    run: Run,
    state: TrainState,
    opt: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    optim: OptimConfig,
    meta: CheckpointMeta,
) -> None:
    """Write ``last.pt``: the network and all a resumed run needs to continue exactly."""
    save_checkpoint(
        run.folder / "last.pt",
        run.model,
        iteration=state.iteration,
        optimizer=opt.state_dict(),
        # the schedule is a function of the iteration and the plan; this records where it was
        scheduler={"schedule": optim.schedule, "lr": opt.param_groups[0]["lr"]},
        scaler=scaler.state_dict(),
        rng=rng_state(),
        best=state.best,
        planned_iterations=state.planned,
        train_seconds=state.seconds(),
        **meta.entries(),
    )
    state.saved_at = time.monotonic()


def _finish(run: Run, state: TrainState, meta: CheckpointMeta) -> TrainResult:
    """Make the ranks agree, write ``best.pt`` if there was no validation, plot the curves."""
    sync_buffers(run.model, run.ranks)
    if run.ranks.main:
        if not (run.folder / "best.pt").exists():  # no validation set: the last model is best
            last_is_best = run.folder / "best.pt"
            save_checkpoint(last_is_best, run.model, iteration=state.iteration, **meta.entries())
        elif run.instance_rule is not None and run.val_images:  # seeds chosen on validation
            best = run.folder / "best.pt"
            target = run.instance_rule.target
            spacing = run.instance_rule.spacing
            tuned = tune_best(best, run.val_images, run.object_sizes, target, run.device, spacing)
            run.instance_rule = tuned or run.instance_rule
        try:
            from biounet.reporting.plots import plot_run

            plot_run(run.folder)
        except ImportError as e:  # matplotlib missing: the run is complete without plots
            log.warning("no plots: %s", e)
    barrier(run.ranks)
    best, plan = run.folder / "best.pt", run.plan
    model = TrainedModel(run.model.eval(), run.normalizer, meta.class_names, tuple(meta.tile),
                         best, run.instance_rule, run.scale, plan.spacing)  # fmt: skip
    return TrainResult(run.folder, model, state.best)
