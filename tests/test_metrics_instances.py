"""Instance scores: hand-made cases, rolled disks with known IoU, empty images, SEG."""

from __future__ import annotations

import math

import numpy as np
import pytest

from biounet.metrics.instances import (
    AP_THRESHOLDS,
    InstanceAccumulator,
    average_precision,
    match_instances,
    merges_and_splits,
    seg_score,
)


def disks(shape: tuple[int, int] = (160, 160), radius: int = 10, step: int = 40) -> np.ndarray:
    """A grid of disks labelled 1..n, well apart so that rolled copies overlap only their own."""
    yy, xx = np.indices(shape)
    labels = np.zeros(shape, np.int32)
    centres = [
        (y, x) for y in range(step // 2, shape[0], step) for x in range(step // 2, shape[1], step)
    ]
    for k, (y, x) in enumerate(centres, start=1):
        labels[(yy - y) ** 2 + (xx - x) ** 2 <= radius**2] = k
    return labels


def test_hand_made_counts() -> None:
    truth = np.zeros((1, 20), int)
    truth[0, 0:4], truth[0, 6:10], truth[0, 12:14] = 1, 2, 3
    pred = np.zeros((1, 20), int)
    pred[0, 0:4] = 9  # IoU 1 with truth 1
    pred[0, 7:10] = 4  # IoU 3/4 with truth 2
    pred[0, 13:17] = 6  # IoU 1/5 with truth 3
    pred[0, 18:20] = 8  # no overlap
    s = match_instances(truth, pred)
    assert (s["tp"], s["fp"], s["fn"], s["n_true"], s["n_pred"]) == (2, 2, 1, 3, 4)
    assert s["precision"] == 0.5 and s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 / (2 + 1.5))
    assert s["accuracy"] == pytest.approx(2 / 5)
    assert s["mean_matched_iou"] == pytest.approx(0.875)
    assert s["panoptic_quality"] == pytest.approx(1.75 / 3.5)
    loose = match_instances(truth, pred, threshold=0.2)
    assert (loose["tp"], loose["fp"], loose["fn"]) == (3, 1, 0)
    ap = average_precision(truth, pred, thresholds=[0.2, 0.5, 0.75, 0.8, 1.0])
    np.testing.assert_allclose(ap, [3 / 4, 2 / 5, 2 / 5, 1 / 6, 1 / 6])


def test_optimal_assignment_beats_greedy() -> None:
    truth = np.zeros((1, 20), int)
    truth[0, 0:10], truth[0, 10:20] = 1, 2
    pred = np.zeros((1, 20), int)
    pred[0, 3:16] = 1  # IoU 7/16 with truth 1 (its best), 6/17 with truth 2
    pred[0, 0:3] = 2  # IoU 3/10 with truth 1
    # greedy by IoU pairs truth 1 with pred 1 and leaves truth 2 alone: 1 TP; optimum: 2 TPs
    s = match_instances(truth, pred, threshold=0.3)
    assert (s["tp"], s["fp"], s["fn"]) == (2, 0, 0)
    assert s["mean_matched_iou"] == pytest.approx((3 / 10 + 6 / 17) / 2)
    assert match_instances(truth, pred, threshold=0.4)["tp"] == 1


@pytest.mark.parametrize("shift", [0, 1, 2, 3, 5, 8, 12, 20])
def test_rolled_disks_known_iou(shift: int) -> None:
    truth = disks()
    pred = np.roll(truth, shift, axis=1)
    one = truth == 1
    iou = np.sum(one & np.roll(one, shift, axis=1)) / np.sum(one | np.roll(one, shift, axis=1))
    n = int(truth.max())
    for t in (0.1, 0.3, 0.5, 0.7, 0.9):
        s = match_instances(truth, pred, threshold=t)
        tp = n if iou >= t else 0
        assert (s["tp"], s["fp"], s["fn"]) == (tp, n - tp, n - tp), t
        if tp:
            assert s["mean_matched_iou"] == pytest.approx(iou)
            assert s["panoptic_quality"] == pytest.approx(iou)
    expected_ap = [1.0 if iou >= t else 0.0 for t in AP_THRESHOLDS]
    np.testing.assert_array_equal(average_precision(truth, pred), expected_ap)
    # SEG: |R ∩ S| > |R| / 2 of a disk of area A and the same disk shifted
    inter = np.sum(one & np.roll(one, shift, axis=1))
    assert seg_score(truth, pred) == pytest.approx(iou if 2 * inter > one.sum() else 0.0)


