"""Export a U-Net's network to TorchScript or ONNX, checked against the eager model.

Only the network is exported: a tile ``(N, C, *S)`` float32 in, logits ``(N, K, *S_out)``
float32 out, in eval mode (dropout off, batch norm with its running statistics). Normalisation,
overlap-tiling, softmax and stitching stay in biounet; the sidecar JSON written beside the export
(``<file>.json``) tells another tool how to do them: axes, valid tile sizes, margin, output
offset, classes, the stored normalisation and the biounet version.

Formats
-------
``"torchscript"``
    ``torch.jit.trace`` of the network, saved with ``torch.jit.save`` (load with
    ``torch.jit.load``). The trace records the size arithmetic of the crops, so the file takes
    any batch and any valid tile size. torch 2.13 deprecates TorchScript (``jit.trace``, ``save``,
    ``load`` warn); it still works, and those warnings are silenced inside this module only.
``"onnx"``
    ``torch.onnx.export`` with the ``torch.export`` (dynamo) exporter, which needs ``onnx`` and
    ``onnxscript``; checked with ``onnxruntime`` on the CPU (``pip install 'biounet[export]'``).
    The graph's input is named ``input``, its output ``logits``. Batch and spatial axes are
    dynamic: spatial sizes of the form ``min + step * j`` (the valid sizes). If the exporter
    cannot make them dynamic, the export falls back to the fixed example shape and the report
    (and sidecar) say so. The weights are stored inside the file (no
    external data), so networks above 2 GB cannot be exported.

The file is written to a temporary name beside ``path`` and renamed only after the check passed:
a failed export leaves nothing behind.

Examples
--------
>>> import tempfile, biounet
>>> from biounet.export import export_model
>>> net = biounet.UNet(depth=2, base_width=4)
>>> with tempfile.TemporaryDirectory() as tmp:
...     report = export_model(net, f"{tmp}/net.pt", tile_shape=64)
>>> report.output_shape, report.max_abs_diff < 1e-4
((2, 2, 24, 24), True)
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib.util
import json
import logging
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from biounet._version import __version__
from biounet.checkpoint import unwrap
from biounet.core.checks import look_up
from biounet.core.files import atomic_path, output_folder
from biounet.inference.trained import TrainedModel
from biounet.model.unet import UNet

__all__ = ["FORMATS", "ExportCheckError", "ExportReport", "default_tile", "export_model"]

log = logging.getLogger(__name__)

FORMATS = ("torchscript", "onnx")
_INSTALL = "install with pip install 'biounet[export]'"
_AXES = {2: "yx", 3: "zyx"}


class ExportCheckError(RuntimeError):
    """The exported network's logits differ from the eager model's by more than ``atol``.

    Not a bad input but a failure of the exporter or the runtime: a ``RuntimeError``. Its
    message is one line that names the file, the difference and the tile.
    """


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_model` wrote and measured.

    Attributes
    ----------
    path, sidecar : Path
        The exported network and its JSON description.
    format : str
        ``"torchscript"`` or ``"onnx"``.
    input_shape, output_shape : tuple of int
        The example tile ``(N, C, *S)``, the first one checked, and its logits
        ``(N, K, *S_out)``. ONNX is exported with it; TorchScript traces it at batch 1.
    dynamic : bool
        Whether the file takes other batch sizes and valid tile sizes (checked when ``check``).
    max_abs_diff : float or None
        Largest absolute difference of logits, exported vs eager, over the checked tiles
        (None without a check).
    atol : float
        The tolerance it was checked against.
    checked_tiles : tuple of tuple of int
        Input shapes ``(N, C, *S)`` of the seeded random tiles that were compared.
    seconds, check_seconds : float
        Wall time of the export (tracing + saving) and of the check.
    bytes : int
        Size of the exported file.
    note : str
        Anything the user should know, e.g. a fall-back to a fixed shape.
    """

    path: Path
    sidecar: Path
    format: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    dynamic: bool
    max_abs_diff: float | None
    atol: float
    checked_tiles: tuple[tuple[int, ...], ...] = ()
    seconds: float = 0.0
    check_seconds: float = 0.0
    bytes: int = 0
    note: str = field(default="")

    def summary(self) -> str:
        """One line for a log or a terminal."""
        axes = "dynamic batch and tile size" if self.dynamic else "fixed shape"
        check = (
            f"max |diff| {self.max_abs_diff:.2g} <= {self.atol:g} on {len(self.checked_tiles)} "
            f"tile shape(s)"
            if self.max_abs_diff is not None
            else "not checked"
        )
        note = f" ({self.note})" if self.note else ""
        return (
            f"{self.format}: {self.path} ({self.bytes / 1e6:.1f} MB, {self.seconds:.1f} s); "
            f"{self.input_shape} -> {self.output_shape}, {axes}; {check}{note}"
        )


