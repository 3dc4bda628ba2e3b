"""The paper's weight map (eq. 2: class weights plus the border term) and separating borders.

``d1(x)`` and ``d2(x)`` are the distances from pixel ``x`` to the nearest pixel of the nearest
and of the second-nearest object (:mod:`biounet.data.weightmap.nearest`). By default the
formula holds at every pixel, as written: on an object pixel ``d1 = 0`` and ``d2`` is the
distance to the nearest other object, so the rims of touching objects are weighted as well as
the gaps between them. ``border_on="background"`` adds the border term on background pixels
only (the gaps), a common variant.
"""

from __future__ import annotations

import math

import numpy as np

from biounet.core.checks import Spacing, check_labels, check_spacing, look_up
from biounet.data.weightmap.classes import ClassWeights, resolve_class_weights
from biounet.data.weightmap.nearest import relabel, two_nearest

__all__ = ["BORDER_ON", "separation_borders", "weight_map", "with_separation"]

#: where ``weight_map`` adds the border term (the first is the default)
BORDER_ON = ("all", "background")


def weight_map(
    labels: np.ndarray,
    *,
    w0: float = 10.0,
    sigma: float = 5.0,
    class_weights: ClassWeights = "balanced",
    spacing: Spacing = None,
    background: int = 0,
    border_on: str = "all",
    tol: float = 1e-6,
) -> np.ndarray:
    """Pixel-wise loss weights ``w = w_c + w0 * exp(-(d1 + d2)**2 / (2 sigma**2))`` (paper, eq. 2).

    Parameters
    ----------
    labels : (Y, X) or (Z, Y, X) array of int
        Instance labels: ``background`` (default 0) or one non-negative label per object. Bool
        arrays and floats holding whole numbers are accepted.
    w0 : float, default 10.0
        Height of the border term (the paper's 10), in units of weight.
    sigma : float, default 5.0
        Width of the border term, in the units of ``spacing`` (the paper's 5 px).
    class_weights : "balanced", None, sequence of 2 floats or mapping {0: float, 1: float}
        ``w_c``, one weight for background (class 0) and one for foreground (class 1, all
        objects). "balanced": inverse class frequency of this image's foreground/background
        mask, scaled so that the more frequent class gets 1 (see ``balanced_class_weights``).
        None: ``w_c = 1``. Explicit weights, e.g. from ``class_frequencies`` over a data set.
    spacing : float or sequence of float, optional
        Pixel size per axis (e.g. ``(2.0, 0.5, 0.5)`` µm for ``(Z, Y, X)``); distances and
        ``sigma`` are in these units. Default: 1 per axis (pixels).
    background : int, default 0
        Label value of the background.
    border_on : {"all", "background"}, default "all"
        Where the border term is added. "all" (default, eq. 2 as written): on every pixel; on
        an object pixel ``d1 = 0`` and ``d2`` is the distance to the nearest other object, so
        object pixels next to another object are weighted too. "background": only on
        background pixels, i.e. on the gaps between objects; object pixels keep ``w = w_c``.
    tol : float, default 1e-6
        The border term is set to 0 where it is below ``tol`` (weight units); this bounds the
        work to a radius ``sigma * sqrt(2 ln(w0 / tol))`` around each object (about 5.7 sigma
        by default). ``tol=0`` computes the untruncated formula (slow on large images).

    Returns
    -------
    (Y, X) or (Z, Y, X) array of float32
        The weights, ``labels.shape``.

    Notes
    -----
    The border term needs two objects: with fewer than 2 objects it is 0 everywhere and
    ``w = w_c``. It is computed from the labels as given; to weight the separating gaps that
    ``with_separation`` inserts, pass ``weight_map(with_separation(labels))``.

    Examples
    --------
    Two 1-pixel cells 4 px apart: on the midpoint ``d1 = d2 = 2``, so the term is
    ``10 * exp(-16 / 50)``.

    >>> labels = np.zeros((3, 7), dtype=np.uint8)
    >>> labels[1, 1], labels[1, 5] = 1, 2
    >>> w = weight_map(labels, class_weights=None)
    >>> w.dtype, w.shape
    (dtype('float32'), (3, 7))
    >>> round(float(w[1, 3]), 4), round(1 + 10 * math.exp(-16 / 50), 4)
    (8.2615, 8.2615)

    On an object pixel ``d1 = 0`` and ``d2 = 4``; ``border_on="background"`` leaves it at ``w_c``:

    >>> round(float(w[1, 1]), 4), round(1 + 10 * math.exp(-16 / 50), 4)
    (8.2615, 8.2615)
    >>> float(weight_map(labels, class_weights=None, border_on="background")[1, 1])
    1.0
    """
    arr = check_labels(labels, ndims=(2, 3), whole_floats=True)
    w0 = _check_number("w0", w0, minimum=0.0)
    sigma = _check_number("sigma", sigma, minimum=0.0, strict=True)
    tol = _check_number("tol", tol, minimum=0.0)
    border_on = look_up(border_on, BORDER_ON, "border_on")
    sampling = check_spacing(spacing, arr.ndim)
    lab, objects = relabel(arr, background)

    fg = lab != 0
    w_bg, w_fg = resolve_class_weights(class_weights, fg)
    weights: np.ndarray = np.where(fg, np.float32(w_fg), np.float32(w_bg))
    if len(objects) < 2 or w0 == 0.0 or w0 <= tol:
        return weights  # no border term: it needs two objects and is everywhere below tol

    cutoff = math.inf if tol == 0.0 else sigma * math.sqrt(2.0 * math.log(w0 / tol))
    d1, d2 = two_nearest(lab, objects, sampling, cutoff)
    where = ~fg if border_on == "background" else np.ones_like(fg)
    dsum = d1[where] + d2[where]  # inf where no second object lies within the cut-off
    term = w0 * np.exp(-(dsum * dsum) / (2.0 * sigma * sigma))
    term[term < tol] = 0.0
    weights[where] += term.astype(np.float32)
    return weights