def test_rolled_disk_iou_is_geometric() -> None:
    # a pixelated disk of radius 10 shifted by 10: IoU close to the lens formula
    truth = disks()
    r, d = 10.0, 10.0
    lens = 2 * r**2 * math.acos(d / (2 * r)) - d / 2 * math.sqrt(4 * r**2 - d**2)
    iou = lens / (2 * math.pi * r**2 - lens)
    s = match_instances(truth, np.roll(truth, 10, axis=0), threshold=0.1)
    assert s["mean_matched_iou"] == pytest.approx(iou, abs=0.02)


def test_seg_hand_made() -> None:
    truth = np.zeros((1, 30), int)
    truth[0, 0:10], truth[0, 10:20], truth[0, 20:30] = 1, 2, 3
    pred = np.zeros((1, 30), int)
    pred[0, 0:8] = 5  # 8 > 10/2: J = 8/10
    pred[0, 10:15] = 6  # 5 is not > 10/2: J = 0 although IoU is 0.5
    pred[0, 18:30] = 7  # 10 of truth 3: J = 10/12; also 2 px of truth 2 (not > half)
    assert seg_score(truth, pred) == pytest.approx((0.8 + 0 + 10 / 12) / 3)
    assert seg_score(truth, truth) == 1.0
    assert seg_score(truth, np.zeros_like(truth)) == 0.0


def test_empty_images_are_defined() -> None:
    empty = np.zeros((8, 8), int)
    some = np.zeros((8, 8), int)
    some[2:4, 2:4] = 3
    both = match_instances(empty, empty)
    for key in ("precision", "recall", "f1", "accuracy", "panoptic_quality", "mean_matched_iou"):
        assert both[key] == 1.0, key
    np.testing.assert_array_equal(average_precision(empty, empty), np.ones(10))
    assert math.isnan(seg_score(empty, empty)) and math.isnan(seg_score(empty, some))
    no_pred = match_instances(some, empty)
    assert (no_pred["fn"], no_pred["precision"], no_pred["recall"], no_pred["f1"]) == (1, 0, 0, 0)
    assert seg_score(some, empty) == 0.0
    no_truth = match_instances(empty, some)
    assert (no_truth["fp"], no_truth["precision"], no_truth["recall"]) == (1, 0, 0)
    assert average_precision(empty, some).sum() == 0.0


def test_invariant_to_relabelling() -> None:
    rng = np.random.default_rng(0)
    truth = disks()
    pred = np.roll(truth, 3, axis=0)
    pred[pred == 5] = 0  # a miss
    pred[100:110, 0:10] = 99  # a false positive
    lut_t = np.concatenate([[0], rng.permutation(np.arange(1, 17)) * 7919 + 3])
    lut_p = np.concatenate([[0], rng.permutation(np.arange(1, 100)) + 10**6])
    relabelled = (lut_t[truth], lut_p[pred])
    assert match_instances(*relabelled) == pytest.approx(match_instances(truth, pred))
    np.testing.assert_array_equal(average_precision(*relabelled), average_precision(truth, pred))
    assert seg_score(*relabelled) == seg_score(truth, pred)
    assert match_instances(truth, pred)["fn"] == 1 and match_instances(truth, pred)["fp"] == 1


def test_three_d() -> None:
    truth = np.zeros((6, 8, 8), np.uint16)
    truth[0:3, 0:4, 0:4], truth[3:6, 4:8, 4:8] = 1, 2
    pred = truth.copy()
    pred[0, 0:4, 0:4] = 0  # object 1 loses a third: IoU 2/3
    s = match_instances(truth, pred, threshold=0.6)
    assert (s["tp"], s["fp"], s["fn"]) == (2, 0, 0)
    assert s["panoptic_quality"] == pytest.approx((2 / 3 + 1) / 2)
    assert seg_score(truth, pred) == pytest.approx((2 / 3 + 1) / 2)


def test_accumulator_sums_counts_over_images() -> None:
    truth_a = disks()  # 16 objects, all found
    truth_b = np.zeros((20, 20), int)
    truth_b[2:6, 2:6] = 1  # 1 object, missed
    acc = InstanceAccumulator()
    acc.update(truth_a, truth_a)
    acc.update(truth_b, np.zeros_like(truth_b))
    s = acc.scores()
    assert (s["tp"], s["fp"], s["fn"], s["n_images"]) == (16, 0, 1, 2)
    assert s["recall"] == pytest.approx(16 / 17)  # not the mean of 1 and 0
    assert s["f1"] == pytest.approx(16 / 16.5)
    assert s["seg"] == pytest.approx(16 / 17)
    assert s["ap_50"] == s["ap_95"] == s["mean_ap"] == pytest.approx(16 / 17)
    assert {f"ap_{round(100 * t)}" for t in AP_THRESHOLDS} <= set(s)
    empty = InstanceAccumulator().scores()
    assert empty["f1"] == 1.0 and empty["mean_ap"] == 1.0 and math.isnan(empty["seg"])


