"""Segmenting files: many inputs, one model, outputs written atomically beside each other.

Inputs are files, folders (their images), glob patterns, multi-page stacks and Zarr arrays.
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

A list of files can be shared between processes (``shard=(i, n)``, or the ranks of
``torchrun``): file ``k`` goes to process ``k mod n``, so none is done twice or skipped.
Existing outputs are skipped unless ``overwrite=True``, so an interrupted batch resumes.
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from biounet.core.checks import look_up, tqdm_disable
from biounet.core.files import atomic_path, output_folder
from biounet.data.io import (
    READ_EXTENSIONS,
    file_stem,
    is_image_file,
    read_image_file,
    write_image,
    write_labels,
)
from biounet.data.layouts import to_channels_first
from biounet.inference.trained import TrainedModel
from biounet.model.unet import UNet

log = logging.getLogger(__name__)

__all__ = [
    "MASK_FORMATS",
    "PredictOptions",
    "check_options",
    "expand_inputs",
    "overlay",
    "predict_files",
    "shard_of",
]


#: values of :attr:`PredictOptions.mask_format`
MASK_FORMATS = ("auto", "png", "tif")


@dataclass
class PredictOptions:
    """What to write and how to predict (see :func:`biounet.predict` for the last four).

    Attributes
    ----------
    masks, instances, probabilities, overlays : bool
        Which outputs to write (see the module docstring).
    overwrite : bool
        Redo inputs whose outputs all exist (else they are skipped).
    mask_format : {"auto", "png", "tif"}
        ``"auto"``: PNG for 2D images, TIFF for stacks and 3D volumes (PNG holds 2D only).
    instance_kind : {"cells", "membranes"}
        How instance labels are made: ``"cells"``, a seeded watershed of the foreground class
        (:func:`biounet.inference.postprocess.instances`); ``"membranes"``, for EM membrane models
        (ISBI 2012), the regions enclosed by the membranes of class ``membrane_class``
        (:func:`biounet.inference.postprocess.membrane_regions`, thinned to 1-px lines by default).
    membrane_class : int
        With ``instance_kind="membranes"``: the class that is membrane (0 for an ISBI model
        trained with the cells as the foreground, the default of binary masks).
    postprocess : dict
        Keyword options of the instance function, e.g. ``{"min_size": 20}``.
    tile_shape, batch_size, tta, device
        As for :func:`biounet.predict`.
    """

    masks: bool = True
    instances: bool = False
    probabilities: bool = False
    overlays: bool = False
    overwrite: bool = False
    mask_format: str = "auto"
    instance_kind: str = "cells"
    membrane_class: int = 0
    postprocess: dict[str, Any] = field(default_factory=dict)
    tile_shape: int | None = None
    batch_size: int | None = None
    tta: bool = False
    device: str = "auto"


def expand_inputs(inputs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Files from paths, folders and glob patterns, in a stable sorted order, no duplicates.

    A file named explicitly must have an extension biounet reads (ValueError otherwise), so a
    wrong input is reported before anything is predicted or written.
    """
    found: list[Path] = []
    for item in inputs:
        text = str(item)
        p = Path(text)
        if p.is_dir() and p.suffix.lower() != ".zarr":
            files = sorted(q for q in p.iterdir() if is_image_file(q))
            if not files:
                raise ValueError(f"{p}: the folder holds no images ({', '.join(READ_EXTENSIONS)})")
            found.extend(files)
        elif p.exists():
            if not is_image_file(p) and not p.name.startswith("."):
                raise ValueError(
                    f"{p}: unknown image format {p.suffix!r}; biounet reads "
                    f"{', '.join(READ_EXTENSIONS)}"
                )
            found.append(p)
        elif any(c in text for c in "*?["):
            matches = sorted(Path(m) for m in glob.glob(text) if is_image_file(m))
            if not matches:
                raise FileNotFoundError(f"{text}: the pattern matches no image files")
            found.extend(matches)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    seen: set[Path] = set()
    unique = []
    for f in found:
        if f.resolve() not in seen:
            seen.add(f.resolve())
            unique.append(f)
    return unique


def shard_of(files: list[Path], shard: tuple[int, int] | None = None) -> list[Path]:
    """The files of one process: ``shard=(i, n)``, else torchrun's ``RANK``/``WORLD_SIZE``."""
    if shard is None:
        shard = (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)))
    i, n = shard
    if not 0 <= i < n:
        raise ValueError(f"shard {i}/{n}: need 0 <= i < n")
    return files[i::n]


