"""The checks every layer shares (biounet.core.checks): one message for each mistake."""

import numpy as np
import pytest

from biounet.core.checks import (
    InputTypeError,
    check_fraction,
    check_labels,
    check_nonnegative_int,
    check_positive_int,
    check_probabilities,
    check_spacing,
    int_tuple,
    is_int,
    is_whole,
    look_up,
    whole_px,
)


def test_labels_pass_as_int64_and_bools_as_0_1() -> None:
    out = check_labels(np.array([[0, 3], [3, 1]], np.uint16))
    assert out.dtype == np.int64 and out.tolist() == [[0, 3], [3, 1]]
    assert check_labels(np.array([True, False])).tolist() == [1, 0]
    same = np.zeros((2, 2), np.int64)
    assert check_labels(same) is same  # no copy


def test_label_errors_name_the_array_and_the_fix() -> None:
    with pytest.raises(
        ValueError, match=r"truth must be an integer label image .*float32.*ndimage\.label"
    ):
        check_labels(np.zeros((2, 2), np.float32), "truth")
    with pytest.raises(ValueError, match=r"pred must be non-negative .*got minimum -2"):
        check_labels(np.array([0, -2]), "pred")
    with pytest.raises(
        ValueError, match=r"must be a 2D \(Y, X\) or 3D \(Z, Y, X\) label image; got a 1D"
    ):
        check_labels(np.zeros(4, int), ndims=(2, 3))


def test_whole_float_labels_only_when_asked() -> None:
    assert check_labels(np.array([[0.0, 2.0]]), whole_floats=True).tolist() == [[0, 2]]
    with pytest.raises(ValueError, match=r"whole numbers .*float64 values such as 1\.5"):
        check_labels(np.array([[0.0, 1.5]]), whole_floats=True)
    with pytest.raises(ValueError, match=r"whole numbers .*nan"):
        check_labels(np.array([np.nan]), whole_floats=True)
    with pytest.raises(ValueError, match=r"whole numbers .*inf"):
        check_labels(np.array([0.0, np.inf]), whole_floats=True)


def test_negative_labels_only_when_asked() -> None:
    assert check_labels(np.array([-1, 2]), allow_negative=True).tolist() == [-1, 2]
    assert check_labels(np.array([-1.0, 2.0]), whole_floats=True, allow_negative=True).tolist() == [
        -1,
        2,
    ]
    with pytest.raises(ValueError, match="non-negative"):
        check_labels(np.array([-1, 2]))


def test_spacing_per_axis_or_one_for_all() -> None:
    assert check_spacing(None, 3) == (1.0, 1.0, 1.0)
    assert check_spacing(0.5, 2) == (0.5, 0.5)
    assert check_spacing((2.2, 1, 1), 3) == (2.2, 1.0, 1.0)
    assert check_spacing([50, 4, 4], None) == (50.0, 4.0, 4.0)
    for bad in ((1, 2), (1, 0, 1), (1, np.inf, 1), "ab", [[1, 2, 3]]):
        with pytest.raises(ValueError, match="spacing must be one positive number or 3"):
            check_spacing(bad, 3)
    with pytest.raises(ValueError, match=r"weights\.spacing must be positive pixel sizes.*\[\]"):
        check_spacing([], None, "weights.spacing")


