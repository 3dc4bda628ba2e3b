"""Reading and writing images, masks, label images and probability maps.

Formats: PNG (8/16-bit, grey, RGB(A), palette), TIFF (8/16/32-bit, float, multi-page stacks,
OME-TIFF axes), JPEG/BMP (read only), NumPy ``.npy`` (memory-mapped) and Zarr (read lazily;
OME-Zarr multiscale groups give their full-resolution level). Every problem with a file raises
an error that names the file.

Writers are atomic: they write a temporary file beside the target and rename it, so an
interruption never leaves a half-written output.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

READ_EXTENSIONS = (".png", ".tif", ".tiff", ".npy", ".zarr", ".jpg", ".jpeg", ".bmp")
WRITE_EXTENSIONS = (".png", ".tif", ".tiff", ".npy")

__all__ = [
    "READ_EXTENSIONS",
    "ImageFile",
    "atomic_path",
    "file_stem",
    "is_image_file",
    "read_image",
    "read_image_file",
    "write_image",
    "write_labels",
    "write_mask",
    "write_probabilities",
]


@dataclass
class ImageFile:
    """An image as read from disk.

    Attributes
    ----------
    data : array-like
        ``numpy.ndarray`` (or a lazy ``numpy.memmap`` / Zarr array for ``.npy`` / ``.zarr``).
    axes : str or None
        Axis names where the file declares them (TIFF/OME-TIFF: e.g. ``"ZCYX"``, ``"YXS"``; PNG
        colour: ``"YXS"``), upper case, one letter per axis of ``data``; None when unknown.
    path : Path
        Where it came from.
    """

    data: Any
    axes: str | None
    path: Path


def _suffix(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".ome.tif") or name.endswith(".ome.tiff"):
        return ".tif"
    return path.suffix.lower()


def file_stem(path: str | os.PathLike[str]) -> str:
    """The file name without its extension (``.ome.tif`` counts as one extension).

    >>> file_stem("a/cell.ome.tif"), file_stem("b/t001.png")
    ('cell', 't001')
    """
    p = Path(path)
    name = p.name
    for ext in (".ome.tiff", ".ome.tif"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return p.stem


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """Whether the file name has an extension biounet reads (hidden files excluded)."""
    p = Path(path)
    return not p.name.startswith(".") and _suffix(p) in READ_EXTENSIONS


def read_image_file(path: str | os.PathLike[str]) -> ImageFile:
    """Read an image with its axes (see :class:`ImageFile`); errors name the file."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    ext = _suffix(p)
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
    if axes is None or len(axes) != data.ndim:
        axes = None
    else:
        # drop length-1 axes that carry no information (e.g. T=1, C=1 in OME-TIFF)
        keep = [i for i, (a, n) in enumerate(zip(axes, data.shape)) if n > 1 or a in "YX"]
        if len(keep) != data.ndim:
            data = data.reshape([data.shape[i] for i in keep])
            axes = "".join(axes[i] for i in keep)
        # tifffile says Q for unknown and I for a plain page sequence: treat as frames/planes
        axes = axes.replace("I", "Z").replace("Q", "Z")
    return ImageFile(data, axes, p)


def _read_npy(p: Path) -> ImageFile:
    return ImageFile(np.load(p, mmap_mode="r", allow_pickle=False), None, p)


def _read_zarr(p: Path) -> ImageFile:
    import zarr

    node = zarr.open(str(p), mode="r")
    if hasattr(node, "shape"):
        return ImageFile(node, None, p)
    # a group: OME-Zarr multiscales give the full resolution first; else the only array
    attrs: dict[str, Any] = dict(node.attrs)
    multiscales: Any = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
    if multiscales:
        first = multiscales[0]
        path = first["datasets"][0]["path"]
        axes = (
            "".join(
                str(a.get("name", "?") if isinstance(a, dict) else a).upper()
                for a in first.get("axes", [])
            )
            or None
        )
        return ImageFile(node[path], axes, p)
    arrays = [name for name, _ in node.arrays()]
    if len(arrays) != 1:
        raise ValueError(f"{p}: a Zarr group with arrays {arrays}; point to one of them")
    return ImageFile(node[arrays[0]], None, p)


