"""Setting up a run: devices and ranks, resume checks, data, network, and the run folder.

Everything that can be checked without writing is checked before the run folder exists; if
setting up fails after that (bad data, say), a folder that this call created is removed again.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from biounet.checkpoint import load_checkpoint
from biounet.config import TrainConfig, check_resume, config_from_dict, save_config
from biounet.config.schema import DataConfig
from biounet.core.files import FolderLock, clean_stale_parts, ensure_folder
from biounet.core.paths import OutputConflict, same_file
from biounet.data.annotations import AnnotationSpec, to_target
from biounet.data.layouts import Sample
from biounet.data.normalize import Normalizer
from biounet.data.objects import ObjectSizes, auto_scale, object_sizes
from biounet.data.resample import resample, resample_labels, scaled_shape
from biounet.data.tiles import TrainImage
from biounet.inference.postprocess.rule import InstanceRule
from biounet.model.unet import UNet
from biounet.train.data import harmonise_channels, load_samples, prepare_split, split
from biounet.train.distributed import Ranks, start
from biounet.train.voxels import VoxelPlan, resolve_spacing
from biounet.train.warmstart import adopt_network, load_start

log = logging.getLogger(__name__)

__all__ = ["RESUME_KEYS", "Run", "build_model", "resume_state", "set_up"]

#: what a checkpoint must hold to be resumed from (``best.pt`` and exported models do not)
RESUME_KEYS = ("iteration", "optimizer", "scheduler", "scaler", "rng")


@dataclass
class Run:
    """What set-up made: where the run lives and what it trains, on which device.

    ``resumed`` is the ``last.pt`` state a resumed run continues from (None for a new run);
    ``changes`` the settings that changed since it was saved (``{key: (before, after)}``).
    ``scale`` is the factor the training images were resampled by (``data.scale`` resolved);
    ``object_sizes`` are those of the training labels on their own grid. ``plan`` holds the
    voxel spacing and what it changes (:mod:`biounet.train.voxels`); ``in_tile`` is the
    network input tile of training, px per axis.
    """

    folder: Path
    ranks: Ranks
    device: torch.device
    model: UNet
    train_images: list[TrainImage]
    val_images: list[TrainImage]
    normalizer: Normalizer
    resumed: dict[str, Any] | None = None
    changes: dict[str, Any] = field(default_factory=dict)
    object_sizes: ObjectSizes | None = None
    instance_rule: InstanceRule | None = None
    scale: float = 1.0
    lock: FolderLock | None = None
    plan: VoxelPlan = field(default_factory=VoxelPlan)
    in_tile: tuple[int, ...] = ()


#: the files a run writes at the top of its folder
RUN_FILES = ("config.yaml", "metrics.jsonl", "best.pt", "learning_curves.png", "report.html")


def check_new_run_folder(folder: Path) -> None:
    """Raise FileExistsError if a new run would replace files in ``folder`` (no ``last.pt``).

    A folder holding any of :data:`RUN_FILES` is another run's (or the user's own
    ``config.yaml``): nothing of it is replaced; the message lists them.
    """
    there = [name for name in RUN_FILES if (folder / name).exists()]
    if there:
        raise FileExistsError(
            f"{folder} holds {', '.join(there)}, which a new run would replace (it holds no "
            "last.pt to resume from); give another --out, or remove them"
        )


def check_run_folder_apart(folder: Path, samples: Sequence[Sample], d: DataConfig) -> None:
    """Raise OutputConflict if the run folder is a folder of the data (``data.path``, its files).

    A run writes images (``learning_curves.png``) and other files at the top of its folder;
    in a folder of training images they would be mixed with them, and read as data later.
    """
    folders = {Path(p) for p in (d.path, d.val_path) if p}
    for s in samples:
        folders.update(Path(p).parent for p in (s.image_path, s.annotation_path) if p)
    for f in folders:
        if f.exists() and folder.exists() and same_file(folder, f):
            raise OutputConflict(
                f"the run folder {folder} is a folder of the training data ({f}); its files "
                "would be mixed with the images: give another --out"
            )


def training_objects(samples: Sequence[Sample], d: DataConfig) -> ObjectSizes | None:
    """The object sizes of the training labels (px, their own grid); None but for instances."""
    if d.annotation != "instances":
        return None
    spec = AnnotationSpec("instances", ignore=d.ignore)
    return object_sizes(
        to_target(s.annotation, spec, name=str(s.annotation_path or s.name)).instances
        for s in samples
        if s.annotation is not None
    )


def resolve_scale(d: DataConfig, sizes: ObjectSizes | None) -> float:
    """``data.scale`` as a factor: the number given, or the one ``"auto"`` derives from sizes."""
    return auto_scale(sizes) if d.scale == "auto" else float(d.scale)


def rescaled(samples: Sequence[Sample], scale: float) -> list[Sample]:
    """The samples resampled by ``scale``: images linearly, annotations by nearest pixel."""
    if scale == 1.0:
        return list(samples)
    out = []
    for s in samples:
        shape = scaled_shape(s.image.shape[1:], scale)
        annotation = None if s.annotation is None else resample_labels(s.annotation, shape)
        out.append(dataclasses.replace(s, image=resample(s.image, shape), annotation=annotation))
    return out


def build_model(cfg: TrainConfig, in_channels: int, plan: VoxelPlan | None = None) -> UNet:
    """The network of a configuration: ``model.preset`` (if any) with the other fields over it.

    With a voxel ``plan``, a coarse axis is pooled later (:meth:`VoxelPlan.unet_config`).
    """
    return UNet.from_config((plan or VoxelPlan()).unet_config(cfg, in_channels))


def resume_state(last: Path, cfg: TrainConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """``last.pt`` checked for resuming with ``cfg``: the state, and the settings that changed.

    The changes are those of :func:`~biounet.config.resume_changes` against the configuration
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


