"""Telling the dataset layouts apart: :func:`find_dataset` loads a path in whichever it has."""

from __future__ import annotations

from pathlib import Path

from biounet.data.io import READ_EXTENSIONS, is_image_file
from biounet.data.layouts.ctc import load_ctc
from biounet.data.layouts.pairs import load_pairs
from biounet.data.layouts.sample import Sample
from biounet.data.layouts.stacks import (
    StackPairs,
    load_paired_stacks,
    load_stack_file,
    pair_stacks,
)

__all__ = ["MASK_FOLDERS", "find_dataset"]

#: the names an annotation folder beside ``images/`` may have, in the order they are tried
MASK_FOLDERS = ("labels", "masks", "label", "mask", "annotations", "gt")


def find_dataset(
    path: str | Path,
    *,
    labels: str | Path | None = None,
    ndim: int = 2,
    channel_axis: int | None = None,
) -> list[Sample]:
    """Load a dataset from ``path`` in whichever layout it has (see :mod:`biounet.data.layouts`).

    Parameters
    ----------
    path : path
        A folder with ``images/`` and one of ``labels/``, ``masks/``, ...; a Cell Tracking
        Challenge sequence folder (``01`` beside ``01_GT``) or its parent (all sequences); a
        folder of stacks, ``*volume*`` paired with ``*labels*`` by name (the ISBI 2012
        download: ``train-volume.tif`` with ``train-labels.tif``; ``test-volume.tif``, which
        has no labels, is left out); or an image stack file itself, whose label stack of the
        same name lies beside it or is given as ``labels``.
    labels : path, optional
        The label stack, when ``path`` is an image stack file.
    ndim : {2, 3}
        Spatial axes of a sample (a stack: 2 = one sample per page, 3 = one volume).
    channel_axis : int, optional
        The images' channel axis, if declared (see
        :func:`~biounet.data.layouts.channels.to_channels_first`).

    Returns
    -------
    list of Sample
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such file or folder")
    is_store = root.is_dir() and root.suffix.lower() == ".zarr"
    if root.is_file() or is_store:
        if not is_image_file(root):
            raise ValueError(
                f"{root}: expected a dataset folder or an image stack "
                f"({', '.join(READ_EXTENSIONS)})"
            )
        return load_stack_file(root, labels, ndim=ndim, channel_axis=channel_axis)
    if labels is not None:
        raise ValueError(f"labels={labels}: give it with an image stack file, not a folder {root}")
    if (root / "images").is_dir():
        for name in MASK_FOLDERS:
            if (root / name).is_dir():
                return load_pairs(
                    root / "images", root / name, ndim=ndim, channel_axis=channel_axis
                )
        raise ValueError(
            f"{root}: found images/ but no annotation folder ({', '.join(MASK_FOLDERS)})"
        )
    if (root.parent / f"{root.name}_GT").is_dir():
        return load_ctc(root, ndim=ndim)
    sequences = sorted(p for p in root.iterdir() if p.is_dir() and (root / f"{p.name}_GT").is_dir())
    if sequences:
        return [s for seq in sequences for s in load_ctc(seq, ndim=ndim)]
    found = pair_stacks(sorted(p for p in root.iterdir() if is_image_file(p)))
    if found[0]:
        return load_paired_stacks(found, ndim=ndim, channel_axis=channel_axis)
    if not any(root.iterdir()):
        raise ValueError(f"{root}: the folder is empty")
    raise ValueError(_unrecognised_message(root, found))


def _unrecognised_message(root: Path, found: StackPairs) -> str:
    """Why ``root`` is no dataset: the layouts expected, and the unpaired stacks it holds."""
    _, vols, labs = found
    stacks = ""
    if vols or labs:
        stacks = (
            f"; found image stacks [{', '.join(p.name for p in vols)}] and label stacks "
            f"[{', '.join(p.name for p in labs)}], but none share a name (train-volume.tif "
            "pairs with train-labels.tif)"
        )
    return (
        f"{root}: no dataset layout recognised; expected images/ with labels/ or masks/, a Cell "
        "Tracking Challenge sequence (01/ with 01_GT/SEG/), or a pair of stacks "
        f"(*volume*.tif and *labels*.tif){stacks}"
    )
