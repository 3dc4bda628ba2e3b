"""The numerical check of an export: its logits against the eager network's on random tiles."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from biounet.model.unet import UNet

__all__ = ["RTOL", "ExportCheckError", "check_export"]

#: the part of the allowed difference relative to the largest logit: float32's precision
#: (1.2e-7) accumulated over a network's ~20 layers of sums, with room to spare
RTOL = 1e-5


class ExportCheckError(RuntimeError):
    """The exported network's logits differ from the eager model's by more than allowed.

    Not a bad input but a failure of the exporter or the runtime: a ``RuntimeError``. Its
    message is one line that names the file, the difference and the tile.
    """


def check_export(
    net: UNet,
    run: Callable[[torch.Tensor], np.ndarray],
    shapes: list[tuple[int, ...]],
    atol: float,
    what: str,
) -> float:
    """Largest ``|exported - eager|`` over seeded random tiles; ExportCheckError if too large.

    Parameters
    ----------
    net : UNet
        The eager network, in eval mode on the CPU.
    run : callable
        The export loaded back: tile ``(N, C, *S)`` -> logits ``(N, K, *S_out)`` as NumPy.
    shapes : list of tuple of int
        Input shapes ``(N, C, *S)`` of the tiles to compare; each tile is drawn from a
        standard normal distribution with a fixed seed.
    atol : float
        The largest allowed difference of logits, plus :data:`RTOL` times the tile's largest
        ``|logit|``: float32 rounding grows with the values, and a trained network's logits
        reach the hundreds.
    what : str
        Names the export in the error message.

    Returns
    -------
    float
        The largest absolute difference over all tiles.
    """
    gen = torch.Generator().manual_seed(0)
    worst = 0.0
    for shape in shapes:
        x = torch.randn(shape, generator=gen)
        with torch.no_grad():
            ref = net(x).numpy()
        out = run(x)
        if out.shape != ref.shape:
            raise ExportCheckError(
                f"{what}: logits {out.shape} for tile {shape}, eager {ref.shape}"
            )
        diff = float(np.max(np.abs(out.astype(np.float64) - ref)))
        largest = float(np.abs(ref).max())
        allowed = atol + RTOL * largest
        if not diff <= allowed:  # also catches NaN
            raise ExportCheckError(
                f"{what} does not match the eager model: max |difference| of logits {diff:.3g} "
                f"> {allowed:.3g} (atol {atol:g} + {RTOL:g} x largest |logit| {largest:.3g}) "
                f"on tile {shape}; nothing was written"
            )
        worst = max(worst, diff)
    return worst
