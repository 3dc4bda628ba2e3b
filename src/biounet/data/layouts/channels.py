"""The one rule that puts an image's channel axis first: ``(C, *S)`` from whatever a file holds.

A declared ``channel_axis`` wins; else a channel axis named by the file (TIFF/OME ``C`` or
``S``, colour PNG); an extra axis that the file names ``Z`` or ``T`` (OME-TIFF, ImageJ) is not
taken as channels but is an error; else an array with one axis more than ``ndim`` has its
channels last if the last axis has at most 4 entries (RGB, RGBA), else first if the first axis
has at most :data:`MAX_CHANNELS_FIRST`; anything else is an error asking for ``channel_axis``.
Lazy images (Zarr) stay lazy: the channel axis is inserted or moved by a view that reads only
what is sliced.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from biounet.data.io import ImageFile
from biounet.data.views import ChannelsFirst

__all__ = [
    "COLOUR_CHANNELS",
    "MAX_CHANNELS_FIRST",
    "as_grey",
    "channel_axis_of",
    "sample_spacing",
    "to_channels_first",
]

#: the most entries a leading axis may have to be taken as channels without a declaration
MAX_CHANNELS_FIRST = 16


def _declared_depth_or_time(axes: str, ndim: int) -> str | None:
    """The ``Z`` or ``T`` that a file names as its one axis beyond ``ndim`` spatial axes."""
    spatial = "YX" if ndim == 2 else "ZYX"
    extra = [a for a in axes if a not in spatial]
    return extra[0] if len(extra) == 1 and extra[0] in "ZT" else None


def _declared_channel_axis(axes: str, shape: tuple[int, ...], ndim: int, name: str) -> int | None:
    """The channel axis that a file's axis letters name (``C`` or ``S``), or None.

    Raises ValueError when the one extra axis is named depth (``Z``) or time (``T``): reading
    it as channels would silently train on slices or frames as colours.
    """
    if len(axes) != len(shape):
        return None
    found = [i for i, a in enumerate(axes) if a in "CS"]
    if len(found) == 1:
        return found[0]
    if not found and len(shape) == ndim + 1:
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
    return None


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

    Examples
    --------
    >>> to_channels_first(np.zeros((5, 6, 3)), 2).shape  # RGB: channels last
    (3, 5, 6)
    >>> to_channels_first(np.zeros((5, 6)), 2).shape
    (1, 5, 6)
    """
    if isinstance(image, ImageFile):
        data, name = image.data, str(image.path)
    else:
        data = image
    shape = tuple(data.shape)
    c = channel_axis_of(image, ndim, channel_axis=channel_axis, name=name)
    lazy = not isinstance(data, np.ndarray)  # lazy: a view that reads only what is sliced
    if c is None:
        data = ChannelsFirst(data, None) if lazy else data[None]
    elif c != 0:
        data = ChannelsFirst(data, c) if lazy else np.moveaxis(data, c, 0)
    if len(data.shape) != ndim + 1:
        raise ValueError(f"{name}: shape {shape} with channel axis {c} is not {ndim}D")
    return data


