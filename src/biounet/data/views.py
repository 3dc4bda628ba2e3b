"""Lazy views of an image, read only where sliced: channels first, normalised, resampled."""

from __future__ import annotations

from typing import Any

import numpy as np

from biounet.data.normalize import apply_normalization
from biounet.data.resample import resample

__all__ = ["ChannelsFirst", "Normalized", "Resampled"]


class ChannelsFirst:
    """A lazy ``(C, *S)`` view of a lazy array (Zarr, ...): reads only what is sliced.

    ``source_axis`` is the array's channel axis, moved to the front; None inserts a channel
    axis of length 1. Indexing takes integers, slices (any step) and one Ellipsis, like the
    arrays it wraps; ``numpy.asarray`` loads the whole view.
    """

    def __init__(self, array: Any, source_axis: int | None) -> None:
        self.array = array
        self.source_axis = source_axis
        shape = tuple(int(n) for n in array.shape)
        if source_axis is None:
            self.shape: tuple[int, ...] = (1, *shape)
        else:
            self.shape = (shape[source_axis],) + shape[:source_axis] + shape[source_axis + 1 :]
        self.dtype = np.dtype(array.dtype)

    @property
    def ndim(self) -> int:
        """Number of axes (channels first)."""
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return (
            f"<lazy channels-first view {self.shape} {self.dtype} of {type(self.array).__name__}>"
        )

    def _full_key(self, key: Any) -> tuple[int | slice, ...]:
        key = key if isinstance(key, tuple) else (key,)
        if sum(k is Ellipsis for k in key) > 1:
            raise IndexError("an index can only have a single ellipsis ('...')")
        if any(k is Ellipsis for k in key):
            i = next(i for i, k in enumerate(key) if k is Ellipsis)
            key = key[:i] + (slice(None),) * (self.ndim - len(key) + 1) + key[i + 1 :]
        if len(key) > self.ndim:
            raise IndexError(f"too many indices for a view of shape {self.shape}")
        out: list[int | slice] = []
        for k in key:
            if isinstance(k, slice):
                out.append(k)
            elif isinstance(k, int | np.integer) and not isinstance(k, bool):
                out.append(int(k))
            else:
                raise TypeError(
                    f"a lazy image view takes integers and slices, got {k!r}; load it first "
                    "with numpy.asarray"
                )
        return tuple(out) + (slice(None),) * (self.ndim - len(out))

    def __getitem__(self, key: Any) -> np.ndarray:
        k = self._full_key(key)
        k0, rest = k[0], list(k[1:])
        if self.source_axis is None:
            block = np.asarray(self.array[tuple(rest)])
            out: np.ndarray = block[None][(k0,)]  # the channel axis has length 1
            return out
        rest.insert(self.source_axis, k0)
        block = np.asarray(self.array[tuple(rest)])
        if isinstance(k0, slice):  # bring the channel axis (where it ended up) to the front
            pos = sum(isinstance(r, slice) for r in rest[: self.source_axis])
            block = np.moveaxis(block, pos, 0)
        return block

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        out = self[...]
        return out.astype(dtype, copy=False) if dtype is not None else out


class Normalized:
    """A lazy view of ``(C, *S)`` data, normalised per channel on read: ``(x - offset) / scale``."""

    def __init__(self, array: Any, offset: np.ndarray, scale: np.ndarray) -> None:
        self.array = array
        self.shape = tuple(array.shape)
        self.dtype = np.dtype(np.float32)
        self.offset = offset.astype(np.float32)
        self.scale = scale.astype(np.float32)

    def __getitem__(self, key: tuple[Any, ...]) -> np.ndarray:
        x = self.array[key]  # key[0] selects the channels
        return apply_normalization(x, self.offset[key[0]], self.scale[key[0]])


class Resampled:
    """A lazy view of ``(C, *S)`` data resampled to the spatial ``shape``, computed on read.

    Each read computes the sliced region from the source pixels it needs (see
    :func:`biounet.data.resample.resample`), so the view of a large lazy image stays lazy and
    its tiles agree with the whole resampled image. Indexing takes integers and step-1
    slices; values are float32.
    """

    def __init__(self, array: Any, shape: tuple[int, ...]) -> None:
        self.array = array
        self.shape = (int(array.shape[0]), *(int(n) for n in shape))
        self.dtype = np.dtype(np.float32)

    @property
    def ndim(self) -> int:
        """Number of axes (channels first)."""
        return len(self.shape)

    def __repr__(self) -> str:
        return f"<lazy resampled view {self.shape} of {type(self.array).__name__}>"

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in key) or len(key) > self.ndim:
            raise IndexError(f"a resampled view takes up to {self.ndim} integers or slices")
        key = key + (slice(None),) * (self.ndim - len(key))
        region, squeeze = [], []
        for axis, (k, n) in enumerate(zip(key[1:], self.shape[1:]), start=1):
            if isinstance(k, int | np.integer) and not isinstance(k, bool):
                i = int(k) + n if k < 0 else int(k)
                if not 0 <= i < n:
                    raise IndexError(f"index {k} is out of bounds for axis {axis} of size {n}")
                region.append(slice(i, i + 1))
                squeeze.append(axis)
            elif isinstance(k, slice) and k.step in (None, 1):
                region.append(k)
            else:
                raise TypeError(f"a resampled view takes integers and step-1 slices, got {k!r}")
        out = resample(self.array, self.shape[1:], region)[key[0]]
        if squeeze:  # integer indices drop their axes (shifted by one if the channel went)
            drop = tuple(a - (0 if isinstance(key[0], slice) else 1) for a in squeeze)
            out = out.squeeze(axis=drop)
        return np.asarray(out)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        out = self[(slice(None),)]
        return out.astype(dtype, copy=False) if dtype is not None else out
