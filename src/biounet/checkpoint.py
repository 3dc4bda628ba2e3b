"""Checkpoints that rebuild their model alone and are never half-written.

A checkpoint is a ``torch.save`` file of plain types (loadable with ``weights_only=True``):

``format``, ``format_version``, ``biounet_version``
    What wrote it.
``model_config``, ``state_dict``
    The network (:class:`~biounet.model.unet.UNetConfig` fields and weights, unwrapped from
    DDP and ``torch.compile``).
``normalize``, ``class_names``, ``tile``
    What prediction needs: the intensity normalisation, the names of the classes, the training
    tile (px per axis; older checkpoints: one number for all).
``spacing`` (optional)
    The voxel spacing per spatial axis that planned the network (``data.spacing`` or the
    training images' metadata); absent or None: isotropic or unknown.
``scale`` (optional)
    The factor images are resampled by before the network sees them (``data.scale``); absent
    (checkpoints written before it was stored): 1.
``instances`` (optional)
    ``{"rule": InstanceRule.to_dict(), "object_sizes": ObjectSizes.to_dict() or None}``: how
    prediction turns probabilities into cells, and the training objects' sizes it was derived
    from (:func:`instance_entry`). Absent from checkpoints written before it was stored.
``train_config``, ``iteration``, ``optimizer``, ``scheduler``, ``scaler``, ``rng``, ``best``
    What resuming needs (absent from exported models).

Writing goes to a temporary file beside the target, then an atomic rename. Reading checks
the CRC-32 of every record of the file (``torch.save`` writes a zip archive) before
unpickling, so a file damaged after it was written (a flipped bit, a bad copy) is an error,
not silently wrong weights.
"""

from __future__ import annotations

import os
import random
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import torch

from biounet._version import __version__
from biounet.core.checks import check_spacing
from biounet.core.device import resolve_device
from biounet.core.files import atomic_path, disk_full
from biounet.data.normalize import Normalizer
from biounet.data.objects import ObjectSizes
from biounet.inference.postprocess.rule import InstanceRule
from biounet.inference.trained import TrainedModel
from biounet.model.unet import UNet
from biounet.zoo import resolve, shipped

FORMAT = "biounet-checkpoint"
FORMAT_VERSION = 1

__all__ = [
    "instance_entry",
    "instance_entry_for",
    "load",
    "load_checkpoint",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
    "unwrap",
    "update_checkpoint",
]


def unwrap(model: torch.nn.Module) -> UNet:
    """The plain :class:`UNet` inside DDP and/or ``torch.compile`` wrappers."""
    m: Any = model
    while True:
        if hasattr(m, "module") and isinstance(m.module, torch.nn.Module):
            m = m.module
        elif hasattr(m, "_orig_mod"):
            m = m._orig_mod
        else:
            break
    if not isinstance(m, UNet):
        raise TypeError(f"expected a biounet.UNet (possibly wrapped), got {type(m).__name__}")
    return m


def rng_state() -> dict[str, Any]:
    """The random states of Python and torch (and CUDA).

    biounet's own randomness (tiles, augmentation) is seeded per item and needs no state.
    """
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": [version, list(internal), gauss],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | os.PathLike[str], model: torch.nn.Module, **extra: Any) -> Path:
    """Write ``model`` (unwrapped) and ``extra`` entries atomically to ``path``."""
    net = unwrap(model)
    payload: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "biounet_version": __version__,
        "model_config": net.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
    }
    payload.update(extra)
    _save(payload, Path(path))
    return Path(path)


def _save(payload: dict[str, Any], path: Path) -> None:
    """``torch.save`` atomically; a full disk is an OSError naming ``path``, the old file kept."""
    with atomic_path(path) as tmp:
        try:
            torch.save(payload, tmp)
        except (OSError, RuntimeError) as e:
            if not disk_full(e):
                raise
            raise OSError(
                28,
                "no space left on the device while writing it; the previous file is intact "
                "and nothing half-written was left: free some space (then --resume)",
                str(path),
            ) from e


def update_checkpoint(path: str | os.PathLike[str], **entries: Any) -> Path:
    """Replace (or add) ``entries`` of the checkpoint at ``path``, atomically; the rest stays."""
    payload = load_checkpoint(path)
    p = Path(payload.pop("path"))
    payload.update(entries)
    _save(payload, p)
    return p


def _unreadable(p: Path, e: BaseException) -> ValueError:
    return ValueError(
        f"{p}: not a readable checkpoint ({type(e).__name__}); the file is corrupt, truncated "
        "or not a biounet checkpoint"
    )


def _check_zip(p: Path) -> None:
    """Raise a ValueError unless ``p`` is a zip archive whose records all match their CRC-32."""
    try:
        with zipfile.ZipFile(p) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError, struct.error) as e:
        raise _unreadable(p, e) from e
    except zlib.error as e:
        raise ValueError(f"{p}: corrupt checkpoint (a record does not decompress: {e})") from e
    if bad is not None:
        raise ValueError(
            f"{p}: corrupt checkpoint (record {bad!r} fails its CRC check): the file was "
            "damaged after it was written; use another copy"
        )


