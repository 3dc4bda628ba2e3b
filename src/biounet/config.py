"""Training configuration: typed dataclasses, presets, YAML in and out, validated on load.

A configuration is a :class:`TrainConfig` holding :class:`DataConfig`, :class:`OptimConfig`,
:class:`LossConfig`, the network's :class:`~biounet.model.unet.UNetConfig` fields,
the augmentation (:class:`~biounet.augment.AugmentConfig`) and the weight map
(:class:`~biounet.data.dataset.WeightConfig`). It is built from a named preset, then a YAML
file, then command-line overrides (``key.sub=value``), in that order; unknown keys get a
did-you-mean. The resolved configuration is written into every run folder.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, get_type_hints

from ._checks import look_up
from .augment import AugmentConfig
from .data.dataset import WeightConfig

__all__ = [
    "TRAIN_PRESETS",
    "DataConfig",
    "LossConfig",
    "OptimConfig",
    "TrainConfig",
    "load_config",
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
        Validation samples by name (e.g. ``["25", "26"]``); empty: a random split.
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
        :class:`~biounet.data.normalize.Normalizer` fields.
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
        :class:`~biounet.model.unet.UNetConfig` fields (``in_channels`` and ``num_classes``
        follow the data).
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
        ``"pixel_error"``, ``"loss"``: lower is better).
    checkpoint_minutes : float
        Write ``last.pt`` at least this often (and at every validation).
    checkpoint_every : int
        Also write ``last.pt`` every this many iterations (0: only by time and validation).
    log_every : int
        Iterations between lines of the metrics log.
    seed : int
    deterministic : bool
        Deterministic algorithms (reproducible, possibly slower).
    amp : {"off", "bf16", "fp16"}
        Mixed precision on CUDA.
    channels_last : bool
    compile : bool
        ``torch.compile`` the network.
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

    def validate(self) -> TrainConfig:
        """Check values that dataclass types cannot; returns self."""
        look_up(self.optim.name, ("sgd", "adam", "adamw"), "optimizer")
        look_up(self.optim.schedule, ("constant", "cosine", "poly"), "schedule")
        look_up(self.amp, ("off", "bf16", "fp16"), "amp mode")
        look_up(self.best_metric, ("iou", "dice", "pixel_error", "loss"), "best_metric")
        look_up(self.data.annotation, ("binary", "classes", "instances"), "annotation kind")
        look_up(self.weights.balance, ("image", "dataset", "none"), "weights.balance")
        for name in ("iterations", "batch_size", "tile", "val_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.data.val_fraction < 1:
            raise ValueError(f"data.val_fraction must be in [0, 1), got {self.data.val_fraction}")
        self.data.names()
        return self


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


def _build(cls: Any, d: dict[str, Any], where: str) -> Any:
    if not isinstance(d, dict):
        raise ValueError(f"{where or 'config'}: expected a mapping, got {d!r}")
    hints = get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in d.items():
        look_up(key, names, f"key in {where or 'the config'}")
        sub = hints[key]
        if is_dataclass(sub):
            kwargs[key] = _build(sub, value, f"{where}.{key}" if where else key)
        elif key in ("scale", "contrast", "gamma") and isinstance(value, list):
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ValueError(f"{where or 'config'}: {e}") from e


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
    cfg: TrainConfig = _build(TrainConfig, d, "")
    return cfg.validate()


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
    cfg: TrainConfig = _build(TrainConfig, d, "")
    return cfg.validate()


def save_config(cfg: TrainConfig, path: str | Path) -> Path:
    """Write the resolved configuration as YAML (atomically)."""
    import yaml

    from .data.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    return Path(path)


def replace(cfg: TrainConfig, **changes: Any) -> TrainConfig:
    """A copy of ``cfg`` with top-level fields changed."""
    return dataclasses.replace(cfg, **changes)