def default_tile(model: UNet | TrainedModel) -> tuple[int, ...]:
    """The example tile (spatial shape) used when none is given.

    A trained model's training tile (:attr:`TrainedModel.tile`) if it is valid, else the
    smallest valid size >= 572 px in 2D (the paper's tile) or >= 96 voxels in 3D.
    """
    tile = model.tile if isinstance(model, TrainedModel) else None
    if tile is not None and model.geometry.is_valid_size(tile):
        return (tile,) * model.ndim
    target = 572 if model.ndim == 2 else 96
    return (model.geometry.nearest_valid_sizes(target)[1],) * model.ndim


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
    FileExistsError, PermissionError
        The folder of ``path`` cannot be made or written.
    ImportError
        ``onnx``, ``onnxscript`` or ``onnxruntime`` is missing.
    ExportCheckError
        The check failed; nothing was written.
    """
    format = look_up(format, FORMATS, "export format")
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
    sidecar = path.with_name(path.name + ".json")
    if format == "onnx":
        _require("onnx", "onnxscript", *(("onnxruntime",) if check else ()))
    is_dynamic, note, version = dynamic, "", None
    with output_folder(path.parent, "folder of the export"), atomic_path(path) as tmp:
        start = time.perf_counter()
        if format == "torchscript":
            _export_torchscript(net, example, tmp)
        else:
            is_dynamic, note, version = _export_onnx(net, example, tmp, dynamic, opset)
            if not is_dynamic:
                example, out_shape = (1, *example[1:]), (1, *out_shape[1:])
        seconds = time.perf_counter() - start
        shapes = [example]
        if is_dynamic:  # a second valid tile size: one pooling step smaller (or larger)
            step, lo = net.geometry.alignment, net.geometry.min_input_size
            shapes.append((1, c, *(n - step if n - step >= lo else n + step for n in tile)))
        diff, check_seconds = None, 0.0
        if check:
            start = time.perf_counter()
            diff = _check(net, _runner(format, tmp), shapes, atol, f"{format} export for {path}")
            check_seconds = time.perf_counter() - start
        report = ExportReport(
            path=path,
            sidecar=sidecar,
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
        meta = _describe(trained, report, tmp, version)
        with atomic_path(sidecar) as tmp_json:
            tmp_json.write_text(json.dumps(meta, indent=2) + "\n")
    log.debug("%s", report.summary())
    return report


# ---------------------------------------------------------------------------------- helpers
def _tile_shape(model: TrainedModel, tile_shape: Sequence[int] | int | None) -> tuple[int, ...]:
    net = model.net
    if tile_shape is None:
        return default_tile(model)
    tile = (tile_shape,) * net.ndim if isinstance(tile_shape, int) else tuple(tile_shape)
    if not all(isinstance(n, int | np.integer) for n in tile):
        raise TypeError(f"tile_shape must be integers, got {tile_shape!r}")
    tile = tuple(int(n) for n in tile)
    net.output_shape(tile)  # ValueError naming the axis and the nearest valid sizes
    return tile


def _require(*modules: str) -> None:
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(f"ONNX export needs {', '.join(missing)}: {_INSTALL}")


#: warnings known to be harmless, silenced during an export only: (message, category, module)
_HARMLESS: list[tuple[str, type[Warning], str]] = [
    # torch 2.13 deprecates TorchScript (trace, save, load); it still works
    (r"`torch\.jit\.(trace|trace_method|save|load)` is deprecated", DeprecationWarning, ""),
    # jit.trace: the input checks in UNet.forward and in torch's group / instance norm turn sizes
    # into Python values; they only validate (no value flows into the computation), so the
    # trace stays right for other sizes, which the check confirms on a second tile size
    (r"Converting a tensor to a Python (boolean|integer)", torch.jit.TracerWarning,
     r"biounet\.model\.(unet|geometry)$"),
    (r"Converting a tensor to a Python boolean", torch.jit.TracerWarning,
     r"torch\.nn\.(functional|modules\.instancenorm)$"),
    # torch.export's own use of a deprecated pytree class (torch 2.13)
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning, ""),
]  # fmt: skip


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence :data:`_HARMLESS` and the exporter's "torchvision is not installed" log lines."""
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    with warnings.catch_warnings():
        for message, category, module in _HARMLESS:
            warnings.filterwarnings("ignore", message, category, module)
        registration.setLevel(logging.ERROR)
        try:
            yield
        finally:
            registration.setLevel(level)


def _export_torchscript(net: UNet, example: tuple[int, ...], tmp: Path) -> None:
    x = torch.zeros((1, *example[1:]))  # the trace records sizes, so batch 1 is enough
    with _quiet_exporter(), torch.no_grad():
        traced = torch.jit.trace(net, x, check_trace=False)  # we check the saved file instead
        torch.jit.save(traced, str(tmp))


