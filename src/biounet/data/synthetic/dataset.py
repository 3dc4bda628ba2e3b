"""Lists of seeded synthetic ``(image, labels)`` pairs, each image from its own child seed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from biounet.core.checks import look_up
from biounet.data.synthetic.cells import make_cells
from biounet.data.synthetic.membranes import make_membranes

__all__ = ["make_dataset"]


def make_dataset(
    kind: str = "cells",
    n: int = 8,
    *,
    shape: Sequence[int] = (256, 256),
    seed: int | np.random.SeedSequence = 0,
    **options: Any,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """A list of ``n`` synthetic ``(image, labels)`` pairs, each seeded from ``seed``.

    Parameters
    ----------
    kind : {"cells", "membranes"}
        Generator: :func:`~biounet.data.synthetic.cells.make_cells` or
        :func:`~biounet.data.synthetic.membranes.make_membranes`.
    n : int
        Number of images.
    shape : sequence of int
        Shape of every image, 2D or 3D.
    seed : int or SeedSequence
        Root seed; image ``i`` uses child ``i`` of ``SeedSequence(seed).spawn(n)``, so the first
        images do not change when ``n`` grows.
    **options
        Keyword options of the generator, e.g. ``gap=2`` or ``membrane_width=(2, 5)``.

    Returns
    -------
    list of (image, labels)
        ``image`` float32 in [0, 1] and ``labels`` int32 instance labels (0 background or
        membrane, 1..k objects), both of shape ``shape``.

    Examples
    --------
    >>> data = make_dataset("membranes", 2, shape=(48, 48), seed=3)
    >>> [(im.shape, lab.dtype.name) for im, lab in data]
    [((48, 48), 'int32'), ((48, 48), 'int32')]
    """
    kind = look_up(kind, ["cells", "membranes"], "synthetic data kind")
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for child in root.spawn(n):
        if kind == "cells":
            out.append(make_cells(shape, seed=child, **options))
        else:
            image, _, cells = make_membranes(shape, seed=child, **options)
            out.append((image, cells))
    return out
