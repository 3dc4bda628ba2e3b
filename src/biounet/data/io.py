"""Reading and writing images (masks, labels and probability maps: :mod:`biounet.data.maps`).

Formats: PNG (8/16-bit, grey, RGB(A), palette), TIFF (8/16/32-bit, float, multi-page stacks,
any number of axes, OME-TIFF/ImageJ axes), JPEG/BMP (read only), NumPy ``.npy``
(memory-mapped) and Zarr (read lazily, written chunked; OME-Zarr multiscale groups give their
full-resolution level). Every problem with a file raises an error that names the file.

Writers are atomic (:func:`biounet.core.files.atomic_path`): a temporary file (or, for Zarr,
folder) beside the target is flushed to disk and renamed, so an interruption never leaves a
half-written output. This module knows formats only; folders and file safety live in
:mod:`biounet.core.files`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from biounet.core.checks import InputTypeError
from biounet.core.files import atomic_path
from biounet.data.spacing import array_spacing, ome_zarr_spacing, spacing_to_store, tiff_spacing

READ_EXTENSIONS = (".png", ".tif", ".tiff", ".npy", ".zarr", ".jpg", ".jpeg", ".bmp")
WRITE_EXTENSIONS = (".png", ".tif", ".tiff", ".npy", ".zarr")
#: axis letters ``write_image(..., axes=...)`` accepts (TIFF and Zarr): time, channel, depth,
#: height, width, colour samples, and Q for an axis of unknown meaning
AXES_LETTERS = "TCZYXSQ"
__all__ = [
    "READ_EXTENSIONS",
    "ImageFile",
    "file_stem",
    "format_suffix",
    "is_image_file",
    "read_image",
    "read_image_file",
    "write_image",
]


@dataclass
class ImageFile:
    """An image as read from disk.

    Attributes
    ----------
    data : array-like
        ``numpy.ndarray`` (or a lazy ``numpy.memmap`` / Zarr array for ``.npy`` / ``.zarr``).
    axes : str or None
        Axis names where the file declares them (TIFF/OME-TIFF/ImageJ: e.g. ``"ZCYX"``,
        ``"YXS"``; PNG colour: ``"YXS"``; Zarr written by :func:`write_image` with ``axes``),
        upper case, one letter per axis of ``data``; ``Q`` marks an axis the file does not
        name (a plain page sequence, or a TIFF written without axes); None when unknown.
    path : Path
        Where it came from.
    spacing : dict of str to float, or None
        Pixel/voxel size per axis among Z, Y, X, e.g. ``{"Z": 2.2, "Y": 0.5, "X": 0.5}``, in µm
        (:mod:`biounet.data.spacing`); None where the file declares none (PNG, ``.npy``: always).
    """

    data: Any
    axes: str | None
    path: Path
    spacing: dict[str, float] | None = None


def format_suffix(path: Path) -> str:
    """The extension that picks a file's format, lower case (``.ome.tif`` is ``.tif``)."""
    name = path.name.lower()
    if name.endswith(".ome.tif") or name.endswith(".ome.tiff"):
        return ".tif"
    return path.suffix.lower()


