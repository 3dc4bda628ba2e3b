"""What a run carries from one iteration to the next, what its checkpoints hold, what it returns."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from biounet.inference.trained import TrainedModel
from biounet.train.budget import TimeBudget

__all__ = ["CheckpointMeta", "TrainResult", "TrainState"]


@dataclass
class TrainResult:
    """What :func:`fit` returns: the run folder, the trained model, the best validation.

    ``model`` is the network as training left it (the last iteration's weights, not
    ``best.pt``'s), with the training normalisation, so ``predict(result.model, image)``
    takes raw images as :func:`biounet.load`'s models do.
    """

    run: Path
    model: TrainedModel
    best: dict[str, Any] | None


@dataclass
class TrainState:
    """Where the run is: everything the loop changes from one iteration to the next.

    Attributes
    ----------
    iteration : int
        Optimiser steps done (the run's count, earlier sessions included).
    planned : int
        The iteration the run ends at: ``cfg.iterations``, or fewer to fit the time budget.
    best : dict or None
        The best validation so far: ``{"metric", "value", "iteration"}``.
    seconds_before : float
        Training time of earlier sessions of this run (resume), s.
    started, saved_at : float
        ``time.monotonic()`` when this session started and when ``last.pt`` was last written.
    losses, data_time, logged_at
        The window of the metrics log: losses since the last record, the time spent waiting
        for tiles, and when the last record was written.
    budget : TimeBudget or None
        The time budget and the speed it measured (None without ``max_minutes``).
    """

    iteration: int
    planned: int
    best: dict[str, Any] | None = None
    seconds_before: float = 0.0
    started: float = field(default_factory=time.monotonic)
    saved_at: float = field(default_factory=time.monotonic)
    losses: list[float] = field(default_factory=list)
    data_time: float = 0.0
    logged_at: float = field(default_factory=time.monotonic)
    budget: TimeBudget | None = None

    def seconds(self) -> float:
        """Training time of the whole run so far, s."""
        return self.seconds_before + time.monotonic() - self.started


@dataclass(frozen=True)
class CheckpointMeta:
    """What every checkpoint of a run holds beside the weights, for predict and resume."""

    normalize: dict[str, Any]  #: the intensity normalisation (Normalizer fields)
    class_names: list[str]
    tile: list[int]  #: the network input tile of training, px per axis
    train_config: dict[str, Any]  #: the whole configuration, as config.yaml holds it
    #: instance annotations: the rule that makes objects, and the object sizes it came from
    instances: dict[str, Any] | None = None
    #: the factor every image is resampled by before the network sees it (``data.scale``)
    scale: float = 1.0
    #: the voxel spacing per spatial axis that planned the network (None: isotropic, unknown)
    spacing: list[float] | None = None

    def entries(self) -> dict[str, Any]:
        """The checkpoint entries, by name."""
        return dataclasses.asdict(self)
