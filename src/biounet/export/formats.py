"""Writing each export format (TorchScript, ONNX) and loading the written file back."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from biounet.model.unet import UNet

__all__ = [
    "AXES",
    "FORMATS",
    "dynamic_shapes",
    "export_onnx",
    "export_torchscript",
    "require",
    "runner",
]

log = logging.getLogger(__name__)

FORMATS = ("torchscript", "onnx")
#: the spatial axis letters of a 2D and a 3D network's tiles
AXES = {2: "yx", 3: "zyx"}

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


def require(*modules: str, what: str = "ONNX export", extra: str = "export") -> None:
    """Raise ImportError naming the missing ``modules`` and how to install them."""
    missing = [name for name in modules if _missing(name)]
    if missing:
        raise ImportError(
            f"{what} needs {', '.join(missing)}: install with pip install 'biounet[{extra}]'"
        )


def _missing(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is None
    except ModuleNotFoundError:  # a missing parent package (bioimageio for bioimageio.spec)
        return True


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


def export_torchscript(net: torch.nn.Module, example: tuple[int, ...], tmp: Path) -> None:
    """Trace ``net`` on a zero tile of shape ``example`` (at batch 1) and save it to ``tmp``."""
    x = torch.zeros((1, *example[1:]))  # the trace records sizes, so batch 1 is enough
    with _quiet_exporter(), torch.no_grad():
        traced = torch.jit.trace(net, x, check_trace=False)  # we check the saved file instead
        torch.jit.save(traced, str(tmp))


def export_onnx(
    net: torch.nn.Module,
    example: tuple[int, ...],
    tmp: Path,
    dynamic: bool,
    opset: int | None,
    *,
    shapes: tuple[dict[int, Any]] | None = None,
) -> tuple[bool, str, int | None]:
    """Write ``net`` to ``tmp`` as ONNX; returns ``(dynamic axes?, note, opset)``.

    With ``dynamic`` the batch and spatial axes are dynamic (``shapes``, by default
    :func:`dynamic_shapes` of a :class:`UNet`); if the exporter fails at that, the fixed shape
    ``example`` at batch 1 is exported instead and the note says so.
    """
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
    if dynamic and shapes is None and not isinstance(net, UNet):
        raise TypeError("export_onnx: give the dynamic shapes of a network other than a UNet")
    if dynamic:
        try:
            axes = shapes if shapes is not None else dynamic_shapes(net)  # type: ignore[arg-type]
            exported = program(example, axes)
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


def dynamic_shapes(net: UNet) -> tuple[dict[int, Any]]:
    """Batch free; each spatial axis ``min + step * j``, i.e. ``step * k + min % step``."""
    from torch.export import Dim

    g = net.geometry
    axes: dict[int, Any] = {0: Dim("batch", min=1)}
    for i, name in enumerate(AXES[net.ndim]):
        step, lo = g.alignments[i], g.min_input_shape[i]
        k = Dim(name, min=max(lo // step, 1))
        axes[2 + i] = k if step == 1 else step * k + lo % step
    return (axes,)


def runner(format: str, tmp: Path) -> Callable[[torch.Tensor], np.ndarray]:
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
