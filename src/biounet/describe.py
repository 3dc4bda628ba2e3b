"""What ``biounet inspect`` prints: a network preset, a training preset's net, a trained model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from biounet.checkpoint import instance_entry, load, load_checkpoint
from biounet.config import TRAIN_PRESETS, build_config
from biounet.core.checks import look_up
from biounet.model.presets import PRESETS
from biounet.model.summary import describe_model, describe_preset
from biounet.train import build_model
from biounet.zoo import shipped

__all__ = [
    "describe",
    "describe_checkpoint",
    "describe_training_preset",
    "inspect_target",
    "instance_lines",
]


def inspect_target(target: str) -> tuple[str, str]:
    """What ``target`` names, and its name: a checkpoint, a network preset or a training preset.

    Returns ``("checkpoint", path)`` for a checkpoint file or run folder (anything that exists,
    ends in ``.pt``/``.pth`` or holds a ``/``, unless it is a network preset) or a shipped
    model's name (:mod:`biounet.zoo`),
    ``("training preset", name)`` for ``cpu`` or ``gpu``, else ``("preset", name)``.

    Raises
    ------
    ValueError
        For a name that is none of these, with a did-you-mean over both kinds of preset.
    """
    if target not in PRESETS and (
        Path(target).exists() or target.endswith((".pt", ".pth")) or "/" in target
    ):
        return "checkpoint", target
    if target in shipped():
        return "checkpoint", target
    try:
        name = look_up(target, list(dict.fromkeys([*PRESETS, *TRAIN_PRESETS])), "preset")
    except ValueError as e:
        raise ValueError(
            f"{e} (or give a checkpoint file, a run folder or a shipped model: biounet models)"
        ) from None
    return ("preset" if name in PRESETS else "training preset"), name


def describe(target: str, *, near: int | None = None, count: int = 3, flops: bool = True) -> str:
    """The summary of whatever ``target`` names (see :func:`inspect_target`).

    Layers, feature-map sizes of a tile near ``near`` px, parameters, margin, ``count`` valid
    tile sizes on each side of ``near``, FLOPs per output pixel (unless ``flops`` is False)
    and, for a trained model, what is stored beside its weights.
    """
    kind, name = inspect_target(target)
    if kind == "checkpoint":
        return describe_checkpoint(name, near=near, count=count, flops=flops)
    if kind == "training preset":
        return describe_training_preset(name, near=near, count=count, flops=flops)
    return describe_preset(name, near=near, count=count, flops=flops)


def describe_training_preset(
    name: str, *, near: int | None = None, count: int = 3, flops: bool = True
) -> str:
    """The network a training preset (``cpu``, ``gpu``) trains, at its training tile."""
    cfg = build_config(name)
    net = build_model(cfg, 1)
    title = f"{name}: the network of the {name!r} training preset"
    tile = near if near is not None else cfg.tile
    return describe_model(net, title, near=tile, count=count, flops=flops)


def describe_checkpoint(
    path: str | os.PathLike[str], *, near: int | None = None, count: int = 3, flops: bool = True
) -> str:
    """:func:`~biounet.model.summary.describe_model` for a checkpoint file or run folder.

    Adds what was stored beside its weights: classes, training tile and iteration, the
    intensity normalisation that :func:`biounet.predict` applies, and the training objects'
    sizes with the instance rule derived from them.
    """
    ck = load_checkpoint(path)
    model = load(path)
    norm = model.normalizer.to_dict() if model.normalizer is not None else None
    norm_text = (
        "none stored (images go to the network unchanged)"
        if norm is None
        else ", ".join(f"{k}={v}" for k, v in norm.items() if v is not None)
    )
    extra = [
        f"  checkpoint: {ck['path']} (iteration {ck.get('iteration', '?')}, "
        f"biounet {ck.get('biounet_version', '?')})",
        f"  classes: {', '.join(model.class_names) or model.num_classes}",
        f"  training tile: {model.tile if model.tile is not None else 'not stored'}",
        f"  normalisation applied by predict: {norm_text}",
        f"  scale: images resampled by {model.scale:g} before the network sees them, results "
        "on the image's own grid (data.scale)"
        if model.scale != 1.0
        else "  scale: 1 (images used on their own grid)",
        f"  voxel spacing: {list(model.spacing)} (planned the network: coarse levels "
        f"{list(model.config.coarse_levels) or 'none'})"
        if model.spacing is not None
        else "  voxel spacing: none stored (isotropic or unknown)",
        *instance_lines(ck),
    ]
    default = 572 if model.ndim == 2 else 132
    near = near if near is not None else (model.tile[-1] if model.tile else default)
    body = describe_model(
        model.net, f"{ck['path']}: a trained U-Net", near=near, count=count, flops=flops
    )
    return body + "\n" + "\n".join(extra)


def instance_lines(ck: dict[str, Any]) -> list[str]:
    """The lines on instances of a checkpoint dict: its training objects and instance rule.

    >>> instance_lines({})[0]
    '  training objects: not stored (a checkpoint from before biounet stored them)'
    """
    rule, sizes = instance_entry(ck)
    old = "not stored (a checkpoint from before biounet stored them)"
    objects = sizes.describe() if sizes is not None else old if rule is None else "none found"
    if rule is None:
        rule_text = "not stored: predict --instances uses h 2 px, min_size 0 unless told"
    else:
        rule_text = rule.describe()
    return [
        f"  training objects: {objects}",
        f"  instance rule of predict --instances (--h, --min-size override): {rule_text}",
    ]
