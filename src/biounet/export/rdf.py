"""The bioimage.io description (``rdf.yaml``, format 0.5) of a biounet model, and its files.

Built with bioimage.io's own classes (``bioimageio.spec.model.v0_5``), which check every field
as it is made; saved (as a folder or a zip) by ``bioimageio.spec``, which validates the
package again as it writes it.
"""

from __future__ import annotations

import getpass
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from biounet._version import __version__
from biounet.checkpoint import load_checkpoint
from biounet.core.files import atomic_path
from biounet.export.padded import PaddedUNet, axis_sizes
from biounet.inference.trained import TrainedModel

__all__ = ["build_description", "cover_image", "documentation", "save_package", "training_config"]

#: DOI of the U-Net paper
_UNET_DOI = "10.1007/978-3-319-24574-4_28"


def training_config(model: TrainedModel) -> dict[str, Any]:
    """The configuration the model was trained with (empty for a bare network)."""
    if model.source is None:
        return {}
    return dict(load_checkpoint(model.source).get("train_config") or {})


def cover_image(x: np.ndarray, probs: np.ndarray, path: Path) -> None:
    """A 2:1 cover: the test input beside its most likely non-background class's probability."""
    from PIL import Image

    def plane(a: np.ndarray) -> np.ndarray:
        return a[a.shape[0] // 2] if a.ndim == 3 else a

    g = plane(x[0]).astype(np.float64)
    lo, hi = np.percentile(g, (1, 99.8))
    grey = np.clip((g - lo) / max(hi - lo, 1e-9), 0, 1)
    p = plane(probs[1:].max(0) if probs.shape[0] > 1 else probs[0])
    left = np.repeat(grey[..., None], 3, -1)
    right = np.stack([p, p**2, 0.2 * (1 - p)], -1)  # a warm map: 0 dark, 1 yellow
    both = (np.concatenate([left, right], axis=1) * 255).round().astype(np.uint8)
    Image.fromarray(both).save(path)


def _normalisation(model: TrainedModel, spatial: list[Any]) -> list[Any]:
    """The stored normalisation as bioimage.io preprocessing (per image, per channel)."""
    from bioimageio.spec.model.v0_5 import (
        ScaleLinearDescr,
        ScaleLinearKwargs,
        ScaleRangeDescr,
        ScaleRangeKwargs,
        ZeroMeanUnitVarianceDescr,
        ZeroMeanUnitVarianceKwargs,
    )

    n = model.normalizer
    if n is None or n.mode == "none":
        return []
    if n.mode == "percentile":
        kw = ScaleRangeKwargs(axes=spatial, min_percentile=n.low, max_percentile=n.high, eps=n.eps)
        return [ScaleRangeDescr(kwargs=kw)]
    if n.mode == "meanstd":
        kwargs = ZeroMeanUnitVarianceKwargs(axes=spatial, eps=n.eps)
        return [ZeroMeanUnitVarianceDescr(kwargs=kwargs)]
    if n.vmin is None or n.vmax is None:
        raise ValueError(
            "the model normalises by the range of the image's dtype, which a bioimage.io "
            "package cannot know: retrain with data.normalize {mode: range, vmin: .., vmax: ..}"
        )
    scale = max(n.vmax - n.vmin, n.eps)
    return [ScaleLinearDescr(kwargs=ScaleLinearKwargs(gain=1 / scale, offset=-n.vmin / scale))]


def documentation(model: TrainedModel, padded: PaddedUNet, train: dict[str, Any]) -> str:
    """The package's README: what the model does and how to run it in each tool."""
    net = padded.net
    sizes = axis_sizes(net)
    letters = "zyx"[-net.ndim :]
    size_text = ", ".join(
        f"{a}: {s.min} + {s.step} n (halo {s.halo})" for a, s in zip(letters, sizes)
    )
    classes = ", ".join(f"{k} {c}" for k, c in enumerate(model.class_names)) or "unnamed"
    norm = model.normalizer.to_dict() if model.normalizer is not None else {"mode": "none"}
    data = train.get("data", {})
    return f"""# {Path(str(model.source or "model")).stem}: a biounet U-Net

A {net.ndim}D U-Net (Ronneberger, Fischer & Brox, MICCAI 2015) trained with biounet
{__version__}: depth {net.config.depth}, widths from {net.config.base_width}, {net.config.padding}
padding, {sum(p.numel() for p in net.parameters()):,} parameters. Input: {net.config.in_channels}
channel(s); output: the probability of each class ({classes}).

## Input and output

- Sizes per spatial axis: {size_text}. The network mirrors its input by the margin at each
  border (biounet's overlap-tile), so the output has the input's size; a tiling tool must crop
  the halo from each tile, as the package declares.
- Preprocessing: the normalisation of training, `{norm}`, per image and channel.
- Postprocessing: softmax over the classes.
- Trained on: {data.get("annotation", "?")} annotations, preset `{train.get("preset", "?")}`,
  tile {train.get("tile", "?")} px, {train.get("iterations", "?")} iterations planned.

## Use

- **biounet**: `biounet predict` and `biounet.load` take the original checkpoint, not this
  package; its TorchScript or ONNX file runs on its own on tiles of the sizes above.
- **Fiji (deepImageJ)**: install deepImageJ, then *Plugins > deepImageJ > Install model* from
  this package's zip; run it on an open image (TorchScript weights; tiling with the halo above).
- **ilastik**: the Neural Network Classification workflow loads the zip (its ONNX or TorchScript
  weights) and tiles with the declared halo.
- **napari**: the `biounet[napari]` plugin segments with the original checkpoint; bioimage.io
  packages run through `bioimageio.core` (`bioimageio predict`) and the results open in napari.

## Validation

The package was checked with `bioimageio.spec` when it was written. Its test input is an image
like the training data (or a synthetic one), and its test output is what `biounet.predict`
computes for it (overlap-tile inference with the stored normalisation); `bioimageio.core`'s
model test reproduces it from each weight format.
"""


def build_description(
    model: TrainedModel,
    padded: PaddedUNet,
    files: dict[str, Path],
    *,
    train: dict[str, Any],
    name: str,
    authors: Sequence[str],
    license: str,
    description: str,
) -> Any:
    """The ``ModelDescr`` of the package whose files are ``files`` (see :mod:`.bioimageio`).

    ``train``: the configuration the model was trained with (:func:`training_config`).
    """
    from bioimageio.spec.model import v0_5 as v5

    net = padded.net
    letters = "zyx"[-net.ndim :]
    spacing = model.spacing  # µm per axis where the training images declared it
    sizes = axis_sizes(net)
    unit: Any = "micrometer" if spacing is not None else None
    scales = [float(v) for v in spacing] if spacing is not None else [1.0] * net.ndim

    inp = v5.InputTensorDescr(
        id=v5.TensorId("input"),
        description="the raw image; normalised by the preprocessing",
        axes=[v5.BatchAxis(),
              v5.ChannelAxis(channel_names=[v5.Identifier(f"c{c}")
                                         for c in range(net.config.in_channels)]),
              *[v5.SpaceInputAxis(id=v5.AxisId(a), unit=unit, scale=scales[i],
                                  size=v5.ParameterizedSize(min=s.min, step=s.step))
                for i, (a, s) in enumerate(zip(letters, sizes))]],
        data=v5.IntervalOrRatioDataDescr(type="float32"),
        test_tensor=v5.FileDescr(source=files["test_input"]),
        sample_tensor=v5.FileDescr(source=files["sample_input"]),
        preprocessing=_normalisation(model, [v5.AxisId(a) for a in letters]),
        pad=v5.ReflectPadding(),  # at the image's borders, as biounet's overlap-tile
    )  # fmt: skip
    names = model.class_names or [f"class{k}" for k in range(net.config.num_classes)]
    out = v5.OutputTensorDescr(
        id=v5.TensorId("probabilities"),
        description="the probability of each class",
        axes=[v5.BatchAxis(),
              v5.ChannelAxis(channel_names=[v5.Identifier(_identifier(c)) for c in names]),
              *[v5.SpaceOutputAxisWithHalo(id=v5.AxisId(a), halo=s.halo, unit=unit, scale=scales[i],
                                        size=v5.SizeReference(tensor_id=v5.TensorId("input"),
                                                           axis_id=v5.AxisId(a)))
                for i, (a, s) in enumerate(zip(letters, sizes))]],
        data=v5.IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0)),
        test_tensor=v5.FileDescr(source=files["test_output"]),
        sample_tensor=v5.FileDescr(source=files["sample_output"]),
        postprocessing=[v5.SoftmaxDescr(kwargs=v5.SoftmaxKwargs(axis=v5.AxisId("channel")))],
    )  # fmt: skip
    version = v5.Version(torch.__version__.split("+")[0])
    weights = v5.WeightsDescr(
        pytorch_state_dict=v5.PytorchStateDictWeightsDescr(
            source=files["state_dict"], pytorch_version=version,
            architecture=v5.ArchitectureFromLibraryDescr(
                import_from="biounet.export.padded", callable=v5.Identifier("PaddedUNet"),
                kwargs=_plain(net.config.to_dict()))),
        torchscript=v5.TorchscriptWeightsDescr(source=files["torchscript"], pytorch_version=version,
                                            parent="pytorch_state_dict"),
        onnx=v5.OnnxWeightsDescr(source=files["onnx"], opset_version=18,
                              parent="pytorch_state_dict"),
    )  # fmt: skip
    doc = files["test_input"].with_name("README.md")
    doc.write_text(documentation(model, padded, train))
    return v5.ModelDescr(
        name=name,
        description=description or f"A {net.ndim}D U-Net for segmentation, trained with biounet",
        authors=[v5.Author(name=a) for a in (authors or [_user()])],
        cite=[v5.CiteEntry(text="Ronneberger, Fischer & Brox: U-Net: Convolutional Networks for "
                        "Biomedical Image Segmentation. MICCAI 2015", doi=v5.Doi(_UNET_DOI))],
        license=v5.LicenseId(license),
        documentation=v5.FileDescr(source=doc),
        covers=[v5.FileDescr(source=files["cover"])],
        tags=["unet", f"{net.ndim}d", "segmentation", "pytorch", "biounet"],
        inputs=[inp],
        outputs=[out],
        weights=weights,
    )  # fmt: skip