def overlay(image: np.ndarray, labels: np.ndarray, *, instances: bool = False) -> np.ndarray:
    """An RGB uint8 picture: the image in grey, objects tinted, their outlines drawn.

    ``image`` ``(C, Y, X)`` or ``(Y, X)`` (the first channel is shown, 1-99.8 percentile
    scaled), ``labels`` ``(Y, X)`` class map or instance labels.
    """
    from skimage.segmentation import find_boundaries

    img = np.asarray(image, dtype=np.float32)
    img = img[0] if img.ndim == 3 else img
    lo, hi = np.percentile(img, [1, 99.8]) if img.size else (0.0, 1.0)
    grey = np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1)
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


def check_options(model: TrainedModel | UNet, options: PredictOptions) -> PredictOptions:
    """Validate ``options`` for ``model`` before any file is read (ValueError naming the option).

    Checks the mask format, the instance kind and membrane class, the tile size (against the
    network's valid sizes), the batch size and the device (known, and present on this machine).
    Returns ``options``.
    """
    from biounet.core.device import resolve_device
    from biounet.inference.postprocess import INSTANCE_KINDS
    from biounet.inference.predictor import choose_tile
    from biounet.inference.tiling import check_batch_size

    o = options
    look_up(o.mask_format, MASK_FORMATS, "mask format")
    look_up(o.instance_kind, INSTANCE_KINDS, "instance kind")  # postprocess's kinds
    k = model.config.num_classes
    if o.instances and o.instance_kind == "membranes" and not 0 <= o.membrane_class < k:
        raise ValueError(
            f"membrane_class {o.membrane_class} is not a class of the model (0..{k - 1})"
        )
    if o.batch_size is not None:
        check_batch_size(o.batch_size)  # TypeError/ValueError as predict gives them
    if o.tile_shape is not None:
        choose_tile(model, (1,) * model.ndim, o.tile_shape)  # ValueError: nearest valid sizes
    resolve_device(o.device)  # ValueError: unknown, or not on this machine
    return o


def _outputs(
    stem: str, out: Path, o: PredictOptions, zarr_input: bool, ndim: int
) -> dict[str, Path]:
    """Output paths; with ``mask_format="auto"`` a 2D model's mask is first taken as PNG."""
    paths = {}
    if o.masks:
        ext = o.mask_format if o.mask_format != "auto" else "tif" if ndim == 3 else "png"
        paths["mask"] = out / f"{stem}_mask.{ext}"
    if o.instances:
        paths["labels"] = out / f"{stem}_labels.tif"
    if o.probabilities:
        paths["probs"] = out / (f"{stem}_probs.zarr" if zarr_input else f"{stem}_probs.tif")
    if o.overlays:
        paths["overlay"] = out / f"{stem}_overlay.png"
    return paths


def _all_exist(targets: dict[str, Path], o: PredictOptions) -> bool:
    """Whether every output exists (an automatic mask in either format)."""

    def done(key: str, path: Path) -> bool:
        if key == "mask" and o.mask_format == "auto":
            return path.with_suffix(".png").exists() or path.with_suffix(".tif").exists()
        return path.exists()

    return bool(targets) and all(done(k, p) for k, p in targets.items())


def predict_files(
    model: TrainedModel | UNet,
    inputs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    options: PredictOptions | None = None,
    *,
    shard: tuple[int, int] | None = None,
    progress: bool | None = None,
) -> list[dict[str, Path]]:
    """Segment every input file with ``model``; returns the outputs written per file.

    Parameters
    ----------
    model : UNet
        The trained network (with its normalisation, from :func:`biounet.load`).
    inputs : sequence of path
        Files, folders (their images) and glob patterns (see :func:`expand_inputs`).
    out : path
        Output folder; created (with its parents) once the options and inputs are checked.
    options : PredictOptions, optional
        What to write and how to predict; checked by :func:`check_options` first.
    shard : (int, int), optional
        ``(i, n)``: only the files of process ``i`` of ``n`` (see :func:`shard_of`).
    progress : bool, optional
        Progress bars over the files and over each image's tiles; None: shown when writing
        to a terminal (tqdm decides), False: never.

    Returns
    -------
    list of dict
        Per segmented file (skipped ones are left out), the outputs written, by kind
        (``"mask"``, ``"labels"``, ``"probs"``, ``"overlay"``).
    """
    from tqdm.auto import tqdm

    o = check_options(model, options or PredictOptions())
    files = shard_of(expand_inputs(inputs), shard)
    alone = shard is None and int(os.environ.get("WORLD_SIZE", 1)) == 1
    written = []
    # other processes may share the folder: only a lone process removes it again on an error
    with output_folder(out, remove_if_failed=alone) as out_dir:
        for path in tqdm(files, unit="file", desc="images", disable=tqdm_disable(progress)):
            zarr_input = path.suffix.lower() == ".zarr"
            targets = _outputs(file_stem(path), out_dir, o, zarr_input, model.ndim)
            if not o.overwrite and _all_exist(targets, o):
                log.info("%s: outputs exist, skipped (overwrite to redo)", path)
                continue
            try:
                written.append(_predict_one(model, path, targets, o, progress))
            except ValueError as e:
                if str(path) in str(e):
                    raise
                raise ValueError(f"{path}: {e}") from e
    return written


