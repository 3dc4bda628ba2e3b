"""The network as other tools run it: input mirrored by the margin, output of the input's size.

biounet's :func:`~biounet.predict` mirrors the image at its borders and tiles it so that every
output pixel sees its full context (overlap-tile). A tool that runs a network on whole images
or on tiles of its own (deepImageJ, ilastik, bioimage.io) gets the same from
:class:`PaddedUNet`: it mirrors its input by the network's margin before the unpadded network,
so its output has the input's size. Tiled, each tile needs the margin as its halo (what the
bioimage.io package declares), and then equals biounet's result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from biounet.model.unet import UNet

__all__ = ["AxisSize", "PaddedUNet", "axis_sizes"]


class PaddedUNet(nn.Module):
    """A U-Net whose input is first mirrored by its margin on every side.

    Parameters
    ----------
    **config
        :class:`~biounet.model.unet.UNetConfig` fields (``UNetConfig.to_dict()``); the
        network is :attr:`net`.

    Notes
    -----
    ``forward``: ``(B, C, *S)`` -> logits ``(B, K, *S)``, where each spatial size ``S_i`` is a
    valid *output* size of the network (:func:`axis_sizes`: ``min + step * n``) and larger
    than the margin (mirroring does not repeat the border pixel, as biounet's tiling).
    """

    def __init__(self, **config: Any) -> None:
        super().__init__()
        self.net = UNet.from_config(config)
        margins = self.net.margins if self.net.config.padding == "valid" else (0,) * self.net.ndim
        # F.pad takes (last axis: before, after), (the one before it: ...), ...
        self.pad = tuple(m for margin in reversed(margins) for m in (margin, margin))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K, *S)`` of an input ``(B, C, *S)``."""
        if any(self.pad):
            x = F.pad(x, self.pad, mode="reflect")
        return self.net(x)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class AxisSize:
    """The sizes :class:`PaddedUNet` takes along one spatial axis, px.

    ``min + step * n`` for ``n >= 0``; ``halo``: the context a tile needs on each side (the
    margin), which a tiling tool crops from each tile's output.
    """

    min: int
    step: int
    halo: int


def axis_sizes(net: UNet) -> list[AxisSize]:
    """Per spatial axis, the input sizes of ``PaddedUNet`` around ``net``, and its halo.

    The halo is the margin rounded up to a multiple of half the step, so that a tile of a
    taken size plus both halos is again a taken size (a tiling tool adds the halos to the
    tile it wants); the smallest size is more than twice the halo (a tile keeps an output
    after both halos are cropped) and more than the margin (mirroring needs it).

    >>> [(a.min, a.step, a.halo) for a in axis_sizes(UNet.from_preset("ronneberger2015"))]
    [(196, 16, 96), (196, 16, 96)]
    """
    g = net.geometry
    out = []
    for i, margin in enumerate(net.margins):
        step = g.alignments[i]
        half = max(step // 2, 1)
        halo = half * -(-margin // half)
        if net.config.padding == "valid":
            lowest = net.output_shape(g.min_input_shape)[i]
        else:
            lowest = step
        size = lowest + step * max(0, -(-(2 * halo + 1 - lowest) // step))
        out.append(AxisSize(size, step, halo))
    return out