def _export_onnx(
    net: UNet, example: tuple[int, ...], tmp: Path, dynamic: bool, opset: int | None
) -> tuple[bool, str, int | None]:
    """Write ``tmp``; returns (dynamic axes?, note, opset)."""
    import onnx

    def program(shape: tuple[int, ...], axes: tuple[dict[int, Any]] | None) -> Any:
        with _quiet_exporter():
            return torch.onnx.export(
                net,
                (torch.zeros(shape),),
                dynamo=True,
                dynamic_shapes=axes,
                input_names=["input"],
                output_names=["logits"],
                opset_version=opset,
                external_data=False,
                verbose=False,
            )

    note, exported = "", None
    if dynamic:
        try:
            exported = program(example, _dynamic_shapes(net))
        except Exception as e:  # the exporter raises many kinds; say so and fall back
            note = f"dynamic axes failed ({type(e).__name__}); fixed shape"
            log.warning("ONNX export with dynamic axes failed, using a fixed shape: %.300s", e)
    if exported is None:
        exported = program((1, *example[1:]), None)
    with _quiet_exporter():
        exported.save(str(tmp), external_data=False)
    proto = onnx.load(str(tmp))
    onnx.checker.check_model(proto)
    version = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    return dynamic and not note, note, version


def _dynamic_shapes(net: UNet) -> tuple[dict[int, Any]]:
    """Batch free; each spatial axis ``min + step * j``, i.e. ``step * k + min % step``."""
    from torch.export import Dim

    step, lo = net.geometry.alignment, net.geometry.min_input_size
    axes: dict[int, Any] = {0: Dim("batch", min=1)}
    for i, name in enumerate(_AXES[net.ndim]):
        k = Dim(name, min=max(lo // step, 1))
        axes[2 + i] = k if step == 1 else step * k + lo % step
    return (axes,)


def _runner(format: str, tmp: Path) -> Callable[[torch.Tensor], np.ndarray]:
    """Load the written file back: a function tile ``(N, C, *S)`` -> logits ``(N, K, *S')``."""
    if format == "torchscript":
        with _quiet_exporter():
            loaded = torch.jit.load(str(tmp), map_location="cpu")
        return lambda x: loaded(x).detach().numpy()
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(tmp), options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"input": x.numpy()})[0]


def _check(
    net: UNet,
    run: Callable[[torch.Tensor], np.ndarray],
    shapes: list[tuple[int, ...]],
    atol: float,
    what: str,
) -> float:
    """Largest ``|exported - eager|`` over seeded random tiles; ExportCheckError above atol."""
    gen = torch.Generator().manual_seed(0)
    worst = 0.0
    for shape in shapes:
        x = torch.randn(shape, generator=gen)
        with torch.no_grad():
            ref = net(x).numpy()
        out = run(x)
        if out.shape != ref.shape:
            raise ExportCheckError(
                f"{what}: logits {out.shape} for tile {shape}, eager {ref.shape}"
            )
        diff = float(np.max(np.abs(out.astype(np.float64) - ref)))
        if not diff <= atol:  # also catches NaN
            raise ExportCheckError(
                f"{what} does not match the eager model: max |difference| of logits {diff:.3g} "
                f"> atol {atol:g} on tile {shape} (largest |logit| {np.abs(ref).max():.3g}); "
                "nothing was written"
            )
        worst = max(worst, diff)
    return worst


def _describe(
    model: TrainedModel, report: ExportReport, tmp: Path, opset: int | None
) -> dict[str, Any]:
    """The sidecar: what another tool needs to normalise, tile and read the output."""
    net = model.net
    g, cfg = net.geometry, net.config
    axes = "bc" + _AXES[net.ndim]
    offset = g.margin if cfg.padding == "valid" else 0
    tiling = (
        f"output pixel i of a tile is input pixel i + {offset} per axis: mirror-pad the image by "
        f"{g.margin} px per side and step the tiles by their output size"
        if cfg.padding == "valid"
        else f"output size = tile size: overlap tiles by {g.margin} px per side, keep centres"
    )
    rule = "min + step * j per spatial axis (j >= 0)" if report.dynamic else "the example only"
    sizes = g.valid_sizes(g.min_input_size, g.min_input_size + 4 * g.alignment)
    tensor = {"axes": axes, "dtype": "float32"}
    return {
        "file": report.path.name,
        "format": report.format,
        "sha256": hashlib.sha256(tmp.read_bytes()).hexdigest(),
        "biounet_version": __version__,
        "torch_version": torch.__version__,
        "onnx_opset": opset,
        "input": {"name": "input", **tensor, "channels": cfg.in_channels,
                  "example_shape": list(report.input_shape), "dynamic_batch": report.dynamic},
        "output": {"name": "logits", **tensor, "example_shape": list(report.output_shape),
                   "meaning": "logits; softmax over axis 1 gives class probabilities"},
        "num_classes": cfg.num_classes,
        "class_names": list(model.class_names) or None,
        "valid_tile_sizes": {"dynamic": report.dynamic, "rule": rule, "min": g.min_input_size,
                             "step": g.alignment, "examples": sizes},
        "padding": cfg.padding,
        "margin": g.margin,
        "output_offset": offset,
        "tiling": tiling,
        "normalization": model.normalizer.to_dict() if model.normalizer is not None else None,
        "normalization_note": "apply to each whole image before tiling (biounet.data.normalize)",
        "model_config": cfg.to_dict(),
        "check": {"max_abs_diff": report.max_abs_diff, "atol": report.atol,
                  "tiles": [list(t) for t in report.checked_tiles]},
    }  # fmt: skip
