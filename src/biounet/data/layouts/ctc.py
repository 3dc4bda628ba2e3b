"""Layout (c): a Cell Tracking Challenge sequence (``01/t000.tif``, ``01_GT/SEG/man_seg000``)."""

from __future__ import annotations

import re
from pathlib import Path

from biounet.data.io import read_image_file
from biounet.data.layouts.channels import sample_spacing, to_channels_first
from biounet.data.layouts.sample import Sample, annotation_array, check_same_size

__all__ = ["load_ctc"]

# full-frame annotations only: the 2D slices of 3D frames (man_seg_000_012.tif) do not match
_CTC_GT = re.compile(r"^man_seg(\d+)\.tiff?$")


def load_ctc(sequence: str | Path, *, ndim: int = 2) -> list[Sample]:
    """The annotated frames of a Cell Tracking Challenge sequence folder (e.g. ``.../01``).

    Parameters
    ----------
    sequence : path
        The sequence folder; its ground truth is ``<sequence>_GT/SEG`` beside it.
    ndim : {2, 3}
        Spatial axes of a frame.

    Returns
    -------
    list of Sample
        One per annotated frame, named ``<sequence>/t<NNN>``.
    """
    seq = Path(sequence)
    gt = seq.parent / f"{seq.name}_GT" / "SEG"
    if not seq.is_dir():
        raise FileNotFoundError(f"{seq}: no such folder")
    if not gt.is_dir():
        raise FileNotFoundError(f"{gt}: no ground-truth folder for the sequence {seq}")
    samples = []
    for mp in sorted(gt.iterdir()):
        m = _CTC_GT.match(mp.name)
        if not m:
            continue
        digits = m.group(1)
        candidates = [seq / f"t{digits}{ext}" for ext in (".tif", ".tiff")]
        ip = next((c for c in candidates if c.exists()), None)
        if ip is None:
            raise ValueError(f"{mp}: no frame t{digits}.tif in {seq}")
        f = read_image_file(ip)
        img = to_channels_first(f, ndim)
        ann = annotation_array(read_image_file(mp), ndim)
        check_same_size(img, ann, str(ip), str(mp))
        samples.append(Sample(f"{seq.name}/t{digits}", img, ann, ip, mp, sample_spacing(f, ndim)))
    if not samples:
        raise ValueError(f"{gt}: no full-frame annotations (man_segNNN.tif) found")
    return samples
