"""Predictions and ground truth read as a task scores them: classes, membranes, instances.

A prediction comes as ``biounet predict`` writes it: ``(C, *S)`` probabilities, a ``(*S)``
float map, a 0/255 mask or integer classes or labels; a truth as a label image, a two-valued
mask or class indices. Each function turns one of them into the array a task's scorer needs
(:mod:`biounet.evaluation.semantic`, :mod:`~biounet.evaluation.cells`,
:mod:`~biounet.evaluation.membranes`); ``S`` is ``(Y, X)`` or ``(Z, Y, X)``.
"""

from __future__ import annotations

import logging

import numpy as np

from biounet.core.checks import check_probabilities
from biounet.data.maps import mask_classes

log = logging.getLogger(__name__)

__all__ = [
    "class_map",
    "membrane_prob",
    "pred_instances",
    "truth_classes",
    "truth_instances",
    "truth_membrane",
]


# ------------------------------------------------------------------------------ semantic
def class_map(pred: np.ndarray, ndim: int, threshold: float) -> np.ndarray:
    """The class of each pixel of a semantic prediction.

    Parameters
    ----------
    pred : numpy.ndarray, shape ``(C, *S)`` or ``(*S)``
        Probabilities (argmax; with two classes, class 1 where ``p[1] > threshold`` unless
        the threshold is 0.5), a float map (1 where ``p > threshold``), a 0/255 mask (0 and
        1, :func:`~biounet.data.maps.mask_classes`) or class indices.
    ndim : int
        The number of axes of the truth, ``len(S)``.
    threshold : float
        In (0, 1).

    Returns
    -------
    numpy.ndarray of int, shape ``(*S)``
    """
    if pred.ndim == ndim + 1:  # probabilities (C, *S)
        if pred.shape[0] == 2 and threshold != 0.5:
            return np.asarray((pred[1] > threshold), dtype=np.int64)
        classes: np.ndarray = pred.argmax(0)
        return classes
    if pred.dtype.kind == "f":
        return (pred > threshold).astype(np.int64)
    return mask_classes(pred)


def truth_classes(
    name: str,
    pred: np.ndarray,
    truth: np.ndarray,
    *,
    foreground: int | None,
    num_classes: int | None,
) -> np.ndarray:
    """The class map of a semantic ground truth.

    ``foreground`` given: that value is class 1, all else 0. Else a two-valued mask
    (0/255) is binary with the larger value as foreground; else the values are class indices,
    unless the prediction has two classes only and the truth more values, as instance labels
    have: then every non-zero value is foreground (with a warning naming ``name``).

    Parameters
    ----------
    name : str
        The image, for the warning.
    pred : numpy.ndarray, shape ``(C, *S)`` or ``(*S)``
        Its prediction, to tell a binary task.
    truth : numpy.ndarray of int, shape ``(*S)``
    foreground : int, optional
        ``EvalOptions.truth_foreground``.
    num_classes : int, optional
        ``EvalOptions.num_classes``: given, the truth values are class indices.

    Returns
    -------
    numpy.ndarray of int64, shape ``(*S)``
    """
    if foreground is not None:
        return np.asarray(truth == foreground, dtype=np.int64)
    values = np.unique(truth)
    if num_classes is None and len(values) == 2 and values.max() > 1:
        return np.asarray(truth == values.max(), dtype=np.int64)
    binary_pred = (pred.ndim == truth.ndim + 1 and pred.shape[0] == 2) or (
        pred.ndim == truth.ndim and len(np.unique(pred)) <= 2
    )
    if num_classes is None and len(values) > 2 and binary_pred:
        log.warning(
            "%s: the truth holds %d values but the prediction 2 classes; scoring every non-zero "
            "truth value as foreground (instance labels? --task cells scores objects)",
            name,
            len(values),
        )
        return np.asarray(truth > 0, dtype=np.int64)
    return truth.astype(np.int64)


