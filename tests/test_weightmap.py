"""``biounet.data.weightmap``: the paper's weight map (eq. 2) against brute force and hand-worked values."""

import math

import numpy as np
import pytest
from scipy import ndimage as ndi

from biounet.data.weightmap import (
    balanced_class_weights,
    class_frequencies,
    separation_borders,
    weight_map,
    with_separation,
)


def object_distances(labels: np.ndarray, spacing=None, background: int = 0) -> np.ndarray:
    """Brute force: one full distance transform per object, sorted per pixel, (K, *shape)."""
    ids = [v for v in np.unique(labels) if v != background]
    if not ids:
        return np.full((0, *labels.shape), np.inf)
    dist = np.stack([ndi.distance_transform_edt(labels != v, sampling=spacing) for v in ids])
    return np.sort(dist, axis=0)


def brute_weight_map(
    labels,
    *,
    w0=10.0,
    sigma=5.0,
    w_c=(1.0, 1.0),
    spacing=None,
    background=0,
    border_on="all",
) -> np.ndarray:
    """Eq. 2 written out directly at every pixel, in float64, untruncated.

    ``border_on="background"``: the border term on background pixels only.
    """
    fg = labels != background
    w = np.where(fg, w_c[1], w_c[0]).astype(np.float64)
    dist = object_distances(labels, spacing, background)
    if len(dist) >= 2:
        term = w0 * np.exp(-((dist[0] + dist[1]) ** 2) / (2 * sigma**2))
        w += term * (~fg if border_on == "background" else 1.0)
    return w


