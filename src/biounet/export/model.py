"""Exporting a model: choose the tile, write the format, check it, write the sidecar."""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

from biounet.checkpoint import unwrap
from biounet.core.checks import int_tuple, is_int, look_up
from biounet.core.files import atomic_path, check_free_space, output_folder
from biounet.core.paths import check_outputs
from biounet.export import formats
from biounet.export.check import check_export
from biounet.export.report import ExportReport, sidecar
from biounet.inference.trained import TrainedModel
from biounet.model.unet import UNet

__all__ = ["default_tile", "export_model"]

log = logging.getLogger(__name__)


def default_tile(model: UNet | TrainedModel) -> tuple[int, ...]:
    """The example tile (spatial shape) used when none is given.

    A trained model's training tile (:attr:`TrainedModel.tile`) if it is valid, else the
    smallest valid size >= 572 px in 2D (the paper's tile) or >= 96 voxels in 3D.
    """
    tile = model.tile if isinstance(model, TrainedModel) else None
    if tile is not None and model.geometry.is_valid_shape(tile):
        return tuple(tile)
    return model.geometry.valid_shape(572 if model.ndim == 2 else 96)


def export_model(
    model: UNet | TrainedModel,
    path: str | Path,
    *,
    format: str = "torchscript",
    tile_shape: Sequence[int] | int | None = None,
    dynamic: bool = True,
    check: bool = True,
    atol: float = 1e-4,
    opset: int | None = None,
) -> ExportReport:
    """Export the network of ``model`` to ``path`` and check it against the eager model.

    Parameters
    ----------
    model : TrainedModel or UNet
        A trained model (its class names and normalisation go into the sidecar) or a bare
        network (DDP / ``torch.compile`` wrappers are removed). The network is copied to the
        CPU in float32 and eval mode; ``model`` itself is not changed.
    path : str or Path
        The file to write (e.g. ``net.pt`` or ``net.onnx``); its folder is created if needed
        (and removed again if the export fails). The sidecar goes to ``<path>.json``.
    format : {"torchscript", "onnx"}
    tile_shape : int or sequence of int, optional
        Spatial shape of the example tile; an int is used for every axis. Must be valid for the
        network (the error names the nearest valid sizes). Default: :func:`default_tile`.
    dynamic : bool
        Export with a dynamic batch and tile size (example batch 2) and check a second tile
        size at batch 1; False: the fixed example shape at batch 1.
    check : bool
        Compare the exported file (loaded back: ``torch.jit.load`` or an ``onnxruntime``
        session) with the eager model on seeded random normal tiles.
    atol : float
        Largest allowed absolute difference of logits, >= 0.
    opset : int, optional
        ONNX opset version (default: the exporter's recommended one). ONNX only.

    Returns
    -------
    ExportReport

    Raises
    ------
    ValueError
        Unknown format (with a did-you-mean), an invalid tile shape, a negative or NaN
        ``atol``, or ``opset`` with TorchScript.
    biounet.core.checks.InputTypeError
        A tile shape that is not integers (a TypeError).
    FileExistsError, PermissionError
        The folder of ``path`` cannot be made or written.
    ImportError
        ``onnx``, ``onnxscript`` or ``onnxruntime`` is missing.
    ExportCheckError
        The check failed; nothing was written.
    """
    format = look_up(format, formats.FORMATS, "export format")
    if opset is not None and format != "onnx":
        raise ValueError(f"opset applies to ONNX exports only, got opset={opset} for {format}")
    if not atol >= 0:  # NaN too
        raise ValueError(
            f"atol must be >= 0 (the largest allowed |difference| of logits), got {atol}"
        )
    trained = model if isinstance(model, TrainedModel) else TrainedModel(unwrap(model))
    net = copy.deepcopy(unwrap(trained.net)).cpu().float().eval()
    tile = _tile_shape(trained, tile_shape)
    c, k = net.config.in_channels, net.config.num_classes
    example = (2 if dynamic else 1, c, *tile)
    out_shape = (example[0], k, *net.output_shape(tile))
    path = Path(path)
    _check_paths(path, trained, net)
    if format == "onnx":
        formats.require("onnx", "onnxscript", *(("onnxruntime",) if check else ()))
    is_dynamic, note, version = dynamic, "", None
    with output_folder(path.parent, "folder of the export"), atomic_path(path) as tmp:
        start = time.perf_counter()
        if format == "torchscript":
            formats.export_torchscript(net, example, tmp)
        else:
            is_dynamic, note, version = formats.export_onnx(net, example, tmp, dynamic, opset)
            if not is_dynamic:
                example, out_shape = (1, *example[1:]), (1, *out_shape[1:])
        seconds = time.perf_counter() - start
        shapes = [example]
        if is_dynamic:  # a second valid tile size: one pooling step smaller (or larger)
            g = net.geometry
            steps = zip(tile, g.alignments, g.min_input_shape)
            shapes.append((1, c, *(n - a if n - a >= lo else n + a for n, a, lo in steps)))
        diff, check_seconds = None, 0.0
        if check:
            start = time.perf_counter()
            run = formats.runner(format, tmp)
            diff = check_export(net, run, shapes, atol, f"{format} export for {path}")
            check_seconds = time.perf_counter() - start
        report = ExportReport(
            path=path,
            sidecar=path.with_name(path.name + ".json"),
            format=format,
            input_shape=example,
            output_shape=out_shape,
            dynamic=is_dynamic,
            max_abs_diff=diff,
            atol=atol,
            checked_tiles=tuple(shapes) if check else (),
            seconds=seconds,
            check_seconds=check_seconds,
            bytes=tmp.stat().st_size,
            note=note,
        )
        meta = sidecar(trained, report, tmp, version)
        with atomic_path(report.sidecar) as tmp_json:
            tmp_json.write_text(json.dumps(meta, indent=2) + "\n")
    log.debug("%s", report.summary())
    return report


def _check_paths(path: Path, model: TrainedModel, net: UNet) -> None:
    """Before exporting: the export and its sidecar replace no input, and fit on the disk.

    The exporters write from C++ and may abort the process on a full disk, so the free space
    is checked first (the size of the weights, as float32).
    """
    if path.is_dir():
        raise IsADirectoryError(21, "a folder, not a file: give the export's file name", str(path))
    inputs = {model.source: "the model it exports"} if model.source is not None else {}
    sidecar_path = path.with_name(path.name + ".json")
    check_outputs([(path, "the export"), (sidecar_path, "its JSON sidecar")], inputs)
    if path.parent.is_dir():
        size = sum(p.numel() * 4 for p in net.parameters())
        check_free_space(path, size, "the export")


def _tile_shape(model: TrainedModel, tile_shape: Sequence[int] | int | None) -> tuple[int, ...]:
    """The example tile: ``tile_shape`` checked (an int for every axis), or the default."""
    net = model.net
    if tile_shape is None:
        return default_tile(model)
    # a sequence keeps its length here: the network names a wrong number of axes below
    tile = int_tuple(tile_shape, "tile_shape", net.ndim if is_int(tile_shape) else None)
    net.output_shape(tile)  # ValueError naming the axis and the nearest valid sizes
    return tile
