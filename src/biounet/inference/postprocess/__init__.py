"""From class probabilities to objects: class maps, instance labels and EM regions, 2D and 3D.

Probabilities are ``(C, *S)`` arrays: ``C >= 2`` classes (softmax over axis 0, class 0 =
background) over ``S = (Y, X)`` or ``(Z, Y, X)``. :func:`semantic` gives class maps
(``class_maps``), :func:`instances` objects, touching cells separated by a seeded watershed
(``cells``), :func:`membrane_regions` the regions between EM membranes (``membranes``), and
:func:`instances_from_probabilities` either of the last two from a network's output
(``objects``); :func:`fill_holes` and :func:`remove_small` are the label clean-ups
(``labels``); :class:`InstanceRule` (``rule``) is a trained model's way from probabilities to
cells, its values derived from the sizes of the training objects. Instance labels are int32,
0 = background, for :func:`biounet.data.write_labels` (16- or 32-bit TIFF).
"""

from biounet.inference.postprocess.cells import instances
from biounet.inference.postprocess.class_maps import semantic
from biounet.inference.postprocess.labels import fill_holes, remove_small
from biounet.inference.postprocess.membranes import membrane_regions
from biounet.inference.postprocess.objects import INSTANCE_KINDS, instances_from_probabilities
from biounet.inference.postprocess.rule import InstanceRule

__all__ = [
    "INSTANCE_KINDS",
    "InstanceRule",
    "fill_holes",
    "instances",
    "instances_from_probabilities",
    "membrane_regions",
    "remove_small",
    "semantic",
]
