"""Prediction files paired with ground-truth files by name, read, and stacks split into pages.

Predictions are paired with the truth by file stem, ignoring the suffixes ``biounet predict``
writes (``_mask``, ``_labels``, ``_probs``); where a folder holds several outputs of one image,
:data:`PREFERRED` says which one a task scores. A 3D ``(Z, Y, X)`` truth is scored page by
page (2D) unless asked to score it as one volume.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from biounet.data.io import file_stem, is_image_file, read_image

log = logging.getLogger(__name__)

__all__ = ["PREFERRED", "pair_files", "read_pairs"]

_SUFFIX = re.compile(r"_(mask|labels|probs|prob|pred|prediction|seg)$")

#: which of ``biounet predict``'s outputs of one image a task scores, first found first
PREFERRED = {
    "semantic": ("_mask", "_probs", "_labels"),
    "cells": ("_labels", "_probs", "_mask"),
    "membranes": ("_probs", "_mask"),
}


def _key(path: Path) -> str:
    """The name an image file pairs by: its stem without ``predict``'s suffix."""
    return _SUFFIX.sub("", file_stem(path))


def _is_stack(a: Any) -> bool:
    """A ``(Z, Y, X)`` stack of pages (not a ``(Y, X, 3)`` colour image)."""
    return len(a.shape) == 3 and a.shape[-1] > 4


def _is_folder(path: Path) -> bool:
    return path.is_dir() and path.suffix.lower() != ".zarr"  # a Zarr store is one image


def _images(path: Path, suffix: str | None = None) -> list[tuple[str, Path]]:
    """(key, file) for every image in a folder, or the one file ``path``.

    ``suffix`` keeps only files whose name without extension ends with it (e.g. ``_probs``).
    """
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if _is_folder(path):
        files = sorted(
            p
            for p in path.iterdir()
            if is_image_file(p)
            and (suffix is None or p.name.split(".")[0].endswith(suffix))
            and not p.name.split(".")[0].endswith("_overlay")  # pictures, not predictions
        )
        if not files:
            raise ValueError(f"{path}: the folder holds no images")
        return [(_key(p), p) for p in files]
    return [(_key(path), path)]


def _rank(path: Path, prefer: Sequence[str]) -> int:
    stem = path.name.split(".")[0]
    return next((i for i, s in enumerate(prefer) if stem.endswith(s)), len(prefer))


def _warn_unpaired(missing: list[str], extra: list[str]) -> None:
    for what, names in (
        ("ground-truth image(s) without a prediction", missing),
        ("prediction(s) without ground truth", extra),
    ):
        if names:
            log.warning(
                "%d %s, not scored: %s%s",
                len(names),
                what,
                ", ".join(names[:8]),
                " ..." if len(names) > 8 else "",
            )


def pair_files(
    pred: str | Path,
    truth: str | Path,
    *,
    pred_suffix: str | None = None,
    prefer: Sequence[str] = PREFERRED["semantic"],
) -> list[tuple[str, Path, Path]]:
    """Prediction files paired with truth files by stem: ``(name, prediction, truth)``.

    Where a folder holds several outputs of one image (``a_mask.png``, ``a_labels.tif``,
    ``a_probs.tif``), the first suffix of ``prefer`` found is scored. Images on one side only
    are named in a warning and not scored (so a held-out subset can be scored against a full
    ground-truth folder); no pair at all is an error. Two stack files (a 3D truth) pair
    whatever their names; :func:`read_pairs` splits them into pages.

    Parameters
    ----------
    pred, truth : str or pathlib.Path
        Folders of images, or image files.
    pred_suffix : str, optional
        Score only the predictions whose name without extension ends with it (``_probs``).
    prefer : sequence of str
        The suffixes of ``predict``'s outputs in order of preference (:data:`PREFERRED`).

    Returns
    -------
    list of (str, pathlib.Path, pathlib.Path)
        In the order of the truth files.

    Raises
    ------
    FileNotFoundError
        A path that does not exist.
    ValueError
        A folder without images, or no prediction paired with a truth image.
    """
    pred, truth = Path(pred), Path(truth)
    p_items, t_items = _images(pred, pred_suffix), _images(truth)
    if not _is_folder(pred) and not _is_folder(truth) and _is_stack(read_image(truth)):
        return [(t_items[0][0], pred, truth)]  # stack vs stack
    preds: dict[str, Path] = {}
    for k, f in sorted(p_items, key=lambda item: -_rank(item[1], prefer)):
        preds[k] = f  # the preferred output comes last and wins
    truths = {k for k, _ in t_items}
    if not set(preds) & truths:
        raise ValueError(
            f"{pred}: no prediction pairs with a ground-truth image of {truth} (paired by file "
            "name without extension and without _mask/_labels/_probs); predictions: "
            f"{', '.join(sorted(preds)[:5])}; truth: {', '.join(sorted(truths)[:5])}"
        )
    _warn_unpaired([k for k, _ in t_items if k not in preds], sorted(set(preds) - truths))
    return [(k, preds[k], f) for k, f in t_items if k in preds]


