import numpy as np
import pytest
from scipy import ndimage as ndi

from biounet.data.synthetic import make_cells, make_dataset, make_membranes

SHAPES = [(96, 80), (32, 40, 36)]


def generate(kind, shape, **options):
    """(image, instance labels) of either kind."""
    if kind == "cells":
        return make_cells(shape, **options)
    image, membranes, cells = make_membranes(shape, **options)
    assert membranes.dtype == np.uint8
    np.testing.assert_array_equal(membranes, cells == 0)
    return image, cells


def touching_fraction(labels, distance=2):
    """Fraction of objects with another object within `distance` px (dilation by a cube)."""
    hits = 0
    for i, box in enumerate(ndi.find_objects(labels), start=1):
        grown = tuple(slice(max(0, s.start - distance), s.stop + distance) for s in box)
        mine = labels[grown] == i
        near = ndi.binary_dilation(mine, structure=np.ones((3,) * labels.ndim), iterations=distance)
        others = labels[grown][near]
        hits += bool(np.any((others > 0) & (others != i)))
    return hits / labels.max()


def directly_adjacent(labels):
    """True when two different objects share a face (4-adjacency in 2D, 6 in 3D)."""
    for axis in range(labels.ndim):
        a = np.moveaxis(labels, axis, 0)
        lo, hi = a[:-1], a[1:]
        if np.any((lo > 0) & (hi > 0) & (lo != hi)):
            return True
    return False


@pytest.mark.parametrize("kind", ["cells", "membranes"])
@pytest.mark.parametrize("shape", SHAPES)
def test_shapes_dtypes_range(kind, shape):
    image, labels = generate(kind, shape, seed=1)
    assert image.shape == labels.shape == shape
    assert image.dtype == np.float32
    assert labels.dtype == np.int32
    assert np.all(np.isfinite(image))
    assert image.min() >= 0.0 and image.max() <= 1.0
    assert labels.max() >= 2


@pytest.mark.parametrize("kind", ["cells", "membranes"])
@pytest.mark.parametrize("shape", SHAPES)
def test_labels_are_consecutive_and_connected(kind, shape):
    _, labels = generate(kind, shape, seed=2)
    n = labels.max()
    np.testing.assert_array_equal(np.unique(labels), np.arange(n + 1))
    for i, box in enumerate(ndi.find_objects(labels), start=1):
        _, k = ndi.label(labels[box] == i)  # 4-/6-connectivity
        assert k == 1, f"object {i} has {k} components"
    assert not directly_adjacent(labels)


@pytest.mark.parametrize("kind", ["cells", "membranes"])
@pytest.mark.parametrize("shape", SHAPES)
def test_seeded_and_deterministic(kind, shape):
    a = generate(kind, shape, seed=7)
    b = generate(kind, shape, seed=7)
    c = generate(kind, shape, seed=8)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[1], c[1])
    # a Generator or a SeedSequence works as well as an int
    d = generate(kind, shape, seed=np.random.default_rng(np.random.SeedSequence(7)))
    np.testing.assert_array_equal(a[0], d[0])


@pytest.mark.parametrize(("shape", "n_min"), [((256, 256), 50), ((64, 64, 64), 15)])
@pytest.mark.parametrize("gap", [1, 2])
def test_default_cells_touch_across_thin_gaps(shape, n_min, gap):
    _, labels = make_cells(shape, gap=gap, seed=0)
    assert labels.max() >= n_min
    assert touching_fraction(labels, distance=gap + 1) >= 0.3


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("gap", [1, 2])
def test_gap_keeps_cells_apart(shape, gap):
    _, labels = make_cells(shape, gap=gap, seed=3)
    assert not directly_adjacent(labels)
    # no other object within `gap` px along any axis, diagonals included (chessboard distance)
    big = np.iinfo(np.int32).max
    lo = ndi.minimum_filter(np.where(labels > 0, labels, big), size=2 * gap + 1)
    hi = ndi.maximum_filter(labels, size=2 * gap + 1)
    fg = labels > 0
    np.testing.assert_array_equal(lo[fg], labels[fg])
    np.testing.assert_array_equal(hi[fg], labels[fg])


def test_small_fragments_are_dropped():
    # slivers cut off by the image border or by neighbours are not returned as cells
    _, labels = make_cells((256, 256), seed=3)  # this seed makes a few slivers
    assert np.bincount(labels.ravel())[1:].min() >= np.pi * 6**2 / 3