def load_checkpoint(
    path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Read a checkpoint's dict; a missing, corrupt or foreign file gets a clear error.

    Parameters
    ----------
    path : str or PathLike
        A checkpoint file, a run folder (its ``best.pt``, else ``last.pt``), or the name of a
        model shipped with biounet (:mod:`biounet.zoo`; a path that exists wins).
    map_location : str or torch.device
        Where the network's tensors (``state_dict``) go: ``"cpu"``, ``"cuda"``, ``"cuda:N"``,
        ``"auto"``. The file is always read on the CPU first, and the rest (optimiser and
        random states) stays there.

    Raises
    ------
    FileNotFoundError
        No such file, or a folder without checkpoints.
    ValueError
        The file is truncated or corrupt (its CRC check fails), is no biounet checkpoint, was
        written by a newer biounet, or ``map_location`` is a device this machine lacks (the
        file itself is then fine).
    """
    p = resolve(path)
    if p.is_dir():
        for name in ("best.pt", "last.pt"):
            if (p / name).exists():
                p = p / name
                break
        else:
            raise FileNotFoundError(f"{path}: a folder without best.pt or last.pt")
    if not p.exists():
        if p.suffix or len(p.parts) > 1:  # a path
            raise FileNotFoundError(f"{p}: no such checkpoint")
        names = ", ".join(shipped()) or "none"  # perhaps a misspelt name
        raise FileNotFoundError(
            f"{p}: no such checkpoint, run folder or shipped model (shipped: {names}; "
            "see biounet models)"
        )
    device = resolve_device(map_location)  # a device this machine lacks is not a corrupt file
    _check_zip(p)
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except (OSError, MemoryError):
        raise
    except Exception as e:  # torch raises many kinds for damaged or non-biounet files
        raise _unreadable(p, e) from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{p}: not a biounet checkpoint (a torch file of another kind)")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(
            f"{p}: written by a newer biounet ({payload.get('biounet_version')}); upgrade biounet"
        )
    if device.type != "cpu" and isinstance(payload.get("state_dict"), dict):
        payload["state_dict"] = {
            k: v.to(device) if isinstance(v, torch.Tensor) else v
            for k, v in payload["state_dict"].items()
        }
    payload["path"] = str(p)
    return payload


def instance_entry_for(
    rule: InstanceRule | None, sizes: ObjectSizes | None
) -> dict[str, Any] | None:
    """The checkpoint entry ``"instances"`` that :func:`instance_entry` reads back.

    ``{"rule": ..., "object_sizes": ...}`` as plain values; None without a rule.
    """
    if rule is None:
        return None
    return {"rule": rule.to_dict(), "object_sizes": sizes.to_dict() if sizes else None}


def instance_entry(ck: dict[str, Any]) -> tuple[InstanceRule | None, ObjectSizes | None]:
    """The instance rule and the object sizes stored in the checkpoint dict ``ck``.

    Reads the ``"instances"`` entry, ``{"rule": ..., "object_sizes": ...}`` (either may be
    None); a checkpoint without it gives ``(None, None)``.

    Raises
    ------
    ValueError
        An entry that is not of that form, naming the checkpoint.
    """
    entry = ck.get("instances")
    if entry is None:
        return None, None
    try:
        rule, sizes = entry.get("rule"), entry.get("object_sizes")
        return (
            InstanceRule.from_dict(rule) if rule is not None else None,
            ObjectSizes.from_dict(sizes) if sizes is not None else None,
        )
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise ValueError(
            f"{ck.get('path', 'checkpoint')}: its 'instances' entry does not read ({e})"
        ) from e


def _tile_of(tile: Any, ndim: int) -> tuple[int, ...] | None:
    """The stored training tile per axis (older checkpoints store one number for all)."""
    if not tile:
        return None
    return tuple(int(t) for t in tile) if isinstance(tile, list | tuple) else (int(tile),) * ndim


def _spacing_of(ck: dict[str, Any], ndim: int) -> tuple[float, ...] | None:
    """The checkpoint's ``spacing`` entry (None when absent); a bad one is an error."""
    spacing = ck.get("spacing")
    if spacing is None:
        return None
    try:
        return check_spacing(spacing, ndim, "spacing")
    except ValueError as e:
        raise ValueError(f"{ck.get('path', 'checkpoint')}: its 'spacing' entry: {e}") from e


def _scale_of(ck: dict[str, Any]) -> float:
    """The checkpoint's ``scale`` entry (1 when absent); anything but a number > 0 is an error."""
    scale = ck.get("scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not scale > 0:
        where = ck.get("path", "checkpoint")
        raise ValueError(f"{where}: its 'scale' entry {scale!r} is no number > 0")
    return float(scale)


def load(path: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> TrainedModel:
    """A trained model ready for :func:`biounet.predict`, from a checkpoint file or run folder.

    Returns a :class:`~biounet.inference.trained.TrainedModel`: the network in eval mode on
    ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"auto"``) with the training
    normalisation (which ``predict`` applies), the class names, the training tile (px) and the
    instance rule (None in checkpoints from before it was stored). A run folder gives its
    ``best.pt`` (else ``last.pt``). The file is read and the network built
    on the CPU, then moved; a device this machine lacks is a ValueError saying so.
    """
    dev = resolve_device(device)
    ck = load_checkpoint(path)
    try:
        net = UNet.from_config(ck["model_config"])
        net.load_state_dict(ck["state_dict"])
    except (KeyError, RuntimeError, ValueError, TypeError) as e:
        raise ValueError(f"{ck['path']}: the checkpoint's network does not load ({e})") from e
    tile = ck.get("tile")
    model = TrainedModel(
        net=net,
        normalizer=Normalizer.from_dict(ck["normalize"]) if ck.get("normalize") else None,
        class_names=list(ck.get("class_names") or []),
        tile=_tile_of(tile, net.ndim),
        source=Path(ck["path"]),
        instance_rule=instance_entry(ck)[0],
        scale=_scale_of(ck),
        spacing=_spacing_of(ck, net.ndim),
    )
    return model.to(dev).eval()
