from pathlib import Path

import numpy as np
import pytest
import tifffile

from biounet.data import (
    AnnotationSpec,
    Normalizer,
    find_dataset,
    load_ctc,
    load_pairs,
    load_stacks,
    to_channels_first,
    to_target,
    write_image,
)
from biounet.data.annotations import IGNORE_INDEX

RNG = np.random.default_rng(1)
ISBI = Path(__file__).resolve().parents[2] / "shared" / "data" / "isbi2012"


def make_folder(root: Path, n: int = 3, shape=(20, 24), masks="labels", rgb=False) -> None:
    (root / "images").mkdir(parents=True)
    (root / masks).mkdir()
    for i in range(n):
        img = RNG.integers(0, 255, (*shape, 3) if rgb else shape, dtype=np.uint8)
        write_image(root / "images" / f"img{i}.png", img)
        write_image(root / masks / f"img{i}.png", (RNG.random(shape) > 0.5).astype(np.uint8) * 255)


def test_folder_pairs_by_stem(tmp_path) -> None:
    make_folder(tmp_path, masks="masks")
    samples = find_dataset(tmp_path)
    assert [s.name for s in samples] == ["img0", "img1", "img2"]
    assert samples[0].image.shape == (1, 20, 24) and samples[0].annotation.shape == (20, 24)


def test_rgb_images_are_channels_first(tmp_path) -> None:
    make_folder(tmp_path, rgb=True)
    assert find_dataset(tmp_path)[0].image.shape == (3, 20, 24)


def test_missing_mask_is_named(tmp_path) -> None:
    make_folder(tmp_path)
    (tmp_path / "labels" / "img1.png").unlink()
    with pytest.raises(ValueError, match=r"no annotation for 1 image\(s\): img1\.png"):
        find_dataset(tmp_path)


def test_size_mismatch_names_both_shapes(tmp_path) -> None:
    make_folder(tmp_path)
    write_image(tmp_path / "labels" / "img2.png", np.zeros((20, 25), np.uint8))
    with pytest.raises(
        ValueError, match=r"img2\.png has spatial shape \(20, 24\) but .*img2\.png has \(20, 25\)"
    ):
        find_dataset(tmp_path)


