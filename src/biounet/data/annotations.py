"""From a user's annotation image to training targets: class map, instances, ignore mask.

Annotations come as

``"binary"``
    A mask in any two values (0/1, 0/255, ...). ``foreground`` names the value of the objects
    (default: the larger of the two). A mask of one value is all background if that value is
    0 (or the other value, with ``foreground=0``) and all objects if it is ``foreground``; any
    other single value with a declared non-zero ``foreground`` is an error. The ISBI 2012
    labels mark membranes black (0) and cell interiors white (255): with ``foreground=255``
    the cells are the objects (class 1) and the membranes between them are class 0, which is
    what the paper's weight map separates.
``"classes"``
    A class-index map with values ``0..num_classes-1``.
``"instances"``
    An instance label image: 0 background, each object its own positive integer; class 1 is
    "any object".

An optional ``ignore`` value marks unannotated pixels (sparse annotation): they get class -1
in the target and are excluded from the loss. Instances for the weight map come from the
instance image, or from the connected components of the foreground of a binary mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from biounet.core.checks import check_labels, look_up

__all__ = ["ANNOTATION_KINDS", "IGNORE_INDEX", "AnnotationSpec", "Target", "to_target"]

#: the kinds of annotation image :class:`AnnotationSpec` reads (the configuration and the
#: command line offer these names)
ANNOTATION_KINDS = ("binary", "classes", "instances")
#: the class of an unannotated pixel in a target; the loss skips it
IGNORE_INDEX = -1


@dataclass(frozen=True)
class AnnotationSpec:
    """How to read an annotation image.

    Parameters
    ----------
    kind : {"binary", "classes", "instances"}
    foreground : int, optional
        ``"binary"``: the objects' value (default: the larger value present).
    num_classes : int
        ``"classes"``: number of classes (values must be below it); 2 for the other kinds.
    ignore : int, optional
        Value of unannotated pixels, excluded from the loss.
    """

    kind: str = "binary"
    foreground: int | None = None
    num_classes: int = 2
    ignore: int | None = None

    def __post_init__(self) -> None:
        look_up(self.kind, ANNOTATION_KINDS, "annotation kind")
        if self.kind != "classes" and self.num_classes != 2:
            raise ValueError(f"{self.kind!r} annotations have 2 classes, got {self.num_classes}")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes}")


@dataclass
class Target:
    """Training targets derived from one annotation image (all of the annotation's shape).

    Attributes
    ----------
    classes : numpy.ndarray of int64
        Class index per pixel, ``IGNORE_INDEX`` (-1) where unannotated.
    instances : numpy.ndarray of int32
        Object labels (0 = background) for the weight map.
    ignore : numpy.ndarray of bool
        True where unannotated.
    """

    classes: np.ndarray
    instances: np.ndarray
    ignore: np.ndarray


def to_target(annotation: np.ndarray, spec: AnnotationSpec, *, name: str = "mask") -> Target:
    """Convert an annotation image to :class:`Target`; errors name ``name`` and the values.

    >>> t = to_target(np.array([[0, 255], [255, 0]]), AnnotationSpec("binary"))
    >>> t.classes.tolist(), t.instances.max()
    ([[0, 1], [1, 0]], np.int32(2))
    """
    # whole numbers of any sign: the kinds check the values (a class map may ignore -1)
    a = check_labels(annotation, name, whole_floats=True, allow_negative=True)
    ignore = a == spec.ignore if spec.ignore is not None else np.zeros(a.shape, bool)
    values = np.unique(a[~ignore]) if ignore.any() else np.unique(a)

    if spec.kind == "binary":
        if len(values) > 2:
            raise ValueError(
                f"{name}: a binary mask holds at most 2 values (plus the ignore value), found "
                f"{_listed(values)}; class maps need annotation 'classes' (--annotation classes), "
                "instance labels annotation 'instances' (--annotation instances)"
            )
        fg = (
            spec.foreground
            if spec.foreground is not None
            else (
                int(values.max())
                if len(values) == 2 or (len(values) == 1 and values[0] != 0)
                else 1
            )
        )
        if len(values) == 2 and fg not in values:
            raise ValueError(
                f"{name}: the declared foreground value {fg} is not among the mask's values "
                f"{_listed(values)}"
            )
        if len(values) == 1 and spec.foreground not in (None, 0) and values[0] not in (0, fg):
            # all one value that is neither the objects' value nor 0: a mask of another
            # convention (e.g. 0/1 read with foreground=255), not an empty one
            raise ValueError(
                f"{name}: the mask holds only the value {values[0]}, which is neither the "
                f"declared foreground {fg} nor background 0; check the foreground value "
                "(data.foreground, --foreground) or the mask"
            )
        fgmask = (a == fg) & ~ignore
        classes = fgmask.astype(np.int64)
        instances = _components(fgmask)
    elif spec.kind == "classes":
        bad = values[(values < 0) | (values >= spec.num_classes)]
        if len(bad):
            raise ValueError(
                f"{name}: class values must be 0..{spec.num_classes - 1}, found {_listed(bad)} "
                f"(all values: {_listed(values)}); raise num_classes or declare an ignore value"
            )
        classes = a.astype(np.int64)
        instances = _components(classes > 0)
    else:
        instances = check_labels(np.where(ignore, 0, a), name).astype(np.int32)
        classes = (instances > 0).astype(np.int64)
    classes[ignore] = IGNORE_INDEX
    return Target(classes, instances, ignore)


def _components(mask: np.ndarray) -> np.ndarray:
    """Connected components (face connectivity: 4 in 2D, 6 in 3D) as int32 labels."""
    from scipy import ndimage

    labels: np.ndarray = ndimage.label(mask)[0].astype(np.int32)
    return labels


def _listed(values: np.ndarray, most: int = 12) -> str:
    """The first ``most`` of ``values`` and their count, for an error message."""
    shown = ", ".join(str(v) for v in values[:most].tolist())
    return f"[{shown}{', ...' if len(values) > most else ''}] ({len(values)} values)"