def separation_borders(
    labels: np.ndarray, *, width: float = 2.0, spacing: Spacing = None, background: int = 0
) -> np.ndarray:
    """Pixels that must be background so that different objects end up ``width`` apart.

    A pixel ``x`` (background or object) is marked when it lies on a short path between two
    different objects: ``d1(x) + d2(x) < width``, with ``d1``, ``d2`` the distances to the
    nearest and second-nearest object (``d1 = 0`` on an object pixel, so an object pixel is
    marked when another object is closer than ``width``). This is the paper's "separating
    background labels between touching cells", and it works for objects that touch with no gap.

    Parameters
    ----------
    labels : (Y, X) or (Z, Y, X) array of int
        Instance labels, as for ``weight_map``.
    width : float, default 2.0
        Smallest distance (units of ``spacing``, between pixel centres) allowed between two
        different objects. The default 2 leaves at least one background pixel between objects
        that touched, also diagonally; two objects that touch face to face lose one layer each.
    spacing : float or sequence of float, optional
        Pixel size per axis; default 1 (pixels).
    background : int, default 0
        Label value of the background.

    Returns
    -------
    (Y, X) or (Z, Y, X) array of bool
        True where the target must be background: object pixels closer than ``width`` to
        another object, and the background between such objects.

    Notes
    -----
    After ``with_separation`` every remaining pixel of an object is at least ``width`` from every
    other object's original pixels, so different objects are at least ``width`` apart. Objects
    already ``width`` or more apart are untouched (no pixel satisfies the rule, by the triangle
    inequality). An object thinner than ``width`` next to another object can lose all its pixels.

    Examples
    --------
    >>> labels = np.array([[1, 1, 1, 2, 2, 2, 0, 0, 3]])
    >>> separation_borders(labels).astype(int)
    array([[0, 0, 1, 1, 0, 0, 0, 0, 0]])
    """
    arr = check_labels(labels, ndims=(2, 3), whole_floats=True)
    width = _check_number("width", width, minimum=0.0, strict=True)
    sampling = check_spacing(spacing, arr.ndim)
    lab, objects = relabel(arr, background)
    if len(objects) < 2:
        return np.zeros(arr.shape, dtype=bool)
    d1, d2 = two_nearest(lab, objects, sampling, width)
    return np.asarray(d1 + d2 < width)


def with_separation(
    labels: np.ndarray, *, width: float = 2.0, spacing: Spacing = None, background: int = 0
) -> np.ndarray:
    """A copy of ``labels`` with the ``separation_borders`` set to ``background``.

    Parameters
    ----------
    labels : (Y, X) or (Z, Y, X) array of int
        Instance labels, as for ``weight_map``.
    width : float, default 2.0
        Smallest distance allowed between different objects (see ``separation_borders``).
    spacing : float or sequence of float, optional
        Pixel size per axis; default 1 (pixels).
    background : int, default 0
        Label value of the background.

    Returns
    -------
    (Y, X) or (Z, Y, X) array
        The labels, same shape and dtype as ``labels`` (bool and whole-number floats included).

    Examples
    --------
    >>> with_separation(np.array([[1, 1, 1, 2, 2, 2]]))
    array([[1, 1, 0, 0, 2, 2]])
    """
    mask = separation_borders(labels, width=width, spacing=spacing, background=background)
    out = np.array(labels, copy=True)
    out[mask] = background
    return out


def _check_number(name: str, value: float, *, minimum: float, strict: bool = False) -> float:
    """Return ``value`` as a float if finite and above ``minimum``, else raise ValueError."""
    v = float(value)
    if not math.isfinite(v) or v < minimum or (strict and v == minimum):
        relation = ">" if strict else ">="
        raise ValueError(f"{name} must be a finite number {relation} {minimum:g}; got {value!r}")
    return v