def _identifier(text: str) -> str:
    """A class name as a bioimage.io identifier (letters, digits, ``_``)."""
    clean = "".join(ch if ch.isalnum() else "_" for ch in text) or "class"
    return clean if clean[0].isalpha() else f"c_{clean}"


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    """Tuples as lists, for YAML."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "biounet user"


def save_package(descr: Any, out: Path) -> None:
    """Save ``descr`` as a zip (``out`` ends in ``.zip``) or a folder; validated as written.

    The package is made and validated in a scratch folder, then written to ``out``
    atomically (:func:`biounet.core.files.atomic_path`): a package that fails validation, or
    an interrupted write, leaves nothing at ``out``.
    """
    from bioimageio.spec import save_bioimageio_package_as_folder

    with tempfile.TemporaryDirectory(prefix="biounet-package-") as scratch:
        folder = Path(scratch) / "package"
        save_bioimageio_package_as_folder(descr, output_path=folder)
        _keep_padding_mode(folder / "rdf.yaml")
        _validated(folder / "rdf.yaml")
        with atomic_path(out) as tmp:
            if out.suffix.lower() == ".zip":
                with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
                    for f in sorted(folder.rglob("*")):
                        if f.is_file():
                            z.write(f, f.relative_to(folder).as_posix())
            else:
                tmp.unlink()
                shutil.copytree(folder, tmp)


def _keep_padding_mode(rdf: Path) -> None:
    """Write the input's padding mode out (``pad: {mode: reflect}``).

    bioimageio.spec leaves fields at their default out of the YAML, so the reflect padding is
    written as ``pad: {}``, which reads back as the first kind of padding, zeros.
    """
    text = rdf.read_text()
    if "pad: {}" not in text:
        raise RuntimeError(f"{rdf}: no input padding to fix (bioimageio.spec changed?)")
    rdf.write_text(text.replace("pad: {}", "pad: {mode: reflect}", 1))


def _validated(rdf: Path) -> None:
    """Load the package back with bioimage.io's validation; ValueError listing its errors."""
    from bioimageio.spec import InvalidDescr, load_description

    descr: Any = load_description(rdf, perform_io_checks=True)
    if isinstance(descr, InvalidDescr):
        errors = "; ".join(
            f"{'.'.join(map(str, e.loc))}: {e.msg}" for e in descr.validation_summary.errors
        )
        raise ValueError(f"bioimage.io's validation refuses the package: {errors}")
    pad = getattr(descr.inputs[0], "pad", None)
    if getattr(pad, "mode", None) != "reflect":
        raise RuntimeError(f"{rdf}: the input padding reads back as {pad}, not reflect")
