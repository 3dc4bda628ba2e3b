"""Finding image/annotation pairs in the layouts users have.

(a) A folder of images and a folder of masks paired by file stem (``DATA/images/*.png`` with
    ``DATA/labels/*.png`` or ``DATA/masks/*``): :mod:`biounet.data.layouts.pairs`.
(b) Pairs of multi-page stacks (ISBI 2012 ``train-volume.tif`` / ``train-labels.tif``): each
    page is a 2D sample (or the whole stack one 3D sample, with ``ndim=3``). An image stack
    (``*volume*``, ``*image*``) pairs with the label stack (``*label*``, ``*mask*``) whose name
    is the same once that word is taken out (``train-volume`` with ``train-labels``); a stack
    without a partner, such as the ISBI ``test-volume.tif``, is left out (logged):
    :mod:`biounet.data.layouts.stacks`.
(c) The Cell Tracking Challenge layout: ``01/t000.tif`` with ground truth in
    ``01_GT/SEG/man_seg000.tif``; only annotated frames are used (2D slices of 3D frames,
    ``man_seg_000_012.tif``, are skipped): :mod:`biounet.data.layouts.ctc`.

:func:`find_dataset` (:mod:`biounet.data.layouts.find`) tells the layouts apart. Channels
follow one rule, :func:`to_channels_first` (:mod:`biounet.data.layouts.channels`). Every
layout yields :class:`Sample` objects (:mod:`biounet.data.layouts.sample`).

Files in a dataset folder that biounet cannot read (e.g. ``.gif``) are skipped with a warning
that lists them. The modules log to children of the ``biounet.data.layouts`` logger.
"""

from __future__ import annotations

from biounet.data.layouts.channels import to_channels_first
from biounet.data.layouts.ctc import load_ctc
from biounet.data.layouts.find import find_dataset
from biounet.data.layouts.pairs import load_pairs
from biounet.data.layouts.sample import Sample
from biounet.data.layouts.stacks import load_stacks

__all__ = ["Sample", "find_dataset", "load_ctc", "load_pairs", "load_stacks", "to_channels_first"]
