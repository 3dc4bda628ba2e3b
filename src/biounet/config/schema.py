"""Training configuration: typed dataclasses, presets, YAML in and out, validated on load.

A configuration is a :class:`TrainConfig` holding :class:`DataConfig`, :class:`OptimConfig`,
:class:`LossConfig`, the network's :class:`~biounet.model.unet.UNetConfig` fields,
the augmentation (:class:`~biounet.data.augment.AugmentConfig`) and the weight map
(:class:`~biounet.data.tiles.WeightConfig`). It is built from a named preset, then a YAML
file, then command-line overrides (``key.sub=value``), in that order; unknown keys get a
did-you-mean. The resolved configuration is written into every run folder.

Every value is checked against its field's type when the configuration is built, and
converted where that is unambiguous: an int where a float is expected; a numeric string where
a number is expected (YAML 1.1, which PyYAML follows, reads ``1e-3`` without a dot as the
string ``"1e-3"``); an int where a string is expected (``val_names: [25, 26]``); a list where
a tuple is expected. A bool field takes only ``true``/``false``. Anything else is a
``ValueError`` naming the key, the expected type and the value. :meth:`TrainConfig.validate`
then checks ranges and choices, the network options (``model``) and the normalisation
(``data.normalize``), so a bad configuration fails before any data is read.

:func:`resume_config` gives the configuration of a run to resume, with only the settings of
:data:`RESUMABLE` changed.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, get_type_hints

from biounet.core.checks import look_up
from biounet.data.annotations import AnnotationSpec
from biounet.data.augment import AugmentConfig
from biounet.data.normalize import Normalizer
from biounet.data.weightmap import WeightConfig
from biounet.model.presets import PRESETS
from biounet.model.unet import UNetConfig

__all__ = [
    "RESUMABLE",
    "TRAIN_PRESETS",
    "DataConfig",
    "LossConfig",
    "OptimConfig",
    "TrainConfig",
    "build_config",
    "check_resume",
    "config_from_dict",
    "dump_config",
    "load_config",
    "resume_changes",
    "resume_config",
    "save_config",
]


@dataclass
class DataConfig:
    """Where the data is and how to read it.

    Attributes
    ----------
    path : str
        Dataset folder in any layout of :func:`biounet.data.find_dataset`.
    val_path : str
        A separate validation set (same layouts); empty: split ``path``.
    val_names : list of str
        Validation samples by name (e.g. ``["25", "26"]``); empty: a random split. Numbers
        are taken as names (``[25, 26]``), but YAML reads ``01`` as the number 1: quote names
        with leading zeros (``["01", "02"]``). Not together with ``val_path``.
    val_fraction : float
        Share of ``path`` held out for validation by a seeded random split.
    ndim : int
        2 or 3 spatial axes.
    channel_axis : int or None
        Declared channel axis of the images (None: the rule of ``to_channels_first``).
    annotation : {"binary", "classes", "instances"}
    foreground : int or None
        Objects' value in binary masks (None: the larger value).
    num_classes : int
    ignore : int or None
        Value of unannotated pixels.
    class_names : list of str
        Names of the classes (default ``background``, ``foreground`` or ``class K``).
    normalize : dict
        :class:`~biounet.data.normalize.Normalizer` fields (checked when the configuration is
        built).
    """

    path: str = ""
    val_path: str = ""
    val_names: list[str] = field(default_factory=list)
    val_fraction: float = 0.2
    ndim: int = 2
    channel_axis: int | None = None
    annotation: str = "binary"
    foreground: int | None = None
    num_classes: int = 2
    ignore: int | None = None
    class_names: list[str] = field(default_factory=list)
    normalize: dict[str, Any] = field(default_factory=lambda: {"mode": "percentile"})

    def check_validation_source(self) -> None:
        """Raise a ValueError if both ``val_path`` and ``val_names`` pick the validation set."""
        if self.val_path and self.val_names:
            raise ValueError(
                f"data.val_path ({self.val_path!r}) and data.val_names ({self.val_names}) both "
                "pick the validation set; give only one"
            )

    def annotation_spec(self) -> AnnotationSpec:
        """How the masks are read into training targets (annotation kind, values, classes)."""
        return AnnotationSpec(self.annotation, self.foreground, self.num_classes, self.ignore)

    def names(self) -> list[str]:
        """Class names, defaults filled in."""
        if self.class_names:
            if len(self.class_names) != self.num_classes:
                raise ValueError(
                    f"data.class_names has {len(self.class_names)} names for "
                    f"{self.num_classes} classes"
                )
            return list(self.class_names)
        if self.num_classes == 2:
            return ["background", "foreground"]
        return ["background"] + [f"class {k}" for k in range(1, self.num_classes)]


@dataclass
class OptimConfig:
    """Optimiser and learning-rate schedule.

    ``name``: ``"sgd"`` (with ``momentum``; the paper: 0.99), ``"adam"`` or ``"adamw"``.
    ``schedule``: ``"constant"``, ``"cosine"`` (to 0 at the end) or ``"poly"``
    (``(1 - t)**0.9``), after ``warmup`` iterations of linear warm-up.
    """

    name: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.99
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup: int = 0
    clip_grad: float = 0.0


@dataclass
class LossConfig:
    """``ce * weighted cross-entropy + dice * soft Dice`` (either may be 0)."""

    ce: float = 1.0
    dice: float = 0.0
    dice_class_weights: list[float] = field(default_factory=list)


@dataclass
class TrainConfig:
    """A whole training run. See the module docstring for how it is assembled.

    Attributes
    ----------
    preset : str
        The training preset this configuration started from.
    model : dict
        :class:`~biounet.model.unet.UNetConfig` fields over the architecture ``preset`` (a name
        of :data:`biounet.model.presets.PRESETS`, optional). ``in_channels`` follows the
        images, ``num_classes`` and ``ndim`` follow ``data``; see :meth:`unet_config`.
    tile : int
        Network input tile, px per axis (rounded up to a valid size).
    batch_size : int
        Tiles per iteration and process.
    iterations : int
        Optimiser steps.
    max_minutes : float
        Stop within this many minutes of training (0: no limit): after a few iterations the
        speed is measured and the schedule fitted to the iterations that fit.
    oversample : float
        Probability of centring a tile on objects or borders.
    workers : int
        Data-loader processes.
    val_every : int
        Validate (whole images, overlap-tile inference) every this many iterations.
    best_metric : str
        Metric that picks ``best.pt`` (``"iou"``, ``"dice"``: higher is better;
        ``"pixel_error"``, ``"loss"``: lower is better). ``"loss"`` is the validation loss:
        the mean cross-entropy ``-log p_l(x)`` of the whole-image probabilities over all
        annotated validation pixels (unweighted, without the Dice term; see
        :func:`biounet.train.losses.probability_cross_entropy`).
    checkpoint_minutes : float
        Write ``last.pt`` at least this often (and at every validation); 0: every iteration.
    checkpoint_every : int
        Also write ``last.pt`` every this many iterations (0: only by time and validation).
    log_every : int
        Iterations between lines of the metrics log.
    seed : int
    deterministic : bool
        Deterministic algorithms (reproducible, possibly slower).
    amp : {"off", "bf16", "fp16"}
        Mixed precision on CUDA (ignored, with a warning, on a CPU).
    channels_last : bool
    compile : bool
        ``torch.compile`` the network.
    compile_backend : str
        The ``torch.compile`` backend (``"inductor"``; ``"eager"`` only traces, for tests).
    """

    preset: str = "cpu"
    model: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    weights: WeightConfig = field(default_factory=WeightConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    tile: int = 380
    batch_size: int = 2
    iterations: int = 2000
    max_minutes: float = 0.0
    oversample: float = 0.0
    workers: int = 0
    val_every: int = 250
    best_metric: str = "iou"
    checkpoint_minutes: float = 5.0
    checkpoint_every: int = 0
    log_every: int = 10
    seed: int = 0
    deterministic: bool = False
    amp: str = "off"
    channels_last: bool = False
    compile: bool = False
    compile_backend: str = "inductor"

    def validate(self) -> TrainConfig:
        """Check ranges, choices, the network and the normalisation; returns self.

        Raises
        ------
        ValueError
            Naming the setting, its value and what it may be.
        """
        look_up(self.optim.name, ("sgd", "adam", "adamw"), "optimizer")
        look_up(self.optim.schedule, ("constant", "cosine", "poly"), "schedule")
        look_up(self.amp, ("off", "bf16", "fp16"), "amp mode")
        look_up(self.best_metric, ("iou", "dice", "pixel_error", "loss"), "best_metric")
        look_up(self.data.annotation, ("binary", "classes", "instances"), "annotation kind")
        for name in ("iterations", "batch_size", "tile", "val_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        o, loss, d = self.optim, self.loss, self.data  # weights: WeightConfig checks itself
        at_least_zero = {
            "max_minutes": self.max_minutes,
            "checkpoint_minutes": self.checkpoint_minutes,
            "checkpoint_every": self.checkpoint_every,
            "workers": self.workers,
            "optim.weight_decay": o.weight_decay,
            "optim.warmup": o.warmup,
            "optim.clip_grad": o.clip_grad,
            "loss.ce": loss.ce,
            "loss.dice": loss.dice,
        }
        for name, value in at_least_zero.items():
            if not value >= 0:  # also catches NaN
                raise ValueError(f"{name} must be >= 0, got {value}")
        if not o.lr > 0:
            raise ValueError(f"optim.lr must be > 0, got {o.lr}")
        if not 0 <= o.momentum < 1:
            raise ValueError(f"optim.momentum must be in [0, 1), got {o.momentum}")
        if not 0 <= self.oversample <= 1:
            raise ValueError(f"oversample is a probability in [0, 1], got {self.oversample}")
        if loss.ce == 0 and loss.dice == 0:
            raise ValueError("loss.ce and loss.dice are both 0: nothing to train; set one > 0")
        if d.ndim not in (2, 3):
            raise ValueError(f"data.ndim must be 2 (images) or 3 (volumes), got {d.ndim}")
        if d.num_classes < 2:
            raise ValueError(f"data.num_classes must be >= 2, got {d.num_classes}")
        if not 0 <= d.val_fraction < 1:
            raise ValueError(f"data.val_fraction must be in [0, 1), got {d.val_fraction}")
        d.check_validation_source()
        cw = loss.dice_class_weights
        if cw:
            if len(cw) != d.num_classes:
                raise ValueError(
                    f"loss.dice_class_weights has {len(cw)} values for {d.num_classes} classes "
                    "(data.num_classes); give one per class, or none"
                )
            if min(cw) < 0 or sum(cw) <= 0:
                raise ValueError(f"loss.dice_class_weights must be >= 0 with a positive sum: {cw}")
        if self.compile:
            import torch.compiler

            look_up(
                self.compile_backend,
                torch.compiler.list_backends(exclude_tags=()),
                "compile_backend",
            )
        d.names()
        self.unet_config()
        try:
            Normalizer.from_dict(d.normalize)
        except (TypeError, ValueError) as e:
            raise ValueError(f"data.normalize: {e}") from e
        return self

    def unet_config(self, in_channels: int = 1) -> UNetConfig:
        """The network's configuration: ``model.preset`` (if any), the ``model`` fields over it.

        ``num_classes`` and ``ndim`` come from ``data``, ``in_channels`` from the images.

        Raises
        ------
        ValueError
            For an unknown preset or option (with a did-you-mean), a bad value, or a
            ``model.num_classes``/``model.ndim`` that contradicts ``data``.
        """
        opts = dict(self.model)
        preset = opts.pop("preset", None)
        names = [f.name for f in fields(UNetConfig)]
        for key in opts:
            look_up(key, names, "key in model")
        if "in_channels" in opts:
            raise ValueError(
                "model.in_channels: the input channels follow the images; remove the setting "
                "(and set data.channel_axis if the channels are not found)"
            )
        for key in ("num_classes", "ndim"):
            if key in opts and opts[key] != getattr(self.data, key):
                raise ValueError(
                    f"model.{key} ({opts[key]}) and data.{key} ({getattr(self.data, key)}) "
                    f"disagree; set data.{key} (the network follows the data)"
                )
        opts.update(in_channels=in_channels, num_classes=self.data.num_classes, ndim=self.data.ndim)
        if preset is not None:
            name = look_up(str(preset), list(PRESETS), "model.preset")
        try:
            if preset is None:
                return UNetConfig(**opts)
            return dataclasses.replace(UNetConfig(**PRESETS[name].options), **opts)
        except (TypeError, ValueError) as e:
            raise ValueError(f"model: {e}") from e


def _preset(**kw: Any) -> dict[str, Any]:
    return kw


#: Training presets (each a partial :class:`TrainConfig` as a nested dict).
TRAIN_PRESETS: dict[str, dict[str, Any]] = {
    # the paper: its network, batch 1 with large tiles, SGD with momentum 0.99, weighted CE
    # (w0 = 10, sigma = 5), elastic deformation (3x3 grid, 10 px), dropout 0.5, He init
    "ronneberger2015": _preset(
        model={"preset": "ronneberger2015"},
        tile=572,
        batch_size=1,
        iterations=10000,
        optim={"name": "sgd", "lr": 0.01, "momentum": 0.99, "schedule": "constant"},
        loss={"ce": 1.0, "dice": 0.0},
        weights={"w0": 10.0, "sigma": 5.0, "balance": "image"},
        augment={"elastic_sigma": 10.0, "elastic_grid": 3},
        val_every=500,
    ),
    # a usable model on a 2-core CPU in minutes: the narrow net (16..256, batch norm), tiles of
    # 380 -> 196 px (27% of each tile's area is supervised, against 7% at 252 px), AdamW with a
    # cosine schedule, weighted CE + Dice, oversampling objects and borders
    "cpu": _preset(
        model={"preset": "narrow", "dropout": 0.1},
        tile=380,
        batch_size=2,
        iterations=1500,
        optim={
            "name": "adamw",
            "lr": 3e-3,
            "weight_decay": 1e-4,
            "schedule": "cosine",
            "warmup": 50,
        },
        loss={"ce": 1.0, "dice": 1.0},
        weights={"w0": 10.0, "sigma": 5.0, "balance": "image"},
        oversample=0.3,
        val_every=250,
        workers=0,
    ),
    # modern, for GPUs: the paper's topology with batch norm, AdamW + poly schedule,
    # Dice + CE, bf16 mixed precision, channels-last, bigger batches
    "gpu": _preset(
        model={"preset": "ronneberger2015", "base_width": 32, "norm": "batch", "dropout": 0.0},
        tile=572,
        batch_size=8,
        iterations=20000,
        optim={
            "name": "adamw",
            "lr": 1e-3,
            "weight_decay": 1e-4,
            "schedule": "poly",
            "warmup": 200,
            "clip_grad": 12.0,
        },
        loss={"ce": 1.0, "dice": 1.0},
        weights={"w0": 10.0, "sigma": 5.0, "balance": "image"},
        oversample=0.3,
        workers=4,
        amp="bf16",
        channels_last=True,
        val_every=1000,
    ),
}


# ------------------------------------------------------------------------------ dict <-> config
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
    did-you-mean.
    """
    name = look_up(preset, list(TRAIN_PRESETS), "training preset")
    d: dict[str, Any] = merge({"preset": name}, TRAIN_PRESETS[name])
    if file is not None:
        d = merge(d, _read_yaml(file))
    for o in [*(overrides or []), settings]:
        d = merge(d, o)
    return config_from_dict(d)


def _read_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such config file")
    try:
        d = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{p}: not valid YAML ({e})") from e
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
    from biounet.core.files import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(dump_config(cfg))
    return Path(path)


# ------------------------------------------------------------------------------ resume
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
    ``val_every``, ``data.path`` and ``data.val_path`` for data that moved); an override that
    sets another one to its current value is fine. Pass the result to
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


def replace(cfg: TrainConfig, **changes: Any) -> TrainConfig:
    """A copy of ``cfg`` with top-level fields changed."""
    return dataclasses.replace(cfg, **changes)
