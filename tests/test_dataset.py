import numpy as np
import pytest
import torch

from biounet.data import (
    AnnotationSpec,
    Normalizer,
    Sample,
    TileDataset,
    TrainImage,
    WeightConfig,
    prepare,
)
from biounet.data.annotations import IGNORE_INDEX
from biounet.data.augment import AugmentConfig
from biounet.inference.tiling import read_mirrored


def two_cells(shape=(40, 50)) -> np.ndarray:
    lab = np.zeros(shape, np.int32)
    lab[10:20, 8:20] = 1
    lab[10:20, 22:35] = 2  # a 2 px gap between the two cells
    lab[28:36, 30:45] = 3
    return lab


def samples(n=2, shape=(40, 50)) -> list[Sample]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        lab = two_cells(shape)
        img = (lab > 0) * 200 + rng.integers(0, 50, shape)
        out.append(Sample(f"s{i}", img[None].astype(np.uint8), lab))
    return out


def test_prepare_targets_and_weights() -> None:
    (t,) = prepare(samples(1), AnnotationSpec("instances"), Normalizer("range"))
    assert t.image.dtype == np.float32 and t.image.shape == (1, 40, 50) and t.image.max() <= 1
    assert t.classes.dtype == np.int64 and set(np.unique(t.classes)) == {0, 1}
    # the gap between cells 1 and 2 is the paper's high-weight border
    assert t.weights[15, 20] > 5 > t.weights[2, 2]
    fg = t.classes == 1
    wc_fg = (~fg).sum() / fg.sum()
    np.testing.assert_allclose(t.weights[2, 2], 1.0)  # background is the frequent class
    # eq. 2 at every pixel (the default): the edge of cell 1 at x = 19 has d1 = 0 and d2 = 3
    np.testing.assert_allclose(t.weights[15, 19], wc_fg + 10 * np.exp(-9 / 50), rtol=1e-5)
    np.testing.assert_allclose(t.weights[15, 20], 1 + 10 * np.exp(-9 / 50), rtol=1e-5)  # gap
    assert len(t.focus) and (t.classes.ravel()[t.focus] == 1).mean() < 1  # objects and borders
    # border_on="background": object pixels keep w_c alone, the gap is the same
    (b,) = prepare(
        samples(1),
        AnnotationSpec("instances"),
        Normalizer("range"),
        WeightConfig(border_on="background"),
    )
    np.testing.assert_allclose(b.weights[fg].min(), wc_fg, rtol=1e-5)
    np.testing.assert_allclose(b.weights[fg].max(), wc_fg, rtol=1e-5)
    np.testing.assert_array_equal(b.weights[~fg], t.weights[~fg])


def test_weight_config_spacing_reaches_the_weight_map() -> None:
    from biounet.data.weightmap import weight_map

    s = samples(1)[0]
    cfg = WeightConfig(balance="none", spacing=(1.0, 4.0))  # pixels 4x wider than tall
    (t,) = prepare([s], AnnotationSpec("instances"), Normalizer(), cfg)
    # the 2 px gap between cells 1 and 2 (x = 20, 21) is 4 units per pixel wide in x
    np.testing.assert_allclose(t.weights[15, 20], 1 + 10 * np.exp(-((4 + 8) ** 2) / 50), rtol=1e-5)
    expected = weight_map(s.annotation, class_weights=None, spacing=(1.0, 4.0))
    np.testing.assert_allclose(t.weights, expected, rtol=1e-6)
    (iso,) = prepare([s], AnnotationSpec("instances"), Normalizer(), WeightConfig(balance="none"))
    assert iso.weights[15, 20] > 5 * t.weights[15, 20]
    with pytest.raises(ValueError, match=r"weights\.spacing \[1\.0, 1\.0, 4\.0\] has 3 values"):
        prepare([s], AnnotationSpec("instances"), Normalizer(), WeightConfig(spacing=(1, 1, 4)))


def test_weight_config_is_validated() -> None:
    with pytest.raises(ValueError, match=r"unknown weights\.balance 'imgae': did you mean 'image'"):
        WeightConfig(balance="imgae")
    with pytest.raises(ValueError, match=r"unknown weights\.border_on 'backround': did you mean"):
        WeightConfig(border_on="backround")
    with pytest.raises(ValueError, match=r"weights\.sigma must be a finite number > 0, got 0"):
        WeightConfig(sigma=0)
    with pytest.raises(ValueError, match=r"weights\.spacing must be positive pixel sizes"):
        WeightConfig(spacing=(1.0, -2.0))
    assert WeightConfig(spacing=[50, 4, 4]).spacing == (50.0, 4.0, 4.0)  # from YAML: a list
    assert WeightConfig().border_on == "all" and WeightConfig().spacing is None