def file_stem(path: str | os.PathLike[str]) -> str:
    """The file name without its extension (``.ome.tif``, ``.ome.zarr`` count as one).

    >>> file_stem("a/cell.ome.tif"), file_stem("b/t001.png"), file_stem("c/big.ome.zarr")
    ('cell', 't001', 'big')
    """
    p = Path(path)
    name = p.name
    for ext in (".ome.tiff", ".ome.tif", ".ome.zarr"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return p.stem


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """Whether the file name has an extension biounet reads (hidden files excluded)."""
    p = Path(path)
    return not p.name.startswith(".") and format_suffix(p) in READ_EXTENSIONS


def read_image_file(path: str | os.PathLike[str]) -> ImageFile:
    """Read an image with its axes (see :class:`ImageFile`); errors name the file."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    ext = format_suffix(p)
    if ext not in READ_EXTENSIONS:
        raise ValueError(
            f"{p}: unknown image format {p.suffix!r}; biounet reads {', '.join(READ_EXTENSIONS)}"
        )
    reader: Callable[[Path], ImageFile] = {
        ".png": _read_pillow,
        ".jpg": _read_pillow,
        ".jpeg": _read_pillow,
        ".bmp": _read_pillow,
        ".tif": _read_tiff,
        ".tiff": _read_tiff,
        ".npy": _read_npy,
        ".zarr": _read_zarr,
    }[ext]
    try:
        return reader(p)
    except (FileNotFoundError, ValueError) as e:
        if str(p) in str(e):
            raise
        raise ValueError(f"{p}: cannot read the file ({e}); is it corrupt or truncated?") from e
    except Exception as e:  # the readers raise many kinds of errors for bad files
        raise ValueError(
            f"{p}: cannot read the file ({type(e).__name__}: {e}); is it corrupt or truncated?"
        ) from e


def read_image(path: str | os.PathLike[str]) -> Any:
    """Read an image file into an array (lazy for ``.npy`` and ``.zarr``)."""
    return read_image_file(path).data


def _read_pillow(p: Path) -> ImageFile:
    from PIL import Image

    with Image.open(p) as im:
        im.load()
        mode = im.mode
        if mode in ("I;16", "I;16B", "I;16L"):
            arr = np.asarray(im, dtype=np.uint16)
        elif mode == "1":
            arr = np.asarray(im, dtype=np.uint8)
        elif mode in ("L", "P", "I", "F", "RGB", "RGBA", "LA"):
            arr = np.asarray(im)
        else:
            arr = np.asarray(im.convert("RGB"))
    return ImageFile(arr, "YXS" if arr.ndim == 3 else "YX", p)


def _read_tiff(p: Path) -> ImageFile:
    import tifffile

    with tifffile.TiffFile(p) as tif:
        series = tif.series[0]
        data = series.asarray()
        axes: str | None = series.axes.upper()
        spacing = tiff_spacing(tif)
    if axes is None or len(axes) != data.ndim:
        axes = None
    else:
        # drop length-1 axes that carry no information (e.g. T=1, C=1 in OME-TIFF)
        keep = [i for i, (a, n) in enumerate(zip(axes, data.shape)) if n > 1 or a in "YX"]
        if len(keep) != data.ndim:
            data = data.reshape([data.shape[i] for i in keep])
            axes = "".join(axes[i] for i in keep)
        # tifffile says Q for an unnamed axis and I for a plain page sequence: neither declares
        # what the axis is (planes, frames or channels), so both stay "Q" (unknown)
        axes = axes.replace("I", "Q")
    return ImageFile(data, axes, p, spacing)


def _read_npy(p: Path) -> ImageFile:
    return ImageFile(np.load(p, mmap_mode="r", allow_pickle=False), None, p)


def _read_zarr(p: Path) -> ImageFile:
    import zarr

    try:
        node = zarr.open(str(p), mode="r")
    except Exception as e:  # zarr raises GroupNotFoundError, JSON errors, ... for bad stores
        raise ValueError(
            f"{p}: not a Zarr array or group ({type(e).__name__}); is the folder empty, "
            "incomplete or not Zarr?"
        ) from e
    if hasattr(node, "shape"):
        declared = node.attrs.get("axes")
        axes = declared.upper() if isinstance(declared, str) else None
        axes = axes if axes and len(axes) == len(node.shape) else None
        return ImageFile(node, axes, p, array_spacing(node.attrs, axes, len(node.shape)))
    # a group: OME-Zarr multiscales give the full resolution first; else the only array
    attrs: dict[str, Any] = dict(node.attrs)
    multiscales: Any = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
    if multiscales:
        first = multiscales[0]
        names = [a.get("name", "?") if isinstance(a, dict) else a for a in first.get("axes", [])]
        axes = "".join(str(n).upper() for n in names) or None
        return ImageFile(node[first["datasets"][0]["path"]], axes, p, ome_zarr_spacing(first))
    arrays = [name for name, _ in node.arrays()]
    if len(arrays) != 1:
        raise ValueError(f"{p}: a Zarr group with arrays {arrays}; point to one of them")
    return ImageFile(node[arrays[0]], None, p)


# ---------------------------------------------------------------------------------- writing
def _check_axes(p: Path, axes: str | None, arr: np.ndarray) -> str | None:
    if axes is None:
        return None
    if not isinstance(axes, str):
        raise InputTypeError(f"{p}: axes must be a string such as 'CZYX', got {axes!r}")
    a = axes.upper()
    bad = sorted(set(a) - set(AXES_LETTERS))
    if len(a) != arr.ndim or bad or len(set(a.replace("Q", ""))) != len(a.replace("Q", "")):
        raise ValueError(
            f"{p}: axes {axes!r} do not fit an array of shape {arr.shape}; give one letter per "
            f"axis ({arr.ndim}), each at most once, from {AXES_LETTERS!r} "
            "(T time, C channel, Z depth, Y, X, S colour samples, Q unknown), e.g. 'CZYX'"
        )
    if "Y" not in a or "X" not in a:
        raise ValueError(f"{p}: axes {axes!r} need a Y and an X axis")
    return a


def _zarr_chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Chunks of up to 256 px along the last 3 axes (2 for a 2D array), 1 along the others."""
    k = min(len(shape), 3)
    lead = tuple(1 for _ in shape[:-k]) if k else ()
    return lead + tuple(max(1, min(n, 256)) for n in shape[len(shape) - k :])


def write_image(
    path: str | os.PathLike[str],
    array: Any,
    *,
    axes: str | None = None,
    spacing: Sequence[float] | None = None,
) -> Path:
    """Write ``array`` atomically as PNG, TIFF, ``.npy`` or Zarr (see :func:`atomic_path`).

    Parameters
    ----------
    path : path
        Target file; its extension picks the format: ``.png`` (2D grey, or RGB(A) uint8;
        uint8/uint16/bool), ``.tif``/``.tiff`` (any dtype and any number of axes,
        zlib-compressed; the shape is kept for 4D and more), ``.npy``, ``.zarr`` (a chunked Zarr
        array, up to 256 px per chunk along the last three axes; an existing ``.zarr`` is
        replaced).
    array : array-like
        The image; a lazy array is loaded.
    axes : str, optional
        TIFF and Zarr: the axis names, one letter per axis of ``array`` from ``"TCZYXSQ"``
        (T time, C channel, Z depth, Y, X, S colour samples, Q unknown), each at most once
        except Q, with Y and X present, e.g. ``"YX"``, ``"CYX"``, ``"ZYX"``, ``"CZYX"``,
        ``"ZCYX"``, ``"TZCYX"``. :func:`read_image_file` gives them back as
        :attr:`ImageFile.axes`. Without ``axes`` the shape is kept but the axes read back as
        ``Q`` (unknown) plus ``YX``. Ignored for PNG and ``.npy``.
    spacing : sequence of float, optional
        TIFF and Zarr: sizes in µm of the last 2 or 3 axes named Z, Y, X (else the trailing
        axes), e.g. ``(2.2, 0.5, 0.5)``: see :func:`~biounet.data.spacing.spacing_to_store`.

    Returns
    -------
    Path
        ``path``.
    """
    p = Path(path)
    ext = format_suffix(p)
    if ext not in WRITE_EXTENSIONS:
        raise ValueError(
            f"{p}: cannot write {p.suffix!r}; use one of {', '.join(WRITE_EXTENSIONS)}"
        )
    arr = np.asarray(array)
    axes = _check_axes(p, axes, arr) if ext in (".tif", ".tiff", ".zarr") else None
    stored = spacing_to_store(p, spacing if ext in (".tif", ".tiff", ".zarr") else None, axes, arr)
    if ext == ".png":
        if arr.dtype not in (np.uint8, np.uint16, np.bool_):
            raise ValueError(f"{p}: PNG holds 8- or 16-bit integers, got {arr.dtype}; use .tif")
        if not (
            arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4) and arr.dtype == np.uint8)
        ):
            raise ValueError(f"{p}: PNG holds a 2D grey or RGB(A) image, got shape {arr.shape}")
    if ext == ".zarr" and p.exists() and not p.is_dir():
        raise FileExistsError(f"{p}: a file is in the way of the Zarr folder; remove it first")
    with atomic_path(p) as tmp:
        if ext == ".png":
            from PIL import Image

            if arr.dtype == np.bool_:
                arr = arr.astype(np.uint8) * 255
            Image.fromarray(arr).save(tmp, format="PNG")
        elif ext in (".tif", ".tiff"):
            import tifffile

            # an empty dict (not None) makes tifffile record the shape, so 4D+ arrays come
            # back whole rather than as a flat sequence of pages
            metadata = ({"axes": axes} if axes else {}) | stored.tiff_metadata
            rgb = arr.ndim == 3 and arr.shape[-1] in (3, 4) and arr.dtype == np.uint8
            options: dict[str, Any] = {"compression": "zlib", **stored.tiff_options}
            options["photometric"] = "rgb" if rgb and axes in (None, "YXS") else "minisblack"
            tifffile.imwrite(tmp, arr, metadata=metadata, **options)
        elif ext == ".zarr":
            import zarr

            tmp.unlink()
            z = zarr.open_array(
                str(tmp), mode="w", shape=arr.shape, dtype=arr.dtype, chunks=_zarr_chunks(arr.shape)
            )
            z[...] = arr
            z.attrs.update(({"axes": axes} if axes else {}) | stored.zarr_attrs)
        else:
            with open(tmp, "wb") as f:
                np.save(f, arr, allow_pickle=False)
    return p