def channel_axis_of(
    image: ImageFile | np.ndarray | Any,
    ndim: int,
    *,
    channel_axis: int | None = None,
    name: str = "image",
) -> int | None:
    """The axis of ``image`` that :func:`to_channels_first` takes as channels (the module's rule).

    Parameters are those of :func:`to_channels_first`.

    Returns
    -------
    int or None
        The channel axis, counted from 0; None when the image has no channel axis (one is
        added).

    Raises
    ------
    ValueError
        A declared axis out of range, an extra axis the file names Z or T, or a shape whose
        channel axis cannot be told.
    """
    if isinstance(image, ImageFile):
        shape, axes, name = tuple(image.data.shape), image.axes, str(image.path)
    else:
        shape, axes = tuple(image.shape), None
    if channel_axis is None and axes is not None:
        channel_axis = _declared_channel_axis(axes, shape, ndim, name)
    if channel_axis is not None:
        if not -len(shape) <= channel_axis < len(shape):
            raise ValueError(
                f"{name}: channel_axis {channel_axis} is out of range for shape {shape}"
            )
        return channel_axis % len(shape)
    if len(shape) == ndim:
        return None
    if len(shape) == ndim + 1 and shape[-1] <= 4:
        return len(shape) - 1
    if len(shape) == ndim + 1 and shape[0] <= MAX_CHANNELS_FIRST:
        return 0
    if len(shape) == ndim + 1:
        raise ValueError(
            f"{name}: shape {shape} has {len(shape)} axes but neither the first nor the last "
            f"looks like channels; declare channel_axis"
        )
    raise ValueError(
        f"{name}: shape {shape} has {len(shape)} axes; expected {ndim} spatial axes "
        f"({'Y, X' if ndim == 2 else 'Z, Y, X'}), optionally with one channel axis"
    )


def sample_spacing(
    image: ImageFile, ndim: int, *, channel_axis: int | None = None
) -> tuple[float, ...] | None:
    """The spacing of the spatial axes of ``to_channels_first(image, ndim)``, in their order.

    The file's axis letters say which spatial axis is which: the axes other than the channel
    axis (:func:`channel_axis_of`), in file order, looked up in :attr:`ImageFile.spacing`. For
    a 3D sample a single unnamed axis (``Q``, a plain page sequence) is the depth ``Z``.
    Without axis letters the spatial axes are taken as Y, X (2D) or Z, Y, X (3D).

    Parameters
    ----------
    image : ImageFile
        The image as read.
    ndim : {2, 3}
        Spatial axes of the sample.
    channel_axis : int, optional
        As for :func:`to_channels_first`.

    Returns
    -------
    tuple of float or None
        One size per spatial axis (e.g. ``(z, y, x)`` in µm); None unless the file declares
        every one of them (a 3D stack with only Y and X declared gives None).
    """
    need = "YX" if ndim == 2 else "ZYX"
    spacing = image.spacing
    if not spacing or any(a not in spacing for a in need):
        return None
    c = channel_axis_of(image, ndim, channel_axis=channel_axis)
    axes = image.axes
    if axes is not None and len(axes) == len(image.data.shape):
        spatial = "".join(a for i, a in enumerate(axes) if i != c)
        if ndim == 3 and "Z" not in spatial and spatial.count("Q") == 1:
            spatial = spatial.replace("Q", "Z")
    else:
        spatial = need
    if sorted(spatial) != sorted(need):
        return None
    return tuple(float(spacing[a]) for a in spatial)


#: channel counts of colour images (RGB, RGBA) that are read as grey where one channel is
#: expected: a training set mixing grey and colour images, a colour image given to a
#: one-channel model
COLOUR_CHANNELS = (3, 4)


def as_grey(image: Any) -> np.ndarray:
    """A colour image ``(3 or 4, *S)`` as grey ``(1, *S)``: the mean of red, green and blue.

    The one rule for colour where one channel is expected, the same at training and at
    prediction. Alpha is dropped; integer images stay in their dtype (rounded), so that the
    intensity normalisation treats grey and converted images alike.

    >>> as_grey(np.array([[[30]], [[60]], [[91]]], np.uint8)).tolist()
    [[[60]]]
    """
    a = np.asarray(image)
    if a.ndim < 3 or a.shape[0] not in COLOUR_CHANNELS:
        raise ValueError(
            f"as_grey takes a colour image (3 or 4 channels first), got shape {a.shape}"
        )
    grey: np.ndarray = a[:3].astype(np.float64).mean(axis=0, keepdims=True)
    if np.issubdtype(a.dtype, np.integer):
        return np.asarray(np.rint(grey), dtype=a.dtype)
    return np.asarray(grey, dtype=np.result_type(a.dtype, np.float32))
