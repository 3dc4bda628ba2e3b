"""Training: the loop, its losses, optimiser and schedule, time budget and distributed set-up."""

from biounet.train.loop import TrainResult, fit

__all__ = ["TrainResult", "fit"]