def test_input_errors() -> None:
    a = np.zeros((4, 4), int)
    with pytest.raises(ValueError, match=r"same shape, got \(4, 4\) and \(4, 5\)"):
        match_instances(a, np.zeros((4, 5), int))
    with pytest.raises(ValueError, match="integer label image.*float32.*scipy.ndimage.label"):
        seg_score(a, np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match=r"truth must be non-negative \(.*\), got minimum -1"):
        average_precision(a - 1, a)
    with pytest.raises(ValueError, match=r"IoU threshold must be in \(0, 1\], got 1.5"):
        match_instances(a, a, threshold=1.5)
    with pytest.raises(ValueError, match=r"IoU threshold must be in \(0, 1\], got 0"):
        InstanceAccumulator(thresholds=[0.0])


def test_a_true_positive_needs_iou_of_at_least_the_threshold() -> None:
    """IoU exactly 0.5 is a TP (>=, as StarDist); Kirillov et al.'s PQ would need > 0.5."""
    truth = np.array([[1, 1, 0, 2, 2, 2]])
    pred = np.array([[3, 0, 0, 4, 4, 0]])  # IoU 1/2 and 2/3
    s = match_instances(truth, pred)
    assert (s["tp"], s["fp"], s["fn"]) == (2.0, 0.0, 0.0)
    assert s["panoptic_quality"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    strict = match_instances(truth, pred, threshold=0.5 + 1e-9)
    assert (strict["tp"], strict["fp"], strict["fn"]) == (1.0, 1.0, 1.0)
    assert strict["panoptic_quality"] == pytest.approx((2 / 3) / 2)
    assert average_precision(truth, pred, thresholds=[0.5])[0] == 1.0


# --- merges and splits ------------------------------------------------------------------------


def brute_merges_splits(truth: np.ndarray, pred: np.ndarray) -> tuple[int, int]:
    """The definition, object by object with boolean masks."""
    merges = splits = 0
    for s in np.unique(pred[pred > 0]):
        held = [r for r in np.unique(truth[truth > 0])
                if 2 * ((truth == r) & (pred == s)).sum() > (truth == r).sum()]  # fmt: skip
        merges += max(0, len(held) - 1)
    for r in np.unique(truth[truth > 0]):
        inside = [s for s in np.unique(pred[pred > 0])
                  if 2 * ((truth == r) & (pred == s)).sum() > (pred == s).sum()]  # fmt: skip
        splits += max(0, len(inside) - 1)
    return merges, splits


def test_merges_and_splits_hand_made() -> None:
    truth = np.array([[1, 1, 1, 2, 2, 2, 0, 3, 3, 3, 3, 0, 4, 4]])
    assert merges_and_splits(truth, truth) == (0, 0)
    assert merges_and_splits(truth, np.array([[5, 5, 5, 5, 5, 5, 0, 3, 3, 3, 3, 0, 4, 4]])) == (
        1,
        0,
    )
    assert merges_and_splits(truth, np.array([[1, 1, 1, 2, 2, 2, 0, 6, 6, 7, 7, 0, 4, 4]])) == (
        0,
        1,
    )
    # one object over three true ones: two merges
    assert merges_and_splits(truth, np.array([[8] * 11 + [0, 4, 4]])) == (2, 0)
    # an object holding less than half of each of two cells merges nothing
    assert merges_and_splits(truth, np.array([[0, 0, 9, 9, 0, 0, 0, 3, 3, 3, 3, 0, 4, 4]])) == (
        0,
        0,
    )
    # a cell in three pieces is two splits; a piece mostly outside it is no split
    assert merges_and_splits(truth, np.array([[0, 0, 0, 0, 0, 0, 5, 5, 6, 7, 0, 0, 4, 4]])) == (
        0,
        1,
    )


@pytest.mark.parametrize("seed", range(4))
def test_merges_and_splits_match_the_definition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 6, (12, 14))
    pred = np.kron(rng.integers(0, 5, (4, 7)), np.ones((3, 2), int))  # blocks across objects
    assert merges_and_splits(truth, pred) == brute_merges_splits(truth, pred)
    acc = InstanceAccumulator()
    acc.update(truth, pred)
    acc.update(truth, truth)
    m, s = brute_merges_splits(truth, pred)
    assert (acc.scores()["merges"], acc.scores()["splits"]) == (m, s)


def test_evaluate_counts_merges_and_splits() -> None:
    from biounet.evaluation import EvalOptions, evaluate

    truth = disks()
    merged = truth.copy()
    merged[truth == 2] = 1  # two cells predicted as one
    split = truth.copy()
    split[(truth == 3) & (np.indices(truth.shape)[1] > 100)] = 99  # one cut in two halves
    _, summary = evaluate([("a", merged, truth), ("b", split, truth)], EvalOptions("cells"))
    assert (summary["merges"], summary["splits"]) == (1, 1)
