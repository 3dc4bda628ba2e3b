"""What may change when a run is resumed, and the configuration a resumed run continues with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from biounet.config.build import load_config, merge
from biounet.config.coerce import config_from_dict, to_dict
from biounet.config.schema import TrainConfig

__all__ = ["RESUMABLE", "check_resume", "resume_changes", "resume_config"]


#: settings that may change when a run is resumed: they change neither the network, nor the
#: data it sees, nor the optimisation up to the checkpoint. ``iterations`` extends (or
#: shortens, down to the checkpoint) the run, and the schedule is fitted to the new count;
#: ``data.path`` and ``data.val_path`` point at data that moved (``data.val_path`` cannot
#: switch between a separate validation set and a split).
RESUMABLE = (
    "iterations",
    "max_minutes",
    "workers",
    "checkpoint_minutes",
    "checkpoint_every",
    "log_every",
    "log.tensorboard",
    "val_every",
    "data.path",
    "data.val_path",
)


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def resume_changes(before: TrainConfig, after: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """The settings that differ, as ``{dotted key: (before, after)}``, in field order."""
    a, b = _flat(to_dict(before)), _flat(to_dict(after))
    missing = object()
    keys = list(dict.fromkeys([*a, *b]))
    return {k: (a.get(k), b.get(k)) for k in keys if a.get(k, missing) != b.get(k, missing)}


def check_resume(before: TrainConfig, after: TrainConfig, where: str) -> dict[str, Any]:
    """Raise a ValueError if ``after`` changes settings of ``before`` outside :data:`RESUMABLE`.

    Returns the changes (see :func:`resume_changes`).
    """
    changes = resume_changes(before, after)
    bad = [k for k in changes if k not in RESUMABLE]
    if "data.val_path" in changes and not (before.data.val_path and after.data.val_path):
        bad.append("data.val_path")
    if bad:
        listed = ", ".join(f"{k} ({changes[k][0]!r} -> {changes[k][1]!r})" for k in bad)
        raise ValueError(
            f"{where}: settings that cannot change on resume: {listed}. Only "
            f"{', '.join(RESUMABLE)} can; start a new run (another --out) to change the others"
        )
    return changes


def resume_config(run: str | Path, overrides: list[dict[str, Any]] | None = None) -> TrainConfig:
    """The configuration to resume the run folder ``run`` with: its ``config.yaml``, overridden.

    Only the settings of :data:`RESUMABLE` may change (``iterations`` to extend the run,
    ``max_minutes``, ``workers``, ``checkpoint_minutes``, ``checkpoint_every``, ``log_every``,
    ``log.tensorboard``, ``val_every``, ``data.path`` and ``data.val_path`` for data that
    moved); an override that sets another one to its current value is fine. Pass the result to
    ``fit(cfg, run, resume=True)``, which applies them all and rewrites ``config.yaml``.

    Parameters
    ----------
    run : str or Path
        A run folder written by :func:`biounet.fit`.
    overrides : list of dict, optional
        Nested settings, e.g. ``[{"iterations": 4000}, {"data": {"path": "moved/data"}}]``
        (what :func:`parse_override` makes of ``"iterations=4000"``).

    Raises
    ------
    FileNotFoundError
        ``run`` holds no ``config.yaml``.
    ValueError
        An unknown key or a bad value, or settings that cannot change on resume (all named).
    """
    path = Path(run) / "config.yaml"
    if not path.exists():
        raise FileNotFoundError(f"{run}: nothing to resume (no config.yaml; not a run folder?)")
    saved = load_config(path)
    if not overrides:
        return saved
    d = to_dict(saved)
    for o in overrides:
        d = merge(d, o)
    cfg = config_from_dict(d)
    check_resume(saved, cfg, f"resuming {run}")
    return cfg
