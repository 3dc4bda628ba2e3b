"""TensorBoard event files of a run (``log.tensorboard``): its scalars and validation pictures.

Optional: needs the ``tensorboard`` package, which ``torch.utils.tensorboard`` writes with. The
metrics log (``metrics.jsonl``) stays the run's record; this is a view of it where many people
look, written beside it to ``RUN/tensorboard/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["PICTURES", "TensorBoardLog", "picture"]

#: validation images shown at each validation
PICTURES = 2
#: class colours of the pictures (RGB in [0, 1]); classes beyond them cycle
_COLOURS = np.array(
    [[0.0, 0.0, 0.0], [0.95, 0.75, 0.1], [0.1, 0.6, 0.95], [0.9, 0.2, 0.3], [0.3, 0.85, 0.35]]
)


def _writer(folder: Path, purge_step: int | None) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:  # torch raises it when the tensorboard package is missing
        raise ImportError(
            "log.tensorboard needs the tensorboard package: pip install 'biounet[tensorboard]' "
            "(or leave log.tensorboard false; metrics.jsonl is written either way)"
        ) from e
    return SummaryWriter(str(folder), purge_step=purge_step)


def picture(image: np.ndarray, classes: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """One validation image beside its truth, the predicted classes and their confidence.

    Parameters
    ----------
    image : numpy.ndarray, shape ``(C, *S)``
        The normalised image (its first channel is shown, stretched to [0, 1]).
    classes : numpy.ndarray of int, shape ``(*S)``
        The true classes (``-1``: unannotated, shown grey).
    probs : numpy.ndarray, shape ``(K, *S)``
        The predicted class probabilities.

    Returns
    -------
    numpy.ndarray of float32, shape ``(3, Y, 4 * X)``
        RGB panels in [0, 1]: image, truth, prediction (argmax), its probability. A volume
        (``S = (Z, Y, X)``) shows its middle plane.

    Examples
    --------
    >>> p = picture(np.zeros((1, 4, 5)), np.zeros((4, 5), int), np.full((2, 4, 5), 0.5))
    >>> p.shape, float(p.max()) <= 1
    ((3, 4, 20), True)
    """
    if classes.ndim == 3:  # a volume: its middle plane
        z = classes.shape[0] // 2
        image, classes, probs = image[:, z], classes[z], probs[:, z]
    g = np.asarray(image[0], np.float32)
    lo, hi = np.percentile(g, (1, 99)) if g.size else (0.0, 1.0)
    grey = np.clip((g - lo) / max(float(hi - lo), 1e-6), 0, 1)
    truth = _COLOURS[np.clip(classes, 0, None) % len(_COLOURS)]
    truth[classes < 0] = 0.5
    pred = _COLOURS[probs.argmax(0) % len(_COLOURS)]
    sure = np.repeat(probs.max(0)[..., None], 3, -1)
    panels = [np.repeat(grey[..., None], 3, -1), truth, pred, sure]
    rgb: np.ndarray = np.concatenate(panels, axis=1).transpose(2, 0, 1).astype(np.float32)
    return rgb


class TensorBoardLog:
    """Writes a run's scalars and validation pictures as TensorBoard events.

    Parameters
    ----------
    folder : Path
        Where the event files go (``RUN/tensorboard``).
    after : int, optional
        On resume, the iteration of the checkpoint: events logged after it (by the session
        that was interrupted, and that run again) are purged, as the metrics log drops its
        records past that iteration.

    Raises
    ------
    ImportError
        The tensorboard package is not installed (the message says how to install it).
    """

    def __init__(self, folder: Path, *, after: int | None = None) -> None:
        self.writer = _writer(folder, None if after is None else after + 1)

    def scalars(self, record: dict[str, Any]) -> None:
        """A metrics-log record: ``val_x`` as ``val/x``, the others as ``train/x``."""
        step = int(record["iteration"])
        for key, value in record.items():
            if key == "iteration" or not isinstance(value, (int, float)):
                continue
            tag = f"val/{key[4:]}" if key.startswith("val_") else f"train/{key}"
            self.writer.add_scalar(tag, float(value), step)
        self.writer.flush()

    def pictures(self, shown: list[tuple[str, np.ndarray]], step: int) -> None:
        """Pictures (:func:`picture`) by validation image name, at iteration ``step``."""
        for name, rgb in shown:
            self.writer.add_image(f"validation/{name}", rgb, step, dataformats="CHW")
        self.writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        self.writer.close()
