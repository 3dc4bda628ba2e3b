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
    with pytest.raises(ValueError, match="non-integer floats"):
        to_target(np.array([[0.5, 1.0]]), AnnotationSpec("binary"))
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
