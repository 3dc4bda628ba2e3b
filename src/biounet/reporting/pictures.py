"""Pictures for people: images scaled for viewing, and segmentations drawn over them.

:func:`display_scale` maps an image's 1st to 99.8th percentile to [0, 1] with the one
normalisation arithmetic of :mod:`biounet.data.normalize` (a ``"percentile"``
:class:`~biounet.data.normalize.Normalizer` over the whole array); :func:`overlay` draws a
class map or instance labels over it. ``predict`` writes its ``_overlay.png`` files with them,
and the report's gallery shows them.

A 3D volume is shown by :func:`orthoview`: its YX, ZX and ZY planes through one point
(:func:`ortho_planes`), the z axis stretched by the voxel anisotropy (:func:`z_stretch`) and
put together with guide lines where the planes cut (:func:`ortho_compose`); the point is
where the foreground is densest (:func:`densest_point`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from biounet.data.normalize import Normalizer, apply_normalization

__all__ = [
    "DISPLAY",
    "GAP",
    "GUIDE",
    "densest_point",
    "display_scale",
    "ortho_compose",
    "ortho_planes",
    "orthoview",
    "overlay",
    "z_stretch",
]

#: the scaling of pictures for viewing: the 1st percentile to 0, the 99.8th to 1
DISPLAY = Normalizer(mode="percentile", low=1.0, high=99.8)
#: the colour (uint8 RGB) of an orthogonal view's guide lines: a muted magenta, apart from the
#: yellow outlines, the red tint and the viridis weights
GUIDE = (170, 100, 170)
#: the dark gap (px) between the planes of an orthogonal view
GAP = 2


def display_scale(image: np.ndarray) -> np.ndarray:
    """``image`` scaled for viewing: its 1st percentile to 0, its 99.8th to 1, clipped.

    The statistics are those of the whole array taken as one channel (an RGB picture
    ``(Y, X, 3)`` is scaled as a whole), by :data:`DISPLAY`; the result is float32 in [0, 1].

    >>> display_scale(np.arange(1001.0))[[0, 10, 998, 1000]].round(3).tolist()
    [0.0, 0.0, 1.0, 1.0]
    """
    a = np.asarray(image)[None]  # one channel
    if not a.size:
        return np.zeros(a.shape[1:], np.float32)
    out: np.ndarray = np.clip(apply_normalization(a, *DISPLAY.stats(a))[0], 0, 1)
    return out


def overlay(
    image: np.ndarray, labels: np.ndarray, *, instances: bool = False, scaled: bool = False
) -> np.ndarray:
    """An RGB picture of a 2D image: the image in grey, objects tinted, their outlines drawn.

    Parameters
    ----------
    image : array-like, ``(C, Y, X)`` or ``(Y, X)``
        The first channel is shown, scaled by :func:`display_scale`.
    labels : numpy.ndarray of int, ``(Y, X)``
        A class map (objects > 0 tinted red) or, with ``instances``, instance labels (each
        object in its own colour).
    instances : bool
        Colour and outline each object of ``labels`` on its own (the colour of a label does
        not depend on the others, so the planes of one volume agree).
    scaled : bool
        ``image`` is already scaled for viewing, to [0, 1] (e.g. a plane of a volume scaled
        as a whole by :func:`display_scale`): shown as it is.

    Returns
    -------
    numpy.ndarray of uint8, ``(Y, X, 3)``
        Outlines are yellow.
    """
    from skimage.segmentation import find_boundaries

    img = np.asarray(image, dtype=np.float32)
    img = img[0] if img.ndim == 3 else img
    grey = np.clip(img, 0, 1) if scaled else display_scale(img)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    fg = labels > 0
    if instances and labels.max() > 0:
        rng = np.random.default_rng(0)
        colours = rng.uniform(0.3, 1.0, size=(int(labels.max()) + 1, 3))
        tint = colours[labels]
    else:
        tint = np.broadcast_to(np.array([1.0, 0.2, 0.2]), rgb.shape)
    rgb = np.where(fg[..., None], 0.6 * rgb + 0.4 * tint, rgb)
    edges = (
        find_boundaries(labels, mode="inner") if instances else find_boundaries(fg, mode="inner")
    )
    rgb[edges] = [1.0, 1.0, 0.0]
    out: np.ndarray = (rgb * 255).round().astype(np.uint8)
    return out


def z_stretch(spacing: Sequence[float] | None) -> int:
    """How many times to repeat each z plane for display so that objects look round.

    ``spacing`` is ``(Z, Y, X)`` (any unit, only the ratio counts); the result is
    ``round(spacing[0] / spacing[1])`` when that ratio is at least 1.5, else 1 (also for None,
    an empty or 2D spacing, or one that is not positive).

    >>> z_stretch([2.2, 1, 1]), z_stretch([1.4, 1, 1]), z_stretch(None), z_stretch([])
    (2, 1, 1, 1)
    """
    if spacing is None or len(spacing) != 3 or min(spacing) <= 0:
        return 1
    ratio = float(spacing[0]) / float(spacing[1])
    return round(ratio) if ratio >= 1.5 else 1


def densest_point(foreground: np.ndarray, sigma: float | Sequence[float] = 4.0) -> tuple[int, ...]:
    """The foreground voxel where ``foreground`` is densest, by its Gaussian-smoothed mask.

    Parameters
    ----------
    foreground : numpy.ndarray, ``(Z, Y, X)`` (any number of axes)
        Nonzero where there are objects (e.g. labels).
    sigma : float or sequence of float
        The smoothing (px, per axis or for all): about the objects' radius.

    Returns
    -------
    tuple of int
        One index per axis: the foreground voxel where the smoothed mask is largest (the
        first of equals; outside the array counts as background); the centre of the array
        when there is no foreground.
    """
    from scipy import ndimage as ndi

    mask = np.asarray(foreground) > 0
    if not mask.any():
        return tuple(n // 2 for n in mask.shape)
    smooth = ndi.gaussian_filter(mask.astype(np.float32), sigma, mode="constant")
    smooth[~mask] = -1.0  # a foreground voxel: not the background amid a cluster
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(smooth)), mask.shape))


def ortho_planes(
    volume: np.ndarray, at: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three planes of ``volume`` through ``at = (z, y, x)``, each a 2D picture.

    Parameters
    ----------
    volume : numpy.ndarray, ``(Z, Y, X)`` or ``(Z, Y, X, 3)``
    at : (int, int, int)
        The voxel the planes cut through.

    Returns
    -------
    yx, zx, zy : numpy.ndarray
        ``(Y, X[, 3])`` at ``z``, ``(Z, X[, 3])`` at ``y`` and ``(Y, Z[, 3])`` at ``x`` (the ZY
        plane transposed: z runs horizontally).
    """
    v = np.asarray(volume)
    if v.ndim not in (3, 4) or (v.ndim == 4 and v.shape[3] != 3):
        raise ValueError(f"expected a (Z, Y, X) or (Z, Y, X, 3) volume, got shape {v.shape}")
    z, y, x = (int(i) for i in at)
    if not all(0 <= i < n for i, n in zip((z, y, x), v.shape[:3])):
        raise ValueError(f"the cut point {(z, y, x)} is outside the volume {v.shape[:3]}")
    return v[z], v[:, y], np.swapaxes(v[:, :, x], 0, 1)


