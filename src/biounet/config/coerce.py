"""Values checked against their field's type and converted where that is unambiguous.

Every value is checked when a configuration is built: an int where a float is expected; a
numeric string where a number is expected (YAML 1.1, which PyYAML follows, reads ``1e-3``
without a dot as the string ``"1e-3"``); an int where a string is expected
(``val_names: [25, 26]``); a list where a tuple is expected. A bool field takes only
``true``/``false``. Anything else is a ``ValueError`` naming the key, the expected type and the
value; an unknown key gets a did-you-mean.
"""

from __future__ import annotations

import math
import os
import types
import typing
from dataclasses import fields, is_dataclass
from typing import Any, get_type_hints

from biounet.config.schema import DataConfig, TrainConfig
from biounet.core.checks import look_up
from biounet.data.normalize import Normalizer
from biounet.model.unet import UNetConfig

__all__ = ["config_from_dict", "to_dict"]


def to_dict(cfg: Any) -> Any:
    """A dataclass tree as plain dicts/lists (YAML-ready)."""
    if is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in fields(cfg)}
    if isinstance(cfg, tuple | list):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    return cfg


#: ``dict`` fields whose keys and values follow a dataclass: (section, key) -> (class, extra keys)
_DICT_FIELDS: dict[tuple[type, str], tuple[type, dict[str, Any]]] = {
    (TrainConfig, "model"): (UNetConfig, {"preset": str}),
    (DataConfig, "normalize"): (Normalizer, {}),
}


def _type_name(hint: Any) -> str:
    """``int``, ``float or None``, ``list of str``, ``(float, float)``: for error messages."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is type(None):
        return "None"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is tuple:
        return "(" + ", ".join(_type_name(a) for a in args) + ")"
    if origin is dict:
        return "mapping"
    if hint is bool:
        return "bool (true or false)"
    return getattr(hint, "__name__", str(hint))


def _number(value: Any) -> float | None:
    """A finite number from a number or a numeric string (``"1e-3"``), else None; bools: None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        x = float(value)
    elif isinstance(value, str):
        try:
            x = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return x if math.isfinite(x) else None


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """``value`` checked against the type ``hint`` and converted where unambiguous.

    See the module docstring for the rules; a mismatch is a ValueError naming ``where``.
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)

    def wrong(detail: str = "") -> ValueError:
        return ValueError(
            f"{where}: expected {_type_name(hint)}{detail}, got {value!r} ({type(value).__name__})"
        )

    if hint is Any:
        return value
    if is_dataclass(hint):
        return _build(hint, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in args:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, where)
            except ValueError:
                continue
        raise wrong()
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise wrong()
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        x = _number(value)
        if x is not None and x.is_integer():
            return int(x)  # "1e4" (YAML 1.1 reads it as a string) or 2.0: exact
        raise wrong()
    if hint is float:
        x = _number(value)
        if x is None:
            raise wrong(" (a finite number)")
        return x
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)  # val_names: [25, 26]
        raise wrong()
    if origin is list or origin is tuple:
        if not isinstance(value, list | tuple):
            raise wrong()
        if origin is list:
            return [_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise wrong(f" ({len(args)} values)")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin is dict:
        if not isinstance(value, dict):
            raise wrong()
        return dict(value)
    return value


def _dict_field(value: Any, cls: type, extra: dict[str, Any], where: str) -> dict[str, Any]:
    """A ``dict`` field holding ``cls`` fields (and ``extra`` keys): keys and values checked."""
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a mapping, got {value!r} ({type(value).__name__})")
    hints = {**get_type_hints(cls), **extra}
    out = {}
    for key, v in value.items():
        look_up(key, list(hints), f"key in {where}")
        out[key] = _coerce(v, hints[key], f"{where}.{key}")
    return out


def _build(cls: Any, d: dict[str, Any], where: str) -> Any:
    """An instance of the dataclass ``cls`` from ``d``, every value type-checked (see above)."""
    if not isinstance(d, dict):
        raise ValueError(f"{where or 'config'}: expected a mapping, got {d!r}")
    hints = get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in d.items():
        look_up(key, names, f"key in {where or 'the config'}")
        path = f"{where}.{key}" if where else key
        if (cls, key) in _DICT_FIELDS:
            kwargs[key] = _dict_field(value, *_DICT_FIELDS[cls, key], path)
        else:
            kwargs[key] = _coerce(value, hints[key], path)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where or 'config'}: {e}") from e


def config_from_dict(d: dict[str, Any]) -> TrainConfig:
    """A validated :class:`TrainConfig` from a nested dict (e.g. :func:`to_dict`'s, or YAML's).

    Missing keys take the dataclass defaults (not a preset's); see :func:`build_config`.
    """
    cfg: TrainConfig = _build(TrainConfig, d, "")
    return cfg.validate()