def random_labels(seed: int, shape: tuple[int, ...], n: int = 12) -> np.ndarray:
    """Overlapping random boxes (so many touch), a few 1-pixel objects, non-consecutive labels."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, dtype=np.int64)
    ids = rng.choice(np.arange(1, 5000), size=n + 4, replace=False)
    for v in ids[:n]:
        lo = rng.integers(0, shape)
        size = rng.integers(1, 9, size=len(shape))
        labels[tuple(slice(a, a + s) for a, s in zip(lo, size))] = v
    for v in ids[n:]:
        labels[tuple(rng.integers(0, shape))] = v
    return labels


def two_disks() -> np.ndarray:
    """Disks of radius 5 centred at (20, 14) and (20, 28): edge pixels (20, 19) and (20, 23)."""
    yy, xx = np.mgrid[:40, :44]
    labels = np.zeros((40, 44), dtype=np.uint16)
    labels[(yy - 20) ** 2 + (xx - 14) ** 2 <= 25] = 1
    labels[(yy - 20) ** 2 + (xx - 28) ** 2 <= 25] = 2
    return labels


# --- against brute force ---------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_the_default_is_eq2_at_every_pixel(seed: int) -> None:
    # the formula, literally: w = w_c + w0 exp(-(d1 + d2)^2 / 2 sigma^2) everywhere,
    # d1 = 0 on the object itself; w_c balanced over this image, max class 1
    labels = random_labels(seed, (40, 48))
    fg = labels != 0
    dist = np.sort([ndi.distance_transform_edt(labels != v) for v in np.unique(labels[fg])], 0)
    n_fg, n_bg = fg.sum(), (~fg).sum()
    w_c = np.where(fg, max(n_fg, n_bg) / n_fg, max(n_fg, n_bg) / n_bg)
    expected = w_c + 10 * np.exp(-((dist[0] + dist[1]) ** 2) / (2 * 5.0**2))
    got = weight_map(labels)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=2e-6)
    assert (np.abs(got - expected)[fg] < 2e-6).all() and (expected - w_c)[fg].max() > 5


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("border_on", ["background", "all"])
def test_matches_brute_force_2d(seed: int, border_on: str) -> None:
    labels = random_labels(seed, (40, 48))
    expected = brute_weight_map(labels, sigma=2.0, border_on=border_on)
    # exact formula (tol=0) and the default truncation below tol=1e-6
    exact = weight_map(labels, sigma=2.0, class_weights=None, border_on=border_on, tol=0)
    np.testing.assert_allclose(exact, expected, rtol=1e-6, atol=1e-6)
    fast = weight_map(labels, sigma=2.0, class_weights=None, border_on=border_on)
    np.testing.assert_allclose(fast, expected, rtol=1e-6, atol=1e-6 + 1e-6)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("tol", [1e-2, 1e-4])
def test_truncation_is_exactly_below_tol(seed: int, tol: float) -> None:
    # the result is eq. 2 with the border term set to 0 where it is below tol, nothing else
    labels = random_labels(seed, (48, 56), n=16)
    dist = object_distances(labels)
    term = 10 * np.exp(-((dist[0] + dist[1]) ** 2) / (2 * 3.0**2))
    assert (term < tol).any() and (term >= tol).any()  # both regimes are present
    term[term < tol] = 0
    expected = 1 + term
    got = weight_map(labels, sigma=3.0, class_weights=None, tol=tol)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    assert np.abs(got - brute_weight_map(labels, sigma=3.0)).max() < tol


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("spacing", [None, (2.0, 1.0, 0.7)])
@pytest.mark.parametrize("border_on", ["background", "all"])
def test_matches_brute_force_3d(seed: int, spacing, border_on: str) -> None:
    labels = random_labels(seed, (10, 14, 16), n=10)
    expected = brute_weight_map(labels, sigma=2.5, spacing=spacing, border_on=border_on)
    got = weight_map(labels, sigma=2.5, class_weights=None, spacing=spacing, border_on=border_on)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=2e-6)


def test_anisotropic_spacing_2d() -> None:
    labels = random_labels(7, (30, 40))
    expected = brute_weight_map(labels, sigma=4.0, spacing=(3.0, 0.5))
    got = weight_map(labels, sigma=4.0, class_weights=None, spacing=(3.0, 0.5))
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=2e-6)


def test_label_values_and_background_value_do_not_matter() -> None:
    labels = random_labels(3, (32, 32))
    ref = weight_map(labels)
    huge = np.where(labels > 0, labels + 2**40, 0)  # far beyond the image size: relabelled
    np.testing.assert_array_equal(weight_map(huge), ref)
    swapped = np.where(labels == 0, 9999, labels)  # 9999 is not an object label here
    np.testing.assert_array_equal(weight_map(swapped, background=9999), ref)
    np.testing.assert_array_equal(weight_map(labels.astype(np.float32)), ref)


@pytest.mark.parametrize("n_objects", [0, 1])
@pytest.mark.parametrize("border_on", ["background", "all"])
def test_fewer_than_two_objects_have_no_border_term(n_objects: int, border_on: str) -> None:
    labels = np.zeros((20, 30), dtype=np.int32)
    labels[5:9, 5:12] = 3 if n_objects else 0
    w = weight_map(labels, class_weights=(0.5, 2.0), border_on=border_on)
    np.testing.assert_array_equal(w, np.where(labels > 0, 2.0, 0.5).astype(np.float32))


def test_output_dtype_shape_and_input_untouched() -> None:
    for shape in [(17, 23), (5, 9, 11)]:
        labels = random_labels(1, shape, n=6).astype(np.uint16)
        before = labels.copy()
        w = weight_map(labels)
        assert w.dtype == np.float32 and w.shape == shape
        np.testing.assert_array_equal(labels, before)
    assert weight_map(np.zeros((4, 4), dtype=bool)).dtype == np.float32


# --- hand-worked values -------------------------------------------------------------------------


def test_two_disks_by_hand() -> None:
    labels = two_disks()
    assert (labels == 1).sum() == (labels == 2).sum() == 81  # lattice points in a radius-5 disk
    w = weight_map(labels, class_weights=None)
    # on the row through both centres every gap pixel has d1 + d2 = 4 (edges at x = 19 and 23)
    for x in (20, 21, 22):
        assert w[20, x] == pytest.approx(1 + 10 * math.exp(-16 / 50), rel=1e-6)
    assert w[20, 21] == pytest.approx(8.261497, abs=1e-5)
    # off the row: nearest pixels (17, 18) and (17, 24), both at sqrt(3**2 + 2**2) from (15, 21)
    assert w[15, 21] == pytest.approx(1 + 10 * math.exp(-((2 * math.sqrt(13)) ** 2) / 50), rel=1e-6)
    # far left: d1 = 7 (to x = 9), d2 = 21 (to x = 23); the term 1.6e-6 is above tol
    assert w[20, 2] == pytest.approx(1 + 10 * math.exp(-(28**2) / 50), abs=2e-7)
    # d1 + d2 = 9 + 23 = 32: the term 1.3e-8 is below tol=1e-6 and set to 0
    assert w[20, 0] == 1.0
    # on an object's edge: d1 = 0 and d2 = 4 (to the other disk's edge at x = 23)
    assert w[20, 19] == pytest.approx(1 + 10 * math.exp(-16 / 50), rel=1e-6)
    # one pixel inside: d1 = 0, d2 = 5; at the centre (20, 14): d2 = 9
    assert w[20, 18] == pytest.approx(1 + 10 * math.exp(-25 / 50), rel=1e-6)
    assert w[20, 14] == pytest.approx(1 + 10 * math.exp(-81 / 50), rel=1e-6)
    # border_on="background": object pixels keep w_c, the gaps are unchanged
    w_bg = weight_map(labels, class_weights=None, border_on="background")
    assert w_bg[20, 19] == w_bg[20, 18] == w_bg[20, 14] == 1.0
    assert w_bg[20, 21] == w[20, 21] and w_bg[15, 21] == w[15, 21]
    np.testing.assert_array_equal(w_bg[labels == 0], w[labels == 0])


def test_two_disks_balanced_and_custom_parameters() -> None:
    labels = two_disks()
    n_fg = 162
    n_bg = 40 * 44 - n_fg
    w = weight_map(labels)  # balanced: background is the more frequent class, weight 1
    assert w[20, 14] == pytest.approx(n_bg / n_fg + 10 * math.exp(-81 / 50), rel=1e-6)
    w = weight_map(labels, border_on="background")
    assert w[20, 14] == pytest.approx(n_bg / n_fg, rel=1e-6)
    assert w[0, 0] == 1.0
    assert w[20, 21] == pytest.approx(1 + 10 * math.exp(-16 / 50), rel=1e-6)
    w = weight_map(labels, w0=3.0, sigma=2.0, class_weights=None)
    assert w[20, 21] == pytest.approx(1 + 3 * math.exp(-16 / 8), rel=1e-6)


def test_spacing_scales_distances_by_hand() -> None:
    labels = np.zeros((5, 3), dtype=np.uint8)
    labels[0, 1], labels[4, 1] = 1, 2
    # along axis 0 the pixels are 2 units apart: at the midpoint d1 = d2 = 4
    w = weight_map(labels, class_weights=None, spacing=(2.0, 1.0))
    assert w[2, 1] == pytest.approx(1 + 10 * math.exp(-64 / 50), rel=1e-6)
    # (2, 0): d1 = d2 = sqrt(4**2 + 1)
    assert w[2, 0] == pytest.approx(1 + 10 * math.exp(-4 * 17 / 50), rel=1e-6)


# --- class weights -------------------------------------------------------------------------------


def test_class_weights_options() -> None:
    labels = np.zeros((4, 5), dtype=np.int32)
    labels[1:3, 1:3] = 1  # 4 foreground, 16 background pixels; one object: no border term
    fg = labels > 0
    assert np.all(weight_map(labels, class_weights=None) == 1)
    np.testing.assert_array_equal(weight_map(labels), np.where(fg, 4.0, 1.0))
    for explicit in ([0.5, 3.0], (0.5, 3.0), np.array([0.5, 3.0]), {0: 0.5, 1: 3.0}):
        np.testing.assert_array_equal(
            weight_map(labels, class_weights=explicit), np.where(fg, 3.0, 0.5)
        )
    # foreground more frequent: it gets 1 and background the ratio
    np.testing.assert_array_equal(weight_map(1 - labels), np.where(fg, 4.0, 1.0))
    # only background, or only foreground: the class present gets 1
    assert np.all(weight_map(np.zeros((3, 3), dtype=int)) == 1)
    assert np.all(weight_map(np.ones((3, 3), dtype=int)) == 1)


def test_class_frequencies_and_balanced_weights() -> None:
    a = np.array([[0, 0, 0, 1]])
    b = np.array([[0, 5], [5, 7]])
    np.testing.assert_allclose(class_frequencies([a, b]), [4 / 8, 4 / 8])
    np.testing.assert_allclose(class_frequencies(a), [0.75, 0.25])
    np.testing.assert_allclose(class_frequencies([b], background=5), [0.5, 0.5])
    np.testing.assert_allclose(class_frequencies(np.zeros((2, 3, 4), dtype=int)), [1.0, 0.0])
    np.testing.assert_allclose(balanced_class_weights(class_frequencies(a)), [1.0, 3.0])
    np.testing.assert_allclose(balanced_class_weights([30, 10]), [1.0, 3.0])
    np.testing.assert_allclose(balanced_class_weights([0.2, 0.5, 0.0]), [2.5, 1.0, 0.0])


def test_class_weight_errors() -> None:
    labels = np.zeros((4, 4), dtype=int)
    for bad in ["balance", [1.0, 2.0, 3.0], {0: 1.0}, [-1.0, 1.0], [1.0, float("nan")], ["a", "b"]]:
        with pytest.raises(
            ValueError, match=r"class_weights must be 'balanced', None, two weights"
        ):
            weight_map(labels, class_weights=bad)
    with pytest.raises(ValueError, match=r"got \[0, 0\]"):
        balanced_class_weights([0, 0])
    with pytest.raises(ValueError, match=r"non-negative.*got \[1, -1\]"):
        balanced_class_weights([1, -1])
    with pytest.raises(ValueError, match="needs at least one pixel; got 0 images"):
        class_frequencies([])
    with pytest.raises(ValueError, match=r"non-negative numbers.*got 'ab'"):
        balanced_class_weights("ab")
    with pytest.raises(ValueError, match=r"label image 1 must be a 2D"):
        class_frequencies([labels, np.zeros(3, dtype=int)])


# --- separation borders --------------------------------------------------------------------------


def test_touching_squares_get_a_background_line() -> None:
    labels = np.zeros((10, 12), dtype=np.uint8)
    labels[2:8, 1:6] = 1
    labels[2:8, 6:11] = 2  # no gap: columns 5 and 6 touch
    expected = np.zeros_like(labels, dtype=bool)
    expected[2:8, 5:7] = True
    np.testing.assert_array_equal(separation_borders(labels), expected)
    out = with_separation(labels)
    assert out.dtype == labels.dtype
    np.testing.assert_array_equal(out, np.where(expected, 0, labels))
    # width 3: pixels closer than 3 to the other square go, and the background pixels just
    # outside the contact line, 1 from one square and sqrt(2) from the other
    expected[2:8, 4:8] = True
    expected[[1, 8], 5:7] = True
    np.testing.assert_array_equal(separation_borders(labels, width=3), expected)


def test_diagonal_contact_and_narrow_gaps() -> None:
    labels = np.zeros((6, 6), dtype=np.int32)
    labels[:3, :3] = 1
    labels[3:, 3:] = 2  # corners (2, 2) and (3, 3) touch diagonally, sqrt(2) apart
    expected = np.zeros((6, 6), dtype=bool)
    expected[2, 2] = expected[3, 3] = True
    np.testing.assert_array_equal(separation_borders(labels), expected)
    assert not separation_borders(labels, width=1.4).any()
    row = np.array([[1, 1, 1, 0, 2, 2, 2]])  # a 1-pixel gap: distance 2, not closer than 2
    assert not separation_borders(row).any()
    # width 3: the gap and the pixel on each side of it (d1 + d2 = 2 there)
    np.testing.assert_array_equal(separation_borders(row, width=3)[0], [0, 0, 1, 1, 1, 0, 0])


def test_far_apart_objects_are_unchanged() -> None:
    labels = np.zeros((20, 20), dtype=np.int64)
    labels[2:6, 2:6] = 4
    labels[2:6, 8:12] = 9  # 3 background pixels between them: distance 3
    labels[15, 15] = 2
    assert not separation_borders(labels, width=3).any()
    np.testing.assert_array_equal(with_separation(labels, width=3), labels)
    assert separation_borders(labels, width=3.5)[2:6, 5:9].all()


def test_touching_cubes_3d_and_spacing() -> None:
    labels = np.zeros((8, 6, 6), dtype=np.uint16)
    labels[1:4, 1:5, 1:5] = 1
    labels[4:7, 1:5, 1:5] = 2  # touching across the plane between z = 3 and z = 4
    expected = np.zeros(labels.shape, dtype=bool)
    expected[3:5, 1:5, 1:5] = True
    np.testing.assert_array_equal(separation_borders(labels), expected)
    # z slices 3 units apart: the touching planes are 3 apart, not closer than width 2
    assert not separation_borders(labels, spacing=(3.0, 1.0, 1.0)).any()
    np.testing.assert_array_equal(separation_borders(labels, width=4, spacing=(3, 1, 1)), expected)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("width", "spacing"), [(1.0, None), (2.0, None), (3.5, (1.0, 0.6))])
def test_separation_rule_and_guarantee(seed: int, width: float, spacing) -> None:
    labels = random_labels(seed, (36, 40), n=14)
    dist = object_distances(labels, spacing)
    mask = separation_borders(labels, width=width, spacing=spacing)
    np.testing.assert_array_equal(mask, dist[0] + dist[1] < width)
    out = with_separation(labels, width=width, spacing=spacing)
    ids = [v for v in np.unique(out) if v != 0]
    for v in ids:  # every remaining object is at least width from every other one
        edt = ndi.distance_transform_edt(out != v, sampling=spacing)
        assert edt[(out != v) & (out != 0)].min(initial=np.inf) >= width


def test_separation_of_fewer_than_two_objects_is_empty() -> None:
    assert not separation_borders(np.zeros((3, 4), dtype=int)).any()
    assert not separation_borders(np.ones((3, 4, 2), dtype=int)).any()


# --- errors ------------------------------------------------------------------------------------


def test_bad_labels_are_clear_value_errors() -> None:
    with pytest.raises(
        ValueError, match=r"must hold whole numbers.*got float64 values such as 1\.5"
    ):
        weight_map(np.array([[0.0, 1.5], [2.0, 0.0]]))
    with pytest.raises(ValueError, match=r"whole numbers.*nan"):
        weight_map(np.array([[0.0, np.nan]]))
    with pytest.raises(
        ValueError, match=r"non-negative \(background 0, objects 1, 2, \.\.\.\), got minimum -3"
    ):
        separation_borders(np.array([[0, -3], [1, 2]]))
    with pytest.raises(
        ValueError, match=r"2D \(Y, X\) or 3D \(Z, Y, X\).*got a 1D array of shape \(5,\)"
    ):
        weight_map(np.zeros(5, dtype=int))
    with pytest.raises(ValueError, match=r"got a 4D array of shape \(2, 2, 2, 2\)"):
        with_separation(np.zeros((2, 2, 2, 2), dtype=int))
    with pytest.raises(
        ValueError,
        match=r"integer label image \(0 = background, objects 1, 2, \.\.\.\), got dtype <U1",
    ):
        weight_map(np.array([["a", "b"]]))


def test_bad_options_are_clear_value_errors() -> None:
    labels = np.zeros((4, 4), dtype=int)
    with pytest.raises(
        ValueError, match=r"unknown border_on 'backgrond': did you mean 'background'\?"
    ):
        weight_map(labels, border_on="backgrond")
    with pytest.raises(ValueError, match=r"sigma must be a finite number > 0; got 0"):
        weight_map(labels, sigma=0)
    with pytest.raises(ValueError, match=r"w0 must be a finite number >= 0; got -1"):
        weight_map(labels, w0=-1)
    with pytest.raises(ValueError, match=r"tol must be a finite number >= 0; got nan"):
        weight_map(labels, tol=float("nan"))
    with pytest.raises(ValueError, match=r"width must be a finite number > 0; got 0"):
        separation_borders(labels, width=0)
    with pytest.raises(
        ValueError, match=r"spacing must be one positive number or 2.*got \(1, 2, 3\)"
    ):
        weight_map(labels, spacing=(1, 2, 3))
    with pytest.raises(ValueError, match=r"spacing.*got -1"):
        separation_borders(labels, spacing=-1)
