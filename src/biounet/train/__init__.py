"""Training: the loop, its losses, optimiser and schedule, time budget and distributed set-up.

``loop`` (``fit``: the loop read top to bottom), ``step`` (one optimiser step and its
precision), ``state`` (what the loop carries and returns), ``setup`` (ranks, resume checks,
data and network before the run folder is written), ``data`` (the split into training and
validation), ``optim`` (optimiser and learning-rate schedule), ``budget`` (the time budget),
``validate`` (scores during training), ``distributed`` (``torchrun``), ``losses`` (weighted
cross-entropy and Dice).
"""

from biounet.train.data import split
from biounet.train.loop import fit
from biounet.train.setup import build_model
from biounet.train.state import TrainResult, TrainState

__all__ = ["TrainResult", "TrainState", "build_model", "fit", "split"]
