"""The network as other tools run it: input mirrored by the margin, output of the input's size.

biounet's :func:`~biounet.predict` mirrors the image at its borders and tiles it so that every
output pixel sees its full context (overlap-tile). A tool that runs a network on whole images
or on tiles of its own (deepImageJ, ilastik, bioimage.io) gets the same from
:class:`PaddedUNet`: it mirrors its input by the network's margin before the unpadded network,
so its output has the input's size. Tiled, each tile needs a halo of at least the margin, and
tiles must start on the network's pooling grid (multiples of ``2**depth``): a valid U-Net's
output depends on where its pooling windows fall. :func:`axis_sizes` gives sizes and halos that
are multiples of that step, so tiles cut by the usual rule (inner blocks side by side, a halo
around each) stay on the grid and reproduce biounet's result exactly.
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
    ``forward``: ``(B, C, *S)`` -> logits ``(B, K, *S)`` for sizes ``S_i`` that are multiples
    of the pooling step ``2**depth`` (per axis: :func:`axis_sizes`), larger than the margin.
    The input is mirrored by the margin before and by the margin plus what the network needs
    to a valid size after (the extra outputs are cut off: a valid network's outputs for a
    longer input with the same start extend those of the shorter one).
    """

    def __init__(self, **config: Any) -> None:
        super().__init__()
        self.net = UNet.from_config(config)
        valid = self.net.config.padding == "valid"
        self.margins = tuple(self.net.margins) if valid else (0,) * self.net.ndim
        g = self.net.geometry
        # the extra after the margin that makes a size s (a multiple of the step) valid
        lowest = self.net.output_shape(g.min_input_shape) if valid else g.alignments
        self.extra = tuple(int(lo % a) for lo, a in zip(lowest, g.alignments))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K, *S)`` of an input ``(B, C, *S)``."""
        pad: list[int] = []
        for m, e in zip(reversed(self.margins), reversed(self.extra)):
            pad += [m, m + e]  # F.pad: the last axis first, (before, after)
        if any(pad):
            x = F.pad(x, pad, mode="reflect")
        y = self.net(x)  # the input's size plus the extra: cut that off (constant slices,
        # so a traced or exported network takes every size)
        index = (slice(None), slice(None)) + tuple(slice(0, -e if e else None) for e in self.extra)
        return y[index]  # type: ignore[no-any-return]


@dataclass(frozen=True)
class AxisSize:
    """The sizes :class:`PaddedUNet` takes along one spatial axis, px.

    ``min + step * n`` for ``n >= 0``; ``halo``: the context a tile needs on each side (the
    margin rounded up to the step), which a tiling tool crops from each tile's output.
    """

    min: int
    step: int
    halo: int


def axis_sizes(net: UNet) -> list[AxisSize]:
    """Per spatial axis, the input sizes of ``PaddedUNet`` around ``net``, and its halo.

    Sizes and halo are multiples of the pooling step, so that tiles cut with this halo start
    on the pooling grid; the smallest size is more than twice the halo (a tile keeps an
    output after both halos are cropped).

    >>> [(a.min, a.step, a.halo) for a in axis_sizes(UNet.from_preset("ronneberger2015"))]
    [(208, 16, 96), (208, 16, 96)]
    """
    out = []
    for margin, step in zip(net.margins, net.geometry.alignments):
        halo = step * -(-margin // step)
        out.append(AxisSize(2 * halo + step, step, halo))
    return out
