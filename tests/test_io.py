import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

from biounet.core.files import atomic_path
from biounet.data import (
    mask_classes,
    mask_values,
    read_image,
    read_image_file,
    write_image,
    write_labels,
    write_mask,
    write_probabilities,
)

RNG = np.random.default_rng(0)


@pytest.mark.parametrize(
    ("name", "array"),
    [
        ("u8.png", RNG.integers(0, 256, (31, 17), dtype=np.uint8)),
        ("u16.png", RNG.integers(0, 65536, (31, 17), dtype=np.uint16)),
        ("rgb.png", RNG.integers(0, 256, (31, 17, 3), dtype=np.uint8)),
        ("u8.tif", RNG.integers(0, 256, (31, 17), dtype=np.uint8)),
        ("u16.tif", RNG.integers(0, 65536, (31, 17), dtype=np.uint16)),
        ("f32.tif", RNG.random((31, 17), dtype=np.float32)),
        ("stack.tif", RNG.integers(0, 65536, (4, 31, 17), dtype=np.uint16)),
        ("i32.npy", RNG.integers(-5, 5, (3, 4, 5)).astype(np.int32)),
    ],
)
def test_round_trip(tmp_path, name: str, array: np.ndarray) -> None:
    path = write_image(tmp_path / name, array)
    back = np.asarray(read_image(path))
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_labels_16_and_32_bit(tmp_path) -> None:
    small = np.arange(20, dtype=np.int64).reshape(4, 5) * 1000
    write_labels(tmp_path / "l16.tif", small)
    assert read_image(tmp_path / "l16.tif").dtype == np.uint16
    big = small * 10
    write_labels(tmp_path / "l32.tif", big)
    back = read_image(tmp_path / "l32.tif")
    assert back.dtype == np.uint32 and np.array_equal(back, big)
    write_labels(tmp_path / "l16.png", small)
    np.testing.assert_array_equal(read_image(tmp_path / "l16.png"), small)
    with pytest.raises(ValueError, match="need 32 bits, which PNG cannot hold"):
        write_labels(tmp_path / "l32.png", big)


def test_masks_and_probabilities(tmp_path) -> None:
    mask = RNG.random((9, 11)) > 0.5
    write_mask(tmp_path / "m.png", mask)
    np.testing.assert_array_equal(read_image(tmp_path / "m.png"), mask.astype(np.uint8) * 255)
    classes = RNG.integers(0, 3, (2, 9, 11))
    write_mask(tmp_path / "c.tif", classes, 3, axes="ZYX")  # more classes: the class index
    back = read_image(tmp_path / "c.tif")
    assert back.dtype == np.uint8 and np.array_equal(back, classes)
    with pytest.raises(ValueError, match=r"class indices must be 0\.\.1, got 0\.\.2"):
        write_mask(tmp_path / "bad.png", classes[0])
    probs = RNG.random((2, 9, 11)).astype(np.float32)
    write_probabilities(tmp_path / "p.tif", probs)
    np.testing.assert_array_equal(read_image(tmp_path / "p.tif"), probs)
    write_probabilities(tmp_path / "p.png", probs[1])
    np.testing.assert_array_equal(read_image(tmp_path / "p.png"), np.rint(probs[1] * 255))


def test_zarr_and_npy_are_read_lazily(tmp_path) -> None:
    data = RNG.random((40, 30)).astype(np.float32)
    z = zarr.open_array(
        str(tmp_path / "a.zarr"), mode="w", shape=data.shape, chunks=(16, 16), dtype="f4"
    )
    z[...] = data
    lazy = read_image(tmp_path / "a.zarr")
    assert not isinstance(lazy, np.ndarray)
    np.testing.assert_array_equal(lazy[3:9, 2:5], data[3:9, 2:5])
    np.save(tmp_path / "a.npy", data)
    assert isinstance(read_image(tmp_path / "a.npy"), np.memmap)


def test_ome_tiff_axes(tmp_path) -> None:
    data = RNG.integers(0, 4000, (1, 3, 5, 20, 24), dtype=np.uint16)  # T C Z Y X
    tifffile.imwrite(tmp_path / "x.ome.tif", data, metadata={"axes": "TCZYX"})
    f = read_image_file(tmp_path / "x.ome.tif")
    assert f.axes == "CZYX" and f.data.shape == (3, 5, 20, 24)


