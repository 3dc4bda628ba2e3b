"""What :func:`~biounet.segment.predict_files` writes and how it predicts, checked up front."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from biounet.core.checks import check_positive_int, look_up

if TYPE_CHECKING:  # torch stays unloaded until a model is at hand
    from biounet.inference.trained import TrainedModel
    from biounet.model.unet import UNet

__all__ = ["MASK_FORMATS", "OUTPUT_FORMATS", "PredictOptions", "check_options"]

#: values of :attr:`PredictOptions.mask_format`
MASK_FORMATS = ("auto", "png", "tif")
#: values of :attr:`PredictOptions.output_format`
OUTPUT_FORMATS = ("auto", "files", "ome-zarr")


@dataclass
class PredictOptions:
    """What to write and how to predict (see :func:`biounet.predict` for the last four).

    Attributes
    ----------
    masks, instances, probabilities, overlays : bool
        Which outputs to write (see :mod:`biounet.segment.outputs`).
    overwrite : bool
        Redo inputs whose outputs all exist (else they are skipped).
    mask_format : {"auto", "png", "tif"}
        ``"auto"``: PNG for 2D images, TIFF for stacks and 3D volumes (PNG holds 2D only).
    output_format : {"auto", "files", "ome-zarr"}
        ``"files"``: one file per output (mask, labels, probabilities; see
        :mod:`biounet.segment.outputs`); ``"ome-zarr"``: one OME-Zarr container per input
        holding the probabilities, the class map and the instance labels
        (:func:`biounet.data.ngff.write_segmentation`); ``"auto"``: OME-Zarr for OME-Zarr
        inputs, files for the others.
    instance_kind : {"cells", "membranes"}
        How instance labels are made: ``"cells"``, a seeded watershed of the foreground class
        (:func:`biounet.inference.postprocess.instances`), by the model's instance rule where
        it has one (a 3-class model: seeded in the interior class); ``"membranes"``, for EM
        membrane models (ISBI 2012), the regions enclosed by the membranes of class
        ``membrane_class`` (:func:`biounet.inference.postprocess.membrane_regions`, thinned to
        1-px lines by default).
    membrane_class : int
        With ``instance_kind="membranes"``: the class that is membrane (0 for an ISBI model
        trained with the cells as the foreground, the default of binary masks).
    postprocess : dict
        Keyword options of the instance function, e.g. ``{"min_size": 20}``. For cells they
        override the model's instance rule (``TrainedModel.instance_rule``: the seed depth
        ``h`` and ``min_size`` derived from the training objects), which applies where they
        say nothing.
    tile_shape, batch_size, tta, device, backend
        As for :func:`biounet.predict`.
    """

    masks: bool = True
    instances: bool = False
    probabilities: bool = False
    overlays: bool = False
    overwrite: bool = False
    mask_format: str = "auto"
    output_format: str = "auto"
    instance_kind: str = "cells"
    membrane_class: int = 0
    postprocess: dict[str, Any] = field(default_factory=dict)
    tile_shape: int | None = None
    batch_size: int | None = None
    tta: bool = False
    device: str = "auto"
    backend: str = "auto"


def check_options(model: TrainedModel | UNet, options: PredictOptions) -> PredictOptions:
    """Validate ``options`` for ``model`` before any file is read (ValueError naming the option).

    Checks the mask format, the instance kind and membrane class, the tile size (against the
    network's valid sizes), the batch size and the device (known, and present on this machine).
    Returns ``options``.
    """
    from biounet.core.device import resolve_device
    from biounet.inference.backend import BACKENDS
    from biounet.inference.postprocess import INSTANCE_KINDS
    from biounet.inference.predictor import choose_tile

    o = options
    look_up(o.mask_format, MASK_FORMATS, "mask format")
    look_up(o.output_format, OUTPUT_FORMATS, "output format")
    look_up(o.instance_kind, INSTANCE_KINDS, "instance kind")  # postprocess's kinds
    k = model.config.num_classes
    if o.instances and o.instance_kind == "membranes" and not 0 <= o.membrane_class < k:
        raise ValueError(
            f"membrane_class {o.membrane_class} is not a class of the model (0..{k - 1})"
        )
    if o.batch_size is not None:
        check_positive_int(o.batch_size, "batch_size")  # TypeError/ValueError as predict gives
    if o.tile_shape is not None:
        choose_tile(model, (1,) * model.ndim, o.tile_shape)  # ValueError: nearest valid sizes
    resolve_device(o.device)  # ValueError: unknown, or not on this machine
    look_up(o.backend, BACKENDS, "backend")
    return o
