"""Layout (a): a folder of images and a folder of annotations, paired by file stem."""

from __future__ import annotations

import logging
from pathlib import Path

from biounet.data.io import READ_EXTENSIONS, file_stem, is_image_file, read_image_file
from biounet.data.layouts.channels import sample_spacing, to_channels_first
from biounet.data.layouts.sample import Sample, annotation_array, check_same_size

__all__ = ["load_pairs"]

log = logging.getLogger(__name__)


def _unreadable_in(folder: Path) -> list[Path]:
    """Files of ``folder`` (not hidden) in formats biounet does not read."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and not is_image_file(p)
    )


def _images_in(folder: Path) -> list[Path]:
    """The readable images of ``folder``, sorted; the unreadable ones are logged and skipped."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    files = sorted(p for p in folder.iterdir() if is_image_file(p))
    skipped = _unreadable_in(folder)
    shown = ", ".join(p.name for p in skipped[:10]) + (" ..." if len(skipped) > 10 else "")
    if not files:
        found = f"; found only {shown}, in formats it cannot read" if skipped else ""
        raise ValueError(
            f"{folder}: the folder holds no images ({', '.join(READ_EXTENSIONS)}){found}"
        )
    if skipped:
        log.warning(
            "%s: skipping %d file(s) in formats biounet cannot read: %s (it reads %s)",
            folder,
            len(skipped),
            shown,
            ", ".join(READ_EXTENSIONS),
        )
    return files


def _missing_message(missing: list[Path], mask_dir: Path) -> str:
    """Why images of ``missing`` have no annotation in ``mask_dir``, naming unreadable twins."""
    unreadable = {file_stem(q): q for q in _unreadable_in(mask_dir)}
    named = []
    for p in missing[:5]:
        other = unreadable.get(file_stem(p))
        named.append(
            f"{p.name} ({other.name} is there, but biounet cannot read {other.suffix!r} "
            "files; convert it to .png or .tif)"
            if other is not None
            else p.name
        )
    shown = ", ".join(named) + (" ..." if len(missing) > 5 else "")
    return (
        f"{mask_dir}: no annotation for {len(missing)} image(s): {shown} (annotations are "
        "paired with images by file name without extension)"
    )


def load_pairs(
    image_dir: str | Path,
    mask_dir: str | Path | None,
    *,
    ndim: int = 2,
    channel_axis: int | None = None,
) -> list[Sample]:
    """Images of ``image_dir`` paired by file stem with the annotations of ``mask_dir``.

    Without ``mask_dir`` the images come alone (for prediction). Every image must have an
    annotation; annotations without an image are ignored with no error.

    Parameters
    ----------
    image_dir, mask_dir : path
        The folders; ``mask_dir`` None: images only.
    ndim : {2, 3}
        Spatial axes of an image.
    channel_axis : int, optional
        The images' channel axis, if declared (see :func:`to_channels_first`).

    Returns
    -------
    list of Sample
        One per image, in file-name order, named by file stem.
    """
    images = _images_in(Path(image_dir))
    masks = {file_stem(p): p for p in _images_in(Path(mask_dir))} if mask_dir is not None else {}
    if mask_dir is not None:
        missing = [p for p in images if file_stem(p) not in masks]
        if missing:
            raise ValueError(_missing_message(missing, Path(mask_dir)))
    samples = []
    for p in images:
        f = read_image_file(p)
        img = to_channels_first(f, ndim, channel_axis=channel_axis)
        spacing = sample_spacing(f, ndim, channel_axis=channel_axis)
        ann = None
        mp = masks.get(file_stem(p))
        if mp is not None:
            ann = annotation_array(read_image_file(mp), ndim)
            check_same_size(img, ann, str(p), str(mp))
        samples.append(Sample(file_stem(p), img, ann, p, mp, spacing))
    return samples