# ---------------------------------------------------------------------------------- writing
def _umask() -> int:
    """The process's file-creation mask (from /proc where it can be read without changing it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``.

    On an error (or an interruption) the temporary file is removed and ``path`` is untouched.
    """
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"{target}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise PermissionError(f"{target}: the folder {parent} is not writable")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp makes it private (0600); give it the usual mode
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def ensure_folder(path: str | os.PathLike[str], what: str = "output folder") -> Path:
    """Create folder ``path`` (and its parents) if needed; a clear error if it cannot be written.

    Raises FileExistsError when ``path`` or one of its parents is a file, PermissionError
    when the folder cannot be created or written.
    """
    p = Path(path)
    for q in (p, *p.parents):
        if q.exists() and not q.is_dir():
            raise FileExistsError(
                f"{p}: cannot use it as the {what}; {q} is a file. Give a folder path"
            )
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PermissionError(f"{p}: cannot create the {what} ({e.strerror})") from e
    if not os.access(p, os.W_OK | os.X_OK):
        raise PermissionError(f"{p}: the {what} is not writable")
    return p


def write_image(
    path: str | os.PathLike[str], array: np.ndarray, *, axes: str | None = None
) -> Path:
    """Write ``array`` atomically as PNG (2D grey or RGB(A), 8/16-bit), TIFF (any) or ``.npy``.

    TIFF keeps every dtype and any number of axes (``axes``, e.g. ``"ZYX"``, is recorded as
    ImageJ/OME metadata where possible, zlib-compressed); PNG takes uint8/uint16 only.
    """
    p = Path(path)
    ext = _suffix(p)
    arr = np.asarray(array)
    if ext not in WRITE_EXTENSIONS:
        raise ValueError(
            f"{p}: cannot write {p.suffix!r}; use one of {', '.join(WRITE_EXTENSIONS)}"
        )
    if ext == ".png":
        if arr.dtype not in (np.uint8, np.uint16, np.bool_):
            raise ValueError(f"{p}: PNG holds 8- or 16-bit integers, got {arr.dtype}; use .tif")
        if not (
            arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4) and arr.dtype == np.uint8)
        ):
            raise ValueError(f"{p}: PNG holds a 2D grey or RGB(A) image, got shape {arr.shape}")
    with atomic_path(p) as tmp:
        if ext == ".png":
            from PIL import Image

            if arr.dtype == np.bool_:
                arr = arr.astype(np.uint8) * 255
            Image.fromarray(arr).save(tmp, format="PNG")
        elif ext in (".tif", ".tiff"):
            import tifffile

            metadata = {"axes": axes} if axes else None
            rgb = (
                arr.ndim == 3
                and arr.shape[-1] in (3, 4)
                and arr.dtype == np.uint8
                and (axes in (None, "YXS"))
            )
            tifffile.imwrite(
                tmp,
                arr,
                compression="zlib",
                metadata=metadata,
                photometric="rgb" if rgb else "minisblack",
            )
        else:
            with open(tmp, "wb") as f:
                np.save(f, arr, allow_pickle=False)
    return p


def write_mask(path: str | os.PathLike[str], mask: np.ndarray, *, value: int = 255) -> Path:
    """Write a binary or class mask as 8-bit (binary masks scaled to 0/``value``)."""
    m = np.asarray(mask)
    if m.dtype == np.bool_:
        m = m.astype(np.uint8) * np.uint8(value)
    elif m.size and (m.min() < 0 or m.max() > 255):
        raise ValueError(f"{path}: mask values {m.min()}..{m.max()} do not fit 8 bits")
    return write_image(path, m.astype(np.uint8))


def write_labels(path: str | os.PathLike[str], labels: np.ndarray) -> Path:
    """Write instance labels as 16-bit (if they fit) or 32-bit integers (TIFF; PNG for 16-bit)."""
    lab = np.asarray(labels)
    if lab.size and lab.min() < 0:
        raise ValueError(f"{path}: instance labels must be >= 0, got {lab.min()}")
    top = int(lab.max()) if lab.size else 0
    dtype = np.uint16 if top <= np.iinfo(np.uint16).max else np.uint32
    if dtype == np.uint32 and _suffix(Path(path)) == ".png":
        raise ValueError(f"{path}: {top} labels need 32 bits, which PNG cannot hold; use .tif")
    return write_image(path, lab.astype(dtype))


def write_probabilities(path: str | os.PathLike[str], probs: np.ndarray) -> Path:
    """Write a probability map ``(C, *S)`` or ``(*S)`` as float32 (TIFF or ``.npy``).

    A PNG path stores a single-class map scaled to 0..255 (for viewing).
    """
    p = np.asarray(probs, dtype=np.float32)
    if _suffix(Path(path)) == ".png":
        if p.ndim != 2:
            raise ValueError(f"{path}: PNG takes one 2D probability map, got shape {p.shape}")
        return write_image(path, np.clip(np.rint(p * 255), 0, 255).astype(np.uint8))
    return write_image(path, p)