def test_separation_needs_instance_annotations() -> None:
    s = samples(1)[0]
    s.annotation = (s.annotation > 0).astype(np.uint8) * 255
    with pytest.raises(
        ValueError,
        match=r"weights\.separation=2 needs instance annotations .*got 'binary': in a binary "
        r"mask touching objects are one connected region",
    ):
        prepare([s], AnnotationSpec("binary"), Normalizer(), WeightConfig(separation=2))


def test_ignore_value_gets_no_weight() -> None:
    s = samples(1)[0]
    s.annotation = s.annotation.copy()
    s.annotation[:5] = 99
    (t,) = prepare(
        [s], AnnotationSpec("instances", ignore=99), Normalizer(), WeightConfig(balance="none")
    )
    assert (t.classes[:5] == IGNORE_INDEX).all() and (t.weights[:5] == 0).all()


def test_separation_borders_in_the_target() -> None:
    s = samples(1)[0]
    s.annotation = s.annotation.copy()
    s.annotation[10:20, 20:22] = 2  # cells 1 and 2 now touch
    (t,) = prepare([s], AnnotationSpec("instances"), Normalizer(), WeightConfig(separation=2))
    assert (t.classes[10:20, 19:22] == 0).any()  # a background line separates them again


def test_tiles_without_augmentation_are_exact_crops() -> None:
    imgs = prepare(samples(2), AnnotationSpec("instances"), Normalizer())
    ds = TileDataset(imgs, in_tile=(24, 30), out_tile=(12, 18), length=20, seed=1)
    for i in range(20):
        item = ds[i]
        assert item["image"].shape == (1, 24, 30)
        assert item["target"].shape == (12, 18) and item["target"].dtype == torch.int64
        assert item["weight"].shape == (12, 18)
        # find where this tile came from: it must be a mirrored crop of one of the images
        found = False
        for t in imgs:
            for y in range(-24, 40):
                for x in range(-30, 50):
                    crop = read_mirrored(t.image, (y, x), (24, 30))
                    if np.array_equal(crop, item["image"].numpy()):
                        tgt = read_mirrored(t.classes[None], (y + 6, x + 6), (12, 18))[0]
                        assert np.array_equal(tgt, item["target"].numpy())
                        w = read_mirrored(t.weights[None], (y + 6, x + 6), (12, 18))[0]
                        np.testing.assert_allclose(w, item["weight"].numpy(), atol=1e-5)
                        found = True
                        break
                if found:
                    break
            if found:
                break
        assert found, i


def test_items_are_reproducible_and_change_with_the_seed() -> None:
    imgs = prepare(samples(2), AnnotationSpec("instances"), Normalizer())

    def dataset(seed: int) -> TileDataset:
        return TileDataset(
            imgs, in_tile=(24, 24), out_tile=(12, 12), augment=AugmentConfig(), length=4, seed=seed
        )

    ds = dataset(3)
    a = ds[2]
    assert all(torch.equal(a[k], ds[2][k]) for k in a)
    assert all(torch.equal(a[k], dataset(3)[2][k]) for k in a)  # a new loader, the same tile
    assert not torch.equal(a["image"], dataset(4)[2]["image"])
    assert not torch.equal(a["image"], ds[3]["image"])


def test_augmented_tiles_keep_image_and_target_aligned() -> None:
    imgs = prepare(samples(1), AnnotationSpec("instances"), Normalizer("range"))
    cfg = AugmentConfig(noise=0, brightness=0, contrast=(1, 1), gamma=(1, 1), blur=0)
    ds = TileDataset(imgs, in_tile=(32, 32), out_tile=(32, 32), augment=cfg, length=30, seed=0)
    agree = []
    for i in range(30):
        item = ds[i]
        bright = item["image"][0] > 0.5
        agree.append((bright == (item["target"] == 1)).float().mean().item())
    assert np.mean(agree) > 0.95


def test_oversampling_centres_tiles_on_objects() -> None:
    imgs = prepare(samples(1, shape=(200, 200)), AnnotationSpec("instances"), Normalizer())
    plain = TileDataset(imgs, in_tile=(8, 8), out_tile=(8, 8), length=200, seed=0)
    over = TileDataset(imgs, in_tile=(8, 8), out_tile=(8, 8), length=200, seed=0, oversample=1.0)

    def frac(ds):
        return np.mean([(ds[i]["target"] == 1).float().mean().item() for i in range(len(ds))])

    assert frac(over) > 3 * frac(plain)


