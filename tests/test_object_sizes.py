"""Object-size statistics of instance labels: counts, area quantiles, equivalent diameters."""

import math

import numpy as np
import pytest

from biounet.data.objects import ObjectSizes, equivalent_diameter, object_sizes


def test_areas_and_diameters_over_several_images() -> None:
    a = np.zeros((20, 20), np.uint16)
    a[0:2, 0:5] = 3  # 10 px, label numbers need not be consecutive
    a[5:10, 5:10] = 9  # 25 px
    b = np.zeros((10, 30), np.int32)
    b[0:4, 0:10] = 1  # 40 px
    b[5:6, 0:3] = 2  # 3 px
    s = object_sizes(iter([a, b]))  # any iterable, read once
    assert s is not None
    areas = np.array([10, 25, 40, 3], float)
    assert s.count == 4 and s.ndim == 2
    expected = np.quantile(areas, [0.05, 0.25, 0.5, 0.75, 0.95])
    got = [s.area_p05, s.area_p25, s.area_median, s.area_p75, s.area_p95]
    np.testing.assert_allclose(got, expected)
    np.testing.assert_allclose(s.diameter_median, np.median(2 * np.sqrt(areas / math.pi)))
    np.testing.assert_allclose(s.radius_median, math.sqrt(s.area_median / math.pi))


def test_3d_labels_give_ball_diameters() -> None:
    lab = np.zeros((6, 6, 6), np.int32)
    lab[:3, :3, :3] = 1  # 27 voxels
    s = object_sizes([lab])
    assert s is not None and s.ndim == 3 and s.area_median == 27
    np.testing.assert_allclose(s.diameter_median, 2 * (3 * 27 / (4 * math.pi)) ** (1 / 3))
    np.testing.assert_allclose(equivalent_diameter(27, 3), s.diameter_median)


def test_no_objects_is_none_and_bad_inputs_are_named() -> None:
    assert object_sizes([]) is None
    assert object_sizes([np.zeros((5, 5), np.int32), np.zeros((3, 3), bool)]) is None
    assert object_sizes([np.array([[0.0, 2.0], [2.0, 0.0]])]).count == 1  # whole floats
    with pytest.raises(ValueError, match="label image 1 is 3D but the ones before it are 2D"):
        object_sizes([np.ones((4, 4), int), np.ones((2, 4, 4), int)])
    with pytest.raises(ValueError, match="label image 0 must be non-negative"):
        object_sizes([np.array([[0, -1]])])
    with pytest.raises(ValueError, match="label image 0 must be a 2D"):
        object_sizes([np.ones(5, int)])


def test_round_trip_and_damaged_dicts() -> None:
    s = object_sizes([np.arange(12).reshape(3, 4)])
    assert s is not None
    d = s.to_dict()
    assert all(isinstance(v, int | float) for v in d.values())
    assert ObjectSizes.from_dict(d) == s
    with pytest.raises(ValueError, match="object sizes: expected the keys"):
        ObjectSizes.from_dict({**d, "extra": 1})
    assert "11 objects (2D)" in s.describe()
