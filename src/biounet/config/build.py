"""A configuration assembled from a preset, a YAML file and overrides; YAML in and out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from biounet.config.coerce import config_from_dict, to_dict
from biounet.config.presets import TRAIN_PRESETS, VOLUME_PRESETS
from biounet.config.schema import TrainConfig
from biounet.core.checks import look_up
from biounet.core.files import atomic_path

__all__ = [
    "build_config",
    "dump_config",
    "load_config",
    "merge",
    "parse_override",
    "save_config",
]


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``update`` into a copy of ``base`` (nested dicts merge, others replace)."""
    out = dict(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "normalize":
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def parse_override(text: str) -> dict[str, Any]:
    """``"optim.lr=0.001"`` -> ``{"optim": {"lr": 0.001}}`` (the value is read as YAML)."""
    import yaml

    if "=" not in text:
        raise ValueError(f"override {text!r} must look like key.sub=value")
    key, raw = text.split("=", 1)
    value = yaml.safe_load(raw) if raw.strip() else ""
    d: dict[str, Any] = {}
    node = d
    parts = key.strip().split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return d


def build_config(
    preset: str = "cpu",
    file: str | Path | None = None,
    overrides: list[dict[str, Any]] | None = None,
    **settings: Any,
) -> TrainConfig:
    """Preset, then the YAML ``file``, then ``overrides``, then ``settings``; validated.

    ``settings`` are top-level keys, nested sections as dicts, e.g.
    ``build_config("cpu", data={"path": "DATA"}, max_minutes=5)``; unknown keys get a
    did-you-mean. The presets ``cpu`` and ``gpu`` are dimension-aware: when the settings
    over them ask for volumes (``data.ndim: 3``), they start from ``cpu3d`` / ``gpu3d``.

    >>> build_config("cpu", data={"ndim": 3}).preset
    'cpu3d'
    """
    name = look_up(preset, list(TRAIN_PRESETS), "training preset")
    layers = [_read_yaml(file)] if file is not None else []
    layers += [*(overrides or []), settings]
    ndims = [o["data"]["ndim"] for o in layers if "ndim" in (o.get("data") or {})]
    if ndims and ndims[-1] == 3 and name in VOLUME_PRESETS:
        name = VOLUME_PRESETS[name]
    d: dict[str, Any] = merge({"preset": name}, TRAIN_PRESETS[name])
    for o in layers:
        d = merge(d, o)
    return config_from_dict(d)


def _strict_loader() -> type:
    """A safe YAML loader that refuses a key given twice in one mapping (YAML takes the last)."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            lines: dict[Any, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                if isinstance(key, str | int | float | bool) and key in lines:
                    raise ValueError(
                        f"the key {key!r} is given twice (lines {lines[key]} and {line}); keep one"
                    )
                if isinstance(key, str | int | float | bool):
                    lines[key] = line
            return super().construct_mapping(node, deep=deep)

    return StrictLoader


def _read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping a YAML file holds; errors name the file (and a key given twice, its lines)."""
    import yaml

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such config file")
    try:
        d = yaml.load(p.read_text(), Loader=_strict_loader()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{p}: not valid YAML ({e})") from e
    except ValueError as e:
        raise ValueError(f"{p}: {e}") from e
    if not isinstance(d, dict):
        raise ValueError(f"{p}: a config file holds a mapping of keys, got {type(d).__name__}")
    return d


def load_config(path: str | Path) -> TrainConfig:
    """A resolved configuration written by :func:`save_config` (e.g. ``RUN/config.yaml``)."""
    d = _read_yaml(path)
    try:
        return config_from_dict(d)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e


def dump_config(cfg: TrainConfig) -> str:
    """The configuration as YAML text, every field resolved (what ``config.yaml`` holds).

    For printing a preset with its overrides: ``print(dump_config(build_config("gpu")))``.

    >>> print(dump_config(build_config("cpu")).splitlines()[0])
    preset: cpu
    """
    import yaml

    text: str = yaml.safe_dump(to_dict(cfg), sort_keys=False)
    return text


def save_config(cfg: TrainConfig, path: str | Path) -> Path:
    """Write the resolved configuration as YAML (atomically)."""
    with atomic_path(path) as tmp:
        tmp.write_text(dump_config(cfg))
    return Path(path)
