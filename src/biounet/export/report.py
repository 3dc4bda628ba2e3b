"""What an export wrote and measured (:class:`ExportReport`), and its JSON sidecar."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from biounet._version import __version__
from biounet.export.formats import AXES
from biounet.inference.trained import TrainedModel

__all__ = ["ExportReport", "sidecar"]


@dataclass(frozen=True)
class ExportReport:
    """What :func:`~biounet.export.model.export_model` wrote and measured.

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


def sidecar(
    model: TrainedModel, report: ExportReport, tmp: Path, opset: int | None
) -> dict[str, Any]:
    """The sidecar JSON: what another tool needs to normalise, tile and read the output.

    ``tmp`` is the written export (hashed); ``opset`` the ONNX opset (None for TorchScript).
    """
    net = model.net
    g, cfg = net.geometry, net.config
    axes = "bc" + AXES[net.ndim]
    m = g.margins[0] if g.isotropic else list(g.margins)
    offset = m if cfg.padding == "valid" else 0
    per = "px per side" if g.isotropic else "px per side and axis"
    tiling = (
        f"output pixel i of a tile is input pixel i + {'margin' if not g.isotropic else m} per "
        f"axis: mirror-pad the image by {m} {per} and step the tiles by their output size"
        if cfg.padding == "valid"
        else f"output size = tile size: overlap tiles by {m} {per}, keep centres"
    )
    rule = "min + step * j per spatial axis (j >= 0)" if report.dynamic else "the example only"
    last = g.axes[-1]
    sizes = last.valid_sizes(last.min_input_size, last.min_input_size + 4 * last.alignment)
    lo = last.min_input_size if g.isotropic else list(g.min_input_shape)
    step = last.alignment if g.isotropic else list(g.alignments)
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
        "valid_tile_sizes": {"dynamic": report.dynamic, "rule": rule, "min": lo,
                             "step": step, "examples": sizes},
        "padding": cfg.padding,
        "margin": m,
        "output_offset": offset,
        "tiling": tiling,
        "normalization": model.normalizer.to_dict() if model.normalizer is not None else None,
        "normalization_note": "apply to each whole image before tiling (biounet.data.normalize)",
        "scale": float(getattr(model, "scale", 1.0)),
        "voxel_spacing": list(model.spacing) if model.spacing is not None else None,
        "scale_note": "resample each image by this factor first (linear, Gaussian anti-aliasing "
                      "when shrinking; biounet.data.resample) and the probabilities back to the "
                      "image's grid after; 1: none",
        "model_config": cfg.to_dict(),
        "check": {"max_abs_diff": report.max_abs_diff, "atol": report.atol,
                  "tiles": [list(t) for t in report.checked_tiles]},
    }  # fmt: skip