def test_empty_and_unknown_folders(tmp_path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    with pytest.raises(ValueError, match=r"images: the folder holds no images"):
        find_dataset(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(ValueError, match="the folder is empty"):
        find_dataset(other)
    (other / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="no dataset layout recognised"):
        find_dataset(other)
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        find_dataset(tmp_path / "nowhere")


def test_stack_pair_pages_are_samples(tmp_path) -> None:
    vol = RNG.integers(0, 255, (5, 16, 16), dtype=np.uint8)
    lab = (RNG.random((5, 16, 16)) > 0.5).astype(np.uint8) * 255
    tifffile.imwrite(tmp_path / "train-volume.tif", vol)
    tifffile.imwrite(tmp_path / "train-labels.tif", lab)
    samples = find_dataset(tmp_path)
    assert len(samples) == 5 and samples[3].name == "train-volume[3]"
    np.testing.assert_array_equal(samples[3].image[0], vol[3])
    np.testing.assert_array_equal(samples[3].annotation, lab[3])
    as3d = load_stacks(tmp_path / "train-volume.tif", tmp_path / "train-labels.tif", ndim=3)
    assert len(as3d) == 1 and as3d[0].image.shape == (1, 5, 16, 16)
    tifffile.imwrite(tmp_path / "short.tif", lab[:4], photometric="minisblack")
    with pytest.raises(ValueError, match=r"has 5 pages but .*short\.tif has 4"):
        load_stacks(tmp_path / "train-volume.tif", tmp_path / "short.tif")


def test_cell_tracking_challenge_layout(tmp_path) -> None:
    seq, gt = tmp_path / "01", tmp_path / "01_GT" / "SEG"
    seq.mkdir()
    gt.mkdir(parents=True)
    for t in range(4):
        tifffile.imwrite(seq / f"t{t:03d}.tif", RNG.integers(0, 4000, (12, 14), dtype=np.uint16))
    for t in (1, 3):
        tifffile.imwrite(gt / f"man_seg{t:03d}.tif", RNG.integers(0, 5, (12, 14), dtype=np.uint16))
    tifffile.imwrite(gt / "man_seg_001_004.tif", np.zeros((12, 14), np.uint16))  # a 2D slice of 3D
    samples = load_ctc(seq)
    assert [s.name for s in samples] == ["01/t001", "01/t003"]
    assert samples[0].image.dtype == np.uint16
    assert [s.name for s in find_dataset(tmp_path)] == ["01/t001", "01/t003"]
    assert [s.name for s in find_dataset(seq)] == ["01/t001", "01/t003"]


def test_images_without_masks_for_prediction(tmp_path) -> None:
    make_folder(tmp_path)
    samples = load_pairs(tmp_path / "images", None)
    assert len(samples) == 3 and samples[0].annotation is None


@pytest.mark.parametrize(
    ("shape", "ndim", "axis", "expected"),
    [
        ((20, 30), 2, None, (1, 20, 30)),
        ((20, 30, 3), 2, None, (3, 20, 30)),
        ((2, 20, 30), 2, None, (2, 20, 30)),
        ((20, 30, 7), 2, -1, (7, 20, 30)),
        ((5, 20, 30), 3, None, (1, 5, 20, 30)),
        ((2, 5, 20, 30), 3, None, (2, 5, 20, 30)),
    ],
)
def test_channel_rule(shape, ndim, axis, expected) -> None:
    assert to_channels_first(np.zeros(shape), ndim, channel_axis=axis).shape == expected


def test_channel_rule_errors() -> None:
    with pytest.raises(
        ValueError, match="neither the first nor the last looks like channels; declare channel_axis"
    ):
        to_channels_first(np.zeros((20, 30, 40)), 2)
    with pytest.raises(
        ValueError, match=r"shape \(2, 3, 4, 5, 6\) has 5 axes; expected 2 spatial axes"
    ):
        to_channels_first(np.zeros((2, 3, 4, 5, 6)), 2)


def test_annotation_kinds() -> None:
    mask = np.array([[0, 255, 255, 0, 255]])
    t = to_target(mask, AnnotationSpec("binary"))
    assert t.classes.tolist() == [[0, 1, 1, 0, 1]] and t.instances.tolist() == [[0, 1, 1, 0, 2]]
    t = to_target(mask, AnnotationSpec("binary", foreground=0))
    assert t.classes.tolist() == [[1, 0, 0, 1, 0]]
    t = to_target(np.array([[0, 2, 1, 7]]), AnnotationSpec("classes", num_classes=3, ignore=7))
    assert t.classes.tolist() == [[0, 2, 1, IGNORE_INDEX]] and t.ignore.tolist() == [
        [False, False, False, True]
    ]
    t = to_target(np.array([[0, 5, 5, 9, 0]]), AnnotationSpec("instances"))
    assert t.classes.tolist() == [[0, 1, 1, 1, 0]] and t.instances.tolist() == [[0, 5, 5, 9, 0]]


def test_annotation_errors_list_the_values() -> None:
    with pytest.raises(
        ValueError,
        match=r"m\.png: a binary mask holds at most 2 values .*found \[0, 1, 2\] \(3 values\)",
    ):
        to_target(np.array([[0, 1, 2]]), AnnotationSpec("binary"), name="m.png")
    with pytest.raises(ValueError, match=r"class values must be 0\.\.2, found \[3, 9\]"):
        to_target(np.array([[0, 3, 9, 1]]), AnnotationSpec("classes", num_classes=3))
    with pytest.raises(ValueError, match="declared foreground value 7 is not among"):
        to_target(np.array([[0, 255]]), AnnotationSpec("binary", foreground=7))
    with pytest.raises(
        ValueError, match=r"mask must hold whole numbers .*float64 values such as 0\.5"
    ):
        to_target(np.array([[0.5, 1.0]]), AnnotationSpec("binary"))
    with pytest.raises(ValueError, match=r"m\.png must be non-negative .*got minimum -3"):
        to_target(np.array([[0, 5, -3]]), AnnotationSpec("instances"), name="m.png")
    # an ignored value may be negative, and ignored pixels are not checked
    t = to_target(np.array([[0, 5, -1]]), AnnotationSpec("instances", ignore=-1))
    assert t.instances.tolist() == [[0, 5, 0]] and t.classes.tolist() == [[0, 1, -1]]
    t = to_target(np.array([[0.0, 2.0, -1.0]]), AnnotationSpec("classes", num_classes=3, ignore=-1))
    assert t.classes.tolist() == [[0, 2, -1]]
    with pytest.raises(ValueError, match=r"class values must be 0\.\.2, found \[-2\]"):
        to_target(np.array([[0, 1, -2]]), AnnotationSpec("classes", num_classes=3))
    with pytest.raises(
        ValueError, match="unknown annotation kind 'instance': did you mean 'instances'"
    ):
        AnnotationSpec("instance")


def test_normalisation_modes() -> None:
    img = np.concatenate([np.linspace(0, 1000, 1000), [60000]]).reshape(1, 1, -1).astype(np.uint16)
    p = Normalizer("percentile", low=0, high=99.8)(img)
    assert p.dtype == np.float32 and p.min() == 0 and abs(np.percentile(p, 99.8) - 1) < 1e-4
    r = Normalizer("range")(img)
    np.testing.assert_allclose(r, img / 65535, rtol=1e-6)
    m = Normalizer("meanstd")(img.astype(np.float32))
    assert abs(m.mean()) < 1e-4 and abs(m.std() - 1) < 1e-3
    assert Normalizer.from_dict(Normalizer("range").to_dict()) == Normalizer("range")
    with pytest.raises(ValueError, match="did you mean 'percentile'"):
        Normalizer("percentil")


def test_normalisation_is_per_channel() -> None:
    img = np.stack([np.arange(100.0), 1000 + 10 * np.arange(100.0)]).reshape(2, 10, 10)
    out = Normalizer("percentile", low=0, high=100)(img)
    np.testing.assert_allclose(out[0], out[1], atol=1e-6)


@pytest.mark.data
@pytest.mark.skipif(not ISBI.is_dir(), reason="ISBI 2012 data not present")
def test_isbi_2012_folder() -> None:
    samples = load_pairs(ISBI / "images", ISBI / "labels")
    assert len(samples) == 30
    t = to_target(samples[0].annotation, AnnotationSpec("binary", foreground=255))
    membrane = (t.classes == 0).mean()
    assert 0.15 < membrane < 0.3  # membranes (black) are 17-27% of each slice
    assert t.instances.max() > 50  # the cells between membranes are the objects


# --- lazy (Zarr) images stay lazy -------------------------------------------------------------


def zarr_array(path: Path, data: np.ndarray):
    import zarr

    z = zarr.open_array(
        str(path), mode="w", shape=data.shape, chunks=(8,) * data.ndim, dtype=data.dtype
    )
    z[...] = data
    return z


@pytest.mark.parametrize(
    ("shape", "axis", "moved"),
    [((20, 30), None, None), ((20, 30, 3), None, -1), ((20, 4, 30), 1, 1), ((2, 20, 30), None, 0)],
)
def test_zarr_images_stay_lazy(tmp_path, shape, axis, moved) -> None:
    from biounet.data import read_image_file

    data = RNG.integers(0, 4000, shape).astype(np.uint16)
    zarr_array(tmp_path / "x.zarr", data)
    view = to_channels_first(read_image_file(tmp_path / "x.zarr"), 2, channel_axis=axis)
    expected = data[None] if moved is None else np.moveaxis(data, moved, 0)
    assert not isinstance(view, np.ndarray)
    assert view.shape == expected.shape and view.dtype == np.uint16 and view.ndim == 3
    for key in [
        (slice(None), slice(3, 9), slice(2, 25, 4)),
        (0, slice(None), 5),
        (slice(0, 1), 7),
        (Ellipsis, slice(1, 4)),
        (slice(None), slice(None, None, 7)),
        np.int64(0),
    ]:
        np.testing.assert_array_equal(view[key], expected[key])
    np.testing.assert_array_equal(np.asarray(view), expected)
    np.testing.assert_array_equal(np.asarray(view, dtype=np.float32), expected.astype(np.float32))
    if moved != 0:  # a view (a channels-first Zarr array is returned as it is)
        with pytest.raises(TypeError, match="a lazy image view takes integers and slices"):
            view[[0, 1]]


def test_a_folder_of_zarr_images_trains_and_stays_lazy(tmp_path) -> None:
    from biounet.data import prepare

    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    data = RNG.integers(0, 255, (20, 24)).astype(np.uint8)
    zarr_array(tmp_path / "images" / "a.zarr", data)
    write_image(tmp_path / "labels" / "a.png", (data > 128).astype(np.uint8) * 255)
    (s,) = find_dataset(tmp_path)
    assert not isinstance(s.image, np.ndarray) and s.image.shape == (1, 20, 24)
    (t,) = prepare([s], AnnotationSpec(), Normalizer("range"))
    np.testing.assert_allclose(t.image[0], data / 255, rtol=1e-6)


# --- stacks: the official ISBI 2012 folder ----------------------------------------------------


def isbi_like(root: Path, pages: int = 4) -> tuple[np.ndarray, np.ndarray]:
    vol = RNG.integers(0, 255, (pages, 16, 18), dtype=np.uint8)
    lab = (RNG.random((pages, 16, 18)) > 0.3).astype(np.uint8) * 255
    plain = {"metadata": None, "photometric": "minisblack"}  # as libtiff writes: no metadata
    tifffile.imwrite(root / "train-volume.tif", vol, **plain)
    tifffile.imwrite(root / "train-labels.tif", lab, **plain)
    test = RNG.integers(0, 255, (3, 16, 18), dtype=np.uint8)
    tifffile.imwrite(root / "test-volume.tif", test, **plain)
    return vol, lab


def test_the_official_isbi_folder_pairs_stacks_by_name(tmp_path, caplog) -> None:
    import logging

    vol, lab = isbi_like(tmp_path)
    with caplog.at_level(logging.INFO, logger="biounet.data.layouts"):
        samples = find_dataset(tmp_path)
    assert [s.name for s in samples] == [f"train-volume[{i}]" for i in range(4)]
    np.testing.assert_array_equal(samples[2].image[0], vol[2])
    np.testing.assert_array_equal(samples[2].annotation, lab[2])
    assert any(
        "test-volume.tif: an image stack with no label stack" in r.getMessage()
        for r in caplog.records
        if r.levelno == logging.INFO
    )
    # the stack files themselves: the label stack is found beside the image stack
    assert len(find_dataset(tmp_path / "train-volume.tif")) == 4
    explicit = find_dataset(tmp_path / "train-volume.tif", labels=tmp_path / "train-labels.tif")
    np.testing.assert_array_equal(explicit[3].annotation, lab[3])
    assert len(find_dataset(tmp_path / "train-volume.tif", ndim=3)) == 1
    with pytest.raises(ValueError, match=r"test-volume\.tif: expected one label stack beside it"):
        find_dataset(tmp_path / "test-volume.tif")
    with pytest.raises(ValueError, match=r"train-labels\.tif: this looks like a label stack"):
        find_dataset(tmp_path / "train-labels.tif")


def test_unpaired_stacks_are_listed_in_the_error(tmp_path) -> None:
    for name in ("a-volume.tif", "c-volume.tif", "b-labels.tif"):
        tifffile.imwrite(tmp_path / name, np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(
        ValueError,
        match=r"found image stacks \[a-volume\.tif, c-volume\.tif\] and label stacks "
        r"\[b-labels\.tif\], but none share a name",
    ):
        find_dataset(tmp_path)


def test_two_pairs_of_stacks_give_all_their_pages(tmp_path) -> None:
    for prefix in ("train", "val"):
        tifffile.imwrite(tmp_path / f"{prefix}-volume.tif", np.zeros((2, 8, 8), np.uint8))
        tifffile.imwrite(tmp_path / f"{prefix}-labels.tif", np.zeros((2, 8, 8), np.uint8))
    names = [s.name for s in find_dataset(tmp_path)]
    assert names == ["train-volume[0]", "train-volume[1]", "val-volume[0]", "val-volume[1]"]


def test_a_channels_first_stack_gives_its_pages(tmp_path) -> None:
    vol = RNG.integers(0, 255, (2, 5, 16, 16), dtype=np.uint8)  # C Z Y X
    write_image(tmp_path / "v.tif", vol, axes="CZYX")
    write_image(tmp_path / "l.tif", np.zeros((5, 16, 16), np.uint8))
    samples = load_stacks(tmp_path / "v.tif", tmp_path / "l.tif")
    assert len(samples) == 5 and samples[3].image.shape == (2, 16, 16)
    np.testing.assert_array_equal(samples[3].image, vol[:, 3])


# --- files biounet cannot read ----------------------------------------------------------------


def test_unknown_extensions_are_skipped_with_a_warning(tmp_path, caplog) -> None:
    import logging

    make_folder(tmp_path)
    (tmp_path / "images" / "extra.gif").write_bytes(b"GIF89a")
    (tmp_path / "images" / "scan.jp2").write_bytes(b"x")
    (tmp_path / "images" / ".DS_Store").write_bytes(b"x")  # hidden: not listed
    with caplog.at_level(logging.WARNING, logger="biounet.data.layouts"):
        assert len(find_dataset(tmp_path)) == 3
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "skipping 2 file(s) in formats biounet cannot read: extra.gif, scan.jp2" in warning
    assert "DS_Store" not in warning


def test_a_mask_in_an_unknown_format_is_named(tmp_path, caplog) -> None:
    make_folder(tmp_path)
    (tmp_path / "labels" / "img1.png").unlink()
    (tmp_path / "labels" / "img1.gif").write_bytes(b"GIF89a")
    with pytest.raises(
        ValueError,
        match=r"no annotation for 1 image\(s\): img1\.png \(img1\.gif is there, but biounet "
        r"cannot read '\.gif' files",
    ):
        find_dataset(tmp_path)
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "a.gif").write_bytes(b"GIF89a")
    with pytest.raises(ValueError, match=r"holds no images .*; found only a\.gif, in formats"):
        load_pairs(tmp_path / "only", None)


# --- a declared depth or time axis is not taken as channels -----------------------------------


def test_a_declared_z_axis_is_not_read_as_channels(tmp_path) -> None:
    vol = RNG.integers(0, 255, (5, 16, 16), dtype=np.uint8)
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    tifffile.imwrite(tmp_path / "images" / "a.ome.tif", vol, ome=True, metadata={"axes": "ZYX"})
    write_image(tmp_path / "labels" / "a.tif", np.zeros((16, 16), np.uint8))
    with pytest.raises(
        ValueError,
        match=r"a\.ome\.tif: the file declares axes ZYX \(shape \(5, 16, 16\)\): its extra axis "
        r"is depth \(Z\), not channels; use data\.ndim=3 for a 3D image, or declare "
        r"data\.channel_axis",
    ):
        find_dataset(tmp_path)
    # declared channels are taken as asked
    (s,) = find_dataset(tmp_path, channel_axis=0)
    assert s.image.shape == (5, 16, 16)
    # and as 3D, with a 3D annotation
    write_image(tmp_path / "labels" / "a.tif", np.zeros((5, 16, 16), np.uint8))
    (s,) = find_dataset(tmp_path, ndim=3)
    assert s.image.shape == (1, 5, 16, 16)


def test_a_declared_time_axis_is_not_read_as_channels(tmp_path) -> None:
    write_image(tmp_path / "t.tif", np.zeros((3, 4, 16, 16), np.uint8), axes="TZYX")
    from biounet.data import read_image_file

    with pytest.raises(ValueError, match=r"declares axes TZYX .*time \(T\), not channels"):
        to_channels_first(read_image_file(tmp_path / "t.tif"), 3)
    # a plain page sequence names no axis: the channel rule applies as before
    tifffile.imwrite(tmp_path / "p.tif", np.zeros((3, 16, 16), np.uint8), photometric="minisblack")
    f = read_image_file(tmp_path / "p.tif")
    assert f.axes == "QYX" and to_channels_first(f, 2).shape == (3, 16, 16)


@pytest.mark.data
@pytest.mark.skipif(not ISBI.is_dir(), reason="ISBI 2012 data not present")
def test_isbi_2012_as_the_official_stacks(tmp_path) -> None:
    from biounet.data import read_image

    pages = [read_image(ISBI / "images" / f"{i:02d}.png") for i in range(3)]
    labels = [read_image(ISBI / "labels" / f"{i:02d}.png") for i in range(3)]
    tests = sorted((ISBI / "test_images").iterdir())[:2]
    plain = {"metadata": None, "photometric": "minisblack"}
    tifffile.imwrite(tmp_path / "train-volume.tif", np.stack(pages), **plain)
    tifffile.imwrite(tmp_path / "train-labels.tif", np.stack(labels), **plain)
    tifffile.imwrite(
        tmp_path / "test-volume.tif", np.stack([read_image(p) for p in tests]), **plain
    )
    samples = find_dataset(tmp_path)
    assert len(samples) == 3
    np.testing.assert_array_equal(samples[2].image[0], pages[2])
    np.testing.assert_array_equal(samples[2].annotation, labels[2])


def test_a_single_valued_mask_without_the_declared_foreground_is_an_error() -> None:
    with pytest.raises(
        ValueError,
        match=r"m\.png: the mask holds only the value 7, which is neither the declared "
        r"foreground 255 nor background 0",
    ):
        to_target(np.full((3, 4), 7), AnnotationSpec("binary", foreground=255), name="m.png")
    # empty and full masks are fine
    assert (to_target(np.zeros((3, 4)), AnnotationSpec("binary", 255)).classes == 0).all()
    assert (to_target(np.full((3, 4), 255), AnnotationSpec("binary", 255)).classes == 1).all()
    # membranes as objects (ISBI, foreground=0): a slice without membrane is all background
    assert (to_target(np.full((3, 4), 255), AnnotationSpec("binary", 0)).classes == 0).all()
    # undeclared: one non-zero value is the objects, as before
    assert (to_target(np.full((3, 4), 7), AnnotationSpec("binary")).classes == 1).all()


def test_range_normalisation_of_signed_integers_divides_by_the_maximum() -> None:
    img = np.array([[[0, 3000, -100, 32767]]], dtype=np.int16)
    np.testing.assert_allclose(Normalizer("range")(img), img / 32767, rtol=1e-6)
    i32 = np.array([[[0, 2**30]]], dtype=np.int32)
    np.testing.assert_allclose(Normalizer("range")(i32), [[[0.0, 0.5]]], rtol=1e-6)
    given = Normalizer("range", vmin=-100, vmax=3000)(img[..., :3])
    np.testing.assert_allclose(given, [[[100 / 3100, 1.0, 0.0]]], rtol=1e-6)
