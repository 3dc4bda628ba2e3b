"""Synthetic datasets written as ordinary image folders (``images/`` + ``masks/``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from biounet.data.io import write_image
from biounet.data.maps import write_labels
from biounet.data.synthetic.dataset import make_dataset

__all__ = ["write_synthetic"]


def write_synthetic(
    folder: str | Path, n: int, *, shape: tuple[int, int] = (256, 256), seed: int = 0
) -> Path:
    """Write ``n`` synthetic cell images and their instance labels as ``images/`` + ``masks/``.

    Images are 8-bit PNG (the generator's [0, 1] intensities scaled to 0..255), labels 16-bit
    PNG (0 background, 1..k cells). Returns ``folder``.
    """
    root = Path(folder)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for i, (image, labels) in enumerate(make_dataset("cells", n, shape=shape, seed=seed)):
        name = f"cells_{i:03d}.png"
        write_image(root / "images" / name, np.clip(np.rint(image * 255), 0, 255).astype(np.uint8))
        write_labels(root / "masks" / name, labels)
    return root