def test_data_loader_workers_give_the_same_batches() -> None:
    imgs = prepare(samples(2), AnnotationSpec("instances"), Normalizer())
    ds = TileDataset(
        imgs, in_tile=(24, 24), out_tile=(12, 12), augment=AugmentConfig(), length=6, seed=5
    )
    a = [b["image"] for b in torch.utils.data.DataLoader(ds, batch_size=3)]
    b = [b["image"] for b in torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_3d_tiles() -> None:
    lab = np.zeros((12, 20, 20), np.int32)
    lab[3:8, 4:10, 4:10] = 1
    lab[3:8, 11:16, 4:10] = 2
    s = Sample("v", (lab[None] * 100).astype(np.uint8), lab)
    imgs = prepare([s], AnnotationSpec("instances"), Normalizer())
    ds = TileDataset(
        imgs, in_tile=(8, 12, 12), out_tile=(4, 8, 8), augment=AugmentConfig(), length=3
    )
    item = ds[0]
    assert item["image"].shape == (1, 8, 12, 12) and item["target"].shape == (4, 8, 8)


def test_dataset_errors() -> None:
    imgs = prepare(samples(1), AnnotationSpec("instances"), Normalizer())
    with pytest.raises(ValueError, match="must be centred"):
        TileDataset(imgs, in_tile=(24, 24), out_tile=(13, 12))
    with pytest.raises(ValueError, match="no training images"):
        TileDataset([], in_tile=(24, 24), out_tile=(12, 12))
    with pytest.raises(ValueError, match="no annotation"):
        prepare([Sample("x", np.zeros((1, 4, 4)))], AnnotationSpec(), Normalizer())


# --- augmented tiles of a valid network (margin > 0) stay aligned ------------------------------


def coded_image(shape, block: int, seed: int) -> TrainImage:
    """An image, target and weights that all encode the class, with an ignored corner."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 2, tuple(-(-n // block) for n in shape))
    cls = coarse
    for axis in range(len(shape)):
        cls = np.repeat(cls, block, axis=axis)
    cls = cls[tuple(slice(n) for n in shape)].astype(np.int64)
    ignore = np.zeros(shape, bool)
    ignore[tuple(slice(0, n // 4) for n in shape)] = True
    cls[ignore] = IGNORE_INDEX
    image = (cls == 1).astype(np.float32)[None]
    weights = np.where(ignore, 0.0, 1.0 + 4.0 * (cls == 1)).astype(np.float32)
    focus = np.flatnonzero(cls == 1)
    return TrainImage("coded", image, cls, weights, focus)


@pytest.mark.parametrize(
    ("shape", "in_tile", "out_tile", "block", "least"),
    [
        ((80, 90), (60, 52), (20, 12), 6, 0.95),
        ((24, 40, 44), (20, 24, 28), (8, 12, 12), 4, 0.9),
    ],
)
def test_augmented_valid_tiles_keep_image_target_weights_and_ignore_aligned(
    shape, in_tile, out_tile, block, least
) -> None:
    t = coded_image(shape, block, seed=0)
    cfg = AugmentConfig(noise=0, brightness=0, contrast=(1, 1), gamma=(1, 1), blur=0)
    ds = TileDataset([t], in_tile=in_tile, out_tile=out_tile, augment=cfg, length=16, seed=0)
    margin = [(i - o) // 2 for i, o in zip(in_tile, out_tile)]
    centre = tuple(slice(m, m + o) for m, o in zip(margin, out_tile))
    corner = tuple(slice(0, o) for o in out_tile)  # a wrong crop, to show the test can fail
    right, wrong, ignored = [], [], 0
    for i in range(len(ds)):
        item = ds[i]
        image, target, weight = item["image"][0], item["target"], item["weight"]
        assert set(target.unique().tolist()) <= {IGNORE_INDEX, 0, 1}
        seen = target != IGNORE_INDEX
        ignored += int((~seen).sum())
        assert (weight[~seen] == 0).all()  # ignored pixels carry no weight
        # the weights encode the class: 1 on background, 5 on objects (warped linearly)
        assert ((weight[seen] > 3) == (target[seen] == 1)).float().mean() > least
        fg = target[seen] == 1
        right.append(((image[centre][seen] > 0.5) == fg).float().mean().item())
        wrong.append(((image[corner][seen] > 0.5) == fg).float().mean().item())
    assert ignored > 0  # some tiles reach the ignored corner (or its mirror image)
    assert np.mean(right) > least and np.mean(wrong) < 0.8


def test_3d_tiles_without_augmentation_are_exact_crops() -> None:
    t = coded_image((16, 20, 24), 3, seed=1)
    ds = TileDataset([t], in_tile=(10, 12, 14), out_tile=(4, 6, 6), length=8, seed=2)
    for i in range(len(ds)):
        item = ds[i]
        # the image encodes the class: the target is the image's centre, exactly
        img = item["image"][0, 3:7, 3:9, 4:10]
        target = item["target"]
        seen = target != IGNORE_INDEX
        assert torch.equal((img[seen] > 0.5), target[seen] == 1)
        expected = 1 + 4 * (target[seen] == 1).float()
        torch.testing.assert_close(item["weight"][seen], expected, atol=1e-5, rtol=0)