def _predict_one(
    model: TrainedModel | UNet,
    path: Path,
    targets: dict[str, Path],
    o: PredictOptions,
    progress: bool | None,
) -> dict[str, Path]:
    from biounet.inference.predictor import predict

    f = read_image_file(path)
    nd = model.ndim
    stack = nd == 2 and len(f.data.shape) == 3 and not (f.axes and ("C" in f.axes or "S" in f.axes))
    stack = stack and model.config.in_channels == 1 and f.data.shape[-1] > 4
    flat = nd == 2 and not stack  # one 2D image (PNG can hold its mask)
    if "mask" in targets and not flat:
        if o.mask_format == "png":  # before predicting: PNG holds 2D images only
            kind = "a 3D volume" if nd == 3 else "a stack of pages"
            raise ValueError(
                f"{path} is {kind} of shape {tuple(f.data.shape)}, which a PNG mask cannot hold; "
                "use mask_format 'tif' or 'auto' (predict --mask-format tif)"
            )
        targets = {**targets, "mask": targets["mask"].with_suffix(".tif")}
    # probabilities: (C, Y, X), pages (Z, C, Y, X), a volume (C, Z, Y, X)
    axes = "CZYX" if nd == 3 else "ZCYX" if stack else "CYX"
    # progress passes unchanged: None lets tqdm decide by the terminal
    kw: dict[str, Any] = dict(
        tile_shape=o.tile_shape,
        batch_size=o.batch_size,
        tta=o.tta,
        device=o.device,
        progress=progress,
    )
    if "probs" in targets and targets["probs"].suffix == ".zarr":
        import zarr

        image = to_channels_first(f, nd, name=str(path))
        shape = (model.config.num_classes, *image.shape[1:])
        # written tile by tile into a temporary store, renamed when complete (Ctrl-C included:
        # no half-written store stays behind, and an old one is kept until then)
        with atomic_path(targets["probs"]) as tmp:
            tmp.unlink()
            dest = zarr.open_array(
                str(tmp), mode="w", shape=shape, dtype="f4", chunks=(shape[0],) + (512,) * nd
            )
            dest.attrs["axes"] = "CZYX" if nd == 3 else "CYX"
            predict(model, image, out=dest, **kw)
        probs = zarr.open_array(str(targets["probs"]), mode="r")
        pages = [np.asarray(probs)] if len(targets) > 1 else []
    else:
        frames = [f.data[i] for i in range(f.data.shape[0])] if stack else [f.data]
        pages = []
        for frame in frames:
            image = to_channels_first(frame if stack else f, nd, name=str(path))
            pages.append(predict(model, image, **kw))
    if not pages:
        return targets
    k = model.config.num_classes
    masks = np.stack([p.argmax(0) for p in pages]).astype(np.uint8)
    if k == 2:
        masks = masks * np.uint8(255)
    result = {}
    if "mask" in targets:
        mask_axes = None if flat else "ZYX"
        write_image(targets["mask"], masks if stack else masks[0], axes=mask_axes)
        result["mask"] = targets["mask"]
    labels = None
    if "labels" in targets or ("overlay" in targets and o.instances):
        labels = np.stack([_instances(p, o) for p in pages])
        if "labels" in targets:
            write_labels(targets["labels"], labels if stack else labels[0])
            result["labels"] = targets["labels"]
    if "probs" in targets and targets["probs"].suffix != ".zarr":
        write_image(targets["probs"], np.stack(pages) if stack else pages[0], axes=axes)
        result["probs"] = targets["probs"]
    if "overlay" in targets:
        if nd == 2:
            if stack:
                log.info("%s: the overlay shows the first of %d pages", path, len(pages))
            first = np.asarray(f.data[0] if stack else f.data)
            img = to_channels_first(first, 2)
            shown = labels[0] if labels is not None else (masks[0] > 0).astype(np.int32)
            write_image(targets["overlay"], overlay(img, shown, instances=labels is not None))
            result["overlay"] = targets["overlay"]
        else:
            log.warning("%s: overlays are drawn for 2D images only", path)
    return result


def _instances(probs: np.ndarray, o: PredictOptions) -> np.ndarray:
    """Instance labels of one ``(C, *S)`` probability map, as ``o.instance_kind`` says."""
    from biounet.inference.postprocess import instances_from_probabilities

    if o.instance_kind == "membranes":  # regions thinned to 1-px lines, unless told otherwise
        options = {"thin": True, **o.postprocess}
        return instances_from_probabilities(
            probs, kind="membranes", membrane_class=o.membrane_class, **options
        )
    return instances_from_probabilities(probs, kind="cells", **o.postprocess)
