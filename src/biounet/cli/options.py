"""From parsed flags to what the library takes: configuration overrides and option objects.

Library modules are imported inside the functions, so that building the parser stays light.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from biounet.cli.flags import CONFIG_KEYS

if TYPE_CHECKING:
    from biounet.config import TrainConfig
    from biounet.evaluation import EvalOptions
    from biounet.segment import PredictOptions

__all__ = [
    "config_overrides",
    "eval_options",
    "instance_kind",
    "postprocess_options",
    "predict_options",
    "predict_task",
    "shard",
    "train_config",
]


def config_overrides(args: argparse.Namespace) -> list[dict[str, Any]]:
    """``--set`` settings, then the named flags, as nested dicts over the configuration.

    E.g. ``--set optim.lr=0.1 --tile 188`` gives ``[{"optim": {"lr": 0.1}}, {"tile": 188}]``;
    a flag of :data:`~biounet.cli.flags.CONFIG_KEYS` that is not given adds nothing.
    """
    from biounet.config import parse_override

    overrides = [parse_override(o) for o in args.overrides]
    for flag, keys in CONFIG_KEYS.items():
        value = getattr(args, flag, None)
        if value is not None:
            d: dict[str, Any] = {keys[-1]: value}
            for k in reversed(keys[:-1]):
                d = {k: d}
            overrides.append(d)
    return overrides


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The configuration of ``biounet train``: a new run's, or that of the run to resume.

    Raises
    ------
    ValueError
        For ``--resume`` without ``--out``, or with ``--preset``/``--config`` (a resumed run
        keeps its ``config.yaml``), and for any setting the configuration refuses.
    """
    from biounet.config import RESUMABLE, build_config, resume_config

    overrides = config_overrides(args)
    if args.data:
        overrides.append({"data": {"path": str(Path(args.data))}})
    if getattr(args, "init", None):
        overrides.append({"init": str(args.init)})
    if not args.resume:
        return build_config(args.preset or "cpu", args.config, overrides)
    if not args.out:
        raise ValueError("--resume needs --out RUN, the run folder to continue")
    if args.preset is not None or args.config:
        raise ValueError(
            "--preset and --config cannot be used with --resume: the run keeps "
            f"RUN/config.yaml; only these may change: {', '.join(RESUMABLE)}"
        )
    return resume_config(args.out, overrides)  # ValueError lists anything else that changed


def eval_options(args: argparse.Namespace, task: str) -> EvalOptions:
    """The scoring options of ``evaluate`` and ``predict --truth`` for ``task``."""
    from biounet.evaluation import EvalOptions

    return EvalOptions(
        task=task,
        truth_foreground=args.truth_foreground,
        threshold=args.threshold,
        membrane_class=args.membrane_class,
        metrics=args.metrics,
        volume=args.volume,
    )


def shard(text: str | None) -> tuple[int, int] | None:
    """``--shard I/N`` as ``(I, N)``; None without the flag.

    Raises
    ------
    ValueError
        For text that is not two integers joined by ``/`` (the range is checked by the library).
    """
    if not text:
        return None
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard {text!r}: write it as I/N, e.g. 0/4") from None
    return i, n


def predict_task(args: argparse.Namespace) -> str:
    """What ``predict --truth`` scores: ``--task``, else what the outputs are.

    The instance kinds are named after the tasks that score them, so ``--instances`` is
    scored by the task of its instance kind, and class masks by ``semantic``.
    """
    if args.task:
        return str(args.task)
    return str(instance_kind(args)) if args.instances else "semantic"


def instance_kind(args: argparse.Namespace) -> str:
    """``--instance-kind``, else ``membranes`` for ``--task membranes`` and ``cells`` otherwise."""
    if args.instance_kind:
        return str(args.instance_kind)
    return "membranes" if args.task == "membranes" else "cells"


def postprocess_options(args: argparse.Namespace) -> dict[str, Any]:
    """The instance options that ``--min-size`` and ``--h`` set; they win over the model's rule.

    >>> postprocess_options(argparse.Namespace(min_size=0, h=None))
    {'min_size': 0}

    Raises a ValueError for ``--min-size`` below 0 or ``--h`` not above 0, before any work.
    """
    if args.min_size is not None and args.min_size < 0:
        raise ValueError(f"--min-size must be a number of pixels >= 0, got {args.min_size}")
    if args.h is not None and not args.h > 0:  # NaN too
        raise ValueError(f"--h must be a depth in pixels > 0, got {args.h}")
    chosen = {"min_size": args.min_size, "h": args.h}
    return {k: v for k, v in chosen.items() if v is not None}


def predict_options(args: argparse.Namespace, task: str) -> PredictOptions:
    """What ``biounet predict`` writes and how it predicts; ``task`` is what is scored.

    With ``--truth`` and ``task="membranes"`` the probability maps are written too: the ISBI
    scores are computed from them.
    """
    from biounet.core.device import process_device
    from biounet.segment import PredictOptions

    return PredictOptions(
        masks=not args.no_masks,
        instances=args.instances,
        probabilities=args.probabilities or bool(args.truth and task == "membranes"),
        overlays=args.overlays,
        overwrite=args.overwrite,
        mask_format=args.mask_format,
        output_format=args.output_format,
        instance_kind=instance_kind(args),
        membrane_class=args.membrane_class,
        postprocess=postprocess_options(args),
        tile_shape=args.tile,
        batch_size=args.batch_size,
        tta=args.tta,
        backend=args.backend,
        device=process_device(args.device),  # under torchrun: this process's GPU
    )
