"""Export a U-Net's network to TorchScript or ONNX, checked against the eager model.

Only the network is exported: a tile ``(N, C, *S)`` float32 in, logits ``(N, K, *S_out)``
float32 out, in eval mode (dropout off, batch norm with its running statistics). Normalisation,
overlap-tiling, softmax and stitching stay in biounet; the sidecar JSON written beside the export
(``<file>.json``) tells another tool how to do them: axes, valid tile sizes, margin, output
offset, classes, the stored normalisation and the biounet version.

The modules: :mod:`~biounet.export.model` (:func:`export_model`, the one entry point),
:mod:`~biounet.export.formats` (writing each format and loading it back),
:mod:`~biounet.export.check` (the numerical check against the eager model) and
:mod:`~biounet.export.report` (:class:`ExportReport` and the JSON sidecar).

Formats
-------
``"torchscript"``
    ``torch.jit.trace`` of the network, saved with ``torch.jit.save`` (load with
    ``torch.jit.load``). The trace records the size arithmetic of the crops, so the file takes
    any batch and any valid tile size. torch 2.13 deprecates TorchScript (``jit.trace``, ``save``,
    ``load`` warn); it still works, and those warnings are silenced during an export only.
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

from biounet.export.check import ExportCheckError
from biounet.export.formats import FORMATS
from biounet.export.model import default_tile, export_model
from biounet.export.report import ExportReport

#: what ``biounet export --format`` writes: the network alone (:data:`FORMATS`) or a
#: bioimage.io model package (:func:`biounet.export.bioimageio.export_bioimageio`)
EXPORT_FORMATS = (*FORMATS, "bioimageio")

__all__ = [
    "EXPORT_FORMATS",
    "FORMATS",
    "ExportCheckError",
    "ExportReport",
    "default_tile",
    "export_model",
]
