"""The 3-class target of instance annotations: background, interior, boundary."""

import numpy as np
import pytest

from biounet.config import TrainConfig
from biounet.data import AnnotationSpec, Normalizer, Sample, WeightConfig, prepare
from biounet.data.annotations import IGNORE_INDEX, three_class_target, to_target
from biounet.data.tiles import class_weights_of

SPEC3 = AnnotationSpec("instances", num_classes=3, target="three_class")


def test_two_touching_squares_are_cut_apart_by_their_boundaries() -> None:
    lab = np.zeros((8, 14), np.int32)
    lab[1:7, 1:7] = 1
    lab[1:7, 7:13] = 2  # touching face to face
    # a 2-px band inside each square, on the side it shares with the other one too
    edge = [0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0]
    core = [0, 2, 2, 1, 1, 2, 2, 2, 2, 1, 1, 2, 2, 0]
    expected = np.array([[0] * 14, edge, edge, core, core, edge, edge, [0] * 14])
    t = to_target(lab, SPEC3)
    np.testing.assert_array_equal(t.classes, expected)
    np.testing.assert_array_equal(t.instances, lab)  # the weight map still sees the objects
    # width 1: one layer
    one = three_class_target(lab, 1)
    assert (one[2:6, 2:6] == 1).all() and (one[1, 1:13] == 2).all() and (one[2:6, 6:8] == 2).all()


def test_the_image_edge_is_no_boundary() -> None:
    lab = np.zeros((6, 6), np.int32)
    lab[0:4, :] = 5  # cut by the top, left and right edges of the image
    expected = np.array([[1] * 6, [1] * 6, [2] * 6, [2] * 6, [0] * 6, [0] * 6])
    np.testing.assert_array_equal(to_target(lab, SPEC3).classes, expected)


def test_a_thin_object_is_all_boundary() -> None:
    lab = np.zeros((5, 9), np.int32)
    lab[2, 1:8] = 1  # 1 px wide
    lab[3:5, 3:6] = 2  # touching it from below
    c = to_target(lab, SPEC3).classes
    assert (c[2, 1:8] == 2).all() and (c[lab == 0] == 0).all()
    assert (c[lab == 2] == 2).all()  # 2 px high, beside the edge and object 1


def test_3d_cubes() -> None:
    lab = np.zeros((7, 7, 9), np.int32)
    lab[1:6, 1:6, 1:6] = 1  # a 5-voxel cube
    lab[1:6, 1:6, 6:9] = 2  # touching it, and the image edge on the right
    c = three_class_target(lab, width=1)
    expected = np.zeros_like(c)
    expected[lab > 0] = 2
    expected[2:5, 2:5, 2:5] = 1  # the cube's inside
    expected[2:5, 2:5, 7:9] = 1  # object 2: faces on objects 1 and the background, not the edge
    np.testing.assert_array_equal(c, expected)
    t = to_target(lab, AnnotationSpec("instances", num_classes=3, target="three_class"))
    np.testing.assert_array_equal(t.classes, three_class_target(lab, 2))


def test_ignored_pixels_stay_ignored() -> None:
    lab = np.zeros((6, 8), np.int32)
    lab[1:5, 1:7] = 3
    lab[0, :] = 99
    spec = AnnotationSpec("instances", ignore=99, num_classes=3, target="three_class")
    t = to_target(lab, spec)
    assert (t.classes[0] == IGNORE_INDEX).all() and t.ignore[0].all()
    # an object ends where it is labelled: its pixels beside the ignored row are boundary
    assert (t.classes[1, 1:7] == 2).all() and (t.instances[0] == 0).all()


def test_the_two_class_target_is_unchanged() -> None:
    lab = np.zeros((6, 8), np.int32)
    lab[1:5, 1:4], lab[1:5, 4:7] = 1, 2
    t = to_target(lab, AnnotationSpec("instances"))
    np.testing.assert_array_equal(t.classes, (lab > 0).astype(np.int64))
    assert t.classes.dtype == np.int64


def test_specs_that_do_not_fit_are_refused() -> None:
    with pytest.raises(ValueError, match="have 3 classes, got num_classes=2; set it to 3"):
        AnnotationSpec("instances", target="three_class")
    with pytest.raises(ValueError, match="needs instance annotations"):
        AnnotationSpec("binary", num_classes=3, target="three_class")
    with pytest.raises(ValueError, match="unknown instance target 'three'"):
        AnnotationSpec("instances", target="three")
    with pytest.raises(ValueError, match="boundary_width must be a number of pixels >= 1"):
        AnnotationSpec("instances", num_classes=3, target="three_class", boundary_width=0.5)


def test_weight_maps_balance_three_classes() -> None:
    lab = np.zeros((30, 40), np.int32)
    lab[5:20, 4:18], lab[5:20, 18:30] = 1, 2  # touching
    img = ((lab > 0) * 200).astype(np.uint8)[None]
    (t,) = prepare([Sample("s", img, lab)], SPEC3, Normalizer("range"), WeightConfig(w0=0))
    assert set(np.unique(t.classes)) == {0, 1, 2}
    wc = class_weights_of([t.classes], 3)
    np.testing.assert_allclose(t.weights, wc[t.classes])  # w0 = 0: class balance alone
    (b,) = prepare([Sample("s", img, lab)], SPEC3, Normalizer("range"))
    assert b.weights[12, 17] > wc[2] + 5  # the border term where the two cells touch


def test_the_configuration_checks_and_carries_the_target() -> None:
    cfg = TrainConfig()
    cfg.data.annotation, cfg.data.instance_target = "instances", "three_class"
    assert cfg.validate().data.num_classes == 3  # the default 2 follows the target
    cfg.data.num_classes = 4
    with pytest.raises(
        ValueError, match="'three_class' .* has 3 classes, got data.num_classes 4; set"
    ):
        cfg.validate()
    cfg.data.num_classes = 3
    cfg.validate()
    assert cfg.data.names() == ["background", "interior", "boundary"]
    assert cfg.data.annotation_spec() == SPEC3
    cfg.data.instance_target = "two_class"
    with pytest.raises(ValueError, match="'two_class' .* has 2 classes, got data.num_classes 3"):
        cfg.validate()
    cfg.data.instance_target = "three_classes"
    with pytest.raises(ValueError, match="did you mean 'three_class'"):
        cfg.validate()
    # binary masks have no objects to draw boundaries of: they ignore the target
    binary = TrainConfig()
    binary.data.instance_target = "three_class"
    assert binary.validate().data.annotation_spec().target == "two_class"
