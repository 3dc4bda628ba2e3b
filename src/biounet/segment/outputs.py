"""The output files of one input: their names, and the probabilities turned into them.

For each input the chosen outputs go to the output folder, named after the input's stem:

``<stem>_mask.png`` / ``.tif``
    The class map (binary: 0/255; more classes: the class index), in the input's geometry:
    PNG for a 2D image, TIFF for a multi-page stack ``(Z, Y, X)`` or a 3D volume (the default
    ``mask_format="auto"``).
``<stem>_labels.tif``
    Instance labels (16- or 32-bit), with ``instances=True``: cells split by a seeded watershed
    (``instance_kind="cells"``), or the regions between EM membranes
    (``instance_kind="membranes"``).
``<stem>_probs.tif``
    Per-class probabilities (float32), with ``probabilities=True``: ``(C, Y, X)`` for a 2D
    image, ``(Z, C, Y, X)`` for a stack of pages, ``(C, Z, Y, X)`` for a 3D volume (the axes
    are recorded in the TIFF). A Zarr input gets ``<stem>_probs.zarr`` written tile by tile.
``<stem>_overlay.png``
    The image with the segmentation drawn over it, with ``overlays=True`` (2D; the first page
    of a stack).
``<stem>.ome.zarr``
    Instead of the mask, labels and probabilities, with ``output_format="ome-zarr"`` (the
    default for OME-Zarr inputs): one OME-Zarr container holding the probabilities as its
    image and the class map and (with ``instances=True``) the instance labels as its label
    images (:func:`biounet.data.ngff.write_segmentation`).

TIFF and Zarr outputs carry the input's pixel size.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from biounet.data.io import write_image
from biounet.data.maps import mask_values, write_labels, write_mask, write_probabilities
from biounet.data.ngff import write_segmentation
from biounet.reporting.pictures import overlay
from biounet.segment.options import PredictOptions

if TYPE_CHECKING:
    from biounet.inference.postprocess.rule import InstanceRule

log = logging.getLogger(__name__)

__all__ = [
    "Outputs",
    "output_paths",
    "outputs_exist",
    "scored_suffix",
    "write_outputs",
]


def output_paths(
    stem: str,
    out: Path,
    options: PredictOptions,
    ndim: int,
    *,
    zarr_input: bool = False,
    ome: bool = False,
) -> dict[str, Path]:
    """The output files of the input named ``stem`` in the folder ``out``, by kind.

    Kinds: ``"mask"``, ``"labels"``, ``"probs"``, ``"overlay"``, as ``options`` asks. With
    ``mask_format="auto"`` the mask of a 2D model (``ndim == 2``) is first taken as PNG; a stack
    of pages turns it into TIFF once the input is read. A Zarr input gets Zarr probabilities.
    With ``ome``: ``"ome"``, the OME-Zarr container, in place of the mask, labels and
    probabilities.
    """
    o = options
    paths = {}
    if ome:
        paths["ome"] = out / f"{stem}.ome.zarr"
    elif o.masks:
        ext = o.mask_format if o.mask_format != "auto" else "tif" if ndim == 3 else "png"
        paths["mask"] = out / f"{stem}_mask.{ext}"
    if o.instances and not ome:
        paths["labels"] = out / f"{stem}_labels.tif"
    if o.probabilities and not ome:
        paths["probs"] = out / (f"{stem}_probs.zarr" if zarr_input else f"{stem}_probs.tif")
    if o.overlays:
        paths["overlay"] = out / f"{stem}_overlay.png"
    return paths


def outputs_exist(targets: Mapping[str, Path], options: PredictOptions) -> bool:
    """Whether every output of ``targets`` exists (an automatic mask in either format)."""

    def done(key: str, path: Path) -> bool:
        if key == "mask" and options.mask_format == "auto":
            return path.with_suffix(".png").exists() or path.with_suffix(".tif").exists()
        return path.exists()

    return bool(targets) and all(done(k, p) for k, p in targets.items())


@dataclass
class Outputs:
    """What :func:`write_outputs` made of the probabilities of one input.

    Attributes
    ----------
    paths : dict of str to Path
        The files written, by kind (``"mask"``, ``"labels"``, ``"probs"``, ``"overlay"``).
    masks : numpy.ndarray of uint8, shape ``(P, *S)``
        The class map of each of the ``P`` pages (one for an image or a volume): 0/255 for two
        classes, else the class index.
    labels : numpy.ndarray of int32, shape ``(P, *S)``, or None
        The instance labels of each page, where they were made (0 = background).
    """

    paths: dict[str, Path]
    masks: np.ndarray
    labels: np.ndarray | None = None


def write_outputs(
    pages: Sequence[np.ndarray],
    targets: Mapping[str, Path],
    options: PredictOptions,
    *,
    image: Any = None,
    stack: bool = False,
    source: str | Path = "",
    rule: InstanceRule | None = None,
    spacing: Sequence[float] | None = None,
    class_names: Sequence[str] = (),
) -> Outputs:
    """Turn a model's probabilities into the files ``targets`` names (see the module docstring).

    Parameters
    ----------
    pages : sequence of numpy.ndarray, each ``(K, *S)`` float32
        Per-class probabilities (:func:`biounet.predict`): one array for a 2D image or a 3D
        volume, one per page of a stack.
    targets : mapping of str to Path
        The files to write, by kind (from :func:`output_paths`). A ``.zarr`` ``"probs"`` is
        taken as written already (by ``predict(..., out=...)``).
    options : PredictOptions
        How instance labels are made (``instance_kind``, ``membrane_class``,
        ``postprocess``). They are made for ``"labels"``, and for ``"overlay"`` when
        ``options.instances`` (the overlay then shows the objects, else the mask).
    image : array-like, ``(C, Y, X)`` or ``(Y, X)``, optional
        The 2D image (the first page of a stack) the overlay is drawn on; needed for
        ``"overlay"`` in 2D.
    stack : bool
        ``pages`` are the pages of a ``(Z, Y, X)`` stack of 2D images, written as one file
        per kind with the pages on the first axis.
    source : str or Path
        The input, named in log messages.
    rule : InstanceRule, optional
        The model's instance rule (:attr:`biounet.inference.trained.TrainedModel.instance_rule`):
        how instance labels of kind "cells" are made; ``options.postprocess`` overrides its
        values (e.g. ``{"min_size": 0}``). None: the defaults of
        :func:`biounet.inference.postprocess.instances`.
    spacing : sequence of float, optional
        The input's pixel size in µm per spatial axis (``(Y, X)``, or ``(Z, Y, X)`` for a
        volume or a stack), written into the TIFF and Zarr outputs
        (:func:`biounet.data.spacing.spacing_values`).
    class_names : sequence of str
        The model's class names, for the OME-Zarr container's class map.

    Returns
    -------
    Outputs
        The files written, the class maps and the instance labels.
    """
    ndim, num_classes = pages[0].ndim - 1, pages[0].shape[0]
    classes = np.stack([p.argmax(0) for p in pages])
    labels = None
    if "labels" in targets or (options.instances and ("overlay" in targets or "ome" in targets)):
        labels = np.stack([_instance_labels(p, options, rule) for p in pages])

    def one(a: np.ndarray) -> np.ndarray:  # the whole stack, or the only page
        return a if stack else a[0]

    written: dict[str, Path] = {}
    if "mask" in targets:
        axes = None if ndim == 2 and not stack else "ZYX"
        written["mask"] = write_mask(
            targets["mask"], one(classes), num_classes, axes=axes, spacing=spacing
        )
    if "labels" in targets and labels is not None:
        axes = None if ndim == 2 and not stack else "ZYX"
        written["labels"] = write_labels(targets["labels"], one(labels), axes=axes, spacing=spacing)
    if "probs" in targets:
        if targets["probs"].suffix != ".zarr":
            axes = "CZYX" if ndim == 3 else "ZCYX" if stack else "CYX"
            probs = np.stack(pages) if stack else pages[0]
            write_probabilities(targets["probs"], probs, axes=axes, spacing=spacing)
        written["probs"] = targets["probs"]
    if "ome" in targets:  # probabilities (C, *S): a stack's pages on the first spatial axis
        probs = np.stack(pages, axis=1) if stack else pages[0]
        written["ome"] = write_segmentation(
            targets["ome"], probs, one(classes), instances=None if labels is None else one(labels),
            spacing=spacing, class_names=class_names,
        )  # fmt: skip
    if "overlay" in targets:
        if ndim == 2:
            if stack:
                log.info("%s: the overlay shows the first of %d pages", source, len(pages))
            shown = labels[0] if labels is not None else (classes[0] > 0).astype(np.int32)
            picture = overlay(image, shown, instances=labels is not None)
            written["overlay"] = write_image(targets["overlay"], picture)
        else:
            log.warning("%s: overlays are drawn for 2D images only", source)
    return Outputs(written, mask_values(classes, num_classes), labels)


def _instance_labels(
    probs: np.ndarray, options: PredictOptions, rule: InstanceRule | None
) -> np.ndarray:
    """Instance labels ``(*S)`` int32 of one ``(K, *S)`` probability map, as ``options`` say.

    Cells follow ``rule`` where there is one, with ``options.postprocess`` over its values.
    """
    from biounet.inference.postprocess import instances_from_probabilities

    o = options
    if o.instance_kind == "membranes":  # regions thinned to 1-px lines, unless told otherwise
        kw = {"thin": True, **o.postprocess}
        return instances_from_probabilities(
            probs, kind="membranes", membrane_class=o.membrane_class, **kw
        )
    return instances_from_probabilities(probs, kind="cells", rule=rule, **o.postprocess)


def scored_suffix(task: str, instances: bool) -> str:
    """Which output of :func:`~biounet.segment.files.predict_files` a ``task`` scores.

    Cells: the instance labels if they were written, else the class masks; membranes: the
    probability maps (the ISBI scores sweep their threshold); semantic: the class masks.
    """
    if task == "cells":
        return "_labels" if instances else "_mask"
    return "_probs" if task == "membranes" else "_mask"
