"""Segmenting files: many inputs, one model, outputs written atomically beside each other.

Inputs are files, folders (their images), glob patterns, multi-page stacks and Zarr arrays.
For each input the chosen outputs go to the output folder, named after the input's stem:

``<stem>_mask.png`` / ``.tif``
    The class map (binary: 0/255; more classes: the class index), in the input's geometry.
``<stem>_labels.tif``
    Instance labels (16- or 32-bit), with ``instances=True``.
``<stem>_probs.tif``
    Per-class probabilities (float32, ``(C, *S)``), with ``probabilities=True``; a Zarr
    input gets ``<stem>_probs.zarr`` written tile by tile.
``<stem>_overlay.png``
    The image with the segmentation drawn over it, with ``overlays=True`` (2D).

A list of files can be shared between processes (``shard=(i, n)``, or the ranks of
``torchrun``): file ``k`` goes to process ``k mod n``, so none is done twice or skipped.
Existing outputs are skipped unless ``overwrite=True``, so an interrupted batch resumes.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .data.io import (
    READ_EXTENSIONS,
    ensure_folder,
    file_stem,
    is_image_file,
    read_image_file,
    write_image,
    write_labels,
)
from .data.layouts import to_channels_first
from .model.unet import UNet

log = logging.getLogger(__name__)

__all__ = ["PredictOptions", "expand_inputs", "overlay", "predict_files", "shard_of"]


@dataclass
class PredictOptions:
    """What to write and how to predict (see :func:`biounet.predict` for the last four)."""

    masks: bool = True
    instances: bool = False
    probabilities: bool = False
    overlays: bool = False
    overwrite: bool = False
    mask_format: str = "png"
    postprocess: dict[str, Any] = field(default_factory=dict)
    tile_shape: int | None = None
    batch_size: int | None = None
    tta: bool = False
    device: str = "auto"


def expand_inputs(inputs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Files from paths, folders and glob patterns, in a stable sorted order, no duplicates."""
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


def _outputs(stem: str, out: Path, o: PredictOptions, zarr_input: bool) -> dict[str, Path]:
    paths = {}
    if o.masks:
        paths["mask"] = out / f"{stem}_mask.{o.mask_format}"
    if o.instances:
        paths["labels"] = out / f"{stem}_labels.tif"
    if o.probabilities:
        paths["probs"] = out / (f"{stem}_probs.zarr" if zarr_input else f"{stem}_probs.tif")
    if o.overlays:
        paths["overlay"] = out / f"{stem}_overlay.png"
    return paths


def predict_files(
    model: UNet,
    inputs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    options: PredictOptions | None = None,
    *,
    shard: tuple[int, int] | None = None,
    progress: bool | None = None,
) -> list[dict[str, Path]]:
    """Segment every input file with ``model``; returns the outputs written per file."""
    from tqdm.auto import tqdm

    o = options or PredictOptions()
    out_dir = ensure_folder(out)
    files = shard_of(expand_inputs(inputs), shard)
    written = []
    for path in tqdm(
        files, unit="file", desc="images", disable=not progress if progress is not None else None
    ):
        zarr_input = path.suffix.lower() == ".zarr"
        targets = _outputs(file_stem(path), out_dir, o, zarr_input)
        if not o.overwrite and targets and all(p.exists() for p in targets.values()):
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
    model: UNet, path: Path, targets: dict[str, Path], o: PredictOptions, progress: bool | None
) -> dict[str, Path]:
    from .inference import predict

    f = read_image_file(path)
    nd = model.ndim
    stack = nd == 2 and len(f.data.shape) == 3 and not (f.axes and ("C" in f.axes or "S" in f.axes))
    stack = stack and model.config.in_channels == 1 and f.data.shape[-1] > 4
    kw = dict(
        tile_shape=o.tile_shape,
        batch_size=o.batch_size,
        tta=o.tta,
        device=o.device,
        progress=bool(progress),
    )
    if "probs" in targets and targets["probs"].suffix == ".zarr":
        import zarr

        image = to_channels_first(f, nd, name=str(path))
        shape = (model.config.num_classes, *image.shape[1:])
        tmp = targets["probs"].with_name(targets["probs"].name + ".part")
        for old in (tmp, targets["probs"]):
            if old.exists():
                shutil.rmtree(old)
        dest = zarr.open_array(
            str(tmp), mode="w", shape=shape, dtype="f4", chunks=(shape[0],) + (512,) * nd
        )
        probs = predict(model, image, out=dest, **kw)  # type: ignore[arg-type]
        os.replace(tmp, targets["probs"])
        probs = zarr.open_array(str(targets["probs"]), mode="r")
        pages = [np.asarray(probs)] if len(targets) > 1 else []
    else:
        frames = [f.data[i] for i in range(f.data.shape[0])] if stack else [f.data]
        pages = []
        for frame in frames:
            image = to_channels_first(frame if stack else f, nd, name=str(path))
            pages.append(predict(model, image, **kw))  # type: ignore[arg-type]
    if not pages:
        return targets
    k = model.config.num_classes
    masks = np.stack([p.argmax(0) for p in pages]).astype(np.uint8)
    if k == 2:
        masks = masks * np.uint8(255)
    result = {}
    if "mask" in targets:
        write_image(targets["mask"], masks if stack else masks[0])
        result["mask"] = targets["mask"]
    labels = None
    if "labels" in targets or ("overlay" in targets and o.instances):
        from .postprocess import instances

        labels = np.stack([instances(p, **o.postprocess) for p in pages])
        if "labels" in targets:
            write_labels(targets["labels"], labels if stack else labels[0])
            result["labels"] = targets["labels"]
    if "probs" in targets and targets["probs"].suffix != ".zarr":
        write_image(targets["probs"], np.stack(pages) if stack else pages[0])
        result["probs"] = targets["probs"]
    if "overlay" in targets:
        if nd == 2:
            first = np.asarray(f.data[0] if stack else f.data)
            img = to_channels_first(first, 2)
            shown = labels[0] if labels is not None else (masks[0] > 0).astype(np.int32)
            write_image(targets["overlay"], overlay(img, shown, instances=labels is not None))
            result["overlay"] = targets["overlay"]
        else:
            log.warning("%s: overlays are drawn for 2D images only", path)
    return result
