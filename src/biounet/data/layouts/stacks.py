"""Layout (b): multi-page stacks (ISBI 2012 ``train-volume.tif`` with ``train-labels.tif``).

An image stack (``*volume*``, ``*image*``) pairs with the label stack (``*label*``, ``*mask*``)
whose name is the same once that word is taken out; a stack without a partner, such as the
ISBI ``test-volume.tif``, is left out (logged).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from biounet.data.io import ImageFile, file_stem, is_image_file, read_image_file
from biounet.data.layouts.channels import sample_spacing, to_channels_first
from biounet.data.layouts.sample import Sample, annotation_array, check_same_size

__all__ = ["StackPairs", "load_paired_stacks", "load_stack_file", "load_stacks", "pair_stacks"]

log = logging.getLogger(__name__)

#: ``(pairs, image stacks, label stacks)``: what :func:`pair_stacks` finds among files
StackPairs = tuple[list[tuple[Path, Path]], list[Path], list[Path]]

_VOLUME_WORD = re.compile(r"volumes?|images?", re.IGNORECASE)
_LABEL_WORD = re.compile(r"labels?|masks?", re.IGNORECASE)


def load_stacks(
    image_stack: str | Path,
    label_stack: str | Path | None,
    *,
    ndim: int = 2,
    channel_axis: int | None = None,
) -> list[Sample]:
    """A multi-page image stack with its label stack: one 2D sample per page (``ndim=2``).

    With ``ndim=3`` the whole stack is one volume.

    Parameters
    ----------
    image_stack : path
        The image stack, ``(pages, Y, X)`` possibly with a channel axis.
    label_stack : path, optional
        Its labels, ``(pages, Y, X)``; None: images only.
    ndim : {2, 3}
        2: one sample per page (named ``stem[i]``); 3: the stack is one volume.
    channel_axis : int, optional
        The channel axis of a page (``ndim=2``) or of the volume (``ndim=3``), if declared.

    Returns
    -------
    list of Sample
    """
    fi = read_image_file(image_stack)
    fl = read_image_file(label_stack) if label_stack is not None else None
    label_path = fl.path if fl is not None else None
    if ndim == 3:
        img = to_channels_first(fi, 3, channel_axis=channel_axis)
        spacing = sample_spacing(fi, 3, channel_axis=channel_axis)
        ann = annotation_array(fl, 3) if fl is not None else None
        if ann is not None:
            check_same_size(img, ann, str(fi.path), str(label_path))
        return [Sample(file_stem(fi.path), img, ann, fi.path, label_path, spacing)]
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
        raise ValueError(f"{fi.path} has {len(data)} pages but {label_path} has {len(labels)}")
    samples = []
    for i in range(len(data)):
        page = ImageFile(data[i], axes[1:] if axes else None, fi.path, fi.spacing)
        img = to_channels_first(page, 2, channel_axis=channel_axis)
        spacing = sample_spacing(page, 2, channel_axis=channel_axis)
        ann = labels[i] if labels is not None else None
        name = f"{file_stem(fi.path)}[{i}]"
        if ann is not None:
            check_same_size(img, ann, name, f"{label_path}[{i}]")
        samples.append(Sample(name, img, ann, fi.path, label_path, spacing))
    return samples


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


def pair_stacks(files: list[Path]) -> StackPairs:
    """Pair image stacks with label stacks by name: ``(pairs, image stacks, label stacks)``.

    A stack is an image stack if its name holds ``volume`` or ``image``, a label stack if it
    holds ``label`` or ``mask``; the two pair when their names agree once that word is taken
    out. One image stack and one label stack, one of them named by its role alone
    (``volume.tif``, ``train-labels.tif``), pair too. Files of neither kind are ignored.
    """
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


def load_paired_stacks(found: StackPairs, *, ndim: int, channel_axis: int | None) -> list[Sample]:
    """The samples of the stack pairs that :func:`pair_stacks` found; the unpaired are logged."""
    pairs, vols, labs = found
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


def load_stack_file(
    root: Path, labels: str | Path | None, *, ndim: int, channel_axis: int | None
) -> list[Sample]:
    """A dataset named by its image stack ``root``, with ``labels`` or the label stack beside it.

    Raises
    ------
    ValueError
        ``root`` looks like a label stack, or no single label stack of the same name lies
        beside it (and ``labels`` is None).
    """
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
