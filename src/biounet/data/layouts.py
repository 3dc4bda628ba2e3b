"""Finding image/annotation pairs in the layouts users have.

(a) A folder of images and a folder of masks paired by file stem (``DATA/images/*.png`` with
    ``DATA/labels/*.png`` or ``DATA/masks/*``).
(b) Pairs of multi-page stacks (ISBI 2012 ``train-volume.tif`` / ``train-labels.tif``): each
    page is a 2D sample (or the whole stack one 3D sample, with ``ndim=3``). An image stack
    (``*volume*``, ``*image*``) pairs with the label stack (``*label*``, ``*mask*``) whose name
    is the same once that word is taken out (``train-volume`` with ``train-labels``); a stack
    without a partner, such as the ISBI ``test-volume.tif``, is left out (logged).
(c) The Cell Tracking Challenge layout: ``01/t000.tif`` with ground truth in
    ``01_GT/SEG/man_seg000.tif``; only annotated frames are used (2D slices of 3D frames,
    ``man_seg_000_012.tif``, are skipped).

Channels follow one rule (:func:`to_channels_first`): a declared ``channel_axis`` wins; else a
channel axis named by the file (TIFF/OME ``C`` or ``S``, colour PNG); an extra axis that the
file names ``Z`` or ``T`` (OME-TIFF, ImageJ) is not taken as channels but is an error; else
an array with one axis more than ``ndim`` has its channels last if the last axis has at most
4 entries (RGB, RGBA), else first if the first axis has at most 16; anything else is an error
asking for ``channel_axis``. Lazy images (Zarr) stay lazy: the channel axis is inserted or
moved by a view that reads only what is sliced.

Files in a dataset folder that biounet cannot read (e.g. ``.gif``) are skipped with a warning
that lists them.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from biounet.data.io import READ_EXTENSIONS, ImageFile, file_stem, is_image_file, read_image_file
from biounet.data.views import ChannelsFirst

__all__ = ["Sample", "find_dataset", "load_ctc", "load_pairs", "load_stacks", "to_channels_first"]

log = logging.getLogger(__name__)

MASK_FOLDERS = ("labels", "masks", "label", "mask", "annotations", "gt")
MAX_CHANNELS_FIRST = 16


@dataclass
class Sample:
    """One image with (optionally) its annotation.

    ``image`` is ``(C, *S)`` (a NumPy array, or a lazy memmap/Zarr array or a lazy view of
    one: anything with ``shape``, ``dtype`` and NumPy slicing, and ``numpy.asarray`` loads
    it); ``annotation`` is ``(*S)`` or None; ``name`` identifies it in messages and outputs.
    """

    name: str
    image: Any
    annotation: np.ndarray | None = None
    image_path: Path | None = None
    annotation_path: Path | None = None


def _declared_depth_or_time(axes: str, ndim: int) -> str | None:
    """The ``Z`` or ``T`` that a file names as its one axis beyond ``ndim`` spatial axes."""
    spatial = "YX" if ndim == 2 else "ZYX"
    extra = [a for a in axes if a not in spatial]
    return extra[0] if len(extra) == 1 and extra[0] in "ZT" else None


def to_channels_first(
    image: ImageFile | np.ndarray | Any,
    ndim: int,
    *,
    channel_axis: int | None = None,
    name: str = "image",
) -> Any:
    """Return ``image`` as ``(C, *S)`` with ``ndim`` spatial axes (see the module's rule).

    Parameters
    ----------
    image : ImageFile or array-like
        An image as read (its declared axes are used), or an array.
    ndim : {2, 3}
        Spatial axes.
    channel_axis : int, optional
        The channel axis of ``image``, if declared.
    name : str
        For messages (an ``ImageFile`` gives its path).

    Returns
    -------
    array-like, shape ``(C, *S)``
        A NumPy array (a view where possible) for NumPy input; for a lazy array (Zarr, ...)
        the array itself when it already is channels-first, else a lazy view that reads only
        what is sliced (``numpy.asarray`` loads it).
    """
    if isinstance(image, ImageFile):
        data, axes, name = image.data, image.axes, str(image.path)
    else:
        data, axes = image, None
    shape = tuple(data.shape)
    lazy = not isinstance(data, np.ndarray)
    if channel_axis is None and axes is not None and len(axes) == len(shape):
        found = [i for i, a in enumerate(axes) if a in "CS"]
        if len(found) == 1:
            channel_axis = found[0]
        elif not found and len(shape) == ndim + 1:
            letter = _declared_depth_or_time(axes, ndim)
            if letter is not None:
                what = "depth (Z)" if letter == "Z" else "time (T)"
                fix = (
                    "use data.ndim=3 for a 3D image"
                    if letter == "Z" and ndim == 2
                    else "split it into one file per frame"
                )
                raise ValueError(
                    f"{name}: the file declares axes {axes} (shape {shape}): its extra axis is "
                    f"{what}, not channels; {fix}, or declare data.channel_axis "
                    f"(channel_axis={axes.index(letter)}) to read it as channels"
                )
    if channel_axis is not None:
        if not -len(shape) <= channel_axis < len(shape):
            raise ValueError(
                f"{name}: channel_axis {channel_axis} is out of range for shape {shape}"
            )
        c = channel_axis % len(shape)
        if lazy:
            data = data if c == 0 else ChannelsFirst(data, c)
        else:
            data = np.moveaxis(data, c, 0)
    elif len(shape) == ndim:
        data = ChannelsFirst(data, None) if lazy else data[None]
    elif len(shape) == ndim + 1 and shape[-1] <= 4:
        data = ChannelsFirst(data, len(shape) - 1) if lazy else np.moveaxis(data, -1, 0)
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


def _unreadable_in(folder: Path) -> list[Path]:
    """Files of ``folder`` (not hidden) in formats biounet does not read."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and not is_image_file(p)
    )


