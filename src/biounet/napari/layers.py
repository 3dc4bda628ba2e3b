"""What the napari plugin shows, as napari layer data: no Qt here, so it is tested without one.

A *layer data tuple* is napari's plain description of a layer, ``(data, kwargs, kind)`` with
``kind`` ``"image"`` or ``"labels"``; a viewer adds it with ``viewer.add_<kind>(data,
**kwargs)``. The widget, the sample data and the reader all produce these.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "LayerData",
    "read_outputs",
    "reader_for",
    "sample_cells",
    "segment_image",
]

#: napari's ``(data, kwargs, kind)``
LayerData = tuple[Any, dict[str, Any], str]
#: the file names biounet's ``predict`` writes, and what each holds
_SUFFIXES = {"_mask": "mask", "_labels": "labels", "_probs": "probs"}


def segment_image(
    model: Any,
    data: np.ndarray,
    *,
    name: str = "image",
    rgb: bool = False,
    tta: bool = False,
    instances: bool = True,
    instance_kind: str = "cells",
    placement: dict[str, Any] | None = None,
    progress: Callable[[int, int], object] | None = None,
) -> list[LayerData]:
    """Segment an image layer's data with a trained model; the layers to add.

    Parameters
    ----------
    model : TrainedModel
        From :func:`biounet.load` (a checkpoint, a run folder or a shipped model's name).
    data : numpy.ndarray
        The layer's data: ``(Y, X)``; ``(Y, X, 3|4)`` with ``rgb``; ``(Z, Y, X)`` (a volume
        for a 3D model, a stack of planes segmented one by one for a 2D one).
    name : str
        The image layer's name; the new layers are named after it.
    rgb : bool
        The layer is RGB(A): its last axis holds the colours.
    tta, instances : bool
        Average over flips and rotations; also make instance labels.
    instance_kind : {"cells", "membranes"}
        How objects are made: cells, a seeded watershed by the model's instance rule; or
        for EM membrane models (class 0 membrane), the regions the membranes enclose.
    placement : dict, optional
        ``scale`` and ``translate`` of the image layer, given to the new layers so that they
        lie on it.
    progress : callable, optional
        ``progress(done, total)``, in tiles (of all planes of a stack).

    Returns
    -------
    list of LayerData
        The probability of each class (image layers, additive, the background's hidden), the
        class map and, with ``instances``, the objects (labels layers).
    """
    import biounet
    from biounet.inference.postprocess import instances_from_probabilities

    image = np.moveaxis(data, -1, 0) if rgb else np.asarray(data)
    planes = model.ndim == 2 and image.ndim == 3 and not rgb
    stack = list(image) if planes else [image]
    total = [0] * len(stack)

    def report(i: int) -> Callable[[int, int], None]:
        def tell(done: int, n: int) -> None:
            total[i] = n
            if progress is not None:
                progress(sum(total[:i]) + done, sum(total[:i]) + n * (len(stack) - i))

        return tell

    probs = [np.asarray(biounet.predict(model, p, tta=tta, progress=report(i)))
             for i, p in enumerate(stack)]  # fmt: skip
    p = np.stack(probs, axis=1) if planes else probs[0]  # (K, *S)
    place = dict(placement or {})
    names = model.class_names or [f"class {k}" for k in range(p.shape[0])]
    out: list[LayerData] = [
        (p[k], {**place, "name": f"{name} p({c})", "colormap": "magma", "blending": "additive",
                "contrast_limits": (0.0, 1.0), "visible": k > 0}, "image")
        for k, c in enumerate(names)
    ]  # fmt: skip
    out.append((p.argmax(0).astype(np.uint8), {**place, "name": f"{name} classes"}, "labels"))
    if instances:
        kind = instance_kind
        rule = model.instance_rule if kind == "cells" else None
        labels = [instances_from_probabilities(q, kind=kind, rule=rule)
                  for q in (np.moveaxis(p, 1, 0) if planes else [p])]  # fmt: skip
        objects = np.stack(labels) if planes else labels[0]
        out.append((objects, {**place, "name": f"{name} objects"}, "labels"))
    return out


def sample_cells() -> list[LayerData]:
    """Sample data for napari: synthetic touching cells and their true outlines (256 px)."""
    from biounet.data.synthetic import make_cells

    image, labels = make_cells((256, 256), seed=0)
    return [
        (image, {"name": "synthetic cells"}, "image"),
        (labels, {"name": "true cells", "visible": False}, "labels"),
    ]


def _kind(path: Path) -> str | None:
    """What a biounet output file holds, by its name (None: not one)."""
    name = path.name
    if name.endswith(".ome.zarr"):
        return "ome"
    for end in (".png", ".tif", ".tiff", ".zarr"):
        if name.endswith(end):
            stem = name[: -len(end)]
            for suffix, kind in _SUFFIXES.items():
                if stem.endswith(suffix):
                    return kind
    return None


def reader_for(path: str | Sequence[str]) -> Callable[[Any], list[LayerData]] | None:
    """The napari reader hook: :func:`read_outputs` for biounet's prediction outputs, else None.

    >>> reader_for("seg/cell_mask.png") is read_outputs, reader_for("cell.png") is None
    (True, True)
    """
    first = path[0] if isinstance(path, (list, tuple)) else path
    if not isinstance(first, str) or _kind(Path(first)) is None:
        return None
    return read_outputs


def read_outputs(path: str | Sequence[str]) -> list[LayerData]:
    """The layers of biounet's prediction outputs (see :mod:`biounet.segment.outputs`).

    ``NAME_mask``: the class map (labels); ``NAME_labels``: the objects (labels);
    ``NAME_probs``: one image layer per class; ``NAME.ome.zarr``: the probabilities and its
    label images. Each at its file's pixel size (``scale``) where the file records one.
    """
    from biounet.data.io import file_stem, read_image_file
    from biounet.data.maps import mask_classes

    paths = [path] if isinstance(path, str) else list(path)
    out: list[LayerData] = []
    for p in map(Path, paths):
        kind = _kind(p)
        f = read_image_file(p)
        data = np.asarray(f.data)
        stem = file_stem(p)
        if kind == "ome":
            out += _ome_layers(p, data, f.spacing, stem)
            continue
        spatial = data.ndim - (1 if kind == "probs" else 0)
        place = _scale(f.spacing, spatial)
        if kind == "mask":
            out.append((mask_classes(data).astype(np.uint8), {**place, "name": p.stem}, "labels"))
        elif kind == "labels":
            out.append((data.astype(np.uint32), {**place, "name": p.stem}, "labels"))
        else:
            axis = (f.axes or "C").index("C") if f.axes and "C" in f.axes else 0
            out.append((data, {**place, "name": f"{stem} p", "channel_axis": axis,
                               "blending": "additive"}, "image"))  # fmt: skip
    return out


def _scale(spacing: dict[str, float] | None, ndim: int) -> dict[str, Any]:
    """``{"scale": ...}`` for ``ndim`` spatial axes when the pixel size of each is known."""
    from biounet.data.spacing import spacing_values

    values = spacing_values(spacing, ndim)
    return {"scale": tuple(values)} if values is not None and len(values) == ndim else {}


def _ome_layers(
    path: Path, probs: np.ndarray, spacing: dict[str, float] | None, stem: str
) -> list[LayerData]:
    """A biounet OME-Zarr container: its probabilities and its label images."""
    import zarr

    place = _scale(spacing, probs.ndim - 1)
    out: list[LayerData] = [(probs, {**place, "name": f"{stem} p", "channel_axis": 0,
                                     "blending": "additive"}, "image")]  # fmt: skip
    labels = path / "labels"
    if labels.is_dir():
        for name in ("classes", "instances"):
            if (labels / name).is_dir():
                data = np.asarray(zarr.open_array(str(labels / name / "0"), mode="r"))
                out.append((data, {**place, "name": f"{stem} {name}"}, "labels"))
    return out
