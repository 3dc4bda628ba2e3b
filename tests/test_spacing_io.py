"""Pixel and voxel sizes ("spacing") read from file metadata, written back, carried to samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from biounet.data import find_dataset, load_stacks, read_image_file, write_image
from biounet.data.spacing import to_micrometres

RNG = np.random.default_rng(7)


def close(found: dict[str, float] | None, expected: dict[str, float]) -> bool:
    """The same axes as ``expected``, each value within 1e-6 (absolute and relative)."""
    return (
        found is not None
        and set(found) == set(expected)
        and all(abs(found[a] - v) <= 1e-6 * max(1.0, abs(v)) for a, v in expected.items())
    )


# ---------------------------------------------------------------------- round trips
@pytest.mark.parametrize("name", ["a.tif", "a.ome.tif", "a.zarr"])
def test_2d_round_trip(tmp_path: Path, name: str) -> None:
    img = RNG.integers(0, 255, (12, 14), dtype=np.uint8)
    write_image(tmp_path / name, img, axes="YX", spacing=(0.65, 0.325))
    f = read_image_file(tmp_path / name)
    assert close(f.spacing, {"Y": 0.65, "X": 0.325})
    np.testing.assert_array_equal(np.asarray(f.data), img)


@pytest.mark.parametrize("name", ["v.tif", "v.zarr"])
@pytest.mark.parametrize("spacing", [(2.2, 0.5, 0.5), (1.7, 0.123456789, 0.3)])
def test_3d_round_trip(tmp_path: Path, name: str, spacing: tuple[float, ...]) -> None:
    vol = RNG.integers(0, 65535, (5, 12, 14), dtype=np.uint16)
    write_image(tmp_path / name, vol, axes="ZYX", spacing=spacing)
    f = read_image_file(tmp_path / name)
    assert f.axes == "ZYX"
    assert close(f.spacing, dict(zip("ZYX", spacing)))
    np.testing.assert_array_equal(np.asarray(f.data), vol)


@pytest.mark.parametrize("name", ["c.tif", "c.zarr"])
def test_channels_are_not_spatial(tmp_path: Path, name: str) -> None:
    vol = RNG.random((2, 4, 10, 11), dtype=np.float32)
    write_image(tmp_path / name, vol, axes="CZYX", spacing=(3.0, 0.4, 0.2))
    f = read_image_file(tmp_path / name)
    assert close(f.spacing, {"Z": 3.0, "Y": 0.4, "X": 0.2})
    if name.endswith(".zarr"):
        assert zarr.open_array(str(tmp_path / name), mode="r").attrs["spacing"] == [
            None,
            3.0,
            0.4,
            0.2,
        ]


@pytest.mark.parametrize("name", ["q.tif", "q.zarr"])
def test_without_axes_the_trailing_axes_are_spatial(tmp_path: Path, name: str) -> None:
    vol = RNG.integers(0, 255, (3, 8, 9), dtype=np.uint8)
    write_image(tmp_path / name, vol, spacing=(2.0, 0.25, 0.5))
    f = read_image_file(tmp_path / name)
    assert close(f.spacing, {"Z": 2.0, "Y": 0.25, "X": 0.5})
    (s,) = load_stacks(tmp_path / name, None, ndim=3)
    assert s.spacing == pytest.approx((2.0, 0.25, 0.5), rel=1e-9)


def test_rgb_without_axes_takes_y_and_x(tmp_path: Path) -> None:
    rgb = RNG.integers(0, 255, (8, 9, 3), dtype=np.uint8)
    write_image(tmp_path / "rgb.tif", rgb, spacing=(0.5, 0.25))
    f = read_image_file(tmp_path / "rgb.tif")
    assert f.axes == "YXS" and close(f.spacing, {"Y": 0.5, "X": 0.25})


def test_png_and_npy_have_no_spacing(tmp_path: Path) -> None:
    img = RNG.integers(0, 255, (8, 9), dtype=np.uint8)
    for name in ("a.png", "a.npy"):
        write_image(tmp_path / name, img, spacing=(0.5, 0.5))  # ignored: no place for it
        assert read_image_file(tmp_path / name).spacing is None


# ---------------------------------------------------------------- files of other tools
def test_imagej_hyperstack(tmp_path: Path) -> None:
    vol = RNG.integers(0, 255, (4, 10, 12), dtype=np.uint8)
    p = tmp_path / "ij.tif"
    tifffile.imwrite(
        p,
        vol,
        imagej=True,
        resolution=(1 / 0.5, 1 / 0.25),
        metadata={"spacing": 2.0, "unit": "um", "axes": "ZYX"},
    )
    f = read_image_file(p)
    assert f.axes == "ZYX" and close(f.spacing, {"Z": 2.0, "Y": 0.25, "X": 0.5})


@pytest.mark.parametrize(("unit", "factor"), [("nm", 1e-3), ("micron", 1.0), ("mm", 1e3)])
def test_imagej_units_convert_to_micrometres(tmp_path: Path, unit: str, factor: float) -> None:
    p = tmp_path / "ij.tif"
    tifffile.imwrite(
        p,
        np.zeros((3, 6, 7), np.uint16),
        imagej=True,
        resolution=(1 / 200, 1 / 100),
        metadata={"spacing": 400.0, "unit": unit, "axes": "ZYX"},
    )
    f = read_image_file(p)
    assert close(f.spacing, {"Z": 400 * factor, "Y": 100 * factor, "X": 200 * factor})


def test_ome_tiff_in_nanometres(tmp_path: Path) -> None:
    vol = RNG.integers(0, 255, (3, 10, 12), dtype=np.uint8)
    p = tmp_path / "cells.ome.tif"
    tifffile.imwrite(
        p,
        vol,
        ome=True,
        metadata={
            "axes": "ZYX",
            "PhysicalSizeX": 250.0,
            "PhysicalSizeXUnit": "nm",
            "PhysicalSizeY": 125.0,
            "PhysicalSizeYUnit": "nm",
            "PhysicalSizeZ": 1.5,  # no unit: the OME default, µm
        },
    )
    f = read_image_file(p)
    assert f.axes == "ZYX" and close(f.spacing, {"Z": 1.5, "Y": 0.125, "X": 0.25})


def test_plain_tiff_resolution_in_centimetres_and_inches(tmp_path: Path) -> None:
    img = np.zeros((6, 7), np.uint8)
    tifffile.imwrite(
        tmp_path / "cm.tif", img, resolution=(20000, 10000), resolutionunit="CENTIMETER"
    )
    assert close(read_image_file(tmp_path / "cm.tif").spacing, {"Y": 1.0, "X": 0.5})
    tifffile.imwrite(tmp_path / "in.tif", img, resolution=(25400, 25400), resolutionunit="INCH")
    assert close(read_image_file(tmp_path / "in.tif").spacing, {"Y": 1.0, "X": 1.0})


def test_tiff_without_metadata_has_no_spacing(tmp_path: Path) -> None:
    img = np.zeros((4, 6, 7), np.uint8)
    # 1 pixel per unit with ResolutionUnit NONE: the default, "unknown"
    tifffile.imwrite(tmp_path / "plain.tif", img, photometric="minisblack")
    tifffile.imwrite(tmp_path / "bare.tif", img, metadata=None, photometric="minisblack")
    write_image(tmp_path / "ours.tif", img, axes="ZYX")
    for name in ("plain.tif", "bare.tif", "ours.tif"):
        assert read_image_file(tmp_path / name).spacing is None, name


def test_ome_zarr_group(tmp_path: Path) -> None:
    p = tmp_path / "ome.zarr"
    group = zarr.open_group(str(p), mode="w")
    vol = RNG.integers(0, 255, (2, 3, 10, 12), dtype=np.uint8)
    group.create_array("0", shape=vol.shape, dtype=vol.dtype)[...] = vol
    group.create_array("1", shape=(2, 3, 5, 6), dtype=vol.dtype)
    group.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": [
                {"name": "c", "type": "channel"},
                {"name": "z", "type": "space", "unit": "micrometer"},
                {"name": "y", "type": "space", "unit": "nanometer"},
                {"name": "x", "type": "space", "unit": "nanometer"},
            ],
            "datasets": [
                {
                    "path": "0",
                    "coordinateTransformations": [
                        {"type": "scale", "scale": [1.0, 2.0, 100.0, 200.0]}
                    ],
                },
                {
                    "path": "1",
                    "coordinateTransformations": [
                        {"type": "scale", "scale": [1.0, 2.0, 200.0, 400.0]}
                    ],
                },
            ],
            # a multiscale-level scale multiplies every level's
            "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.5, 2.0, 2.0]}],
        }
    ]
    f = read_image_file(p)
    assert f.axes == "CZYX" and f.data.shape == vol.shape
    assert close(f.spacing, {"Z": 3.0, "Y": 0.2, "X": 0.4})


def test_units() -> None:
    assert to_micrometres(250, "nm") == pytest.approx(0.25)
    assert to_micrometres(2, "\\u00B5m") == 2 and to_micrometres(2, "\u03bcm") == 2
    assert to_micrometres(1, "inch") == pytest.approx(25400)
    assert to_micrometres(3, "pixel") == 3 and to_micrometres(3, "furlong") == 3


# ---------------------------------------------------------------------------- datasets
def test_find_dataset_carries_the_voxel_size_to_3d_samples(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for i, z in enumerate((2.2, 1.1)):
        vol = RNG.integers(0, 255, (4, 16, 18), dtype=np.uint8)
        write_image(tmp_path / "images" / f"s{i}.tif", vol, axes="ZYX", spacing=(z, 0.5, 0.25))
        write_image(tmp_path / "masks" / f"s{i}.tif", (vol > 128).astype(np.uint8) * 255)
    samples = find_dataset(tmp_path, ndim=3)
    assert [s.spacing for s in samples] == [
        pytest.approx((2.2, 0.5, 0.25), rel=1e-9),
        pytest.approx((1.1, 0.5, 0.25), rel=1e-9),
    ]
    assert all(isinstance(v, float) for s in samples for v in s.spacing or ())


def test_spacing_follows_the_axis_letters(tmp_path: Path) -> None:
    # channels declared after Z: the sample's spatial axes are still Z, Y, X
    vol = RNG.integers(0, 255, (4, 2, 10, 12), dtype=np.uint8)
    write_image(tmp_path / "v.tif", vol, axes="ZCYX", spacing=(2.0, 0.4, 0.2))
    (s,) = load_stacks(tmp_path / "v.tif", None, ndim=3)
    assert s.image.shape == (2, 4, 10, 12)
    assert s.spacing == pytest.approx((2.0, 0.4, 0.2), rel=1e-9)
    # as 2D pages: Y and X only
    pages = load_stacks(tmp_path / "v.tif", None, ndim=2)
    assert len(pages) == 4 and all(p.spacing == pytest.approx((0.4, 0.2)) for p in pages)


def test_a_3d_stack_with_only_y_and_x_declared_has_no_sample_spacing(tmp_path: Path) -> None:
    vol = RNG.integers(0, 255, (4, 10, 12), dtype=np.uint8)
    write_image(tmp_path / "v.tif", vol, axes="ZYX", spacing=(0.4, 0.2))
    assert close(read_image_file(tmp_path / "v.tif").spacing, {"Y": 0.4, "X": 0.2})
    (s,) = load_stacks(tmp_path / "v.tif", None, ndim=3)
    assert s.spacing is None
    assert load_stacks(tmp_path / "v.tif", None, ndim=2)[0].spacing == pytest.approx((0.4, 0.2))


def test_a_time_axis_is_not_depth(tmp_path: Path) -> None:
    vol = RNG.integers(0, 255, (3, 10, 12), dtype=np.uint8)
    tifffile.imwrite(
        tmp_path / "t.tif",
        vol,
        imagej=True,
        resolution=(2.0, 2.0),
        metadata={"spacing": 3.0, "unit": "um", "axes": "TYX"},
    )
    (s,) = load_stacks(tmp_path / "t.tif", None, ndim=3)
    assert s.spacing is None


# ------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("spacing", "axes", "match"),
    [
        ((0.5, -1.0), "YX", "finite sizes"),
        ((0.5, 0.0), "YX", "finite sizes"),
        ((0.5, float("nan")), "YX", "finite sizes"),
        ((0.5, float("inf")), "YX", "finite sizes"),
        ((0.5,), "YX", "2 or 3"),
        ((1.0, 2.0, 3.0, 4.0), "YX", "2 or 3"),
        ((1.0, 0.5, 0.5), "YX", "3 spacing values for 2 spatial axes"),
        (0.5, "YX", "sequence"),
        ("0.5", "YX", "2 or 3"),
        (("a", "b"), "YX", "finite sizes"),
    ],
)
@pytest.mark.parametrize("name", ["bad.tif", "bad.zarr"])
def test_a_bad_spacing_names_the_file(
    tmp_path: Path, name: str, spacing: object, axes: str, match: str
) -> None:
    p = tmp_path / name
    with pytest.raises(ValueError, match=match) as info:
        write_image(p, np.zeros((6, 7), np.uint8), axes=axes, spacing=spacing)  # type: ignore[arg-type]
    assert str(p) in str(info.value)
    assert not p.exists()