def test_integers_and_sizes() -> None:
    assert is_int(np.int64(3)) and not is_int(True) and not is_int(3.0)
    assert whole_px(np.int32(572)) == 572
    with pytest.raises(TypeError, match="tile must be an integer number of px, got 572.5"):
        whole_px(572.5, "tile")
    assert int_tuple(8, "tile", 3) == (8, 8, 8) and int_tuple(np.array([4, 6]), "tile", 2) == (4, 6)
    with pytest.raises(ValueError, match=r"tile \(4, 6\) has 2 axes; the image has 3"):
        int_tuple((4, 6), "tile", 3)
    with pytest.raises(
        TypeError, match=r"axis 1 of tile \(4, 6\.5\) must be an integer number of px, got 6\.5"
    ):
        int_tuple((4, 6.5), "tile", 2)
    with pytest.raises(TypeError, match=r"axis 0 of tile \(4\.5, 6\.0\) must be .*got 4\.5$"):
        int_tuple(np.array([4.5, 6.0]), "tile", 2)  # NumPy scalars shown as plain numbers
    with pytest.raises(TypeError, match="shape must be a sequence of integers"):
        int_tuple("44", "shape")
    assert check_positive_int(2, "batch_size") == 2
    with pytest.raises(TypeError, match="batch_size must be a positive integer, got 1.0"):
        check_positive_int(1.0, "batch_size")
    assert check_nonnegative_int(np.int8(0), "depth") == 0
    with pytest.raises(ValueError, match=r"depth must be >= 0, got -1"):
        check_nonnegative_int(-1, "depth")
    with pytest.raises(TypeError, match=r"depth must be a non-negative integer, got 2\.0"):
        check_nonnegative_int(2.0, "depth")
    assert is_whole(3) and is_whole(np.float32(4.0)) and is_whole(-2.0)
    assert not any(is_whole(v) for v in (4.5, True, float("inf"), float("nan"), "3", None))


def test_wrong_types_from_users_are_input_type_errors() -> None:
    """The command line reports these as the user's mistake; they remain TypeErrors."""
    calls = [
        lambda: whole_px(572.5),
        lambda: check_positive_int(1.0, "batch_size"),
        lambda: check_nonnegative_int("0", "depth"),
        lambda: int_tuple((4, 6.5), "tile"),
        lambda: int_tuple("44", "shape"),
        lambda: check_fraction("0.5", "threshold"),
    ]
    for call in calls:
        with pytest.raises(InputTypeError):
            call()
    assert issubclass(InputTypeError, TypeError)


def test_probabilities_and_fractions() -> None:
    p = np.array([0.0, 0.5, 1.0 + 1e-7], np.float32)  # a float32 softmax may pass 1 a little
    assert check_probabilities(p, "probs") is p
    assert check_probabilities(np.zeros(0), "probs").size == 0
    with pytest.raises(
        ValueError,
        match=r"membrane_prob must lie in \[0, 1\] \(probabilities\), got values in \[0, 255\]; "
        r"scale it first \(8-bit maps: divide by 255; logits: apply a softmax\)",
    ):
        check_probabilities(np.array([0, 255], np.uint8), "membrane_prob")
    with pytest.raises(
        ValueError, match=r"probs\[1\] must lie in \[0, 1\] .*got values in \[-0\.5, 1\]"
    ):
        check_probabilities(np.array([-0.5, 1.0]), "probs[1]")
    with pytest.raises(
        ValueError, match=r"^x must lie in \[0, 1\] \(probabilities\), got NaN or infinite"
    ):
        check_probabilities(np.array([0.5, np.nan]), "x")
    with pytest.raises(ValueError, match="got values in"):
        check_probabilities(np.array([1.0 + 1e-3]), "x", tol=1e-6)
    assert check_probabilities(np.array([1.0 + 1e-3]), "x", tol=1e-2).size == 1
    assert check_fraction(np.float32(0.25), "threshold") == 0.25
    for bad in (0, 1, 1.5, float("nan"), True):
        with pytest.raises(ValueError, match=r"threshold must be in \(0, 1\), got"):
            check_fraction(bad, "threshold")
    with pytest.raises(TypeError, match=r"threshold must be a number in \(0, 1\), got '0\.5'"):
        check_fraction("0.5", "threshold")


def test_look_up_suggests_the_nearest_choice() -> None:
    with pytest.raises(ValueError, match=r"unknown optimizer 'adamm': did you mean 'adam'\?"):
        look_up("adamm", ("sgd", "adam", "adamw"), "optimizer")
    with pytest.raises(ValueError, match=r"unknown task 'zzz' \(choices: 'a', 'b'\)"):
        look_up("zzz", ("a", "b"), "task")