def ortho_compose(
    planes: tuple[np.ndarray, np.ndarray, np.ndarray],
    at: Sequence[int],
    *,
    stretch: int = 1,
    gap: int = GAP,
    guide: float | Sequence[float] | None = GUIDE,
) -> np.ndarray:
    """Three planes (as from :func:`ortho_planes`) put together as one orthogonal view.

    The YX plane is at the top left, the ZX plane below it and the ZY plane to its right,
    ``gap`` dark (0) px apart; the bottom-right corner stays dark. The z axis of the ZX and ZY
    planes is stretched ``stretch`` times by repeating each plane (nearest neighbour, so labels
    stay labels). Guide lines one pixel wide mark where the other planes cut each view: row
    ``y`` across the YX and ZY planes and column ``x`` down the YX and ZX planes (both
    through the gap, so they read as one line), row ``z`` of the ZX plane and column ``z`` of
    the ZY plane (the middle of the stretched plane ``z``).

    Parameters
    ----------
    planes : (yx, zx, zy)
        ``(Y, X[, 3])``, ``(Z, X[, 3])`` and ``(Y, Z[, 3])`` arrays, all grey or all RGB.
    at : (int, int, int)
        The cut point ``(z, y, x)`` of the planes, for the guide lines.
    stretch : int
        Display px per z plane (>= 1).
    gap : int
        Dark px between the planes.
    guide : float or sequence of float or None
        The guide lines' value: an RGB triple (its mean on grey planes) or one number; None:
        no guide lines.

    Returns
    -------
    numpy.ndarray, ``(Y + gap + Z * stretch, X + gap + Z * stretch[, 3])``
        Of the planes' dtype.
    """
    if int(stretch) < 1 or gap < 0:
        raise ValueError(f"stretch must be >= 1 and gap >= 0, got {stretch} and {gap}")
    k = int(stretch)
    yx, zx, zy = (np.asarray(p) for p in planes)
    zx, zy = np.repeat(zx, k, axis=0), np.repeat(zy, k, axis=1)
    ny, nx, nz = yx.shape[0], yx.shape[1], zx.shape[0]
    out = np.zeros((ny + gap + nz, nx + gap + nz, *yx.shape[2:]), np.result_type(yx, zx, zy))
    out[:ny, :nx], out[ny + gap :, :nx], out[:ny, nx + gap :] = yx, zx, zy
    if guide is not None:
        value = np.asarray(guide, dtype=np.float64)
        if out.ndim == 2 and value.ndim:
            value = value.mean()
        z, y, x = (int(i) for i in at)
        zs = z * k + k // 2
        out[y, :], out[:, x] = value, value  # the ZX plane's cut in YX and ZY, the ZY's in YX, ZX
        out[ny + gap + zs, :nx], out[:ny, nx + gap + zs] = value, value  # the YX plane's cut
    return out


def orthoview(
    volume: np.ndarray,
    at: Sequence[int],
    *,
    stretch: int = 1,
    gap: int = GAP,
    guide: float | Sequence[float] | None = GUIDE,
) -> np.ndarray:
    """An orthogonal view of a volume: its YX, ZX and ZY planes through ``at`` in one picture.

    :func:`ortho_planes` then :func:`ortho_compose`; see there for the layout and guide lines.
    To draw something per plane first (e.g. outlines with :func:`overlay`), call the two
    yourself.

    Parameters
    ----------
    volume : numpy.ndarray, ``(Z, Y, X)`` or ``(Z, Y, X, 3)``
    at : (int, int, int)
        The voxel ``(z, y, x)`` the planes cut through.
    stretch, gap, guide
        As for :func:`ortho_compose`.

    Returns
    -------
    numpy.ndarray, ``(Y + gap + Z * stretch, X + gap + Z * stretch)`` or with a last axis of 3
        Of ``volume``'s dtype.

    >>> orthoview(np.zeros((4, 10, 12), np.uint8), (2, 5, 6), stretch=2).shape
    (20, 22)
    """
    return ortho_compose(ortho_planes(volume, at), at, stretch=stretch, gap=gap, guide=guide)