def test_gap_zero_lets_cells_touch():
    _, labels = make_cells((128, 128), gap=0, seed=0)
    assert directly_adjacent(labels)


def test_clustering_controls_contacts():
    _, clustered = make_cells((256, 256), clustering=1.0, n_cells=60, seed=0)
    _, scattered = make_cells((256, 256), clustering=0.0, n_cells=60, seed=0)
    assert touching_fraction(clustered) > touching_fraction(scattered) + 0.2


@pytest.mark.parametrize("shape", SHAPES)
def test_cells_are_brighter_than_background(shape):
    image, labels = make_cells(shape, seed=4)
    inside, outside = image[labels > 0].mean(), image[labels == 0].mean()
    assert inside > outside + 0.15


@pytest.mark.parametrize("shape", SHAPES)
def test_membranes_are_darker_than_interiors(shape):
    image, membranes, cells = make_membranes(shape, seed=4)
    assert image[membranes == 1].mean() < image[cells > 0].mean() - 0.15
    assert 0.03 < membranes.mean() < 0.5


def test_membrane_width_range_is_respected():
    _, thin, _ = make_membranes((128, 128), membrane_width=(1, 1), seed=0)
    _, thick, _ = make_membranes((128, 128), membrane_width=(4, 6), seed=0)
    assert thick.mean() > 2 * thin.mean()


@pytest.mark.parametrize("kind", ["cells", "membranes"])
def test_noise_is_present_and_controllable(kind):
    noisy, labels = generate(kind, (128, 128), seed=5)
    clean, labels0 = generate(kind, (128, 128), seed=5, noise=0.0)
    np.testing.assert_array_equal(labels, labels0)

    def roughness(image):
        return float(np.std(image - ndi.uniform_filter(image, 3)))

    assert roughness(noisy) > 2 * roughness(clean)
    # not piecewise constant: inside the largest object, many different values
    largest = np.bincount(labels.ravel())[1:].argmax() + 1
    assert len(np.unique(noisy[labels == largest])) > 50


def matched(pred, labels, iou=0.5):
    """Number of objects in `labels` matched by a component of `pred` with IoU above `iou`."""
    n, m = labels.max(), pred.max()
    joint = np.bincount(labels.ravel() * (m + 1) + pred.ravel(), minlength=(n + 1) * (m + 1))
    joint = joint.reshape(n + 1, m + 1)
    union = joint.sum(1)[:, None] + joint.sum(0)[None, :] - joint
    return int(np.sum((joint / union)[1:, 1:].max(1) > iou))


@pytest.mark.parametrize("seed", [0, 1])
def test_global_threshold_merges_touching_cells(seed):
    # the task is hard: a global threshold plus connected components merges touching cells
    image, labels = make_cells((256, 256), seed=seed)
    n = labels.max()
    fg, bg = image[labels > 0].mean(), image[labels == 0].mean()
    for t in [0.3, 0.4, 0.5]:
        components, _ = ndi.label(image > bg + t * (fg - bg))
        blobs = int(np.sum(np.bincount(components.ravel())[1:] >= 20))  # ignore specks of noise
        assert blobs <= 0.6 * n, (t, blobs, n)
    # even the best global threshold of the denoised image finds few cells
    smooth = ndi.gaussian_filter(image, 1.0)
    best = max(
        matched(ndi.label(smooth > bg + t * (fg - bg))[0], labels) for t in np.linspace(0.1, 0.9, 9)
    )
    assert best < 0.6 * n, (best, n)
    # while the true gaps, once known, separate every cell
    assert matched(ndi.label(labels > 0)[0], labels) == n