def test_palette_and_bilevel_png(tmp_path) -> None:
    idx = RNG.integers(0, 4, (10, 12), dtype=np.uint8)
    im = Image.fromarray(idx, mode="P")
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
    im.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_image(tmp_path / "p.png"), idx)
    Image.fromarray(idx > 1).save(tmp_path / "b.png")
    np.testing.assert_array_equal(read_image(tmp_path / "b.png"), (idx > 1).astype(np.uint8))


def test_errors_name_the_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.png: no such file"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "x.gif").write_bytes(b"GIF89a")
    with pytest.raises(ValueError, match=r"x\.gif: unknown image format '\.gif'; biounet reads"):
        read_image(tmp_path / "x.gif")
    (tmp_path / "bad.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(ValueError, match=r"bad\.tif: cannot read the file .*corrupt or truncated"):
        read_image(tmp_path / "bad.tif")
    good = tmp_path / "cut.png"
    write_image(good, RNG.integers(0, 255, (64, 64), dtype=np.uint8))
    good.write_bytes(good.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"cut\.png: cannot read the file"):
        read_image(good)
    with pytest.raises(ValueError, match="PNG holds 8- or 16-bit integers"):
        write_image(tmp_path / "f.png", np.zeros((4, 4), np.float32))
    with pytest.raises(FileNotFoundError, match=r"the folder .* does not exist"):
        write_image(tmp_path / "missing" / "a.tif", np.zeros((2, 2)))


def test_writes_are_atomic(tmp_path) -> None:
    target = tmp_path / "out.tif"
    write_image(target, np.ones((3, 3), np.uint8))
    with pytest.raises(RuntimeError, match="interrupted"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    np.testing.assert_array_equal(read_image(target), np.ones((3, 3), np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tif"]


def test_written_files_get_the_usual_mode_not_a_private_one(tmp_path) -> None:
    import os
    import stat

    old = os.umask(0o022)
    try:
        path = write_image(tmp_path / "m.png", np.zeros((4, 4), np.uint8))
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


# --- arrays of any number of axes ------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "axes"),
    [
        ((2, 4, 6, 8), None),
        ((4, 5, 7, 3), None),
        ((2, 4, 6, 8), "CZYX"),
        ((4, 2, 6, 8), "ZCYX"),
        ((3, 4, 6, 8), "TZYX"),
        ((2, 3, 2, 6, 8), "TZCYX"),
        ((3, 6, 8), "CYX"),
    ],
)
@pytest.mark.parametrize("ext", [".tif", ".zarr"])
def test_round_trip_keeps_the_shape_and_axes_of_any_array(tmp_path, shape, axes, ext) -> None:
    array = RNG.integers(0, 65536, shape, dtype=np.uint16)
    write_image(tmp_path / f"a{ext}", array, axes=axes)
    f = read_image_file(tmp_path / f"a{ext}")
    back = np.asarray(f.data)
    assert back.shape == shape and back.dtype == np.uint16
    np.testing.assert_array_equal(back, array)
    if axes:
        assert f.axes == axes
    elif ext == ".tif":  # the shape is recorded, but not what the leading axes mean
        assert f.axes == "Q" * (len(shape) - 2) + "YX"
    else:
        assert f.axes is None


def test_probabilities_of_a_volume_keep_their_shape(tmp_path) -> None:
    probs = RNG.random((3, 4, 6, 8)).astype(np.float32)  # (C, Z, Y, X)
    write_probabilities(tmp_path / "p.tif", probs)
    np.testing.assert_array_equal(read_image(tmp_path / "p.tif"), probs)
    write_probabilities(tmp_path / "pa.tif", probs, axes="CZYX")
    f = read_image_file(tmp_path / "pa.tif")
    assert f.axes == "CZYX"
    np.testing.assert_array_equal(f.data, probs)
    labels = RNG.integers(0, 70000, (2, 3, 6, 8))
    write_labels(tmp_path / "l.tif", labels, axes="ZCYX")
    f = read_image_file(tmp_path / "l.tif")
    assert f.axes == "ZCYX" and f.data.dtype == np.uint32
    np.testing.assert_array_equal(f.data, labels)


def test_bad_axes_are_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"axes 'ZYX' do not fit an array of shape \(2, 4, 6, 8\)"):
        write_image(tmp_path / "a.tif", np.zeros((2, 4, 6, 8)), axes="ZYX")
    with pytest.raises(ValueError, match=r"axes 'CCYX' do not fit"):
        write_image(tmp_path / "a.tif", np.zeros((2, 4, 6, 8)), axes="CCYX")
    with pytest.raises(ValueError, match=r"axes 'CZYW' do not fit .*from 'TCZYXSQ'"):
        write_image(tmp_path / "a.tif", np.zeros((2, 4, 6, 8)), axes="CZYW")
    with pytest.raises(ValueError, match=r"axes 'CZT' need a Y and an X axis"):
        write_image(tmp_path / "a.tif", np.zeros((2, 4, 6)), axes="CZT")
    assert list(tmp_path.iterdir()) == []


# --- Zarr -----------------------------------------------------------------------------------


def test_zarr_writer_round_trip_is_chunked_and_lazy(tmp_path) -> None:
    probs = RNG.random((2, 300, 40)).astype(np.float32)
    path = write_probabilities(tmp_path / "p.zarr", probs, axes="CYX")
    z = zarr.open_array(str(path), mode="r")
    assert z.chunks == (2, 256, 40)  # chunked, not one block
    f = read_image_file(path)
    assert not isinstance(f.data, np.ndarray) and f.axes == "CYX"
    np.testing.assert_array_equal(f.data[:, 250:260], probs[:, 250:260])
    # writing again replaces the store whole, and leaves no temporary folder behind
    write_image(path, np.ones((5, 6), np.uint8))
    np.testing.assert_array_equal(read_image(path), np.ones((5, 6), np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.zarr"]
    write_labels(tmp_path / "l.zarr", np.arange(12).reshape(3, 4) * 10000)
    assert read_image(tmp_path / "l.zarr").dtype == np.uint32


def test_empty_or_corrupt_zarr_is_a_one_line_error(tmp_path) -> None:
    (tmp_path / "x.zarr").mkdir()
    with pytest.raises(ValueError, match=r"x\.zarr: not a Zarr array or group") as info:
        read_image(tmp_path / "x.zarr")
    assert "\n" not in str(info.value) and "StorePath" not in str(info.value)
    (tmp_path / "y.zarr").write_text("not zarr")
    with pytest.raises(ValueError, match=r"y\.zarr: not a Zarr array or group"):
        read_image(tmp_path / "y.zarr")


# --- labels ---------------------------------------------------------------------------------


def test_labels_beyond_32_bits_are_refused(tmp_path) -> None:
    labels = np.array([[0, 2**32]], dtype=np.int64)
    with pytest.raises(ValueError, match=r"l\.tif: label 4294967296 does not fit 32 bits"):
        write_labels(tmp_path / "l.tif", labels)
    with pytest.raises(ValueError, match=r"l\.tif: instance labels must hold whole numbers .*0\.5"):
        write_labels(tmp_path / "l.tif", np.array([[0.5, 1.0]]))
    write_labels(tmp_path / "ok.tif", np.array([[0, 2**32 - 1]]))  # the largest that fits
    assert read_image(tmp_path / "ok.tif").max() == 2**32 - 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.tif"]


def test_labels_that_are_not_finite_name_the_file(tmp_path) -> None:
    # inf used to pass the whole-number test and then fail as an OverflowError
    with pytest.raises(
        ValueError, match=r"inf\.tif: instance labels must hold whole numbers .*inf"
    ):
        write_labels(tmp_path / "inf.tif", np.array([[0.0, np.inf]]))
    with pytest.raises(ValueError, match=r"neg\.tif: instance labels must be non-negative .*-1"):
        write_labels(tmp_path / "neg.tif", np.array([[0, -1]]))
    write_labels(tmp_path / "f.tif", np.array([[0.0, 3.0]]))  # whole floats are labels
    assert read_image(tmp_path / "f.tif").tolist() == [[0, 3]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.tif"]


def test_two_class_masks_are_0_255_and_read_back_as_0_1() -> None:
    classes = np.array([[0, 1], [1, 0]])
    values = mask_values(classes, 2)
    assert values.dtype == np.uint8 and values.tolist() == [[0, 255], [255, 0]]
    assert mask_classes(values).tolist() == classes.tolist()
    three = np.array([0, 2, 1, 2])
    assert mask_values(three, 3).tolist() == [0, 2, 1, 2]
    assert mask_classes(mask_values(three, 3)).tolist() == [0, 2, 1, 2]
    assert mask_classes(np.full(3, 255, np.uint8)).tolist() == [1, 1, 1]  # all foreground
    assert mask_classes(np.zeros(3, np.uint8)).tolist() == [0, 0, 0]
    assert mask_classes(np.array([0, 3])).tolist() == [0, 3]  # class indices stay
    assert mask_classes(np.array([True, False])).dtype == np.int64
    with pytest.raises(ValueError, match="up to 256 classes"):
        mask_values(np.zeros(3, int), 300)


# --- atomic writes --------------------------------------------------------------------------
