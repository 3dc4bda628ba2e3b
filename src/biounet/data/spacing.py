"""Physical pixel and voxel sizes ("spacing") in image-file metadata: read, checked, written.

A spacing is a dict from axis letter (``"Z"``, ``"Y"``, ``"X"``) to the size of one pixel or
voxel step along that axis, in micrometres (µm) where the file names a unit that converts (nm,
µm/um/micron, mm, cm, m, inch, Å, pm), else as the file gives it (a relative size, still right
for the ratio of the axes). Where it is read from:

- TIFF: OME-XML ``Pixels`` ``PhysicalSizeX/Y/Z`` (unit attributes, default µm); the
  ``XResolution``/``YResolution`` tags (pixels per unit, so the size is ``1 / resolution``) in
  the ``ResolutionUnit`` (inch, cm) or, where it is NONE, the description's ``unit`` (ImageJ
  writes pixels per its ``unit``); the ImageJ (or tifffile shaped JSON) description's
  ``spacing``, the Z step. The TIFF default of 1 pixel per unit with no unit means "unknown"
  and is ignored.
- OME-Zarr: the first dataset's ``scale`` transformations times the multiscale-level ones,
  mapped onto the named axes (with their ``unit``).
- A plain Zarr array: an ``attrs["spacing"]`` list, one entry per axis (None for axes other
  than Z, Y, X), in µm, as :func:`biounet.data.io.write_image` writes it.

Values that are not finite and positive are dropped. This module parses and checks; the
formats themselves are opened and written in :mod:`biounet.data.io`.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "SPACING_RANGE",
    "SPATIAL_AXES",
    "StoredSpacing",
    "array_spacing",
    "ome_zarr_spacing",
    "spacing_to_store",
    "spacing_values",
    "tiff_spacing",
    "to_micrometres",
]

#: the axis letters a spacing may name
SPATIAL_AXES = "ZYX"

#: micrometres per unit: symbols as written, words lower case
_UM_PER_UNIT: dict[str, float] = {
    **dict.fromkeys(("pm", "picometer", "picometre"), 1e-6),
    **dict.fromkeys(("Å", "angstrom", "ångström"), 1e-4),
    **dict.fromkeys(("nm", "nanometer", "nanometre", "nanometers", "nanometres"), 1e-3),
    **dict.fromkeys(("µm", "um", "micron", "microns", "micrometer", "micrometre"), 1.0),
    **dict.fromkeys(("micrometers", "micrometres"), 1.0),
    **dict.fromkeys(("mm", "millimeter", "millimetre", "millimeters", "millimetres"), 1e3),
    **dict.fromkeys(("cm", "centimeter", "centimetre", "centimeters", "centimetres"), 1e4),
    **dict.fromkeys(("m", "meter", "metre", "meters", "metres"), 1e6),
    **dict.fromkeys(("in", "inch", "inches"), 25400.0),
}
#: units that say "no physical unit"
_NO_UNIT = ("", "pixel", "pixels", "px", "none", "reference frame")
#: the smallest and largest size (µm) a writer takes: what TIFF resolution tags hold, and more
#: than any microscope needs
SPACING_RANGE = (1e-5, 1e12)
#: TIFF ``ResolutionUnit`` codes (4 and 5 are tifffile's extensions)
_RESOLUTION_UNITS = {2: "inch", 3: "cm", 4: "mm", 5: "um"}


def _positive(value: Any) -> float | None:
    """``value`` as a finite positive float, else None."""
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return v if math.isfinite(v) and v > 0 and not isinstance(value, bool) else None


def _unit(unit: Any) -> str | None:
    """A unit name, cleaned; None for no unit or no physical unit (``pixel``).

    ImageJ's escaped micro sign (backslash ``u00B5``) and the Greek mu become ``µ``.
    """
    if unit is None:
        return None
    u = str(unit).strip().replace("\\u00B5", "µ").replace("\\u00b5", "µ").replace("\u03bc", "µ")
    return None if u.lower() in _NO_UNIT else u


def to_micrometres(value: float, unit: Any) -> float:
    """``value`` in ``unit`` as micrometres; as it is when the unit is missing or unknown.

    >>> to_micrometres(250, "nm"), to_micrometres(0.5, "micron"), to_micrometres(2, None)
    (0.25, 0.5, 2.0)
    """
    u = _unit(unit)
    factor = None if u is None else _UM_PER_UNIT.get(u, _UM_PER_UNIT.get(u.lower()))
    return float(value) * (factor if factor is not None else 1.0)


def _put(found: dict[str, float], letter: str, value: Any, unit: Any) -> None:
    """Set ``found[letter]`` to ``value`` in µm if it is a finite positive size."""
    v = _positive(value)
    if v is not None:
        um = to_micrometres(v, unit)
        if math.isfinite(um) and um > 0:
            found[letter] = um


# ------------------------------------------------------------------------------------- TIFF
def _ome_sizes(xml: str) -> dict[str, float]:
    """``PhysicalSizeX/Y/Z`` of the first ``Pixels`` element of OME-XML, in µm."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return {}
    pixels = next((e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    found: dict[str, float] = {}
    if pixels is not None:
        for a in SPATIAL_AXES:
            _put(found, a, pixels.get(f"PhysicalSize{a}"), pixels.get(f"PhysicalSize{a}Unit", "µm"))
    return found


def _resolution_sizes(page: Any, description: Mapping[str, Any]) -> dict[str, float]:
    """Y and X pixel sizes from a TIFF page's resolution tags (``1 / resolution``), in µm."""
    tag = page.tags.get("ResolutionUnit")
    code = int(tag.value) if tag is not None else 1
    found: dict[str, float] = {}
    for a, unit_key in (("X", "unit"), ("Y", "yunit")):
        res = page.tags.get(f"{a}Resolution")
        unit = _RESOLUTION_UNITS.get(code) or _unit(
            description.get(unit_key) or description.get("unit")
        )
        value = res.value if res is not None else None
        if not isinstance(value, tuple | list) or len(value) != 2 or not value[0] or not value[1]:
            continue
        num, den = value
        if num == den and unit is None:
            continue  # the TIFF default: 1 pixel per unknown unit says nothing
        _put(found, a, den / num, unit)
    return found


def tiff_spacing(tif: Any) -> dict[str, float] | None:
    """The spacing a ``tifffile.TiffFile`` declares (see the module), in µm; None if none.

    OME-XML wins over the resolution tags and the ImageJ description where both give an axis.
    Metadata that tifffile cannot make sense of gives None: the pixels are still readable.
    """
    try:
        description = tif.imagej_metadata or {}
        if not description and tif.is_shaped and tif.shaped_metadata:
            description = tif.shaped_metadata[0]  # biounet's own: JSON with ImageJ's keys
        description = description if isinstance(description, Mapping) else {}
        found = _resolution_sizes(tif.pages[0], description)
        z_unit = description.get("zunit") or description.get("unit")
        _put(found, "Z", description.get("spacing"), z_unit)
        if tif.ome_metadata:
            found.update(_ome_sizes(tif.ome_metadata))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, UnicodeError):
        return None
    return found or None


# ------------------------------------------------------------------------------------- Zarr
def _scale(transformations: Any, n: int) -> list[float] | None:
    """The product of the ``scale`` entries among OME-Zarr ``coordinateTransformations``."""
    if not isinstance(transformations, list):
        return None
    scale: list[float] | None = None
    for t in transformations:
        s = t.get("scale") if isinstance(t, Mapping) and t.get("type") == "scale" else None
        if isinstance(s, list) and len(s) == n:
            try:
                values = [float(v) for v in s]
            except (TypeError, ValueError):
                return None
            scale = values if scale is None else [a * b for a, b in zip(scale, values)]
    return scale


def ome_zarr_spacing(multiscale: Mapping[str, Any]) -> dict[str, float] | None:
    """The spacing of the full-resolution level of one OME-Zarr ``multiscales`` entry, in µm.

    The first dataset's ``scale`` times the multiscale-level ``scale``, per named axis
    (``z``, ``y``, ``x``) in the axis's ``unit`` (e.g. ``"micrometer"``, ``"nanometer"``).
    """
    axes = multiscale.get("axes")
    datasets = multiscale.get("datasets")
    if not isinstance(axes, list) or not axes or not isinstance(datasets, list) or not datasets:
        return None
    first = datasets[0] if isinstance(datasets[0], Mapping) else {}
    level = _scale(first.get("coordinateTransformations"), len(axes))
    top = _scale(multiscale.get("coordinateTransformations"), len(axes))
    if level is None and top is None:
        return None
    ones = [1.0] * len(axes)
    scale = [a * b for a, b in zip(level or ones, top or ones)]
    found: dict[str, float] = {}
    for axis, s in zip(axes, scale):
        name = axis.get("name") if isinstance(axis, Mapping) else axis
        unit = axis.get("unit") if isinstance(axis, Mapping) else None
        if str(name).upper() in SPATIAL_AXES:
            _put(found, str(name).upper(), s, unit)
    return found or None


def array_spacing(attrs: Mapping[str, Any], axes: str | None, ndim: int) -> dict[str, float] | None:
    """The spacing in a plain Zarr array's ``attrs["spacing"]`` (one entry per axis, µm).

    With ``axes`` the entries of the axes named Z, Y, X; without, the non-null entries are the
    trailing spatial axes (Y, X or Z, Y, X), as :func:`spacing_to_store` places them.
    """
    values = attrs.get("spacing")
    if not isinstance(values, list | tuple) or len(values) != ndim:
        return None
    found: dict[str, float] = {}
    if axes is not None and len(axes) == ndim:
        for a, v in zip(axes, values):
            if a in SPATIAL_AXES:
                _put(found, a, v, "um")
    else:
        given = [v for v in values if v is not None][-3:]
        for a, v in zip(SPATIAL_AXES[3 - len(given) :], given):
            _put(found, a, v, "um")
    return found or None


# ---------------------------------------------------------------------------------- writing
@dataclass(frozen=True)
class StoredSpacing:
    """How :func:`biounet.data.io.write_image` stores a spacing (all empty: none given).

    Attributes
    ----------
    tiff_options : dict
        ``tifffile.imwrite`` keywords: Y and X as ``resolution`` in pixels per centimetre with
        ``resolutionunit`` cm, which any TIFF reader understands.
    tiff_metadata : dict
        Entries of the TIFF description: the Z step as ImageJ names it, ``spacing`` (µm) with
        ``unit="um"``.
    zarr_attrs : dict
        Zarr array attributes: ``spacing``, µm per axis, None for axes other than Z, Y, X.
    """

    tiff_options: dict[str, Any] = field(default_factory=dict)
    tiff_metadata: dict[str, Any] = field(default_factory=dict)
    zarr_attrs: dict[str, Any] = field(default_factory=dict)


def _placed(path: Any, spacing: Any, axes: str | None, shape: tuple[int, ...]) -> dict[int, str]:
    """Axis index to letter for each value of a writer's ``spacing`` (its length checked)."""
    if axes:
        where = [i for i, a in enumerate(axes) if a in SPATIAL_AXES]
    else:
        where = list(range(len(shape)))
    n = len(spacing)
    if n > len(where):
        raise ValueError(
            f"{path}: {n} spacing values for {len(where)} spatial axes "
            f"({'axes ' + axes if axes else 'shape ' + str(shape)})"
        )
    where = where[len(where) - n :]
    letters = [axes[i] for i in where] if axes else list(SPATIAL_AXES[3 - n :])
    if "Y" not in letters or "X" not in letters:
        raise ValueError(f"{path}: spacing {list(spacing)} is for axes {letters}, not Y and X")
    return dict(zip(where, letters))


def spacing_to_store(
    path: str | os.PathLike[str], spacing: Any, axes: str | None, array: np.ndarray
) -> StoredSpacing:
    """Check the ``spacing`` given to a writer and say how TIFF and Zarr store it.

    Parameters
    ----------
    path : path
        The file being written (named in errors).
    spacing : sequence of float or None
        2 or 3 sizes in µm, in the order of the array's spatial axes: the last 2 or 3 axes
        named Z, Y or X in ``axes``; without ``axes``, the trailing axes (before the colour
        samples of a ``(Y, X, 3 or 4)`` uint8 image), lettered Y, X or Z, Y, X. None: nothing.
    axes : str or None
        The array's checked axis letters, upper case.
    array : numpy.ndarray
        The array being written.

    Returns
    -------
    StoredSpacing

    Raises
    ------
    ValueError
        Not 2 or 3 finite positive numbers, each from 1e-5 to 1e12 µm; more values than
        spatial axes; values that miss the Y or the X axis.
    """
    if spacing is None:
        return StoredSpacing()
    rgb = array.ndim == 3 and array.shape[-1] in (3, 4) and array.dtype == np.uint8
    values = (
        [None if isinstance(v, str | bytes | bool) else _positive(v) for v in spacing]
        if not isinstance(spacing, str | bytes | Mapping) and hasattr(spacing, "__len__")
        else []
    )
    lo, hi = SPACING_RANGE
    if len(values) not in (2, 3) or not all(v is not None and lo <= v <= hi for v in values):
        raise ValueError(
            f"{path}: spacing {spacing!r} must be a sequence of 2 or 3 finite sizes in µm "
            f"(Y, X or Z, Y, X), each from {lo:g} to {hi:g}"
        )
    sizes = [float(v) for v in values if v is not None]
    placed = _placed(path, sizes, axes or ("YXS" if rgb else None), array.shape)
    size = dict(zip(placed.values(), sizes))
    per_axis: list[float | None] = [None] * array.ndim
    for i, v in zip(placed, sizes):
        per_axis[i] = v
    return StoredSpacing(
        {"resolution": (1e4 / size["X"], 1e4 / size["Y"]), "resolutionunit": "CENTIMETER"},
        {"spacing": size["Z"], "unit": "um"} if "Z" in size else {},
        {"spacing": per_axis},
    )


def spacing_values(spacing: Mapping[str, float] | None, ndim: int) -> list[float] | None:
    """A read spacing (``{"Z": .., "Y": .., "X": ..}``) as a writer's sequence, µm per axis.

    ``(Z, Y, X)`` for a volume (``ndim`` 3) whose three sizes are known, else ``(Y, X)`` when
    both are known (a writer puts them on the last two spatial axes), else None.

    >>> s = {"Z": 2.0, "Y": 0.5, "X": 0.5}
    >>> spacing_values(s, 3), spacing_values(s, 2)
    ([2.0, 0.5, 0.5], [0.5, 0.5])
    >>> spacing_values({"X": 0.5}, 2) is None, spacing_values(None, 3) is None
    (True, True)
    """
    if not spacing or "Y" not in spacing or "X" not in spacing:
        return None
    letters = "ZYX" if ndim == 3 and "Z" in spacing else "YX"
    return [float(spacing[a]) for a in letters]