def test_make_dataset_is_seeded_per_item():
    a = make_dataset("cells", 3, shape=(64, 64), seed=11)
    b = make_dataset("cells", 2, shape=(64, 64), seed=11)
    assert len(a) == 3
    for (ia, la), (ib, lb) in zip(a, b):  # the first items do not depend on n
        np.testing.assert_array_equal(ia, ib)
        np.testing.assert_array_equal(la, lb)
    assert not np.array_equal(a[0][0], a[1][0])
    m = make_dataset("membranes", 2, shape=(48, 48, 48), seed=11, membrane_width=(2, 3))
    assert all(im.shape == lab.shape == (48, 48, 48) for im, lab in m)
    assert all(lab.dtype == np.int32 and lab.min() == 0 for _, lab in m)
    assert make_dataset("cells", 0) == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: make_cells((64,)), "shape must be 2 or 3"),
        (lambda: make_cells((4, 64)), "at least 8 px"),
        (lambda: make_cells((64, 64), radius=(9, 3)), "radius must be a range"),
        (lambda: make_cells((64, 64), gap=-1), "gap must be a non-negative integer"),
        (lambda: make_cells((64, 64), gap=1.5), "gap must be a non-negative integer"),
        (lambda: make_cells((64, 64), clustering=1.5), r"clustering must be in \[0, 1\]"),
        (lambda: make_cells((64, 64), n_cells=0), "n_cells must be >= 1, got 0"),
        (lambda: make_cells((64, 64), noise=-1), "noise must be non-negative"),
        (lambda: make_membranes((64, 64), membrane_width=(0, 2)), "membrane_width"),
        (lambda: make_membranes((64, 64), blur=float("nan")), "blur must be non-negative"),
        (lambda: make_dataset("cell"), "did you mean 'cells'"),
        (lambda: make_dataset("cells", -1), "n must be non-negative"),
    ],
)
def test_bad_input_is_explained(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_nuclei_are_sparse_and_flattened_along_the_coarse_axis() -> None:
    from scipy import ndimage as ndi

    from biounet.data.synthetic import make_nuclei

    image, labels = make_nuclei((40, 96, 96), spacing=(2.2, 1.0, 1.0), coverage=0.03, seed=3)
    assert image.shape == labels.shape == (40, 96, 96)
    assert image.dtype == np.float32 and labels.dtype == np.int32
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert 0.015 < (labels > 0).mean() < 0.05  # about the coverage asked for
    n = int(labels.max())
    assert n > 10 and set(np.unique(labels)) == set(range(n + 1))
    for i, box in enumerate(ndi.find_objects(labels), start=1):  # one component each
        assert ndi.label(labels[box] == i)[1] == 1
    extents = np.array([[s.stop - s.start for s in box] for box in ndi.find_objects(labels)])
    ratio = extents[:, 1:].mean() / extents[:, 0].mean()
    assert 1.7 < ratio < 2.6  # round in space: 2.2x fewer voxels along z
    # dim nuclei, cytoplasmic haze and depth loss: about 2.7x the background, as in real stacks
    assert 2 * image[labels == 0].mean() < image[labels > 0].mean() < 4 * image[labels == 0].mean()
    plain = make_nuclei((40, 96, 96), coverage=0.03, dim=0, haze=0, attenuation=0, seed=3)[0]
    assert plain[labels > 0].mean() > 6 * plain[labels == 0].mean()
    flat = make_nuclei((40, 96, 96), attenuation=0, noise=0, seed=3)[0]
    lost = make_nuclei((40, 96, 96), attenuation=0.3, noise=0, seed=3)[0]
    on = labels > 0
    assert np.allclose(lost[0][on[0]], flat[0][on[0]], rtol=0.02)  # the first plane keeps all
    assert np.allclose(lost[-1][on[-1]], 0.7 * flat[-1][on[-1]], rtol=0.02)  # the last 70%
    again = make_nuclei((40, 96, 96), spacing=(2.2, 1.0, 1.0), coverage=0.03, seed=3)
    assert np.array_equal(again[0], image) and np.array_equal(again[1], labels)
    iso = make_nuclei((40, 96, 96), spacing=(1, 1, 1), seed=3)[1]
    iso_extents = np.array([[s.stop - s.start for s in box] for box in ndi.find_objects(iso)])
    assert 0.8 < iso_extents[:, 1:].mean() / iso_extents[:, 0].mean() < 1.25


def test_nuclei_settings_are_checked() -> None:
    from biounet.data.synthetic import make_nuclei

    with pytest.raises(ValueError, match=r"spacing must be 3 positive numbers.*\(2.2, 1, 1\)"):
        make_nuclei((16, 32, 32), spacing=(2.2, 1.0))
    with pytest.raises(ValueError, match="spacing must be 3 positive numbers"):
        make_nuclei((16, 32, 32), spacing=(0, 1, 1))
    with pytest.raises(ValueError, match="coverage must be in"):
        make_nuclei((16, 32, 32), coverage=0.9)
    with pytest.raises(ValueError, match="attenuation"):
        make_nuclei((16, 32, 32), attenuation=1.0)
    with pytest.raises(ValueError, match="haze"):
        make_nuclei((16, 32, 32), haze=-0.1)
    image, labels = make_nuclei((48, 48), spacing=(1, 1), seed=0)  # 2D works too
    assert image.shape == labels.shape == (48, 48)
