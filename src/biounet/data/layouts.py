"""Finding image/annotation pairs in the layouts users have.

(a) A folder of images and a folder of masks paired by file stem (``DATA/images/*.png`` with
    ``DATA/labels/*.png`` or ``DATA/masks/*``).
(b) A pair of multi-page stacks (ISBI 2012 ``train-volume.tif`` / ``train-labels.tif``): each
    page is a 2D sample (or the whole stack one 3D sample, with ``ndim=3``).
(c) The Cell Tracking Challenge layout: ``01/t000.tif`` with ground truth in
    ``01_GT/SEG/man_seg000.tif``; only annotated frames are used (2D slices of 3D frames,
    ``man_seg_000_012.tif``, are skipped).

Channels follow one rule (:func:`to_channels_first`): a declared ``channel_axis`` wins; else a
channel axis named by the file (TIFF/OME ``C`` or ``S``, colour PNG); else an array with one
axis more than ``ndim`` has its channels last if the last axis has at most 4 entries (RGB,
RGBA), else first if the first axis has at most 16; anything else is an error asking for
``channel_axis``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .io import ImageFile, file_stem, is_image_file, read_image_file

__all__ = ["Sample", "find_dataset", "load_ctc", "load_pairs", "load_stacks", "to_channels_first"]

MASK_FOLDERS = ("labels", "masks", "label", "mask", "annotations", "gt")
MAX_CHANNELS_FIRST = 16


@dataclass
class Sample:
    """One image with (optionally) its annotation.

    ``image`` is ``(C, *S)`` (a NumPy array, or a lazy memmap/Zarr array); ``annotation``
    is ``(*S)`` or None; ``name`` identifies it in messages and outputs.
    """

    name: str
    image: Any
    annotation: np.ndarray | None = None
    image_path: Path | None = None
    annotation_path: Path | None = None


def to_channels_first(
    image: ImageFile | np.ndarray,
    ndim: int,
    *,
    channel_axis: int | None = None,
    name: str = "image",
) -> Any:
    """Return ``image`` as ``(C, *S)`` with ``ndim`` spatial axes (see the module's rule)."""
    if isinstance(image, ImageFile):
        data, axes, name = image.data, image.axes, str(image.path)
    else:
        data, axes = image, None
    shape = tuple(data.shape)
    if channel_axis is None and axes is not None and len(axes) == len(shape):
        found = [i for i, a in enumerate(axes) if a in "CS"]
        if len(found) == 1:
            channel_axis = found[0]
    if channel_axis is not None:
        if not -len(shape) <= channel_axis < len(shape):
            raise ValueError(
                f"{name}: channel_axis {channel_axis} is out of range for shape {shape}"
            )
        data = np.moveaxis(np.asarray(data), channel_axis, 0)
    elif len(shape) == ndim:
        data = data[None] if isinstance(data, np.ndarray) else np.asarray(data)[None]
    elif len(shape) == ndim + 1 and shape[-1] <= 4:
        data = np.moveaxis(np.asarray(data), -1, 0)
    elif len(shape) == ndim + 1 and shape[0] <= MAX_CHANNELS_FIRST:
        pass
    elif len(shape) == ndim + 1:
        raise ValueError(
            f"{name}: shape {shape} has {len(shape)} axes but neither the first nor the last "
            f"looks like channels; declare channel_axis"
        )
    else:
        raise ValueError(
            f"{name}: shape {shape} has {len(shape)} axes; expected {ndim} spatial axes "
            f"({'Y, X' if ndim == 2 else 'Z, Y, X'}), optionally with one channel axis"
        )
    if len(data.shape) != ndim + 1:
        raise ValueError(f"{name}: shape {shape} with channel axis {channel_axis} is not {ndim}D")
    return data


def _annotation_array(f: ImageFile, ndim: int) -> np.ndarray:
    a = np.asarray(f.data)
    if a.ndim == ndim + 1 and a.shape[-1] in (3, 4) and f.axes and f.axes.endswith("S"):
        if not (a[..., :3] == a[..., :1]).all():
            raise ValueError(f"{f.path}: a colour annotation image; save masks as single-channel")
        a = a[..., 0]
    if a.ndim != ndim:
        raise ValueError(f"{f.path}: annotation of shape {a.shape} is not {ndim}D")
    return a


def _check_sizes(image: Any, annotation: np.ndarray, img_name: str, ann_name: str) -> None:
    if tuple(image.shape[1:]) != tuple(annotation.shape):
        raise ValueError(
            f"size mismatch: {img_name} has spatial shape {tuple(image.shape[1:])} but "
            f"{ann_name} has {tuple(annotation.shape)}"
        )


def _images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    files = sorted(p for p in folder.iterdir() if is_image_file(p))
    if not files:
        raise ValueError(f"{folder}: the folder holds no images ({', '.join(_exts())})")
    return files


def _exts() -> tuple[str, ...]:
    from .io import READ_EXTENSIONS

    return READ_EXTENSIONS


def load_pairs(
    image_dir: str | Path,
    mask_dir: str | Path | None,
    *,
    ndim: int = 2,
    channel_axis: int | None = None,
) -> list[Sample]:
    """Images of ``image_dir`` paired by file stem with the annotations of ``mask_dir``.

    Without ``mask_dir`` the images come alone (for prediction). Every image must have an
    annotation; annotations without an image are ignored with no error.
    """
    images = _images_in(Path(image_dir))
    masks = {file_stem(p): p for p in _images_in(Path(mask_dir))} if mask_dir is not None else {}
    missing = [p.name for p in images if mask_dir is not None and file_stem(p) not in masks]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise ValueError(
            f"{mask_dir}: no annotation for {len(missing)} image(s): {shown} (annotations are "
            "paired with images by file name without extension)"
        )
    samples = []
    for p in images:
        img = to_channels_first(read_image_file(p), ndim, channel_axis=channel_axis)
        ann = None
        mp = masks.get(file_stem(p))
        if mp is not None:
            ann = _annotation_array(read_image_file(mp), ndim)
            _check_sizes(img, ann, str(p), str(mp))
        samples.append(Sample(file_stem(p), img, ann, p, mp))
    return samples


def load_stacks(
    image_stack: str | Path,
    label_stack: str | Path | None,
    *,
    ndim: int = 2,
    channel_axis: int | None = None,
) -> list[Sample]:
    """A multi-page image stack with its label stack: one 2D sample per page (``ndim=2``).

    With ``ndim=3`` the whole stack is one volume.
    """
    fi = read_image_file(image_stack)
    fl = read_image_file(label_stack) if label_stack is not None else None
    if ndim == 3:
        img = to_channels_first(fi, 3, channel_axis=channel_axis)
        ann = _annotation_array(fl, 3) if fl is not None else None
        if ann is not None:
            _check_sizes(img, ann, str(fi.path), str(fl.path if fl else ""))
        return [Sample(file_stem(fi.path), img, ann, fi.path, fl.path if fl else None)]
    data = np.asarray(fi.data)
    axes = fi.axes
    if data.ndim == 2:
        data, axes = data[None], ("Z" + axes) if axes else None
    labels = np.asarray(fl.data) if fl is not None else None
    if labels is not None and labels.ndim == 2:
        labels = labels[None]
    if labels is not None and len(labels) != len(data):
        raise ValueError(
            f"{fi.path} has {len(data)} pages but {fl.path if fl else ''} has {len(labels)}"
        )
    samples = []
    for i in range(len(data)):
        page = ImageFile(data[i], axes[1:] if axes else None, fi.path)
        img = to_channels_first(page, 2, channel_axis=channel_axis)
        ann = labels[i] if labels is not None else None
        name = f"{file_stem(fi.path)}[{i}]"
        if ann is not None:
            _check_sizes(img, ann, name, f"{fl.path if fl else ''}[{i}]")
        samples.append(Sample(name, img, ann, fi.path, fl.path if fl else None))
    return samples


_CTC_GT = re.compile(r"^man_seg(\d+)\.tiff?$")


def load_ctc(sequence: str | Path, *, ndim: int = 2) -> list[Sample]:
    """The annotated frames of a Cell Tracking Challenge sequence folder (e.g. ``.../01``)."""
    seq = Path(sequence)
    gt = seq.parent / f"{seq.name}_GT" / "SEG"
    if not seq.is_dir():
        raise FileNotFoundError(f"{seq}: no such folder")
    if not gt.is_dir():
        raise FileNotFoundError(f"{gt}: no ground-truth folder for the sequence {seq}")
    samples = []
    for mp in sorted(gt.iterdir()):
        m = _CTC_GT.match(mp.name)
        if not m:
            continue
        digits = m.group(1)
        candidates = [seq / f"t{digits}{ext}" for ext in (".tif", ".tiff")]
        ip = next((c for c in candidates if c.exists()), None)
        if ip is None:
            raise ValueError(f"{mp}: no frame t{digits}.tif in {seq}")
        img = to_channels_first(read_image_file(ip), ndim)
        ann = _annotation_array(read_image_file(mp), ndim)
        _check_sizes(img, ann, str(ip), str(mp))
        samples.append(Sample(f"{seq.name}/t{digits}", img, ann, ip, mp))
    if not samples:
        raise ValueError(f"{gt}: no full-frame annotations (man_segNNN.tif) found")
    return samples


def find_dataset(
    path: str | Path, *, ndim: int = 2, channel_axis: int | None = None
) -> list[Sample]:
    """Load a dataset from ``path`` in whichever layout it has (see the module docstring).

    ``path`` may be: a folder with ``images/`` and one of ``labels/``, ``masks/``; a Cell
    Tracking Challenge sequence folder (``01`` beside ``01_GT``) or its parent (all
    sequences); a folder holding exactly two stacks named ``*volume*``/``*labels*``.
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such file or folder")
    if not root.is_dir():
        raise ValueError(f"{root}: expected a folder (images/ + labels/, or a CTC sequence)")
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
    files = sorted(p for p in root.iterdir() if is_image_file(p))
    vol = [p for p in files if "volume" in p.name.lower() or "image" in p.name.lower()]
    lab = [p for p in files if "label" in p.name.lower() or "mask" in p.name.lower()]
    if len(vol) == 1 and len(lab) == 1:
        return load_stacks(vol[0], lab[0], ndim=ndim, channel_axis=channel_axis)
    if not any(root.iterdir()):
        raise ValueError(f"{root}: the folder is empty")
    raise ValueError(
        f"{root}: no dataset layout recognised; expected images/ with labels/ or masks/, a Cell "
        "Tracking Challenge sequence (01/ with 01_GT/SEG/), or a pair of stacks "
        "(*volume*.tif and *labels*.tif)"
    )
