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
    An instance label image: 0 background, each object its own positive integer. With the
    ``"two_class"`` target (the paper's) class 1 is "any object"; with ``"three_class"`` class
    1 is an object's interior and class 2 its boundary, the pixels within ``boundary_width`` px
    of another object or the background, so touching objects are cut apart by boundary pixels
    (the target of the strongest U-Net entries of nuclei challenges; see
    :func:`three_class_target`).

An optional ``ignore`` value marks unannotated pixels (sparse annotation): they get class -1
in the target and are excluded from the loss. Instances for the weight map come from the
instance image, or from the connected components of the foreground of a binary mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from biounet.core.checks import check_labels, look_up

__all__ = [
    "ANNOTATION_KINDS",
    "IGNORE_INDEX",
    "INSTANCE_TARGETS",
    "AnnotationSpec",
    "Target",
    "three_class_target",
    "to_target",
]

#: the kinds of annotation image :class:`AnnotationSpec` reads (the configuration and the
#: command line offer these names)
ANNOTATION_KINDS = ("binary", "classes", "instances")
#: the training targets of instance annotations: background/object (the paper's, with the
#: weight map), or background/interior/boundary
INSTANCE_TARGETS = ("two_class", "three_class")
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
        ``"classes"``: number of classes (values must be below it); ``"instances"``: 2 for the
        ``"two_class"`` target, 3 for ``"three_class"``; 2 for ``"binary"``.
    ignore : int, optional
        Value of unannotated pixels, excluded from the loss.
    target : {"two_class", "three_class"}
        ``"instances"`` only: the paper's background/object target, or background (0) /
        interior (1) / boundary (2). The other kinds take ``"two_class"`` only.
    boundary_width : float, default 2
        ``"three_class"``: an object pixel is boundary when another object or the background
        lies within this distance (px, between pixel centres, Euclidean); at least 1. The
        image edge is not a boundary (the object may go on beyond it).
    """

    kind: str = "binary"
    foreground: int | None = None
    num_classes: int = 2
    ignore: int | None = None
    target: str = "two_class"
    boundary_width: float = 2.0

    def __post_init__(self) -> None:
        look_up(self.kind, ANNOTATION_KINDS, "annotation kind")
        look_up(self.target, INSTANCE_TARGETS, "instance target")
        if self.target == "three_class":
            if self.kind != "instances":
                raise ValueError(
                    f"the 'three_class' target needs instance annotations (each object its own "
                    f"label), got {self.kind!r} annotations; use annotation 'instances' or the "
                    "'two_class' target"
                )
            if self.num_classes != 3:
                raise ValueError(
                    "instance annotations with the 'three_class' target (background, interior, "
                    f"boundary) have 3 classes, got num_classes={self.num_classes}; set it to 3"
                )
        elif self.kind != "classes" and self.num_classes != 2:
            raise ValueError(f"{self.kind!r} annotations have 2 classes, got {self.num_classes}")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes}")
        if not (isinstance(self.boundary_width, int | float) and self.boundary_width >= 1):
            raise ValueError(
                f"boundary_width must be a number of pixels >= 1, got {self.boundary_width!r}"
            )


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
        if spec.target == "three_class":
            classes = three_class_target(instances, spec.boundary_width)
        else:
            classes = (instances > 0).astype(np.int64)
    classes[ignore] = IGNORE_INDEX
    return Target(classes, instances, ignore)


def three_class_target(instances: np.ndarray, width: float = 2.0) -> np.ndarray:
    """Background (0), object interior (1) and object boundary (2) of an instance label image.

    Parameters
    ----------
    instances : (Y, X) or (Z, Y, X) array of int
        Instance labels, 0 = background.
    width : float, default 2
        An object pixel is boundary (2) when a pixel of another label (another object or the
        background) lies within ``width`` px of it (Euclidean distance between pixel centres):
        ``width=1`` marks the pixels that touch another label through a face, ``2`` two layers
        (and the diagonal contacts between). The image edge is no boundary. An object no wider
        than about ``2 * width`` px is all boundary.

    Returns
    -------
    numpy.ndarray of int64, ``instances.shape``
        Class indices 0, 1, 2.

    Examples
    --------
    Two touching objects: each loses its pixels next to the other and to the background.

    >>> three_class_target(np.array([[1, 1, 1, 2, 2, 0]]), width=1)
    array([[1, 1, 2, 2, 2, 0]])
    """
    from scipy import ndimage

    lab = check_labels(instances, "instances", ndims=(2, 3))
    r = int(np.floor(width))
    grid = np.indices((2 * r + 1,) * lab.ndim) - r
    footprint = (grid**2).sum(axis=0) <= width * width
    # a pixel is interior when every pixel within `width` has its label; beyond the image edge
    # the edge's own labels continue (mode "nearest"), so the edge marks nothing
    low = ndimage.minimum_filter(lab, footprint=footprint, mode="nearest")
    high = ndimage.maximum_filter(lab, footprint=footprint, mode="nearest")
    objects = lab > 0
    classes = objects.astype(np.int64)
    classes[objects & ((low != lab) | (high != lab))] = 2
    return classes


def _components(mask: np.ndarray) -> np.ndarray:
    """Connected components (face connectivity: 4 in 2D, 6 in 3D) as int32 labels."""
    from scipy import ndimage

    labels: np.ndarray = ndimage.label(mask)[0].astype(np.int32)
    return labels


def _listed(values: np.ndarray, most: int = 12) -> str:
    """The first ``most`` of ``values`` and their count, for an error message."""
    shown = ", ".join(str(v) for v in values[:most].tolist())
    return f"[{shown}{', ...' if len(values) > most else ''}] ({len(values)} values)"
