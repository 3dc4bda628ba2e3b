"""The class-balancing term ``w_c`` of the weight map: class frequencies and their inverse."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from biounet.core.checks import check_labels

__all__ = ["ClassWeights", "balanced_class_weights", "class_frequencies", "resolve_class_weights"]

#: the ``class_weights`` option of :func:`~biounet.data.weightmap.borders.weight_map`
ClassWeights = str | Sequence[float] | Mapping[int, float] | None


def class_frequencies(
    label_images: np.ndarray | Iterable[np.ndarray], *, background: int = 0
) -> np.ndarray:
    """Fraction of background and foreground pixels over one label image or a data set.

    Parameters
    ----------
    label_images : array or iterable of arrays
        One label image (2D or 3D), or several (any mix of shapes), as for
        :func:`~biounet.data.weightmap.borders.weight_map`.
    background : int, default 0
        Label value of the background.

    Returns
    -------
    (2,) array of float64
        ``[background, foreground]`` pixel fractions over all images together; they sum to 1.

    Examples
    --------
    >>> class_frequencies([np.array([[0, 0, 0, 1]]), np.array([[0, 2], [2, 2]])])
    array([0.5, 0.5])
    """
    images = [label_images] if isinstance(label_images, np.ndarray) else label_images
    counts = np.zeros(2, dtype=np.float64)
    n_images = 0
    for n_images, image in enumerate(images, start=1):
        arr = check_labels(image, f"label image {n_images - 1}", ndims=(2, 3), whole_floats=True)
        n_fg = np.count_nonzero(arr != background)
        counts += (arr.size - n_fg, n_fg)
    if counts.sum() == 0:
        raise ValueError(f"class_frequencies needs at least one pixel; got {n_images} images of 0")
    fractions: np.ndarray = counts / counts.sum()
    return fractions


def balanced_class_weights(frequencies: Sequence[float] | np.ndarray) -> np.ndarray:
    """Inverse-frequency class weights, scaled so that the most frequent class gets 1.

    Parameters
    ----------
    frequencies : (K,) array_like of float
        Pixel counts or fractions per class (e.g. from ``class_frequencies``), non-negative,
        at least one positive.

    Returns
    -------
    (K,) array of float64
        ``max(frequencies) / frequencies``; a class with frequency 0 gets weight 0 (it has no
        pixels to weight).

    Examples
    --------
    >>> balanced_class_weights([0.8, 0.2])
    array([1., 4.])
    """
    try:
        f = np.asarray(frequencies, dtype=np.float64)
    except (TypeError, ValueError):
        f = np.full(0, np.nan)
    if f.ndim != 1 or f.size == 0 or not np.all(np.isfinite(f)) or np.any(f < 0) or f.max() == 0:
        raise ValueError(
            "frequencies must be a non-empty 1D sequence of finite non-negative numbers with at "
            f"least one positive; got {frequencies!r}"
        )
    out = np.zeros_like(f)
    np.divide(f.max(), f, out=out, where=f > 0)
    return out


def resolve_class_weights(class_weights: ClassWeights, fg: np.ndarray) -> tuple[float, float]:
    """``(w_background, w_foreground)`` from the ``class_weights`` option of ``weight_map``.

    Parameters
    ----------
    class_weights : "balanced", None, sequence of 2 floats or mapping {0: float, 1: float}
        See :func:`~biounet.data.weightmap.borders.weight_map`.
    fg : numpy.ndarray of bool, shape ``(*S)``
        The foreground of the image, for "balanced".

    Returns
    -------
    (float, float)
        The weights of background and foreground pixels.

    Raises
    ------
    ValueError
        Anything else than the forms above, or negative or non-finite weights.
    """
    expected = (
        "class_weights must be 'balanced', None, two weights [background, foreground] or a "
        f"mapping {{0: background, 1: foreground}}; got {class_weights!r}"
    )
    if class_weights is None:
        return 1.0, 1.0
    if isinstance(class_weights, str):
        if class_weights != "balanced":
            raise ValueError(expected)
        n_fg = int(np.count_nonzero(fg))
        w = balanced_class_weights([fg.size - n_fg, n_fg]) if fg.size else (1.0, 1.0)
        return float(w[0]), float(w[1])
    if isinstance(class_weights, Mapping):
        if set(class_weights) != {0, 1}:
            raise ValueError(expected)
        pair = [class_weights[0], class_weights[1]]
    else:
        pair = list(class_weights)
    try:
        values = np.asarray(pair, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(expected) from None
    if values.shape != (2,) or not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(expected + " (two finite, non-negative numbers)")
    return float(values[0]), float(values[1])
