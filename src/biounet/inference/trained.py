"""A trained model: the network together with what prediction needs beside its weights."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from biounet.data.normalize import Normalizer
from biounet.model.shapes import ShapeGeometry
from biounet.model.unet import UNet, UNetConfig

if TYPE_CHECKING:  # post-processing (scipy, scikit-image) is imported where it is used
    from biounet.inference.postprocess.rule import InstanceRule

__all__ = ["TrainedModel"]


@dataclass
class TrainedModel:
    """A trained U-Net with its intensity normalisation, class names and training tile.

    :func:`biounet.load` and :func:`biounet.fit` return one; :func:`biounet.predict` takes it
    (or a bare :class:`~biounet.UNet`, whose input is then used unchanged) and applies the
    normalisation before the network sees an image.

    Attributes
    ----------
    net : UNet
        The network (in eval mode when loaded).
    normalizer : Normalizer or None
        The intensity normalisation used in training, applied again by ``predict``; None
        passes images unchanged.
    class_names : list of str
        One name per output class (empty when none were stored).
    tile : tuple of int or None
        The network input tile of training, px per axis: a good tile for prediction.
    source : Path or None
        The checkpoint it was read from.
    instance_rule : InstanceRule or None
        How its probabilities become cells (target, seed depth ``h``, smallest object),
        derived from the sizes of its training objects; ``biounet predict`` applies it to
        instance labels of kind "cells". None (checkpoints from before it was stored): the
        defaults of :func:`biounet.inference.postprocess.instances`.
    scale : float
        The factor its training images were resampled by (``data.scale``; 1: not at all).
        ``predict`` resamples every image by it and brings the probabilities back to the
        image's own grid, so results are always in the image's pixels.
    spacing : tuple of float or None
        The voxel spacing of its training images per spatial axis (``(Z, Y, X)`` or
        ``(Y, X)``, µm or the files' unit; only the ratios matter), which planned the
        network's pooling; None: isotropic or unknown (checkpoints from before it was stored).
    """

    net: UNet
    normalizer: Normalizer | None = None
    class_names: list[str] = field(default_factory=list)
    tile: tuple[int, ...] | None = None
    source: Path | None = None
    instance_rule: InstanceRule | None = None
    scale: float = 1.0
    spacing: tuple[float, ...] | None = None

    @property
    def config(self) -> UNetConfig:
        """The network's configuration."""
        return self.net.config

    @property
    def geometry(self) -> ShapeGeometry:
        """The network's size arithmetic per axis (valid tiles, margins)."""
        return self.net.geometry

    @property
    def ndim(self) -> int:
        """Spatial dimensions of the network: 2 or 3."""
        return self.net.ndim

    @property
    def num_classes(self) -> int:
        """Output classes of the network."""
        return self.net.config.num_classes

    def to(self, device: str | torch.device) -> TrainedModel:
        """Move the network to ``device``; returns self."""
        self.net.to(device)
        return self

    def eval(self) -> TrainedModel:
        """Put the network into eval mode; returns self."""
        self.net.eval()
        return self
