"""Segmentation results as OME-Zarr (OME-NGFF 0.5, Zarr format 3): one container per image.

The container of one segmented image, ``<stem>.ome.zarr``::

    <stem>.ome.zarr/           the image: the class probabilities, axes c[, z], y, x (float32)
        labels/classes/        a label image: the class of each pixel (0 .. K-1, uint8)
        labels/instances/      a label image: the objects (0 background; uint32), if made

Every array is one resolution level with the physical pixel size as its ``scale`` (in
micrometres, ``unit: micrometer`` on each space axis) when the input's is known, else 1 with no
unit; the probabilities' channel axis has scale 1. ``labels/classes`` names each class in its
``image-label`` ``properties``. Readers: ``ome-zarr-py``, napari with the ``napari-ome-zarr``
plugin, Fiji (MoBIE, n5-viewer) and :func:`biounet.data.read_image` (the probabilities, with
their pixel size).

Written atomically: the whole container appears at once, or not at all.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from biounet.core.files import atomic_path

__all__ = ["NGFF_VERSION", "is_ome_zarr", "write_segmentation"]

#: the OME-NGFF version written
NGFF_VERSION = "0.5"
#: the chunk edge of the arrays, px
_CHUNK = 256


def is_ome_zarr(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an OME-Zarr image: a Zarr group whose attributes hold ``multiscales``.

    Reads only the group's metadata file (``zarr.json``, Zarr 3 / NGFF 0.5; ``.zattrs``, Zarr 2
    / NGFF 0.4).

    >>> is_ome_zarr("no/such.zarr")
    False
    """
    p = Path(path)
    for name, key in (("zarr.json", "attributes"), (".zattrs", None)):
        f = p / name
        if not f.is_file():
            continue
        try:
            attrs = json.loads(f.read_text())
        except (OSError, ValueError):
            return False
        attrs = attrs.get(key, {}) if key else attrs
        ome = attrs.get("ome", {}) if isinstance(attrs, dict) else {}
        return bool(attrs.get("multiscales") or (isinstance(ome, dict) and ome.get("multiscales")))
    return False


def _axes(spatial: str, spacing: Sequence[float] | None, channel: bool) -> list[dict[str, Any]]:
    """NGFF axes: ``c`` (a channel axis) if asked, then the spatial axes, with units if known."""
    out: list[dict[str, Any]] = [{"name": "c", "type": "channel"}] if channel else []
    for a in spatial:
        axis = {"name": a, "type": "space"}
        if spacing is not None:
            axis["unit"] = "micrometer"
        out.append(axis)
    return out


def _image(
    group: Any, data: np.ndarray, name: str, spatial: str, spacing: Sequence[float] | None
) -> dict[str, Any]:
    """Write ``data`` as level ``0`` of ``group``; the NGFF ``multiscales`` entry describing it."""
    channel = data.ndim == len(spatial) + 1
    dims = (["c"] if channel else []) + list(spatial)
    chunks = tuple(1 if channel and i == 0 else min(n, _CHUNK) for i, n in enumerate(data.shape))
    arr = group.create_array(
        "0", shape=data.shape, dtype=data.dtype, chunks=chunks, dimension_names=dims
    )
    arr[...] = data
    size = [float(s) for s in spacing] if spacing is not None else [1.0] * len(spatial)
    scale = ([1.0] if channel else []) + size
    return {
        "name": name,
        "axes": _axes(spatial, spacing, channel),
        "datasets": [
            {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}
        ],
    }


def write_segmentation(
    path: str | os.PathLike[str],
    probs: Any,
    classes: np.ndarray,
    *,
    instances: np.ndarray | None = None,
    spacing: Sequence[float] | None = None,
    class_names: Sequence[str] = (),
) -> Path:
    """Write one image's segmentation as an OME-Zarr container (see the module docstring).

    Parameters
    ----------
    path : path
        The container to write (``.ome.zarr``); an existing one is replaced atomically.
    probs : array-like, shape ``(K, *S)``
        Class probabilities, ``S`` = ``(Y, X)`` or ``(Z, Y, X)``; stored as float32.
    classes : numpy.ndarray of int, shape ``S``
        The class of each pixel (``0 .. K-1``).
    instances : numpy.ndarray of int, shape ``S``, optional
        Instance labels (0 background), stored as uint32.
    spacing : sequence of float, optional
        Pixel size in µm per spatial axis (``(Y, X)`` or ``(Z, Y, X)``; a 2-value spacing of
        a volume is taken as Y and X, Z then unknown: no units are written).
    class_names : sequence of str
        The class names, written as the ``properties`` of ``labels/classes``.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        Shapes that disagree, more than 256 classes, class indices or labels out of range.
    """
    import zarr

    p = np.asarray(probs, dtype=np.float32)
    spatial = "zyx"[-(p.ndim - 1) :]
    shape = p.shape[1:]
    if p.ndim not in (3, 4) or classes.shape != shape:
        raise ValueError(f"{path}: probabilities {p.shape} and classes {classes.shape} disagree")
    if instances is not None and instances.shape != shape:
        raise ValueError(f"{path}: instance labels {instances.shape} are not of shape {shape}")
    if p.shape[0] > 256 or (classes.size and not 0 <= classes.min() <= classes.max() < p.shape[0]):
        raise ValueError(f"{path}: classes must be 0..{p.shape[0] - 1}, at most 256")
    if spacing is not None and len(spacing) != len(spatial):
        spacing = None  # only Y and X known for a volume: no physical units at all
    names = list(class_names) or [f"class {k}" for k in range(p.shape[0])]
    with atomic_path(path) as tmp:
        tmp.unlink()
        root = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        ms = _image(root, p, "probabilities", spatial, spacing)
        root.attrs["ome"] = {"version": NGFF_VERSION, "multiscales": [ms]}
        made = {"classes": classes.astype(np.uint8)}
        if instances is not None:
            if instances.size and (
                instances.min() < 0 or instances.max() > np.iinfo(np.uint32).max
            ):
                raise ValueError(f"{path}: instance labels must be 0..{np.iinfo(np.uint32).max}")
            made["instances"] = instances.astype(np.uint32)
        labels = root.create_group("labels")
        labels.attrs["ome"] = {"version": NGFF_VERSION, "labels": list(made)}
        for name, data in made.items():
            g = labels.create_group(name)
            label: dict[str, Any] = {"source": {"image": "../../"}}
            if name == "classes":
                label["properties"] = [{"label-value": k, "class": n} for k, n in enumerate(names)]
            g.attrs["ome"] = {
                "version": NGFF_VERSION,
                "multiscales": [_image(g, data, name, spatial, spacing)],
                "image-label": label,
            }
    return Path(path)
