"""Training: ``fit`` runs a plain PyTorch loop over random augmented tiles.

One iteration draws ``batch_size`` tiles per process (item ``i`` of the tile dataset depends
only on the seed and ``i``), takes one optimiser step, and every ``val_every`` iterations
segments the validation images whole with overlap-tile inference. ``RUN/last.pt`` is written
atomically at least every ``checkpoint_minutes`` and at every validation, ``RUN/best.pt`` when
the chosen metric improves; ``resume=True`` continues from ``last.pt`` exactly where it stopped
(data order, model, optimiser, schedule and random states restored), with the configuration
of :func:`biounet.config.schema.resume_config`. Multi-GPU and multi-node training uses
``torch.distributed`` under ``torchrun`` (each process its own share of tiles; DDP averages
the gradients); only rank 0 validates and writes, and every decision that ends or reshapes
the loop (the time budget) is taken on rank 0's clock and shared.

The run folder is created only once the configuration and the data have been checked; if
setting up the run fails (bad data, say), a folder that ``fit`` created is removed again.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from biounet.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from biounet.config.schema import TrainConfig, check_resume, config_from_dict, save_config, to_dict
from biounet.core.checks import tqdm_disable
from biounet.core.files import clean_stale_parts, ensure_folder
from biounet.core.runtime import auto_tune_allocator
from biounet.data.layouts import Sample, find_dataset
from biounet.data.normalize import Normalizer
from biounet.data.tiles import TileDataset, TrainImage, prepare
from biounet.inference.trained import TrainedModel
from biounet.metrics import ConfusionMatrix
from biounet.model.unet import UNet
from biounet.reporting.runlog import MetricsLog
from biounet.train.losses import dice_ce_loss, probability_cross_entropy

log = logging.getLogger(__name__)

__all__ = ["TrainResult", "build_model", "fit", "split", "validate"]

#: what a checkpoint must hold to be resumed from (``best.pt`` and exported models do not)
RESUME_KEYS = ("iteration", "optimizer", "scheduler", "scaler", "rng")


@dataclass
class TrainResult:
    """What :func:`fit` returns: the run folder, the trained model, the best validation.

    ``model`` is the network as training left it (the last iteration's weights, not
    ``best.pt``'s), with the training normalisation, so ``predict(result.model, image)``
    takes raw images as :func:`biounet.load`'s models do.
    """

    run: Path
    model: TrainedModel
    best: dict[str, Any] | None


def build_model(cfg: TrainConfig, in_channels: int) -> UNet:
    """The network of a configuration: ``model.preset`` (if any) with the other fields over it."""
    return UNet.from_config(cfg.unet_config(in_channels))


def split(samples: list[Sample], cfg: TrainConfig) -> tuple[list[Sample], list[Sample]]:
    """Training and validation samples: a given set, named samples, or a seeded random split.

    ``data.val_path``: all of ``samples`` train, the validation set is read from there.
    ``data.val_names``: those samples validate, the others train. Otherwise a random
    ``data.val_fraction`` of the samples (at least one if the fraction is above 0 and there
    are two or more), drawn with ``seed``: the same seed gives the same split.

    Raises
    ------
    ValueError
        For ``val_path`` together with ``val_names``, or a name no sample has.
    """
    d = cfg.data
    d.check_validation_source()
    if d.val_path:
        return samples, find_dataset(d.val_path, ndim=d.ndim, channel_axis=d.channel_axis)
    if d.val_names:
        names = set(d.val_names)
        have = {s.name for s in samples}
        unknown = names - have
        if unknown:
            padded = [
                n
                for n in sorted(unknown)
                if n.isdigit() and any(h.isdigit() and h.lstrip("0") == n.lstrip("0") for h in have)
            ]
            hint = (
                f"; the samples are named like {sorted(have)[0]!r}: quote names with leading "
                'zeros in YAML ("01"), which reads 01 as the number 1'
                if padded
                else ""
            )
            raise ValueError(f"data.val_names: no samples named {sorted(unknown)}{hint}")
        return [s for s in samples if s.name not in names], [s for s in samples if s.name in names]
    n_val = round(len(samples) * d.val_fraction)
    if d.val_fraction > 0 and n_val == 0 and len(samples) > 1:
        n_val = 1
    order = np.random.default_rng(cfg.seed).permutation(len(samples))
    val = {int(i) for i in order[:n_val]}
    return [s for i, s in enumerate(samples) if i not in val], [samples[i] for i in sorted(val)]


def _optimizer(cfg: TrainConfig, params: Any) -> torch.optim.Optimizer:
    o = cfg.optim
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    cls = torch.optim.Adam if o.name == "adam" else torch.optim.AdamW
    return cls(params, lr=o.lr, weight_decay=o.weight_decay)


def _lr_factor(cfg: TrainConfig, it: int, n: int) -> float:
    o = cfg.optim
    if o.warmup and it < o.warmup:
        return (it + 1) / o.warmup
    t = (it - o.warmup) / max(1, n - o.warmup)
    if o.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    if o.schedule == "poly":
        return float(max(0.0, 1 - t) ** 0.9)
    return 1.0


def _dist() -> tuple[int, int, int]:
    """(rank, world size, local rank) from ``torchrun``'s environment; (0, 1, 0) without it."""
    return (
        int(os.environ.get("RANK", 0)),
        int(os.environ.get("WORLD_SIZE", 1)),
        int(os.environ.get("LOCAL_RANK", 0)),
    )


def _from_rank0(value: float, device: torch.device) -> float:
    """Rank 0's ``value`` on every rank (a broadcast on the training device, as NCCL needs)."""
    t = torch.tensor([value], dtype=torch.float64, device=device)
    torch.distributed.broadcast(t, src=0)
    return float(t.item())


def _fit_to_budget(
    cfg: TrainConfig, plan: dict[str, Any], it: int, start: int, elapsed: float
) -> None:
    """Shrink ``plan["n"]`` so training ends within ``cfg.max_minutes``.

    The speed is measured between the 5th and 20th iteration (the first ones are slower while
    kernels warm up), the plan set once to what fits in the remaining time (5% kept for
    validation and checkpoints); past the budget training stops. A pure function of its
    arguments: with ``elapsed`` taken from rank 0 (:func:`_from_rank0`), all ranks decide alike.
    """
    budget = 60 * cfg.max_minutes - plan["seconds"]
    done = it - start
    if done == 5:
        plan["t5"] = elapsed
    n = int(plan["n"])
    if done == 20 or elapsed > budget:
        per_it = (elapsed - plan.get("t5", 0.0)) / (15 if "t5" in plan else done)
        n = it if elapsed > budget else min(n, it + int(0.95 * (budget - elapsed) / per_it))
    if n != plan["n"]:
        log.info("time budget %.1f min: %d iterations in all", cfg.max_minutes, max(n, it))
        plan["n"] = max(n, it)


def validate(
    model: UNet, images: list[TrainImage], num_classes: int, device: torch.device
) -> dict[str, float]:
    """Whole-image overlap-tile inference on ``images``; pixel scores over all of them.

    Returns the scores of :meth:`biounet.metrics.ConfusionMatrix.scores` (``pixel_error``,
    ``iou``, ``dice``, ...) pooled over all images, and ``loss``: the mean cross-entropy of the
    predicted probabilities over all annotated pixels (see
    :func:`biounet.train.losses.probability_cross_entropy`; no weight map, no Dice term).
    """
    from biounet.inference.predictor import predict

    cm = ConfusionMatrix(num_classes)
    nll = 0.0
    for t in images:
        probs = predict(model, t.image, device=device, normalize=False)
        cm.update(t.classes, probs.argmax(0))
        target = torch.from_numpy(np.asarray(t.classes, np.int64))[None]
        p = torch.from_numpy(np.asarray(probs, np.float32))[None]
        nll += float(probability_cross_entropy(p, target, reduction="sum"))
    scores = cm.scores()
    scores["loss"] = nll / max(int(cm.matrix.sum()), 1)  # over the annotated pixels
    return scores


def _resume_state(last: Path, cfg: TrainConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """``last.pt`` checked for resuming with ``cfg``: the state, and the settings that changed.

    The changes are those of :func:`~biounet.config.schema.resume_changes` against the configuration
    the checkpoint was saved with (none if it does not hold a loadable one).

    Raises a ValueError for a checkpoint without the optimiser state, or one whose run
    differed from ``cfg`` in settings that cannot change on resume.
    """
    state = load_checkpoint(last)
    missing = [k for k in RESUME_KEYS if k not in state]
    if missing:
        raise ValueError(
            f"{last}: not a resumable checkpoint (no {', '.join(missing)}): it holds a model "
            "only (like best.pt or an exported model); use it with biounet predict, or start a "
            "new run"
        )
    before = None
    if isinstance(state.get("train_config"), dict):
        try:
            before = config_from_dict(state["train_config"])
        except ValueError as e:  # written by another version: nothing to compare with
            log.warning("%s: its training configuration does not load (%s)", last, e)
    changes = check_resume(before, cfg, f"resuming {last}") if before is not None else {}
    if cfg.iterations < int(state["iteration"]):
        raise ValueError(
            f"iterations={cfg.iterations} is below the iteration of {last} "
            f"({state['iteration']}); give at least that many"
        )
    return state, changes


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
        :func:`biounet.config.schema.resume_config`: ``fit`` refuses settings that cannot change on
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
    try:
        return _fit(cfg, Path(out), resume=resume, progress=progress, samples=samples)
    finally:
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.backends.cudnn.benchmark = benchmark
        if cublas is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


def _fit(
    cfg: TrainConfig,
    run: Path,
    *,
    resume: bool,
    progress: bool | None,
    samples: list[Sample] | None,
) -> TrainResult:
    rank, world, local = _dist()
    if world > 1 and torch.cuda.is_available():
        # before the process group: NCCL (and its barrier) would otherwise use GPU 0 on every
        # rank, which can hang
        torch.cuda.set_device(local)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    device = torch.device(f"cuda:{local}" if torch.cuda.is_available() else "cpu")
    if cfg.amp != "off" and device.type != "cuda" and rank == 0:
        log.warning("amp=%r needs CUDA: training in float32 on the %s", cfg.amp, device)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=False)
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.manual_seed(cfg.seed)

    last = run / "last.pt"
    state: dict[str, Any] | None = None
    changes: dict[str, Any] = {}
    if resume:
        if not last.exists():
            raise FileNotFoundError(f"{last}: nothing to resume (no last.pt in {run})")
        state, changes = _resume_state(last, cfg)
    elif rank == 0 and last.exists():
        raise FileExistsError(f"{run} already holds a run; use --resume or another --out")

    # everything that can be checked without writing, before the run folder exists
    d = cfg.data
    if samples is None:
        if not d.path:
            raise ValueError("no training data: set data.path (or pass samples)")
        samples = find_dataset(d.path, ndim=d.ndim, channel_axis=d.channel_axis)
    train_s, val_s = split(samples, cfg)
    if not train_s:
        raise ValueError("no training samples left after the validation split")
    spec = d.annotation_spec()
    norm = Normalizer.from_dict(d.normalize)

    created = rank == 0 and not run.exists()
    if rank == 0:
        ensure_folder(run, "run folder")
        clean_stale_parts(run)  # left by a process killed while writing (only rank 0 writes)
        # other ranks may be writing weight maps to the cache now: spare recent files
        clean_stale_parts(run / "cache", min_age=0.0 if world == 1 else 3600.0)
    try:
        train_imgs = prepare(train_s, spec, norm, cfg.weights, cache_dir=run / "cache")
        val_imgs = prepare(val_s, spec, norm, cfg.weights) if val_s else []
        channels = int(train_imgs[0].image.shape[0])
        model = build_model(cfg, channels)
        if state is not None:
            try:
                model.load_state_dict(state["state_dict"])
            except RuntimeError as e:
                raise ValueError(
                    f"{last}: its network does not fit this configuration and data ({e})"
                ) from e
    except BaseException:
        if created:  # nothing but what this call wrote (the weight-map cache)
            shutil.rmtree(run, ignore_errors=True)
        raise
    if rank == 0:
        save_config(cfg, run / "config.yaml")

    g = model.geometry
    in_tile = (g.nearest_valid_sizes(cfg.tile)[1],) * d.ndim
    out_tile = g.output_shape(in_tile)
    dataset = TileDataset(
        train_imgs,
        in_tile=in_tile,
        out_tile=out_tile,
        augment=cfg.augment,
        length=cfg.iterations * cfg.batch_size * world,
        seed=cfg.seed,
        oversample=cfg.oversample,
    )
    log.info(
        "%d training and %d validation images; tiles %s -> %s; %s, %d process(es)",
        len(train_imgs),
        len(val_imgs),
        in_tile,
        out_tile,
        device,
        world,
    )

    if device.type == "cpu":
        auto_tune_allocator()
    model.to(device)
    if cfg.channels_last:
        fmt = torch.channels_last if d.ndim == 2 else torch.channels_last_3d
        model.to(memory_format=fmt)  # type: ignore[call-overload]
    opt = _optimizer(cfg, model.parameters())
    # the planned number of iterations: cfg.iterations, or fewer to fit cfg.max_minutes
    plan: dict[str, Any] = {"n": cfg.iterations, "seconds": 0.0}
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda it: _lr_factor(cfg, it, plan["n"]))
    amp = cfg.amp != "off" and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp and cfg.amp == "fp16")
    start, best = 0, None
    if state is not None:
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        if state["scaler"] or not scaler.is_enabled():
            scaler.load_state_dict(state["scaler"])
        else:  # saved without a scaler (e.g. on a CPU): start a fresh one
            log.info("%s holds no gradient-scaler state; starting a fresh one", last)
        set_rng_state(state["rng"])
        start, best = int(state["iteration"]), state.get("best")
        plan["seconds"] = float(state.get("train_seconds", 0.0))
        # a changed iteration count or time budget is applied (the schedule follows it);
        # otherwise the plan continues as saved (it may have been fitted to the budget)
        changed = bool({"iterations", "max_minutes"} & changes.keys())
        plan["n"] = (
            cfg.iterations if changed else int(state.get("planned_iterations", cfg.iterations))
        )
        log.info("resuming %s at iteration %d (of %d)", run, start, plan["n"])
    net: torch.nn.Module = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[local] if device.type == "cuda" else None
        )
    if cfg.compile:
        net = torch.compile(net, backend=cfg.compile_backend)  # type: ignore[assignment]

    class Sampler:
        """The tiles of iteration ``it`` on this rank: a block of dataset indices, lazily."""

        def __iter__(self) -> Any:
            i = start
            while i < plan["n"]:
                yield from ((i * world + rank) * cfg.batch_size + j for j in range(cfg.batch_size))
                i += 1

    sampler = Sampler()
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.workers,
        pin_memory=device.type == "cuda",
        persistent_workers=cfg.workers > 0,
        # its own generator: starting the loader must not consume the global random state
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    metrics = MetricsLog(run / "metrics.jsonl", after=start) if rank == 0 else None
    extras = {
        "normalize": norm.to_dict(),
        "class_names": d.names(),
        "tile": in_tile[0],
        "train_config": to_dict(cfg),
    }
    weights_t = torch.tensor(cfg.loss.dice_class_weights) if cfg.loss.dice_class_weights else None

    def checkpoint(it: int, path: Path) -> None:
        save_checkpoint(
            path,
            model,
            iteration=it,
            optimizer=opt.state_dict(),
            scheduler=sched.state_dict(),
            scaler=scaler.state_dict(),
            rng=rng_state(),
            best=best,
            planned_iterations=plan["n"],
            train_seconds=plan["seconds"] + time.monotonic() - t_start,
            **extras,
        )

    from tqdm.auto import tqdm

    t_start = time.monotonic()
    bar = tqdm(
        total=plan["n"],
        initial=start,
        unit="it",
        disable=tqdm_disable(progress),
        desc="training",
        dynamic_ncols=True,
    )
    saved_at, t_log, losses = time.monotonic(), time.monotonic(), []
    net.train()
    it = start
    data_time, t_ready = 0.0, time.monotonic()
    for batch in loader:
        if it >= plan["n"]:  # tiles prefetched by workers before the plan shrank
            break
        data_time += time.monotonic() - t_ready  # waiting for tiles (loading, augmentation)
        x = batch["image"].to(device, non_blocking=True)
        if cfg.channels_last:
            x = x.contiguous(
                memory_format=torch.channels_last if d.ndim == 2 else torch.channels_last_3d
            )
        y, w = batch["target"].to(device), batch["weight"].to(device)
        with torch.autocast(
            device.type, dtype=torch.bfloat16 if cfg.amp == "bf16" else torch.float16, enabled=amp
        ):
            logits = net(x)
        loss = dice_ce_loss(
            logits.float(), y, w, ce=cfg.loss.ce, dice=cfg.loss.dice, class_weights=weights_t
        )
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"the loss became {loss.item()} at iteration {it + 1}; lower optim.lr "
                f"(now {cfg.optim.lr}) or check the data"
            )
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.optim.clip_grad:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.clip_grad)
        scaler.step(opt)
        scaler.update()
        sched.step()
        it += 1
        losses.append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
        if cfg.max_minutes:
            elapsed = time.monotonic() - t_start
            if world > 1:  # every rank must end the loop at the same iteration
                elapsed = _from_rank0(elapsed, device)
            _fit_to_budget(cfg, plan, it, start, elapsed)
            bar.total = plan["n"]
        if metrics and (it % cfg.log_every == 0 or it == plan["n"]):
            now = time.monotonic()
            metrics.write(
                iteration=it,
                loss=float(np.mean(losses)),
                lr=sched.get_last_lr()[0],
                seconds_per_it=(now - t_log) / len(losses),
                data_share=data_time / max(now - t_log, 1e-9),
            )
            losses, t_log, data_time = [], now, 0.0
        due_val = bool(val_imgs) and (it % cfg.val_every == 0 or it == plan["n"])
        if due_val and rank == 0:
            scores = validate(model, val_imgs, d.num_classes, device)
            net.train()
            key = cfg.best_metric
            better = best is None or (
                scores[key] > best["value"]
                if key in ("iou", "dice")
                else scores[key] < best["value"]
            )
            if better:
                best = {"metric": key, "value": scores[key], "iteration": it}
                save_checkpoint(run / "best.pt", model, iteration=it, metrics=scores, **extras)
            if metrics:
                metrics.write(
                    iteration=it,
                    **{
                        f"val_{k}": v
                        for k, v in scores.items()
                        if "_" not in k or k == "pixel_error"
                    },
                )
            log.info(
                "iteration %d: %s",
                it,
                ", ".join(f"{k} {scores[k]:.4f}" for k in ("pixel_error", "iou", "dice", "loss")),
            )
        if world > 1 and due_val:
            torch.distributed.barrier()
        by_time = time.monotonic() - saved_at >= 60 * cfg.checkpoint_minutes
        by_count = cfg.checkpoint_every and it % cfg.checkpoint_every == 0
        if rank == 0 and (by_time or by_count or due_val or it == plan["n"]):
            checkpoint(it, last)
            saved_at = time.monotonic()
        t_ready = time.monotonic()
    bar.close()
    if world > 1:
        # DDP syncs buffers (batch-norm statistics) from rank 0 before each forward; after the
        # last one every rank updated its own: take rank 0's so all ranks end identical
        for buf in model.buffers():
            torch.distributed.broadcast(buf, 0)
    if rank == 0:
        if not (run / "best.pt").exists():  # no validation set: the last model is the best
            save_checkpoint(run / "best.pt", model, iteration=it, **extras)
        try:
            from biounet.reporting.plots import plot_run

            plot_run(run)
        except ImportError as e:  # matplotlib missing: the run is complete without plots
            log.warning("no plots: %s", e)
    if world > 1:
        torch.distributed.barrier()
    trained = TrainedModel(model.eval(), norm, d.names(), in_tile[0], run / "best.pt")
    return TrainResult(run, trained, best)