def _pages(name: str, pred: np.ndarray, truth: np.ndarray) -> list[tuple[str, Any, Any]]:
    """The pages of a truth stack and of its prediction, as 2D ``(name[i], prediction, truth)``.

    Parameters
    ----------
    name : str
        The stack's name; page ``i`` is ``name[i]``.
    pred : numpy.ndarray, shape ``(Z, Y, X)``, ``(Z, C, Y, X)`` or ``(C, Z, Y, X)``
        Maps, or the probabilities of ``predict`` on a stack (2D net) or of a 3D net.
    truth : numpy.ndarray, shape ``(Z, Y, X)``

    Raises
    ------
    ValueError
        A prediction whose pages do not match the truth's.
    """
    z, plane = truth.shape[0], truth.shape[1:]
    if pred.shape == truth.shape or (
        pred.ndim == 4 and pred.shape[0] == z and pred.shape[2:] == plane
    ):  # (Z, Y, X) maps, or (Z, C, Y, X) probabilities as predict writes them for a stack
        return [(f"{name}[{i}]", pred[i], truth[i]) for i in range(z)]
    if pred.ndim == 4 and pred.shape[1:] == truth.shape:  # (C, Z, Y, X) of a 3D net
        return [(f"{name}[{i}]", pred[:, i], truth[i]) for i in range(z)]
    raise ValueError(
        f"{name}: the prediction {pred.shape} does not match the truth stack {truth.shape} page "
        "by page; expected (Z, Y, X) maps or (Z, C, Y, X) / (C, Z, Y, X) probabilities"
    )


def _channels_first(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``(Z, C, Y, X)`` probabilities of a stack as ``(C, Z, Y, X)``, others unchanged."""
    if (
        pred.ndim == truth.ndim + 1 == 4
        and pred.shape[1:] != truth.shape
        and pred.shape[0] == truth.shape[0]
        and pred.shape[2:] == truth.shape[1:]
    ):
        return np.moveaxis(pred, 1, 0)
    return pred


def read_pairs(
    pred: str | Path,
    truth: str | Path,
    *,
    prefer: Sequence[str],
    volume: bool = False,
    pred_suffix: str | None = None,
    files: Sequence[tuple[str, Path, Path]] | None = None,
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The ``(name, prediction, truth)`` arrays of the files :func:`pair_files` pairs.

    A 3D truth ``(Z, Y, X)`` is split into its pages, named ``name[0]``, ``name[1]``, ...,
    with the prediction's pages: ``(Z, Y, X)`` maps, or ``(Z, C, Y, X)`` (``predict`` on a
    stack) or ``(C, Z, Y, X)`` probabilities. With ``volume`` it is kept whole, and
    ``(Z, C, Y, X)`` probabilities are then read as ``(C, Z, Y, X)``. The other parameters
    are those of :func:`pair_files`; ``files``, what it returned for them (it is not called
    again).
    """
    items: list[tuple[str, np.ndarray, np.ndarray]] = []
    if files is None:
        files = pair_files(pred, truth, pred_suffix=pred_suffix, prefer=prefer)
    for name, p_file, t_file in files:
        p, t = np.asarray(read_image(p_file)), np.asarray(read_image(t_file))
        if volume:
            items.append((name, _channels_first(p, t), t))
        elif _is_stack(t):
            items.extend(_pages(name, p, t))
        else:
            items.append((name, p, t))
    return items
