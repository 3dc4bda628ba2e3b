"""Seeded synthetic images with ground truth: the data that ships with biounet.

Three kinds, each hard in the way the U-Net paper cares about (touching objects), 2D and 3D:

:func:`make_cells` (:mod:`biounet.data.synthetic.cells`)
    Fluorescence-like cells: clustered, irregular blobs, many touching their neighbours across
    a thin gap of background (``gap`` px), per-cell brightness, internal texture, optical blur,
    uneven illumination, Poisson shot noise and Gaussian read noise. Instance labels.
:func:`make_membranes` (:mod:`biounet.data.synthetic.membranes`)
    Electron-microscopy-like tissue: a warped Voronoi partition whose cells are separated by dark
    membranes of varying width; cell interiors carry fine grain and dark organelle-like blobs.
    Membrane mask and cell instance labels.
:func:`make_nuclei` (:mod:`biounet.data.synthetic.nuclei`)
    Fluorescence stacks of sparse nuclei (a few percent of the volume), partly touching, at an
    anisotropic voxel spacing (coarser along z, with a wider axial blur). Instance labels.

:func:`make_dataset` (:mod:`biounet.data.synthetic.dataset`) makes a list of either. Every
function is pure: the same ``seed`` gives bit-identical arrays. ``seed`` may be an int, a
``numpy.random.SeedSequence`` or a ``numpy.random.Generator`` (which is then advanced).

>>> image, labels = make_cells((64, 64), seed=1)
>>> image.shape, image.dtype, labels.dtype
((64, 64), dtype('float32'), dtype('int32'))
"""

from __future__ import annotations

from biounet.data.synthetic.cells import make_cells
from biounet.data.synthetic.dataset import make_dataset
from biounet.data.synthetic.folders import write_synthetic
from biounet.data.synthetic.membranes import make_membranes
from biounet.data.synthetic.noise import Seed
from biounet.data.synthetic.nuclei import make_nuclei

__all__ = [
    "Seed",
    "make_cells",
    "make_dataset",
    "make_membranes",
    "make_nuclei",
    "write_synthetic",
]
