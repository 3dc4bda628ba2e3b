"""Post-processing: class maps, instances with watershed separation, EM membrane regions."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy import ndimage as ndi

from biounet.data.synthetic import make_membranes
from biounet.inference.postprocess import (
    fill_holes,
    instances,
    instances_from_probabilities,
    membrane_regions,
    remove_small,
    semantic,
)


def disks(shape: tuple[int, ...], centres: list[tuple[int, ...]], r: float) -> np.ndarray:
    """Union of disks (2D) or balls (3D) of radius ``r`` px."""
    grid = np.indices(shape)
    out = np.zeros(shape, bool)
    for c in centres:
        out |= sum((g - ci) ** 2 for g, ci in zip(grid, c)) <= r**2
    return out


def figure_eight() -> np.ndarray:
    # two disks of radius 10, 16 px apart: neck half-width 6, distance peaks ~10 -> depth ~3 px
    return disks((40, 60), [(20, 20), (20, 36)], 10)


def as_probs(mask: np.ndarray, p: float = 0.9) -> np.ndarray:
    p1 = np.where(mask, p, 1 - p)
    return np.stack([1 - p1, p1]).astype(np.float32)


def assert_consecutive(labels: np.ndarray) -> None:
    assert labels.dtype == np.int32
    assert set(np.unique(labels)) == set(range(int(labels.max()) + 1))


# --- semantic ----------------------------------------------------------------------------------


def test_semantic_argmax_2d_and_3d() -> None:
    p = np.array(
        [[[0.7, 0.1], [0.2, 0.4]], [[0.2, 0.8], [0.2, 0.2]], [[0.1, 0.1], [0.6, 0.4]]],
        np.float32,
    )
    expected = np.array([[0, 1], [2, 0]])  # the tie 0.4 / 0.4 at [1, 1] goes to the lower class
    out = semantic(p)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(semantic(np.stack([p, p], axis=1)), np.stack([expected] * 2))
    np.testing.assert_array_equal(semantic(p * 10 - 3), expected)  # any scores, e.g. logits


def test_semantic_threshold() -> None:
    p1 = np.array([[0.1, 0.35], [0.5, 0.95]])
    probs = np.stack([1 - p1, p1])
    np.testing.assert_array_equal(semantic(probs, threshold=0.3), [[0, 1], [1, 1]])
    np.testing.assert_array_equal(semantic(probs, threshold=0.5), [[0, 0], [0, 1]])
    np.testing.assert_array_equal(semantic(probs), [[0, 0], [0, 1]])


# --- instances ---------------------------------------------------------------------------------


def test_watershed_separates_figure_eight_and_none_merges() -> None:
    mask = figure_eight()
    labels = instances(mask)
    assert_consecutive(labels)
    assert labels.max() == 2
    assert labels[20, 20] != labels[20, 36]
    np.testing.assert_array_equal(labels > 0, mask)  # no pixel lost, none added
    for i in (1, 2):  # each object is one connected piece
        assert ndi.label(labels == i)[1] == 1
    merged = instances(mask, separate="none")
    assert merged.max() == 1
    np.testing.assert_array_equal(merged > 0, mask)


def test_h_is_the_neck_depth_needed_to_separate() -> None:
    mask = figure_eight()  # the neck is about 3.05 px lower than the two peaks
    assert instances(mask, h=2.5).max() == 2
    assert instances(mask, h=3.5).max() == 1
    # h is in the units of spacing: at 0.5 per px the neck is 1.5 deep
    assert instances(mask, spacing=0.5).max() == 1
    assert instances(mask, spacing=(0.5, 0.5), h=1.0).max() == 2


def test_watershed_separates_touching_balls_3d() -> None:
    mask = disks((30, 30, 44), [(15, 15, 14), (15, 15, 28)], 9)
    labels = instances(mask)
    assert_consecutive(labels)
    assert labels.max() == 2
    assert labels[15, 15, 14] != labels[15, 15, 28]
    np.testing.assert_array_equal(labels > 0, mask)
    assert instances(mask, separate="none").max() == 1


def test_elongated_and_small_objects_are_not_split_or_lost() -> None:
    mask = np.zeros((30, 80), bool)
    yy, xx = np.mgrid[:30, :80]
    mask |= ((yy - 10) / 5) ** 2 + ((xx - 35) / 30) ** 2 <= 1  # a 10 x 60 px rod
    mask[25, 5:7] = True  # a 2-px object, lower than h
    labels = instances(mask)
    assert labels.max() == 2
    np.testing.assert_array_equal(labels > 0, mask)


def test_probabilities_class_map_and_mask_agree() -> None:
    mask = figure_eight()
    probs = as_probs(mask)
    expected = instances(mask)
    np.testing.assert_array_equal(instances(probs), expected)
    np.testing.assert_array_equal(instances(probs, threshold=None), expected)
    np.testing.assert_array_equal(instances(semantic(probs)), expected)
    assert instances(probs, threshold=0.95).max() == 0


def test_border_probability_guides_the_cut() -> None:
    mask = np.zeros((20, 40), bool)
    mask[4:16, 4:36] = True  # one rectangle: no neck, the distance transform cannot split it
    border = np.zeros(mask.shape, np.float32)
    border[4:16, 14:16] = 0.8  # the net sees a boundary at columns 14-15
    assert instances(mask).max() == 1
    labels = instances(mask, border_prob=border)
    assert labels.max() == 2
    np.testing.assert_array_equal(labels > 0, mask)
    assert set(np.unique(labels[:, 4:14])) == {0, 1} and set(np.unique(labels[:, 16:])) == {0, 2}
    # the same as a 3-class net (background, interior, border), border as a class index
    interior = np.where(mask, 0.9 - border, 0.05)
    probs = np.stack([1 - interior - border, interior, border])
    np.testing.assert_array_equal(instances(probs, foreground_class=(1, 2), border_prob=2), labels)


def test_fill_holes_fills_a_ring() -> None:
    yy, xx = np.mgrid[:30, :30]
    r2 = (yy - 15) ** 2 + (xx - 15) ** 2
    ring = (r2 <= 100) & (r2 > 16)
    for separate in ("watershed", "none"):
        filled = instances(ring, separate=separate)
        assert filled.max() == 1
        np.testing.assert_array_equal(filled > 0, r2 <= 100)
        np.testing.assert_array_equal(
            instances(ring, separate=separate, fill_holes=False) > 0, ring
        )


def test_fill_holes_keeps_background_enclosed_by_two_objects() -> None:
    labels = np.zeros((7, 9), np.int32)
    labels[1:6, 1:4] = 1
    labels[1:6, 4:8] = 2
    labels[3, 3:5] = 0  # a gap enclosed by the two objects together: not a hole of either
    labels[3, 6] = 0  # a hole inside object 2
    out = fill_holes(labels)
    assert out[3, 6] == 2
    assert out[3, 3] == 0 and out[3, 4] == 0
    assert out.dtype == labels.dtype
    assert labels[3, 6] == 0  # input untouched


def test_min_size_removes_a_speck_and_keeps_the_others() -> None:
    mask = disks((30, 60), [(15, 10), (15, 45)], 6)
    mask[2, 28:31] = True  # a 3-px speck between them
    assert instances(mask).max() == 3
    labels = instances(mask, min_size=4)
    assert_consecutive(labels)
    assert labels.max() == 2
    assert not labels[2, 28:31].any()
    assert labels[15, 10] == 1 and labels[15, 45] == 2


def test_labels_are_consecutive_after_removal() -> None:
    mask = np.zeros((10, 40), bool)
    for k, width in enumerate([3, 1, 4, 1, 2, 5]):
        mask[2 : 2 + width, 6 * k : 6 * k + 2] = True
    labels = instances(mask, min_size=5)  # sizes 6, 2, 8, 2, 4, 10 -> keeps three
    assert_consecutive(labels)
    assert labels.max() == 3


def test_empty_foreground_gives_no_objects() -> None:
    for shape in [(8, 9), (4, 5, 6)]:
        labels = instances(np.zeros(shape, bool))
        assert labels.shape == shape and labels.dtype == np.int32 and not labels.any()


def test_remove_small_semantics() -> None:
    lab = np.array([[0, 1, 1, 2], [5, 5, 5, 0]], np.uint16)
    out = remove_small(lab, 3)
    np.testing.assert_array_equal(out, [[0, 0, 0, 0], [5, 5, 5, 0]])  # not renumbered
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(remove_small(lab, 1), lab)
    np.testing.assert_array_equal(remove_small(lab, 0), lab)


# --- membrane_regions --------------------------------------------------------------------------


def grid(width: int, n: int = 3, cell: int = 10) -> np.ndarray:
    """Membrane probabilities: ``n x n`` cells of ``cell`` px separated by lines ``width`` px wide."""
    size = n * cell + (n - 1) * width
    m = np.full((size, size), 0.1, np.float32)
    for k in range(1, n):
        start = k * cell + (k - 1) * width
        m[start : start + width, :] = 0.9
        m[:, start : start + width] = 0.9
    return m


def test_membrane_grid_gives_nine_regions() -> None:
    m = grid(1)
    regions = membrane_regions(m)
    assert_consecutive(regions)
    assert regions.max() == 9
    np.testing.assert_array_equal(regions == 0, m > 0.5)
    assert all((regions == i).sum() == 100 for i in range(1, 10))


def test_membrane_thin_leaves_one_pixel_lines() -> None:
    m = grid(3)
    thick = membrane_regions(m)
    thin = membrane_regions(m, thin=True)
    assert thick.max() == thin.max() == 9
    assert (thin == 0).sum() < (thick == 0).sum() / 2
    np.testing.assert_array_equal(thin[thick > 0], thick[thick > 0])  # regions only grow
    # every 0 left is on a line between two regions
    padded = np.pad(thin, 1)
    for y, x in zip(*np.nonzero(thin == 0)):
        around = padded[y : y + 3, x : x + 3]
        assert len(set(np.unique(around)) - {0}) >= 2


def test_membrane_min_size() -> None:
    m = grid(1)
    m[3:6, 3:6] = 0.9
    m[4, 4] = 0.1  # a 1-px region inside a membrane box
    assert membrane_regions(m).max() == 10
    assert membrane_regions(m, min_size=2).max() == 9
    thin = membrane_regions(m, min_size=2, thin=True)
    assert thin.max() == 9 and thin[4, 4] == thin[0, 0]  # taken over by its neighbour


def test_membrane_regions_3d() -> None:
    m = np.full((9, 11, 13), 0.2, np.float32)
    m[4], m[:, 5], m[:, :, 6] = 0.8, 0.8, 0.8
    regions = membrane_regions(m)
    assert regions.max() == 8
    assert membrane_regions(m, thin=True).max() == 8


def test_membrane_regions_recover_synthetic_cells() -> None:
    _, membranes, cells = make_membranes((96, 96), seed=0)
    regions = membrane_regions(membranes.astype(np.float32))
    inside = regions > 0
    assert regions.max() == len(np.unique(cells[cells > 0]))
    pairs = set(zip(regions[inside].tolist(), cells[inside].tolist()))
    assert len(pairs) == regions.max()  # one cell per region and one region per cell


def test_instances_from_probabilities_of_an_em_net_and_a_cell_net() -> None:
    m = grid(3)  # membrane probability: 9 cells
    probs = np.stack([m, 1 - m])  # a net trained on ISBI labels: class 0 = membrane
    regions = instances_from_probabilities(probs, kind="membranes")
    np.testing.assert_array_equal(regions, membrane_regions(m))
    assert regions.max() == 9
    thin = instances_from_probabilities(probs, kind="membranes", thin=True, min_size=2)
    np.testing.assert_array_equal(thin, membrane_regions(m, thin=True, min_size=2))
    three = np.stack([0.5 * (1 - m), 0.5 * (1 - m), m])  # membrane as class 2
    np.testing.assert_array_equal(
        instances_from_probabilities(three, kind="membranes", membrane_class=2), regions
    )
    # cells: the watershed of instances(), options passed on
    yy, xx = np.mgrid[:24, :40]
    fg = (((yy - 12) ** 2 + (xx - 14) ** 2 <= 64) | ((yy - 12) ** 2 + (xx - 26) ** 2 <= 64)) * 1.0
    cells = np.stack([1 - fg, fg])
    assert instances_from_probabilities(cells).max() == 2
    assert instances_from_probabilities(cells, kind="cells", separate="none").max() == 1
    with pytest.raises(ValueError, match=r"unknown kind 'membrane': did you mean 'membranes'"):
        instances_from_probabilities(probs, kind="membrane")
    with pytest.raises(ValueError, match=r"membrane_class 2 is not a class of probs \(2, 36, 36\)"):
        instances_from_probabilities(probs, kind="membranes", membrane_class=2)
    with pytest.raises(ValueError, match=r"membrane_class=0 applies to kind='membranes'"):
        instances_from_probabilities(cells, membrane_class=0)
    with pytest.raises(ValueError, match=r"probs must be \(C, Y, X\) or \(C, Z, Y, X\)"):
        instances_from_probabilities(m, kind="membranes")


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: semantic(np.zeros((1, 4, 4))),
            r"\(C, Y, X\) or \(C, Z, Y, X\), C >= 2, got shape \(1, 4, 4\)",
        ),
        (lambda: semantic(np.zeros((2, 4))), r"got shape \(2, 4\)"),
        (lambda: semantic(np.zeros((2, 2, 2, 2, 2))), r"got shape \(2, 2, 2, 2, 2\)"),
        (lambda: semantic(np.zeros((2, 4, 4), int)), "must be float scores, got dtype int"),
        (
            lambda: semantic(np.full((3, 4, 4), 1 / 3), threshold=0.5),
            "threshold needs 2 classes, got probs with 3",
        ),
        (
            lambda: semantic(np.full((2, 4, 4), 0.5), threshold=1.0),
            r"threshold must be in \(0, 1\), got 1.0",
        ),
        (
            lambda: semantic(np.full((2, 4, 4), 3.0), threshold=0.5),
            r"\[0, 1\] \(probabilities\), got values in \[3, 3\]; .*apply a softmax",
        ),
        (lambda: instances(np.full((2, 4, 4), np.nan)), "NaN"),
        (
            lambda: instances(np.zeros((4, 4, 4, 4), bool)),
            r"mask must have shape \(Y, X\) or \(Z, Y, X\)",
        ),
        (
            lambda: instances(np.zeros((4, 4), bool), separate="watershedd"),
            "unknown separate 'watershedd': did you mean 'watershed'",
        ),
        (lambda: instances(np.zeros((4, 4), bool), h=0), "h must be > 0"),
        (
            lambda: instances(np.zeros((4, 4), bool), threshold=1.5),
            r"threshold must be in \(0, 1\), got 1.5",
        ),
        (
            lambda: instances(np.zeros((4, 4), bool), min_size=-1),
            "min_size must be a whole number of pixels >= 0, got -1",
        ),
        (lambda: instances(np.zeros((4, 4), bool), min_size=2.5), "got 2.5"),  # type: ignore[arg-type]
        (
            lambda: instances(np.zeros((4, 4), bool), connectivity=3),
            r"connectivity must be 1..2 for 2D arrays, got 3",
        ),
        (
            lambda: instances(np.zeros((2, 4, 4)), foreground_class=2),
            r"foreground_class 2 is not in probs \(2, 4, 4\)",
        ),
        (
            lambda: instances(np.zeros((4, 4), bool), foreground_class=-1),
            "foreground_class must be class indices >= 0, got -1",
        ),
        (
            lambda: instances(np.zeros((4, 4), bool), border_prob=np.zeros((4, 5))),
            r"spatial shape \(4, 4\), got shape \(4, 5\)",
        ),
        (
            lambda: instances(np.zeros((4, 4), bool), border_prob=0),
            "is a class index, which needs probs",
        ),
        (
            lambda: instances(np.full((2, 4, 4), 0.5), border_prob=2),
            r"border_prob class 2 is not in probs \(2, 4, 4\)",
        ),
        (
            lambda: instances(np.zeros((4, 4), bool), spacing=(1.0, 0.0)),
            r"spacing must be one positive number or 2 \(one per axis.*got \(1.0, 0.0\)",
        ),
        (lambda: membrane_regions(np.zeros((4, 4), np.uint8)), "membrane_prob must be float"),
        (lambda: membrane_regions(np.zeros((4, 4)), threshold=0), r"threshold must be in \(0, 1\)"),
        (
            lambda: fill_holes(np.zeros((4, 4))),
            r"labels must be an integer label image .*got dtype float64",
        ),
        (
            lambda: remove_small(np.array([-1, 2]), 2),
            r"labels must be non-negative .*got minimum -1",
        ),
    ],
)
def test_errors_name_expected_and_received(call: Callable[[], object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_counts_and_classes_may_be_whole_floats_but_nothing_else() -> None:
    mask = np.zeros((6, 6), bool)
    mask[1:3, 1:3] = mask[4:6, 4:6] = True
    assert instances(mask, min_size=4.0).max() == 2  # type: ignore[arg-type]
    probs = np.stack([~mask, mask]).astype(np.float32)
    assert instances(probs, foreground_class=1.0).max() == 2  # type: ignore[arg-type]
    regions = instances_from_probabilities(probs, kind="membranes", membrane_class=0.0)  # type: ignore[arg-type]
    np.testing.assert_array_equal(regions, membrane_regions(probs[0]))
    for bad in (float("inf"), float("nan"), None, "4"):
        with pytest.raises(ValueError, match="min_size must be a whole number of pixels >= 0"):
            instances(mask, min_size=bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="foreground_class must be class indices >= 0"):
            instances(probs, foreground_class=bad)  # type: ignore[arg-type]
    for bad in (float("inf"), float("nan"), "0", 0.5):  # (None: the default class 0)
        with pytest.raises(ValueError, match="is not a class of probs"):
            instances_from_probabilities(probs, kind="membranes", membrane_class=bad)  # type: ignore[arg-type]
