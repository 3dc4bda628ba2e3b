"""Segmenting files: many inputs, one model, outputs written atomically beside each other.

Inputs are files, folders (their images), glob patterns, multi-page stacks and Zarr arrays
(:mod:`biounet.segment.inputs`); the outputs of each are named after its stem
(:mod:`biounet.segment.outputs`). Under ``torchrun`` the processes share the files, and each
Zarr input is predicted by all of them together (:mod:`biounet.segment.together`). Before
anything is read or written, every output path is
known and checked (:func:`plan_outputs`): none may replace an input, two inputs may not share
an output (``a.png`` and ``a.tif``, or one name in two folders), and the output folder may not
be a folder of inputs. Inputs whose outputs all exist are skipped unless ``overwrite=True``, so
an interrupted batch resumes (a warning counts them); temporary files that a killed run left
in the output folder are removed first.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from biounet.core.checks import InputTypeError, tqdm_disable
from biounet.core.files import atomic_path, clean_stale_parts, output_folder
from biounet.core.paths import check_outputs
from biounet.data.io import ImageFile, file_stem, read_image_file
from biounet.data.layouts import to_channels_first
from biounet.data.layouts.channels import sample_spacing
from biounet.data.ngff import is_ome_zarr
from biounet.data.spacing import spacing_values
from biounet.inference.trained import TrainedModel
from biounet.model.unet import UNet
from biounet.segment.inputs import expand_inputs, shard_of
from biounet.segment.options import PredictOptions, check_options
from biounet.segment.outputs import output_paths, outputs_exist, write_outputs
from biounet.segment.together import Group, shared_store, torchrun_group

log = logging.getLogger(__name__)

__all__ = ["plan_outputs", "predict_files"]


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
    model : TrainedModel or UNet
        The trained network (with its normalisation, from :func:`biounet.load`).
    inputs : sequence of path
        Files, folders (their images) and glob patterns (see
        :func:`~biounet.segment.inputs.expand_inputs`).
    out : path
        Output folder; created (with its parents) once the options and inputs are checked.
    options : PredictOptions, optional
        What to write and how to predict; checked by
        :func:`~biounet.segment.options.check_options` first.
    shard : (int, int), optional
        ``(i, n)``: only the files of process ``i`` of ``n`` (see
        :func:`~biounet.segment.inputs.shard_of`). Without it, under ``torchrun`` (several
        processes): each process segments its share of the files, and every Zarr input is
        segmented by all processes together, each writing its own chunks of the
        probabilities (:mod:`biounet.segment.together`); rank 0 writes that input's other
        outputs and returns it. Every process returns once all outputs are written.
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
    every = expand_inputs(inputs)
    plan = plan_outputs(every, Path(out), o, model.ndim)  # all shards' files: no collisions
    alone = shard is None and int(os.environ.get("WORLD_SIZE", 1)) == 1
    zarrs = [p for p in every if p.suffix.lower() == ".zarr"] if shard is None else []
    written = []
    skipped = 0
    # other processes may share the folder: only a lone process removes it again on an error
    with (
        output_folder(out, remove_if_failed=alone) as out_dir,
        torchrun_group(not alone and bool(zarrs)) as group,
    ):
        # left by a killed run; another process may be writing its own now: spare recent ones
        clean_stale_parts(out_dir, min_age=0.0 if alone else 3600.0)
        together = zarrs if group is not None else []
        files = shard_of([p for p in every if p not in together], shard)
        mine = len(files) + (len(together) if group is None or group.main else 0)
        if group is not None:
            for path in together:
                with _named(path):
                    made = _segment_together(group, model, path, plan[path], o, out_dir, progress)
                skipped += made is None and group.main
                written += [made] if made else []
        for path in tqdm(files, unit="file", desc="images", disable=tqdm_disable(progress)):
            targets = plan[path]
            if not o.overwrite and outputs_exist(targets, o):
                skipped += 1
                continue
            with _named(path):
                written.append(_segment_file(model, path, targets, o, progress))
        if group is not None:
            group.barrier()  # every output written when any process returns
    if skipped:
        log.warning(
            "%d of %d image(s) skipped: all their outputs exist in %s (from an earlier run; "
            "overwrite=True, predict --overwrite, redoes them)",
            skipped,
            mine,
            out,
        )
    return written


@contextmanager
def _named(path: Path) -> Iterator[None]:
    """Errors of the block about the input ``path``, named after it (of the same kind)."""
    try:
        yield
    except (ValueError, InputTypeError) as e:
        if str(path) in str(e):
            raise
        kind = InputTypeError if isinstance(e, InputTypeError) else ValueError
        raise kind(f"{path}: {e}") from e


def plan_outputs(
    files: Sequence[Path], out: Path, options: PredictOptions, ndim: int
) -> dict[Path, dict[str, Path]]:
    """The output paths of every input file, checked before anything is read or written.

    Raises :class:`~biounet.core.paths.OutputConflict` (a ValueError naming both paths) when
    an output would replace an input, when two inputs would write one output (same name in
    another format or folder), or when the output folder holds inputs (their outputs would be
    mixed with them, and taken as inputs by the next run).
    """
    plan: dict[Path, dict[str, Path]] = {}
    outputs: list[tuple[Path, str]] = []
    for path in files:
        zarr_input = path.suffix.lower() == ".zarr"
        fmt = options.output_format
        ome = fmt == "ome-zarr" or (fmt == "auto" and zarr_input and is_ome_zarr(path))
        plan[path] = output_paths(
            file_stem(path), out, options, ndim, zarr_input=zarr_input, ome=ome
        )
        for kind, target in plan[path].items():
            outputs.append((target, f"the {kind} output of {path},"))
            if kind == "mask" and options.mask_format == "auto" and target.suffix == ".png":
                # a stack's mask becomes TIFF once it is read: that name is taken as well
                outputs.append((target.with_suffix(".tif"), f"the {kind} output of {path},"))
    check_outputs(
        outputs,
        {path: "the input" for path in files},
        input_folders={path.parent for path in files},
    )
    return plan


@dataclass(frozen=True)
class _Input:
    """One input file as read, and how a ``ndim``-D model sees it."""

    file: ImageFile
    ndim: int
    stack: bool  # a stack of 2D pages, (Z, Y, X): predicted page by page

    @property
    def flat(self) -> bool:
        """One 2D image (PNG can hold its mask)."""
        return self.ndim == 2 and not self.stack


def _read_input(path: Path, model: TrainedModel | UNet) -> _Input:
    """Read ``path`` and tell a stack of pages from one image with channels."""
    f = read_image_file(path)
    nd = model.ndim
    declared = f.axes and ("C" in f.axes or "S" in f.axes)
    # three axes without declared channels: pages, unless the last axis is short (RGB(A))
    stack = nd == 2 and len(f.data.shape) == 3 and not declared
    stack = stack and model.config.in_channels == 1 and f.data.shape[-1] > 4
    if not stack and isinstance(model, TrainedModel):
        _check_spacing(path, sample_spacing(f, nd), model.spacing)
    return _Input(f, nd, stack)


def _check_spacing(
    path: Path, declared: tuple[float, ...] | None, trained: tuple[float, ...] | None
) -> None:
    """Warn when the file's voxel proportions differ by over 25% from the training images'."""
    if declared is None or trained is None or len(declared) != len(trained):
        return
    ratios = [d / t for d, t in zip(declared, trained)]
    if max(ratios) / min(ratios) > 1.25:
        look = "flatter" if ratios[0] > ratios[-1] else "taller"
        log.warning(
            "%s: voxel spacing %s is not in the proportions of the model's training images "
            "(%s): objects span %s voxels along the first axis than in training (they look "
            "%s to the network); resample the image to those proportions, or train on images "
            "like it",
            path, list(declared), list(trained), "fewer" if look == "flatter" else "more", look,
        )  # fmt: skip


def _segment_file(
    model: TrainedModel | UNet,
    path: Path,
    targets: dict[str, Path],
    o: PredictOptions,
    progress: bool | None,
) -> dict[str, Path]:
    """Predict one input file and write its outputs ``targets``; returns those written."""
    inp = _read_input(path, model)
    targets = _mask_in_geometry(inp, path, targets, o)  # before predicting
    if "probs" in targets and targets["probs"].suffix == ".zarr":
        _predict_into_zarr(model, inp, path, targets["probs"], o, progress)
        if len(targets) == 1:
            return targets
        pages = [np.asarray(_open_zarr(targets["probs"]))]
    else:
        pages = _predict_pages(model, inp, path, o, progress)
    return _write_rest(model, inp, path, targets, pages, o)


def _segment_together(
    group: Group,
    model: TrainedModel | UNet,
    path: Path,
    targets: dict[str, Path],
    o: PredictOptions,
    out_dir: Path,
    progress: bool | None,
) -> dict[str, Path] | None:
    """Segment the Zarr input ``path`` with every process of ``group`` (each its own chunks).

    The probabilities go into ``targets["probs"]``, or, when only masks or labels are asked
    for, into a temporary store in ``out_dir`` that rank 0 removes after writing them.
    Returns what rank 0 wrote (``{}`` on the other ranks), None when the outputs exist.
    """
    if group.broadcast(group.main and not o.overwrite and outputs_exist(targets, o)):
        return None
    inp = _read_input(path, model)
    targets = _mask_in_geometry(inp, path, targets, o)
    image = to_channels_first(inp.file, inp.ndim, name=str(path))
    shape = (model.config.num_classes, *image.shape[1:])
    target = targets.get("probs", out_dir / f".{path.stem}_probs.{os.getpid()}.part")
    progress = progress if group.main else False  # one bar, rank 0's share
    try:
        with shared_store(
            group, target, lambda tmp: _create_probs(tmp, shape), f"predicting {path}"
        ) as store:
            _predict_into(model, image, _open_zarr(store, "r+"), o, progress)
        if not group.main:
            return {}
        if len(targets) == 1 and "probs" in targets:
            return targets
        return _write_rest(model, inp, path, targets, [np.asarray(_open_zarr(target))], o)
    finally:
        if group.main and "probs" not in targets:
            shutil.rmtree(target, ignore_errors=True)


def _write_rest(
    model: TrainedModel | UNet,
    inp: _Input,
    path: Path,
    targets: dict[str, Path],
    pages: list[np.ndarray],
    o: PredictOptions,
) -> dict[str, Path]:
    """Write the outputs of ``targets`` from the probabilities ``pages``; returns those written.

    A ``.zarr`` ``"probs"`` target is left alone (predicted into directly).
    """
    image = _overlay_image(inp) if "overlay" in targets and inp.ndim == 2 else None
    rule = model.instance_rule if isinstance(model, TrainedModel) else None
    spacing = spacing_values(inp.file.spacing, 3 if inp.ndim == 3 or inp.stack else 2)
    names = model.class_names if isinstance(model, TrainedModel) else []
    made = write_outputs(pages, targets, o, image=image, stack=inp.stack, source=path, rule=rule,
                         spacing=spacing, class_names=names)  # fmt: skip
    return made.paths


def _mask_in_geometry(
    inp: _Input, path: Path, targets: dict[str, Path], o: PredictOptions
) -> dict[str, Path]:
    """``targets`` with a TIFF mask for a stack or a volume; a PNG one asked for is an error."""
    if "mask" not in targets or inp.flat:
        return targets
    if o.mask_format == "png":  # PNG holds 2D images only
        kind = "a 3D volume" if inp.ndim == 3 else "a stack of pages"
        raise ValueError(
            f"{path} is {kind} of shape {tuple(inp.file.data.shape)}, which a PNG mask cannot "
            "hold; use mask_format 'tif' or 'auto' (predict --mask-format tif)"
        )
    return {**targets, "mask": targets["mask"].with_suffix(".tif")}


def _predict_kwargs(o: PredictOptions, progress: bool | None) -> dict[str, Any]:
    """The keywords of :func:`biounet.predict` that ``o`` sets."""
    # progress passes unchanged: None lets tqdm decide by the terminal
    return dict(
        tile_shape=o.tile_shape,
        batch_size=o.batch_size,
        tta=o.tta,
        device=o.device,
        progress=progress,
        backend=o.backend,
    )


def _predict_pages(
    model: TrainedModel | UNet, inp: _Input, path: Path, o: PredictOptions, progress: bool | None
) -> list[np.ndarray]:
    """Probabilities ``(K, *S)`` of the image, or of each page of a stack."""
    from biounet.inference.predictor import predict  # looked up per call: tests spy on it

    f = inp.file
    frames = [f.data[i] for i in range(f.data.shape[0])] if inp.stack else [f]
    kw = _predict_kwargs(o, progress)
    return [
        predict(model, to_channels_first(frame, inp.ndim, name=str(path)), **kw) for frame in frames
    ]


def _predict_into_zarr(
    model: TrainedModel | UNet,
    inp: _Input,
    path: Path,
    dest_path: Path,
    o: PredictOptions,
    progress: bool | None,
) -> None:
    """Predict a (lazy) input into the Zarr array ``dest_path``, tile by tile."""
    image = to_channels_first(inp.file, inp.ndim, name=str(path))
    shape = (model.config.num_classes, *image.shape[1:])
    # written tile by tile into a temporary store, renamed when complete (Ctrl-C included:
    # no half-written store stays behind, and an old one is kept until then)
    with atomic_path(dest_path) as tmp:
        _predict_into(model, image, _create_probs(tmp, shape), o, progress)


def _create_probs(tmp: Path, shape: tuple[int, ...]) -> Any:
    """A float32 Zarr array ``(K, *S)`` at ``tmp`` (replacing an empty file), 512 px chunks."""
    import zarr

    tmp.unlink(missing_ok=True)
    nd = len(shape) - 1
    dest = zarr.open_array(
        str(tmp), mode="w", shape=shape, dtype="f4", chunks=(shape[0],) + (512,) * nd
    )
    dest.attrs["axes"] = "CZYX" if nd == 3 else "CYX"
    return dest


def _predict_into(
    model: TrainedModel | UNet, image: Any, dest: Any, o: PredictOptions, progress: bool | None
) -> None:
    """Predict ``image`` ``(C, *S)`` into the array ``dest`` ``(K, *S)``, tile by tile.

    Under ``torchrun`` (a process group) ``predict`` writes only this process's chunks of a
    Zarr ``dest`` (:class:`~biounet.inference.tiling.shards.Shard`).
    """
    from biounet.inference.predictor import predict  # looked up per call: tests spy on it

    predict(model, image, out=dest, **_predict_kwargs(o, progress))


def _open_zarr(path: Path, mode: str = "r") -> Any:
    """The Zarr array at ``path``, read-only (``mode="r"``) or to write into (``"r+"``)."""
    import zarr

    return zarr.open_array(str(path), mode=mode)


def _overlay_image(inp: _Input) -> Any:
    """The 2D image ``(C, Y, X)`` an overlay is drawn on: the image, or a stack's first page."""
    data = inp.file.data
    return to_channels_first(np.asarray(data[0] if inp.stack else data), 2)
