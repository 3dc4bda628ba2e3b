"""ISBI 2012 scores: hand-made cases with known answers, scikit-image agreement, warping error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.metrics import adapted_rand_error as sk_adapted_rand_error
from skimage.metrics import variation_of_information

from biounet.data.synthetic import make_membranes
from biounet.metrics import (
    ISBI_THRESHOLDS,
    adapted_rand_error,
    info_scores,
    isbi_scores,
    rand_scores,
    topology_errors,
    warping_error,
)
from biounet.metrics.membranes import thin_borders
from biounet.metrics.warping import _OFFSETS, _SIMPLE, simple_point_warp

ISBI_LABEL = Path(__file__).resolve().parents[2] / "shared/data/isbi2012/labels/00.png"
CROSS = ndi.generate_binary_structure(2, 1)


@pytest.fixture(scope="module")
def membranes() -> tuple[np.ndarray, np.ndarray]:
    """A 128x128 EM-like truth membrane mask and a noisy membrane probability map."""
    _, mem, _ = make_membranes((128, 128), seed=3)
    rng = np.random.default_rng(0)
    prob = ndi.gaussian_filter(mem.astype(float), 1.0) + rng.normal(0, 0.2, mem.shape)
    return mem.astype(bool), np.clip(prob, 0, 1)


def random_labels(rng: np.random.Generator, shape: tuple[int, ...], n: int) -> np.ndarray:
    """Blocky random labels 0..n-1 (0 included), so regions have several pixels."""
    small = rng.integers(0, n, size=tuple(s // 4 for s in shape))
    return np.kron(small, np.ones((4,) * len(shape), int))


# --- Rand and information scores ------------------------------------------------------------


def test_rand_hand_made_merge_and_split() -> None:
    truth = np.array([[1, 1, 1, 1, 0, 2, 2, 2, 2]])  # two regions of 4 px, 0 excluded
    merged = np.array([[3, 3, 3, 3, 3, 3, 3, 3, 3]])
    assert rand_scores(truth, merged) == pytest.approx({"v_rand": 2 / 3, "split": 1, "merge": 0.5})
    split = np.array([[1, 1, 2, 2, 0, 3, 3, 3, 3]])  # 4+4+16 / 32 = 0.75
    assert rand_scores(truth, split) == pytest.approx({"v_rand": 6 / 7, "split": 0.75, "merge": 1})
    assert rand_scores(truth, truth) == {"v_rand": 1.0, "split": 1.0, "merge": 1.0}


def test_rand_pred_background_singletons_or_region() -> None:
    truth = np.array([[1, 1, 1, 1, 0, 2, 2, 2, 2]])
    pred = np.array([[1, 1, 0, 0, 0, 2, 2, 2, 2]])  # 2 px of region 1 predicted as membrane
    # singletons: sum p^2 = 4 + 1 + 1 + 16 = 22; truth 32; proposal 4 + 1 + 1 + 16 = 22
    single = rand_scores(truth, pred)
    assert single["split"] == pytest.approx(22 / 32) and single["merge"] == 1.0
    # region: label 0 holds 2 px of truth 1: sum p^2 = 4 + 4 + 16 = 24; proposal 4 + 4 + 16
    region = rand_scores(truth, pred, pred_background="region")
    assert region["split"] == pytest.approx(24 / 32) and region["merge"] == 1.0


def test_info_hand_made() -> None:
    truth = np.array([[1, 1, 1, 1, 2, 2, 2, 2]])
    # a merge: I(S;T) = 0, H(S) = 0 -> split 1 by definition, merge 0
    merged = info_scores(truth, np.ones_like(truth))
    assert (merged["split"], merged["merge"], merged["v_info"]) == (1.0, 0.0, 0.0)
    assert merged["vi_merge"] == pytest.approx(1.0) and merged["vi_split"] == 0.0  # 1 bit
    # 4 quarters: H(S) = 2 bits, H(T) = 1 bit, I = 1 bit
    quarters = info_scores(truth, np.array([[1, 1, 2, 2, 3, 3, 4, 4]]))
    assert quarters["split"] == pytest.approx(0.5) and quarters["merge"] == pytest.approx(1.0)
    assert quarters["v_info"] == pytest.approx(2 / 3)
    assert quarters["vi_split"] == pytest.approx(1.0) and quarters["vi_merge"] == pytest.approx(0)
    perfect = info_scores(truth, truth + 10)
    assert perfect["v_info"] == pytest.approx(1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rand_agrees_with_skimage(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth, pred = random_labels(rng, (64, 48), 6), random_labels(rng, (64, 48), 9)
    ours = rand_scores(truth, pred, pred_background="region")
    # skimage counts pairs of distinct pixels: (sum p^2 - n) / (sum t^2 - n)
    n = int((truth != 0).sum())
    t2 = float((np.bincount(truth[truth != 0]) ** 2).sum())
    p2 = ours["split"] * t2
    s2 = p2 / ours["merge"]
    are, sk_prec, sk_rec = sk_adapted_rand_error(truth, pred, ignore_labels=(0,))
    assert sk_prec == pytest.approx((p2 - n) / (t2 - n), rel=1e-12)
    assert sk_rec == pytest.approx((p2 - n) / (s2 - n), rel=1e-12)
    mine = adapted_rand_error(truth, pred)
    assert mine["error"] == pytest.approx(are, rel=1e-12)
    # scikit-image's precision and recall are swapped (scikit-image issue #6485)
    assert (mine["precision"], mine["recall"]) == pytest.approx((sk_rec, sk_prec), rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_info_agrees_with_skimage(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth, pred = random_labels(rng, (64, 48), 5), random_labels(rng, (64, 48), 7)
    ours = info_scores(truth, pred, pred_background="region")
    h_s_given_t, h_t_given_s = variation_of_information(truth, pred, ignore_labels=(0,))
    assert ours["vi_split"] == pytest.approx(h_s_given_t, abs=1e-10)
    assert ours["vi_merge"] == pytest.approx(h_t_given_s, abs=1e-10)


def test_adapted_rand_error_without_ignored_labels() -> None:
    rng = np.random.default_rng(5)
    truth, pred = random_labels(rng, (32, 32), 4), random_labels(rng, (32, 32), 4)
    are, _, _ = sk_adapted_rand_error(truth, pred, ignore_labels=())
    assert adapted_rand_error(truth, pred, ignore_labels=())["error"] == pytest.approx(are)
    assert adapted_rand_error(truth, truth)["error"] == 0.0


def test_scores_invariant_to_relabelling() -> None:
    rng = np.random.default_rng(7)
    truth, pred = random_labels(rng, (64, 64), 8), random_labels(rng, (64, 64), 8)
    perm_t = np.concatenate([[0], rng.permutation(np.arange(1, 8)) * 1000 + 17])
    perm_p = np.concatenate([[0], rng.permutation(np.arange(1, 8)) + 50])
    for fn in (rand_scores, info_scores, adapted_rand_error):
        assert fn(perm_t[truth], perm_p[pred]) == pytest.approx(fn(truth, pred))


def test_empty_truth_foreground_is_defined() -> None:
    truth, pred = np.zeros((4, 4), int), np.arange(16).reshape(4, 4)
    assert rand_scores(truth, pred) == {"v_rand": 1.0, "split": 1.0, "merge": 1.0}
    assert info_scores(truth, pred)["v_info"] == 1.0
    everything = np.ones((8, 8), bool)
    assert isbi_scores(np.zeros((8, 8)), everything)["v_rand"] == 1.0
    empty_pred = isbi_scores(np.ones((8, 8)), ~everything, thresholds=[0.5], thin=False)
    assert empty_pred["v_rand"] > 0 and np.isfinite(empty_pred["v_info"])  # all singletons


# --- the challenge's threshold sweep -------------------------------------------------------


def test_isbi_perfect_prediction(membranes: tuple[np.ndarray, np.ndarray]) -> None:
    truth, _ = membranes
    for thin in (True, False):
        s = isbi_scores(truth.astype(float), truth, thin=thin)
        assert s["v_rand"] == pytest.approx(1.0) and s["v_info"] == pytest.approx(1.0)
    inverted = isbi_scores(1.0 - truth, truth, membrane_is_high=False)
    assert inverted["v_rand"] == pytest.approx(1.0)


def test_isbi_thinning_forgives_thick_membranes() -> None:
    truth = np.zeros((40, 40), bool)
    truth[::10, :] = truth[:, ::10] = True  # a grid of 1 px membranes: 16 cells
    thick = ndi.binary_dilation(truth).astype(float)  # 3 px membranes, same cells
    assert isbi_scores(thick, truth, thin=True)["v_rand"] == pytest.approx(1.0)
    unthinned = isbi_scores(thick, truth, thin=False)
    assert unthinned["v_rand"] < 0.9 and unthinned["v_rand_merge"] == pytest.approx(1.0)


def test_thinning_gives_each_membrane_pixel_its_nearest_region() -> None:
    """As isbi_scores documents: nearest region pixel in Euclidean distance, none left over."""
    labels = np.zeros((1, 9), np.int64)
    labels[0, 0], labels[0, 8] = 1, 2  # a 7-px membrane between two regions
    np.testing.assert_array_equal(thin_borders(labels)[0], [1, 1, 1, 1, 1, 2, 2, 2, 2])
    corner = np.zeros((5, 5), np.int64)
    corner[0, 0], corner[4, 4], corner[0, 4] = 1, 2, 3
    thinned = thin_borders(corner)
    yy, xx = np.indices(corner.shape)
    seeds = {1: (0, 0), 2: (4, 4), 3: (0, 4)}
    dist = np.stack([np.hypot(yy - y, xx - x) for y, x in seeds.values()])
    unique = np.sort(dist, axis=0)[0] < np.sort(dist, axis=0)[1]  # no tie
    np.testing.assert_array_equal(thinned[unique], (np.argmin(dist, axis=0) + 1)[unique])
    assert (thinned > 0).all()


def test_isbi_takes_the_best_threshold(membranes: tuple[np.ndarray, np.ndarray]) -> None:
    truth, prob = membranes
    best = isbi_scores(prob, truth)
    assert set(best) == {
        *(f"v_{k}{s}" for k in ("rand", "info") for s in ("", "_split", "_merge", "_threshold"))
    }
    singles = [isbi_scores(prob, truth, thresholds=[t]) for t in ISBI_THRESHOLDS]
    assert best["v_rand"] == max(s["v_rand"] for s in singles)
    assert best["v_info"] == max(s["v_info"] for s in singles)
    assert 0.3 < best["v_rand"] < 1.0 and best["v_rand_threshold"] in ISBI_THRESHOLDS


def test_isbi_stack_is_scored_per_slice(membranes: tuple[np.ndarray, np.ndarray]) -> None:
    truth, prob = membranes
    one = isbi_scores(prob, truth, thresholds=[0.5])
    two = isbi_scores(np.stack([prob, prob]), np.stack([truth, truth]), thresholds=[0.5])
    # twice the same slice doubles every sum of squares: the Rand ratios are unchanged
    assert two["v_rand"] == pytest.approx(one["v_rand"])


def test_isbi_input_errors() -> None:
    mask = np.zeros((8, 8), bool)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\].*divide by 255"):
        isbi_scores(np.full((8, 8), 255.0), mask)
    with pytest.raises(ValueError, match="binary membrane mask.*png == 0"):
        isbi_scores(np.zeros((8, 8)), np.full((8, 8), 255, np.uint8))
    with pytest.raises(ValueError, match=r"same shape, got \(8, 9\) and \(8, 8\)"):
        isbi_scores(np.zeros((8, 9)), mask)
    with pytest.raises(ValueError, match="thresholds must be a non-empty sequence in"):
        isbi_scores(np.zeros((8, 8)), mask, thresholds=[1.5])
    with pytest.raises(ValueError, match="integer label image.*float64"):
        rand_scores(np.zeros((2, 2)), np.zeros((2, 2), int))
    with pytest.raises(ValueError, match="did you mean 'region'"):
        rand_scores(np.zeros((2, 2), int), np.zeros((2, 2), int), pred_background="regions")


# --- warping error -------------------------------------------------------------------------


def test_simple_point_table_matches_direct_labelling() -> None:
    for code in range(256):
        ring = np.zeros((3, 3), bool)
        for k, (dy, dx) in enumerate(_OFFSETS):
            ring[1 + dy, 1 + dx] = bool(code >> k & 1)
        n_fg = ndi.label(ring, structure=np.ones((3, 3)))[1]  # all 8-adjacent to the centre
        bg = ~ring
        bg[1, 1] = False
        bg_labels = ndi.label(bg, structure=CROSS)[0]
        n_bg = len({bg_labels[y, x] for y, x in ((0, 1), (1, 0), (1, 2), (2, 1))} - {0})
        assert _SIMPLE[code] == (n_fg == 1 and n_bg == 1), code


def two_regions(h: int = 12, w: int = 12, col: int = 5) -> np.ndarray:
    mask = np.zeros((h, w), bool)
    mask[:, col] = True
    return mask


def test_warping_identical_and_shifted_boundaries() -> None:
    truth = two_regions()
    assert warping_error(truth, truth) == 0.0
    for shift in (-1, 1):
        assert warping_error(truth, np.roll(truth, shift, axis=1)) == 0.0
    thick = truth | np.roll(truth, 1, axis=1) | np.roll(truth, -1, axis=1)
    assert warping_error(truth, thick) == 0.0 and warping_error(thick, truth) == 0.0
    wavy = truth.copy()
    wavy[4:8, 5], wavy[4:8, 6] = False, True  # a bump of the boundary
    assert warping_error(truth, wavy) == 0.0


def test_warping_split_by_a_new_line() -> None:
    truth = np.zeros((12, 12), bool)  # one region
    pred = two_regions()  # cut in two
    counts = topology_errors(truth, pred)
    # all of the line but one pixel can be added; that pixel completes the split
    assert counts["error_pixels"] == 1 and counts["splits"] == 1 and counts["mergers"] == 0
    assert counts["warping_error"] == pytest.approx(1 / 144)
    warped = simple_point_warp(truth, pred)
    ((y, x),) = np.argwhere(warped != pred)
    assert x == 5 and pred[y, x]


def test_warping_merge_by_a_removed_membrane() -> None:
    truth = two_regions()
    counts = topology_errors(truth, np.zeros_like(truth))  # no pixel of the line is simple
    assert counts == {
        "warping_error": 12 / 144,
        "error_pixels": 12,
        "splits": 0,
        "additions": 0,
        "mergers": 1,
        "deletions": 0,
    }
    gap = truth.copy()
    gap[6:8, 5] = False  # a 2-pixel gap merges the two regions
    counts = topology_errors(truth, gap)
    assert counts["error_pixels"] == 2 and counts["mergers"] == 1


def test_warping_additions_and_deletions() -> None:
    truth = two_regions()
    speck = truth.copy()
    speck[2, 9] = True  # a membrane fragment inside a region
    counts = topology_errors(truth, speck)
    assert (counts["error_pixels"], counts["additions"], counts["splits"]) == (1, 1, 0)
    counts = topology_errors(speck, truth)  # the fragment is lost
    assert (counts["error_pixels"], counts["deletions"], counts["mergers"]) == (1, 1, 0)


def framed_topology(membrane: np.ndarray) -> tuple[int, int]:
    """Numbers of 4-connected regions and 8-connected membrane pieces, the image framed by membrane."""
    framed = np.pad(membrane, 1, constant_values=True)
    return ndi.label(~framed, CROSS)[1], ndi.label(framed, np.ones((3, 3)))[1]


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_warping_preserves_topology(
    membranes: tuple[np.ndarray, np.ndarray], threshold: float
) -> None:
    truth, prob = membranes
    pred = prob > threshold
    warped = simple_point_warp(truth, pred)
    assert np.all((warped == truth) | (truth != pred))  # only disagreeing pixels flip
    assert framed_topology(warped) == framed_topology(truth)
    assert framed_topology(pred) != framed_topology(truth)
    error = warping_error(truth, pred)
    assert 0 < error < np.mean(truth != pred)


def test_warping_stack_and_errors() -> None:
    truth = np.stack([two_regions(), np.zeros((12, 12), bool)])
    pred = np.stack([np.roll(two_regions(), 1, axis=1), two_regions()])
    assert warping_error(truth, pred) == pytest.approx(1 / 288)
    with pytest.raises(ValueError, match="binary membrane mask.*threshold it first"):
        warping_error(truth, pred * 0.7)
    with pytest.raises(ValueError, match=r"2D \(Y, X\) or a stack"):
        warping_error(np.zeros(5, bool), np.zeros(5, bool))


@pytest.mark.data
@pytest.mark.skipif(not ISBI_LABEL.exists(), reason="ISBI 2012 labels not in ../shared/data")
def test_isbi_real_label() -> None:
    from PIL import Image

    truth = np.asarray(Image.open(ISBI_LABEL)) == 0  # membrane is black
    assert isbi_scores(truth.astype(float), truth, thresholds=[0.5])["v_rand"] == 1.0
    pred = np.roll(truth, 1, axis=0)
    assert warping_error(truth, pred) < 0.25 * np.mean(truth != pred)