def _images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    files = sorted(p for p in folder.iterdir() if is_image_file(p))
    skipped = _unreadable_in(folder)
    shown = ", ".join(p.name for p in skipped[:10]) + (" ..." if len(skipped) > 10 else "")
    if not files:
        found = f"; found only {shown}, in formats it cannot read" if skipped else ""
        raise ValueError(
            f"{folder}: the folder holds no images ({', '.join(READ_EXTENSIONS)}){found}"
        )
    if skipped:
        log.warning(
            "%s: skipping %d file(s) in formats biounet cannot read: %s (it reads %s)",
            folder,
            len(skipped),
            shown,
            ", ".join(READ_EXTENSIONS),
        )
    return files


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
    missing = [p for p in images if mask_dir is not None and file_stem(p) not in masks]
    if missing and mask_dir is not None:
        unreadable = {file_stem(q): q for q in _unreadable_in(Path(mask_dir))}
        named = []
        for p in missing[:5]:
            other = unreadable.get(file_stem(p))
            named.append(
                f"{p.name} ({other.name} is there, but biounet cannot read {other.suffix!r} "
                "files; convert it to .png or .tif)"
                if other is not None
                else p.name
            )
        shown = ", ".join(named) + (" ..." if len(missing) > 5 else "")
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
        data, axes = data[None], ("Q" + axes) if axes else None
    elif axes and len(axes) == data.ndim and axes[0] in "CS":
        # pages along a later axis (e.g. CZYX): bring the first page-like axis to the front
        k = next((i for i, a in enumerate(axes) if a in "ZTQ"), None)
        if k is not None:
            data, axes = np.moveaxis(data, k, 0), axes[k] + axes[:k] + axes[k + 1 :]
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


_VOLUME_WORD = re.compile(r"volumes?|images?", re.IGNORECASE)
_LABEL_WORD = re.compile(r"labels?|masks?", re.IGNORECASE)


def _stack_role(path: Path) -> tuple[str, str] | None:
    """``("labels" | "volume", key)`` from a stack's name; the key is the name less that word.

    >>> _stack_role(Path("train-labels.tif")), _stack_role(Path("test-volume.tif"))
    (('labels', 'train'), ('volume', 'test'))
    """
    stem = file_stem(path)
    for role, word in (("labels", _LABEL_WORD), ("volume", _VOLUME_WORD)):
        m = word.search(stem)
        if m:
            return role, (stem[: m.start()] + stem[m.end() :]).strip("-_. ").lower()
    return None