# ------------------------------------------------------------------------------- membranes
def membrane_prob(name: str, pred: np.ndarray, ndim: int, membrane_class: int) -> np.ndarray:
    """The membrane probability of a prediction.

    Parameters
    ----------
    name : str
        The image, for the errors.
    pred : numpy.ndarray, shape ``(C, *S)`` or ``(*S)``
        Probabilities (``pred[membrane_class]``), a membrane probability map, or a class map
        as ``predict`` writes it: 0/255 (255 = class 1) or class indices (1.0 where the class
        is ``membrane_class``).
    ndim : int
        The number of axes of the truth, ``len(S)``.
    membrane_class : int
        The class of the prediction that is membrane.

    Returns
    -------
    numpy.ndarray of float32 or wider, shape ``(*S)``
        In [0, 1]; the values of a float map are kept as they are.

    Raises
    ------
    ValueError
        ``membrane_class`` is not a class of the probabilities, or values outside [0, 1].
    """
    if pred.ndim == ndim + 1:  # probabilities (C, *S)
        if not 0 <= membrane_class < pred.shape[0]:
            raise ValueError(
                f"{name}: membrane_class {membrane_class} is not a class of the probability "
                f"map of shape {pred.shape} (classes 0..{pred.shape[0] - 1})"
            )
        prob = np.asarray(pred[membrane_class])
    elif pred.dtype.kind == "f":
        prob = np.asarray(pred)
    else:  # a class map as predict writes it: 0/255 (255 = class 1) or class indices
        prob = (mask_classes(pred) == membrane_class).astype(np.float32)
    prob = prob.astype(np.result_type(prob.dtype, np.float32), copy=False)  # values kept
    check_probabilities(prob, f"{name}: a membrane probability")
    return prob


def truth_membrane(name: str, truth: np.ndarray, value: int) -> np.ndarray:
    """The membrane mask of a membrane ground truth: True where ``truth == value``.

    Parameters
    ----------
    name : str
        The image, for the error and the warning.
    truth : numpy.ndarray, shape ``(*S)``
        Two values at most, membrane and cells (ISBI label PNGs: membrane 0, cells 255).
    value : int
        The value of the membrane; a warning says when no pixel has it.

    Returns
    -------
    numpy.ndarray of bool, shape ``(*S)``

    Raises
    ------
    ValueError
        More than two values in ``truth``.
    """
    values = np.unique(truth)
    if len(values) > 2:
        raise ValueError(
            f"{name}: a membrane ground truth holds 2 values (membrane and cells), found "
            f"{len(values)}: {values[:10]}"
        )
    if value not in values:
        log.warning(
            "%s: no truth pixel has the membrane value %d (values: %s); set truth_foreground "
            "(--truth-foreground) to the value of the membranes",
            name,
            value,
            ", ".join(str(v) for v in values),
        )
    mask: np.ndarray = truth == value
    return mask


# ---------------------------------------------------------------------------------- cells
def truth_instances(truth: np.ndarray) -> np.ndarray:
    """The objects of a cells ground truth: its labels, or the components of a binary mask.

    A truth of two values at most, the larger above 1 (a 0/255 mask), is a mask: its
    objects are the connected components (face-connected) of its larger value.

    Parameters
    ----------
    truth : numpy.ndarray of int, shape ``(*S)``

    Returns
    -------
    numpy.ndarray of int, shape ``(*S)``
        Instance labels, 0 background.
    """
    labels = truth.astype(np.int64)
    if len(np.unique(labels)) <= 2 and labels.max() > 1:  # a binary truth mask
        from scipy import ndimage  # here: only binary truths need it

        labels = ndimage.label(labels == labels.max())[0]
    return labels


def pred_instances(pred: np.ndarray, ndim: int, threshold: float, min_size: int) -> np.ndarray:
    """The objects of a cells prediction.

    Parameters
    ----------
    pred : numpy.ndarray, shape ``(C, *S)`` or ``(*S)``
        Probabilities (the objects are every class but 0, pooled: a 3-class net's interior
        and boundary), a foreground probability map (float), a mask (two values: its
        non-zero pixels) or instance labels (kept as they are). The labels ``predict
        --instances`` writes (by the model's own rule) are the better thing to score.
    ndim : int
        The number of axes of the truth, ``len(S)``.
    threshold : float
        Foreground where the foreground probability exceeds it.
    min_size : int
        Objects made from probabilities or masks smaller than this (pixels) are removed.

    Returns
    -------
    numpy.ndarray of int, shape ``(*S)``
        Instance labels, 0 background (:func:`biounet.inference.postprocess.instances`).
    """
    # imported here: the package biounet.inference imports torch, which scoring needs not
    from biounet.inference import postprocess

    if pred.ndim == ndim + 1 or pred.dtype.kind == "f":
        probs = pred if pred.ndim == ndim + 1 else np.stack([1 - pred, pred])
        objects = tuple(range(1, probs.shape[0])) if probs.shape[0] > 2 else 1
        return postprocess.instances(
            probs, foreground_class=objects, threshold=threshold, min_size=min_size
        )
    if len(np.unique(pred)) <= 2:  # a mask
        return postprocess.instances(pred > 0, min_size=min_size)
    return pred.astype(np.int64)
