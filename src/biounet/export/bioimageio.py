"""bioimage.io model packages (format 0.5) of trained biounet models.

``biounet export MODEL --format bioimageio --out DIR|FILE.zip`` writes what the bioimage.io
model zoo, deepImageJ (Fiji), ilastik and napari read:

* the weights three ways: the PyTorch state dict with its architecture
  (:class:`biounet.export.padded.PaddedUNet`, imported from biounet), TorchScript and ONNX
  (both self-contained: they need no biounet);
* the input ``(batch, channel, [z,] y, x)`` of any size ``min + step * n`` per spatial axis
  (:func:`~biounet.export.padded.axis_sizes`), the output of the input's size with the margin as
  its halo (a tiling tool crops it), class probabilities after the ``softmax``
  postprocessing; the pixel size as the axes' scale where the training images declared one;
* the stored normalisation as preprocessing (``percentile``: ``scale_range`` per image;
  ``meanstd``: ``zero_mean_unit_variance``; ``range``: ``scale_linear``);
* a test input (a crop of ``sample``, or of a synthetic image) and its expected output made by
  :func:`biounet.predict`, a cover, documentation, authors, licence and the paper to cite.

Needs ``pip install "biounet[bioimageio]"`` (bioimageio.spec; bioimageio.core to test the
package).
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from biounet.checkpoint import unwrap
from biounet.export.formats import export_onnx, export_torchscript, require
from biounet.export.padded import PaddedUNet, axis_sizes
from biounet.export.rdf import build_description, cover_image, save_package, training_config
from biounet.inference.trained import TrainedModel
from biounet.model.unet import UNet

__all__ = ["export_bioimageio"]

log = logging.getLogger(__name__)
#: the largest test input per spatial axis, px (keeps the package small)
_SAMPLE_SIZE = 256


def _crop(image: np.ndarray, net: UNet) -> np.ndarray:
    """``image (C, *S)`` cut (centred) or mirror-padded to sizes :class:`PaddedUNet` takes."""
    out = image
    for i, a in enumerate(axis_sizes(net)):
        n = out.shape[1 + i]
        want = max(a.min, a.min + a.step * ((min(n, max(_SAMPLE_SIZE, a.min)) - a.min) // a.step))
        if n < want:
            pad = [(0, 0)] * out.ndim
            pad[1 + i] = (0, want - n)
            out = np.pad(out, pad, mode="symmetric")
        start = (out.shape[1 + i] - want) // 2
        out = np.take(out, range(start, start + want), axis=1 + i)
    return np.ascontiguousarray(out, dtype=np.float32)


def _default_sample(model: TrainedModel, train: dict[str, Any]) -> np.ndarray:
    """A training image when its folder is here, else a synthetic one; ``(C, *S)``.

    ``train``: the configuration the model was trained with (:func:`training_config`).
    """
    from biounet.data.layouts import find_dataset

    data = train.get("data", {})
    path = data.get("path", "")
    if path and Path(path).is_dir():
        try:
            first = find_dataset(path, ndim=model.ndim)[0]
            return np.asarray(first.image, np.float32)
        except (OSError, ValueError, IndexError):
            pass
    from biounet.data.synthetic import make_cells, make_nuclei

    if model.ndim == 3:
        image = make_nuclei((48, 128, 128), seed=0)[0]
    else:
        image = make_cells((256, 256), seed=0)[0]
    c = model.config.in_channels
    return np.repeat(np.asarray(image, np.float32)[None] * 255, c, axis=0)


def _check_out(out: Path) -> None:
    """A new package path (which therefore replaces no input) in an existing folder."""
    if out.exists():
        raise FileExistsError(f"{out} exists: give a new --out (a folder or a .zip file)")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"{out}: the folder {out.parent} does not exist")


def _name(text: str) -> str:
    """A bioimage.io model name: letters, digits, spaces and ``_+-()``, 5 to 128 characters."""
    clean = re.sub(r"[^A-Za-z0-9 _+\-()]", " ", text).strip() or "biounet model"
    return (clean if len(clean) >= 5 else f"biounet {clean}")[:128]


def export_bioimageio(
    model: TrainedModel,
    out: str | Path,
    *,
    sample: np.ndarray | None = None,
    name: str | None = None,
    authors: Sequence[str] = (),
    license: str = "CC-BY-4.0",
    description: str = "",
) -> Path:
    """Write ``model`` as a bioimage.io model package (format 0.5) to a folder or a ``.zip``.

    Parameters
    ----------
    model : TrainedModel
        From :func:`biounet.load`.
    out : str or Path
        A new folder, or a file ending in ``.zip``; must not exist.
    sample : numpy.ndarray, optional
        An image ``(C, *S)`` (or ``S`` for one channel) like the model's input; a crop of it is
        the test input. Default: the first training image if its folder is on this machine,
        else a synthetic image.
    name, description : str
        The package's name (default: the model's folder) and description.
    authors : sequence of str
        Names of the authors (default: "biounet user").
    license : str
        An SPDX licence identifier for the package (e.g. ``CC-BY-4.0``, ``MIT``).

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    ImportError
        bioimageio.spec, onnx or onnxscript are missing (the message says what to install).
    FileExistsError
        ``out`` exists.
    ValueError
        An image of another number of channels or dimensions than the model's, or a package
        that bioimage.io's validation refuses (its errors listed).
    """
    require("bioimageio.spec", "onnx", "onnxscript", what="bioimage.io export", extra="bioimageio")
    out = Path(out)
    _check_out(out)
    net = unwrap(model.net)
    padded = PaddedUNet(**net.config.to_dict()).eval()  # float32 on the CPU
    padded.net.load_state_dict(net.state_dict())  # copied, whatever the model's device
    train = training_config(model)  # read once: the sample and the description use it
    image = _default_sample(model, train) if sample is None else np.asarray(sample, np.float32)
    if image.ndim == model.ndim:
        image = image[None]
    if image.ndim != model.ndim + 1 or image.shape[0] != model.config.in_channels:
        raise ValueError(
            f"sample of shape {image.shape}: the model takes ({model.config.in_channels}, "
            f"{model.ndim} spatial axes)"
        )
    x = _crop(image, padded.net)
    expected = _expected(model, padded, x)
    with tempfile.TemporaryDirectory(prefix="biounet-bioimageio-") as tmp:
        work = Path(tmp)
        files = _write_files(work, padded, x, expected)
        descr = build_description(
            model, padded, files, train=train, name=_name(name or _default_name(model)),
            authors=authors, license=license, description=description,
        )  # fmt: skip
        save_package(descr, out)
    return out


def _default_name(model: TrainedModel) -> str:
    src = Path(model.source) if model.source is not None else Path("model")
    return f"biounet {src.parent.name if src.suffix == '.pt' else src.name}"


def _expected(model: TrainedModel, padded: PaddedUNet, x: np.ndarray) -> np.ndarray:
    """The test output ``(K, *S)``: :func:`biounet.predict`'s, checked against one pass.

    For a valid network the overlap-tile result equals one pass of :class:`PaddedUNet` over
    the normalised input (biounet's equivalence); a same-padded one blends tiles, so its
    expected output is the single pass, what the package computes.
    """
    from biounet.inference.predictor import predict

    probs = np.asarray(predict(model, x), np.float32)
    norm = model.normalizer(x) if model.normalizer is not None else x
    with torch.inference_mode():
        one = torch.softmax(padded(torch.from_numpy(np.asarray(norm, np.float32))[None]), 1)
    single = one[0].numpy()
    diff = float(np.abs(single - probs).max())
    if padded.net.config.padding == "valid" and diff > 1e-3:
        raise ValueError(f"the padded network differs from biounet.predict by {diff:.3g}")
    return probs if padded.net.config.padding == "valid" else single


def _write_files(
    work: Path, padded: PaddedUNet, x: np.ndarray, expected: np.ndarray
) -> dict[str, Path]:
    """Weights (state dict, TorchScript, ONNX), test tensors, sample images and a cover."""
    import tifffile

    files = {
        "state_dict": work / "weights.pt",
        "torchscript": work / "weights_torchscript.pt",
        "onnx": work / "weights.onnx",
        "test_input": work / "test_input.npy",
        "test_output": work / "test_output.npy",
        "sample_input": work / "sample_input.tif",
        "sample_output": work / "sample_output.tif",
        "cover": work / "cover.png",
    }
    torch.save(padded.state_dict(), files["state_dict"])
    example = (1, *x.shape)
    export_torchscript(padded, example, files["torchscript"])
    shapes = _onnx_shapes(padded)
    export_onnx(padded, example, files["onnx"], True, 18, shapes=shapes)
    np.save(files["test_input"], x[None])
    np.save(files["test_output"], expected[None])
    # channels as pages, never read as colour
    tifffile.imwrite(files["sample_input"], x if x.shape[0] > 1 else x[0], photometric="minisblack")
    tifffile.imwrite(files["sample_output"], expected, photometric="minisblack")
    cover_image(x, expected, files["cover"])
    return files


def _onnx_shapes(padded: PaddedUNet) -> tuple[dict[int, Any]]:
    """Dynamic batch; each spatial axis ``min + step * n``."""
    from torch.export import Dim

    axes: dict[int, Any] = {0: Dim("batch", min=1)}
    for i, (a, letter) in enumerate(zip(axis_sizes(padded.net), "zyx"[-padded.net.ndim :])):
        n = Dim(letter, min=a.min // a.step)
        axes[2 + i] = a.step * n + a.min % a.step
    return (axes,)
