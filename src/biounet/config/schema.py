"""The training configuration as typed dataclasses: every setting, its default and its range.

A configuration is a :class:`TrainConfig` holding :class:`DataConfig`, :class:`OptimConfig`,
:class:`LossConfig`, the network's :class:`~biounet.model.unet.UNetConfig` fields (``model``),
the augmentation (:class:`~biounet.data.augment.AugmentConfig`) and the weight map
(:class:`~biounet.data.weightmap.WeightConfig`). :meth:`TrainConfig.validate` checks ranges and
choices, the network options and the normalisation, so a bad configuration fails before any
data is read. How a configuration is assembled (preset, YAML, overrides) is in
:mod:`biounet.config.build`; how values are type-checked, in :mod:`biounet.config.coerce`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

from biounet.config.data import DataConfig
from biounet.core.checks import check_positive_int, look_up
from biounet.data.annotations import ANNOTATION_KINDS, INSTANCE_TARGETS
from biounet.data.augment import AugmentConfig
from biounet.data.normalize import Normalizer
from biounet.data.weightmap import WeightConfig
from biounet.model.presets import PRESETS
from biounet.model.unet import UNetConfig

__all__ = [
    "AMP_MODES",
    "BEST_METRICS",
    "OPTIMIZERS",
    "SCHEDULES",
    "DataConfig",
    "LogConfig",
    "LossConfig",
    "OptimConfig",
    "TrainConfig",
]

#: values of :attr:`OptimConfig.name`
OPTIMIZERS = ("sgd", "adam", "adamw")
#: values of :attr:`OptimConfig.schedule`
SCHEDULES = ("constant", "cosine", "poly")
#: values of :attr:`TrainConfig.amp`
AMP_MODES = ("off", "bf16", "fp16")
#: values of :attr:`TrainConfig.best_metric`: "auto" picks by the annotation (see
#: :meth:`TrainConfig.selection_metric`); iou, dice, ap_50 and f1 are better when higher
BEST_METRICS = ("auto", "iou", "dice", "pixel_error", "loss", "ap_50", "f1")


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
class LogConfig:
    """Where a run's logs go besides ``metrics.jsonl`` (which is always written).

    ``tensorboard``: also write TensorBoard event files to ``RUN/tensorboard/``: every
    logged scalar (``train/loss``, ``train/lr``, ``val/iou``, ...) and, at each validation,
    a few validation images beside their truth and prediction. Needs the ``tensorboard``
    package (``pip install "biounet[tensorboard]"``); view with ``tensorboard --logdir RUN``.
    """

    tensorboard: bool = False


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
        End the run within this many minutes of wall time, from the call of ``fit`` to its
        return: set-up, validations and the tuning of the instance rule included (0: no
        limit). The schedule then runs over the time, not over ``iterations``, and the speed
        is measured all along, so a machine that slows down still gets a run that anneals and
        ends on time (:mod:`biounet.train.budget`); ``iterations`` remains an upper bound.
    oversample : float
        Probability of centring a tile on objects or borders.
    workers : int
        Data-loader processes.
    val_every : int
        Validate (whole images, overlap-tile inference) every this many iterations, or more
        often: every ``iterations // 5`` if that is fewer (so a run validates at least five
        times), and at every tenth of ``max_minutes``.
    best_metric : str
        Metric that picks ``best.pt``. ``"auto"`` (the default): ``"ap_50"`` for instance
        annotations, else ``"iou"``. ``"ap_50"``, ``"f1"``: instance scores at IoU 0.5 of the
        objects that ``predict --instances`` makes of the whole validation images (instance
        annotations only); ``"iou"``, ``"dice"``: pixel scores (higher is better);
        ``"pixel_error"``, ``"loss"``: lower is better. ``"loss"`` is the validation loss: the
        mean cross-entropy ``-log p_l(x)`` of the whole-image probabilities over all annotated
        validation pixels (unweighted, without the Dice term; see
        :func:`biounet.train.losses.probability_cross_entropy`).
    recalibrate_bn : int
        Before each validation and at the end, batch-norm statistics are recomputed as exact
        means over this many training tiles (in batches of 4; 0: off, the running averages of
        training stay). The running averages follow the last few batches of two tiles, so
        the validation scores, and which model is ``best.pt``, swing from one validation to
        the next.
    checkpoint_minutes : float
        Write ``last.pt`` at least this often (and at every validation); 0: every iteration.
    checkpoint_every : int
        Also write ``last.pt`` every this many iterations (0: only by time and validation).
    log_every : int
        Iterations between lines of the metrics log.
    log : LogConfig
        Logs besides the metrics log (TensorBoard).
    init : str
        Start from a trained model's weights (fine-tuning): a checkpoint, a run folder or a
        shipped model's name (``biounet models``). Its network replaces ``model`` (the
        resolved configuration records it); a head of another number of classes starts
        afresh. Empty: random initialisation.
    seed : int
    deterministic : bool
        Deterministic algorithms (reproducible, possibly slower).
    amp : {"off", "bf16", "fp16"}
        Mixed precision on CUDA (ignored, with a warning, on a CPU).
    channels_last : bool
    compile : bool or "auto"
        ``torch.compile`` the network: ``true`` from the start, ``false`` never, ``"auto"``
        (the default) after a few eager iterations if the iterations still planned save more
        time than the compile costs (:mod:`biounet.train.compiling`).
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
    best_metric: str = "auto"
    recalibrate_bn: int = 64
    checkpoint_minutes: float = 5.0
    checkpoint_every: int = 0
    log_every: int = 10
    log: LogConfig = field(default_factory=LogConfig)
    init: str = ""
    seed: int = 0
    deterministic: bool = False
    amp: str = "off"
    channels_last: bool = False
    compile: bool | str = "auto"
    compile_backend: str = "inductor"

    def validate(self) -> TrainConfig:
        """Check ranges, choices, the network and the normalisation; returns self.

        Raises
        ------
        ValueError
            Naming the setting, its value and what it may be.
        biounet.core.checks.InputTypeError
            A count (``iterations``, ``batch_size``, ``tile``, ...) that is not an integer, in
            a configuration made in code (a YAML file's values are converted when it is read).
        """
        look_up(self.optim.name, OPTIMIZERS, "optimizer")
        look_up(self.optim.schedule, SCHEDULES, "schedule")
        look_up(self.amp, AMP_MODES, "amp mode")
        look_up(self.best_metric, BEST_METRICS, "best_metric")
        self.selection_metric()
        look_up(self.data.annotation, ANNOTATION_KINDS, "annotation kind")
        look_up(self.data.instance_target, INSTANCE_TARGETS, "data.instance_target")
        for name in ("iterations", "batch_size", "tile", "val_every", "log_every"):
            check_positive_int(getattr(self, name), name)
        o, loss, d = self.optim, self.loss, self.data  # weights: WeightConfig checks itself
        at_least_zero = {
            "recalibrate_bn": self.recalibrate_bn,
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
        d.check_instance_target()
        d.check_scale()
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
        if self.compile not in (True, False, "auto"):
            raise ValueError(f"compile must be true, false or auto, got {self.compile!r}")
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

    def selection_metric(self) -> str:
        """The metric that picks ``best.pt``: ``best_metric``, with ``"auto"`` resolved.

        ``"auto"`` is ``"ap_50"`` for instance annotations (the objects are what the user
        asked for) and ``"iou"`` otherwise. Instance scores need instance annotations.
        """
        if self.best_metric == "auto":
            return "ap_50" if self.data.annotation == "instances" else "iou"
        if self.best_metric in ("ap_50", "f1") and self.data.annotation != "instances":
            raise ValueError(
                f"best_metric={self.best_metric!r} scores objects and needs instance "
                f"annotations (data.annotation 'instances'), got {self.data.annotation!r}; "
                "use iou, dice, pixel_error or loss"
            )
        return self.best_metric

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