def _set_global_state(cfg: TrainConfig, device: torch.device, ranks: Ranks) -> None:
    """Determinism and the seed (``fit`` restores the previous flags when it returns)."""
    if cfg.amp != "off" and device.type != "cuda" and ranks.main:
        log.warning("amp=%r needs CUDA: training in float32 on the %s", cfg.amp, device)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=False)
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.manual_seed(cfg.seed)


def set_up(cfg: TrainConfig, folder: Path, *, resume: bool, samples: list[Sample] | None) -> Run:
    """Check, then create the run: ranks and device, resume state, data, network, folder.

    Raises FileNotFoundError (nothing to resume, missing data), FileExistsError (``folder``
    holds a run and ``resume`` is False) and ValueError (bad data, an unresumable checkpoint).
    """
    ranks = Ranks.from_env()
    device = start(ranks)
    _set_global_state(cfg, device, ranks)
    last = folder / "last.pt"
    resumed: dict[str, Any] | None = None
    changes: dict[str, Any] = {}
    if resume:
        if not last.exists():
            raise FileNotFoundError(f"{last}: nothing to resume (no last.pt in {folder})")
        resumed, changes = resume_state(last, cfg)
    elif ranks.main and last.exists():
        raise FileExistsError(f"{folder} already holds a run; use --resume or another --out")
    elif ranks.main:
        check_new_run_folder(folder)
    trained = adopt_network(cfg) if cfg.init and resumed is None else None  # fine-tuning
    # everything that can be checked without writing, before the run folder exists
    found = load_samples(cfg.data) if samples is None else samples
    check_run_folder_apart(folder, found, cfg.data)
    train_s, val_s = harmonise_channels(*split(found, cfg.data, cfg.seed))
    if not train_s:
        raise ValueError("no training samples left after the validation split")
    if not val_s and ranks.main:
        log.warning(
            "no validation images (data.val_fraction %g): nothing measures the model while it "
            "trains, best.pt is the last network and the instance rule is not tuned; hold out "
            "images (data.val_fraction, data.val_names, data.val_path; one image: a block of "
            "it validates when data.val_fraction > 0)",
            cfg.data.val_fraction,
        )
    spec, norm = cfg.data.annotation_spec(), Normalizer.from_dict(cfg.data.normalize)
    plan = VoxelPlan(resolve_spacing(cfg, train_s))
    sizes = training_objects(train_s, cfg.data)
    scale = resolve_scale(cfg.data, sizes)
    if scale != 1.0 and ranks.main:
        log.info("training images resampled by %g (data.scale %s)", scale, cfg.data.scale)
    created = ranks.main and not folder.exists()
    lock = FolderLock(folder, "run folder")
    if ranks.main:
        ensure_folder(folder, "run folder")
        lock.acquire()  # another process training here: an error, and nothing touched
        clean_stale_parts(folder)  # left by a process killed while writing (only rank 0 writes)
        # other ranks may be writing weight maps to the cache now: spare recent files
        clean_stale_parts(folder / "cache", min_age=0.0 if ranks.world == 1 else 3600.0)
    try:
        # the network trains on the resampled grid; validation images keep their own, and
        # predict resamples them as it does a user's
        weights = plan.weights(cfg.weights)
        train_imgs, val_imgs = prepare_split(
            rescaled(train_s, scale), val_s, spec, norm, weights, folder / "cache"
        )
        model = build_model(cfg, int(train_imgs[0].image.shape[0]), plan)
        if trained is not None:
            load_start(model, trained, cfg.init)
        if resumed is not None:
            try:
                model.load_state_dict(resumed["state_dict"])
            except RuntimeError as e:
                raise ValueError(
                    f"{last}: its network does not fit this configuration and data ({e})"
                ) from e
    except BaseException:
        lock.release()
        if created:  # nothing but what this call wrote (the weight-map cache)
            shutil.rmtree(folder, ignore_errors=True)
        raise
    if ranks.main and resumed is None:  # a resumed run writes it once it has started
        save_config(cfg, folder / "config.yaml")
    run = Run(folder, ranks, device, model, train_imgs, val_imgs, norm, resumed, changes)
    run.lock, run.scale, run.plan = lock, scale, plan
    run.in_tile = plan.tile(cfg.tile, model.geometry)
    if cfg.data.annotation == "instances":
        # what predict keeps and how it separates objects, learnt from the training objects
        run.object_sizes = sizes
        rule = InstanceRule.from_sizes(sizes, cfg.data.instance_target)
        run.instance_rule = dataclasses.replace(rule, spacing=plan.relative_if_anisotropic)
    return run