def _pair_stacks(files: list[Path]) -> tuple[list[tuple[Path, Path]], list[Path], list[Path]]:
    """Pair image stacks with label stacks by key: ``(pairs, volumes, labels)``."""
    vols: list[Path] = []
    labs: list[Path] = []
    key: dict[Path, str] = {}
    for p in files:
        role = _stack_role(p)
        if role is not None:
            (labs if role[0] == "labels" else vols).append(p)
            key[p] = role[1]
    pairs = []
    for v in vols:
        same = [q for q in labs if key[q] == key[v]]
        if len(same) == 1:
            pairs.append((v, same[0]))
    if not pairs and len(vols) == 1 and len(labs) == 1 and not (key[vols[0]] and key[labs[0]]):
        pairs = [(vols[0], labs[0])]  # one of each, one of them named by its role alone
    return pairs, vols, labs


def _stack_samples(
    pairs: list[tuple[Path, Path]],
    vols: list[Path],
    labs: list[Path],
    *,
    ndim: int,
    channel_axis: int | None,
) -> list[Sample]:
    used = {p for pair in pairs for p in pair}
    for v in vols:
        if v not in used:
            log.info("%s: an image stack with no label stack of the same name; not used", v)
    for q in labs:
        if q not in used:
            log.info("%s: a label stack with no image stack of the same name; not used", q)
    samples = []
    for v, q in pairs:
        log.info("stacks: %s with %s", v.name, q.name)
        samples += load_stacks(v, q, ndim=ndim, channel_axis=channel_axis)
    return samples


def _from_file(
    root: Path, labels: str | Path | None, *, ndim: int, channel_axis: int | None
) -> list[Sample]:
    """A dataset named by its image stack (and, optionally, its label stack)."""
    if labels is not None:
        return load_stacks(root, labels, ndim=ndim, channel_axis=channel_axis)
    role = _stack_role(root)
    if role is not None and role[0] == "labels":
        raise ValueError(
            f"{root}: this looks like a label stack; give the image stack, with the labels "
            "beside it or as the labels argument"
        )
    siblings = sorted(p for p in root.parent.iterdir() if p != root and is_image_file(p))
    partners = [
        q
        for q in siblings
        if (r := _stack_role(q)) is not None and r[0] == "labels" and role and r[1] == role[1]
    ]
    if len(partners) != 1:
        listed = ", ".join(q.name for q in partners) or "none"
        raise ValueError(
            f"{root}: expected one label stack beside it with the same name but 'labels' for "
            f"'volume' (e.g. train-volume.tif with train-labels.tif); found {listed}. Give the "
            "label stack explicitly (labels=...)"
        )
    return load_stacks(root, partners[0], ndim=ndim, channel_axis=channel_axis)


def find_dataset(
    path: str | Path,
    *,
    labels: str | Path | None = None,
    ndim: int = 2,
    channel_axis: int | None = None,
) -> list[Sample]:
    """Load a dataset from ``path`` in whichever layout it has (see the module docstring).

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
        The images' channel axis, if declared (see :func:`to_channels_first`).

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
        return _from_file(root, labels, ndim=ndim, channel_axis=channel_axis)
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
    files = sorted(p for p in root.iterdir() if is_image_file(p))
    pairs, vols, labs = _pair_stacks(files)
    if pairs:
        return _stack_samples(pairs, vols, labs, ndim=ndim, channel_axis=channel_axis)
    if not any(root.iterdir()):
        raise ValueError(f"{root}: the folder is empty")
    found = ""
    if vols or labs:
        found = (
            f"; found image stacks [{', '.join(p.name for p in vols)}] and label stacks "
            f"[{', '.join(p.name for p in labs)}], but none share a name (train-volume.tif "
            "pairs with train-labels.tif)"
        )
    raise ValueError(
        f"{root}: no dataset layout recognised; expected images/ with labels/ or masks/, a Cell "
        "Tracking Challenge sequence (01/ with 01_GT/SEG/), or a pair of stacks "
        f"(*volume*.tif and *labels*.tif){found}"
    )
