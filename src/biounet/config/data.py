"""The ``data`` section of a training configuration: where the data is and how to read it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from biounet.data.annotations import AnnotationSpec

__all__ = ["DataConfig"]


@dataclass
class DataConfig:
    """Where the data is and how to read it.

    Attributes
    ----------
    path : str
        Dataset folder in any layout of :func:`biounet.data.find_dataset`.
    val_path : str
        A separate validation set (same layouts); empty: split ``path``.
    val_names : list of str
        Validation samples by name (e.g. ``["25", "26"]``); empty: a random split. Numbers
        are taken as names (``[25, 26]``), but YAML reads ``01`` as the number 1: quote names
        with leading zeros (``["01", "02"]``). Not together with ``val_path``.
    val_fraction : float
        Share of ``path`` held out for validation by a seeded random split.
    ndim : int
        2 or 3 spatial axes.
    channel_axis : int or None
        Declared channel axis of the images (None: the rule of ``to_channels_first``).
    annotation : {"binary", "classes", "instances"}
    instance_target : {"two_class", "three_class"}
        What a network learns from instance annotations: ``"two_class"``, background and
        object (the paper's, with the weight map separating touching objects), or
        ``"three_class"``, background, object interior and object boundary (3 classes:
        ``num_classes`` 2, the default, becomes 3; predicted objects are then seeded in the
        interiors). Binary and class masks ignore it: they have no objects to draw
        boundaries of.
    foreground : int or None
        Objects' value in binary masks (None: the larger value).
    num_classes : int
    ignore : int or None
        Value of unannotated pixels.
    class_names : list of str
        Names of the classes (default ``background``, ``foreground`` or ``class K``).
    normalize : dict
        :class:`~biounet.data.normalize.Normalizer` fields (checked when the configuration is
        built).
    scale : float or "auto"
        Resample every image by this factor before the network sees it, in training and in
        ``predict`` alike (which brings the results back to the image's pixels), so that the
        network works on objects of a size it handles well. ``"auto"``: for instance
        annotations, shrink so that the training objects' median diameter becomes
        :data:`~biounet.data.objects.SCALE_DIAMETER` px when it is larger (never enlarge);
        1 for the other kinds. A number in (0, 8]: that factor. The presets ``cpu`` and
        ``gpu`` use ``"auto"``, the paper's preset 1.
    spacing : list of float
        Voxel size per spatial axis (``[z, y, x]`` or ``[y, x]``, e.g. ``[2.2, 1, 1]``: z
        steps 2.2x the pixel size; any unit, only the ratios matter). Empty (the default):
        read from the training images' metadata (OME, ImageJ), else isotropic. It plans the
        network's pooling (a coarse axis is not pooled until it matches the others), is the
        unit of the weight map's distances, keeps augmentation from rotating a coarse axis
        into the plane, and is stored in the checkpoint for ``predict``.
    """

    path: str = ""
    val_path: str = ""
    val_names: list[str] = field(default_factory=list)
    val_fraction: float = 0.2
    ndim: int = 2
    channel_axis: int | None = None
    annotation: str = "binary"
    instance_target: str = "two_class"
    foreground: int | None = None
    num_classes: int = 2
    ignore: int | None = None
    class_names: list[str] = field(default_factory=list)
    normalize: dict[str, Any] = field(default_factory=lambda: {"mode": "percentile"})
    scale: float | str = 1.0
    spacing: list[float] = field(default_factory=list)

    def check_scale(self) -> None:
        """Raise a ValueError unless ``scale`` is ``"auto"`` or a number in (0, 8]."""
        if isinstance(self.scale, str):
            if self.scale != "auto":
                raise ValueError(f"data.scale must be 'auto' or a number, got {self.scale!r}")
        elif not 0 < self.scale <= 8:
            raise ValueError(f"data.scale must be in (0, 8] (or 'auto'), got {self.scale}")

    def check_validation_source(self) -> None:
        """Raise a ValueError if both ``val_path`` and ``val_names`` pick the validation set."""
        if self.val_path and self.val_names:
            raise ValueError(
                f"data.val_path ({self.val_path!r}) and data.val_names ({self.val_names}) both "
                "pick the validation set; give only one"
            )

    def check_instance_target(self) -> None:
        """Fit ``num_classes`` to the instance target, or raise a ValueError if it cannot.

        Only for instance annotations; the other kinds ignore ``instance_target``. The
        3-class target with the default 2 classes becomes 3 classes (so that choosing the
        target is enough); any other mismatch is an error.
        """
        three = self.instance_target == "three_class"
        want, other = (3, "two_class") if three else (2, "three_class")
        if self.annotation == "instances" and three and self.num_classes == 2:
            self.num_classes = 3
        if self.annotation == "instances" and self.num_classes != want:
            raise ValueError(
                f"data.instance_target {self.instance_target!r} of instance annotations has "
                f"{want} classes, got data.num_classes {self.num_classes}; set "
                f"data.num_classes: {want} (--num-classes {want}), or data.instance_target: "
                f"{other} with data.num_classes: {5 - want}"
            )

    def annotation_spec(self) -> AnnotationSpec:
        """How the masks are read into training targets (annotation kind, values, classes).

        The instance target is carried for instance annotations; the other kinds get the
        ``"two_class"`` reading they always had.
        """
        target = self.instance_target if self.annotation == "instances" else "two_class"
        return AnnotationSpec(
            self.annotation, self.foreground, self.num_classes, self.ignore, target=target
        )

    def names(self) -> list[str]:
        """Class names, defaults filled in."""
        if self.class_names:
            if len(self.class_names) != self.num_classes:
                raise ValueError(
                    f"data.class_names has {len(self.class_names)} names for "
                    f"{self.num_classes} classes"
                )
            return list(self.class_names)
        if self.num_classes == 2:
            return ["background", "foreground"]
        if self.annotation == "instances" and self.instance_target == "three_class":
            return ["background", "interior", "boundary"]
        return ["background"] + [f"class {k}" for k in range(1, self.num_classes)]
