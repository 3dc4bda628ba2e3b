import json
import math
from pathlib import Path

import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi

from biounet.cli import main
from biounet.data import write_image, write_labels
from biounet.evaluation import (
    PREFERRED,
    EvalOptions,
    evaluate,
    evaluate_files,
    metric_keys,
    pair_files,
)
from biounet.metrics import isbi_scores
from biounet.reporting.tables import write_reports

ISBI_LABELS = Path(__file__).resolve().parents[2] / "shared/data/isbi2012/labels"


def disks(shape=(64, 64), centres=((16, 16), (40, 44)), r=8, shift=(0, 0)) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    lab = np.zeros(shape, np.int32)
    for i, (cy, cx) in enumerate(centres, 1):
        lab[(yy - cy - shift[0]) ** 2 + (xx - cx - shift[1]) ** 2 <= r * r] = i
    return lab


def test_semantic_scores_by_hand() -> None:
    truth = np.zeros((10, 10), int)
    truth[:5] = 1
    pred = truth.copy()
    pred[5, :] = 1  # 10 wrong pixels of 100
    rows, summary = evaluate([("a", (pred * 255).astype(np.uint8), truth)], EvalOptions("semantic"))
    assert rows[0]["pixel_error"] == pytest.approx(0.10)
    assert rows[0]["iou"] == pytest.approx(50 / 60)
    assert summary["pooled_pixel_error"] == pytest.approx(0.10)


def test_cells_scores_with_known_overlap() -> None:
    truth = disks()
    pred = disks(shift=(0, 3))  # IoU of two r=8 disks 3 px apart is about 0.71
    rows, summary = evaluate([("a", pred, truth)], EvalOptions("cells"))
    assert rows[0]["f1"] == 1.0 and rows[0]["objects"] == 2
    assert 0.6 < rows[0]["seg"] < 0.8
    assert summary["ap_50"] == 1.0 and summary["mean_ap"] < 1.0
    # a probability map is turned into objects first
    probs = np.stack([truth == 0, truth > 0]).astype(np.float32)
    rows, _ = evaluate([("p", probs, truth)], EvalOptions("cells"))
    assert rows[0]["f1"] == 1.0 and rows[0]["seg"] == 1.0


def test_membrane_scores_of_a_perfect_prediction() -> None:
    truth = np.full((40, 40), 255, np.uint8)
    truth[:, 19:21] = 0  # ISBI convention: membranes are black
    truth[19:21, :] = 0
    prob = (truth == 0).astype(np.float32)
    rows, _ = evaluate([("m", prob, truth)], EvalOptions("membranes", truth_foreground=0))
    r = rows[0]
    assert r["v_rand"] == pytest.approx(1.0) and r["v_info"] == pytest.approx(1.0)
    assert (
        r["warping_error"] == 0.0
        and r["pixel_error"] == 0.0
        and r["rand_error"] == pytest.approx(0.0)
    )
    broken = prob.copy()
    broken[:, 19:21] = 0  # a missing membrane merges two regions
    rows, _ = evaluate([("m", broken, truth)], EvalOptions("membranes", truth_foreground=0))
    assert rows[0]["v_rand"] < 0.9 and rows[0]["warping_error"] > 0


def test_files_pair_by_stem_and_missing_ones_are_named(tmp_path, caplog) -> None:
    (tmp_path / "pred").mkdir()
    (tmp_path / "truth").mkdir()
    for name in ("a", "b"):
        write_labels(tmp_path / "truth" / f"{name}.tif", disks())
        write_labels(tmp_path / "pred" / f"{name}_labels.tif", disks(shift=(1, 0)))
    pairs = pair_files(tmp_path / "pred", tmp_path / "truth")
    assert [p[0] for p in pairs] == ["a", "b"]
    write_labels(tmp_path / "truth" / "c.tif", disks())
    with caplog.at_level("WARNING"):
        assert [p[0] for p in pair_files(tmp_path / "pred", tmp_path / "truth")] == ["a", "b"]
    assert "1 ground-truth image(s) without a prediction, not scored: c" in caplog.text
    with pytest.raises(ValueError, match=r"no prediction pairs with a ground-truth image"):
        pair_files(tmp_path / "truth" / "c.tif", tmp_path / "pred" / "a_labels.tif")


def test_stacks_pair_page_by_page(tmp_path) -> None:
    truth = np.stack([disks(), disks(shift=(2, 2))])
    tifffile.imwrite(tmp_path / "t.tif", truth.astype(np.uint16), photometric="minisblack")
    tifffile.imwrite(tmp_path / "p.tif", truth.astype(np.uint16), photometric="minisblack")
    rows, summary = evaluate_files(tmp_path / "p.tif", tmp_path / "t.tif", EvalOptions("cells"))
    assert len(rows) == 2 and summary["seg"] == 1.0


def test_evaluate_command_writes_json_and_csv(tmp_path, capsys) -> None:
    (tmp_path / "pred").mkdir()
    (tmp_path / "truth").mkdir()
    write_image(tmp_path / "truth" / "x.png", (disks() > 0).astype(np.uint8) * 255)
    write_image(tmp_path / "pred" / "x_mask.png", (disks(shift=(0, 2)) > 0).astype(np.uint8) * 255)
    assert (
        main(
            [
                "evaluate",
                str(tmp_path / "pred"),
                str(tmp_path / "truth"),
                "--task",
                "cells",
                "--json",
                str(tmp_path / "s.json"),
                "--csv",
                str(tmp_path / "s.csv"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "over all images" in out and "seg" in out
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["images"][0]["image"] == "x" and data["summary"]["images"] == 1
    assert (tmp_path / "s.csv").read_text().splitlines()[0].startswith("image,precision,recall")
    assert main(["evaluate", str(tmp_path / "nope"), str(tmp_path / "truth")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_class_maps_are_read_as_predict_writes_them() -> None:
    # 0/255 is the 2-class mask predict writes; other values are class indices, even when a
    # map of more classes holds two of them only (0/3 used to be read as a 0/255 mask)
    truth = np.array([[0, 3], [3, 0]])
    rows, _ = evaluate(
        [("a", truth.astype(np.uint8), truth)], EvalOptions("semantic", num_classes=4)
    )
    assert rows[0]["pixel_error"] == 0.0
    mask = (truth > 0).astype(np.uint8) * 255
    rows, _ = evaluate([("a", mask, truth > 0)], EvalOptions("semantic"))
    assert rows[0]["pixel_error"] == 0.0


def test_size_mismatch_is_named() -> None:
    with pytest.raises(ValueError, match=r"img: prediction \(5, 5\) and truth \(6, 6\) differ"):
        evaluate([("img", np.zeros((5, 5), int), np.zeros((6, 6), int))], EvalOptions("semantic"))


@pytest.mark.parametrize("value", [255, 1])
def test_semantic_truth_in_any_two_values(value) -> None:
    truth = np.zeros((10, 10), np.uint8)
    truth[:5] = value
    pred = np.zeros((10, 10), np.uint8)
    pred[:4] = 255  # 10 of the 50 object pixels missed
    rows, _ = evaluate([("a", pred, truth)], EvalOptions("semantic"))
    assert rows[0]["pixel_error"] == pytest.approx(0.10)
    assert rows[0]["iou"] == pytest.approx(40 / 50)
    # the value of the objects named explicitly: the other value is background
    rows, _ = evaluate([("a", pred, truth)], EvalOptions("semantic", truth_foreground=0))
    assert rows[0]["pixel_error"] == pytest.approx(0.90)


def test_semantic_scores_of_instance_truth_count_every_object(caplog) -> None:
    truth = disks()
    rows, _ = evaluate([("a", (truth > 0).astype(np.uint8) * 255, truth)], EvalOptions("semantic"))
    assert rows[0]["pixel_error"] == 0.0 and rows[0]["iou"] == 1.0
    assert "--task cells scores objects" in caplog.text


def test_a_folder_of_predict_outputs_scores_the_output_the_task_needs(tmp_path) -> None:
    pred, truth = tmp_path / "pred", tmp_path / "truth"
    pred.mkdir()
    truth.mkdir()
    lab = disks()
    write_labels(truth / "a.tif", lab)
    write_image(pred / "a_mask.png", ((lab > 0) * 255).astype(np.uint8))
    write_labels(pred / "a_labels.tif", lab)
    write_image(pred / "a_overlay.png", np.zeros((64, 64, 3), np.uint8))
    for task, name in (("cells", "a_labels.tif"), ("semantic", "a_mask.png")):
        rows, _ = evaluate_files(pred, truth, EvalOptions(task))
        assert [r["image"] for r in rows] == ["a"]
        ((_, chosen, _),) = pair_files(pred, truth, prefer=PREFERRED[task])
        assert chosen.name == name
    rows, _ = evaluate_files(pred, truth, EvalOptions("cells"))
    assert rows[0]["f1"] == 1.0 and rows[0]["found"] == 2


# --- membranes: polarity as ISBI labels and biounet predict have it --------------------------


def isbi_cross(size: int = 40) -> np.ndarray:
    """A truth in the ISBI convention: cells 255 (white), a 2-px membrane cross 0 (black)."""
    truth = np.full((size, size), 255, np.uint8)
    truth[:, size // 2 - 1 : size // 2 + 1] = 0
    truth[size // 2 - 1 : size // 2 + 1, :] = 0
    return truth


def assert_perfect(row: dict) -> None:
    assert row["pixel_error"] == 0.0 and row["warping_error"] == 0.0
    assert row["v_rand"] == pytest.approx(1.0) and row["v_info"] == pytest.approx(1.0)
    assert row["rand_error"] == pytest.approx(0.0)


def test_membranes_default_options_read_isbi_truth_and_predict_probabilities(caplog) -> None:
    truth = isbi_cross()
    mem = (truth == 0).astype(np.float32)
    probs = np.stack([mem, 1 - mem])  # predict's _probs of an ISBI-trained net: class 0
    with caplog.at_level("INFO", logger="biounet.evaluation"):
        rows, summary = evaluate([("x", probs, truth)], EvalOptions("membranes"))
    assert "truth pixels of value 0 are membrane (the ISBI convention)" in caplog.text
    assert_perfect(rows[0])
    assert summary["v_rand"] == pytest.approx(1.0) and summary["pooled_pixel_error"] == 0.0
    # a single membrane probability map, and the membrane value named for a 0/1 truth
    rows, _ = evaluate([("x", mem, truth)], EvalOptions("membranes"))
    assert_perfect(rows[0])
    rows, _ = evaluate(
        [("x", probs, (truth == 0).astype(np.uint8))], EvalOptions("membranes", truth_foreground=1)
    )
    assert_perfect(rows[0])


def test_membranes_read_predict_masks_as_class_maps(tmp_path) -> None:
    truth = isbi_cross()
    mask = np.where(truth == 0, 0, 255).astype(np.uint8)  # argmax * 255: membrane (class 0) = 0
    rows, _ = evaluate([("x", mask, truth)], EvalOptions("membranes"))
    assert_perfect(rows[0])
    rows, _ = evaluate([("x", 255 - mask, truth)], EvalOptions("membranes"))
    assert rows[0]["pixel_error"] == 1.0  # the inverse mask is all wrong
    three = np.where(truth == 0, 2, 1).astype(np.uint8)  # class indices, membrane class 2
    rows, _ = evaluate([("x", three, truth)], EvalOptions("membranes", membrane_class=2))
    assert_perfect(rows[0])
    # from files, as predict writes them
    (tmp_path / "pred").mkdir()
    (tmp_path / "truth").mkdir()
    write_image(tmp_path / "truth" / "x.png", truth)
    write_image(tmp_path / "pred" / "x_mask.png", mask)
    rows, _ = evaluate_files(tmp_path / "pred", tmp_path / "truth", EvalOptions("membranes"))
    assert_perfect(rows[0])
    with pytest.raises(ValueError, match=r"x: membrane_class 3 is not a class of the probab"):
        evaluate([("x", np.zeros((2, 40, 40)), truth)], EvalOptions("membranes", membrane_class=3))
    with pytest.raises(ValueError, match=r"x: a membrane probability must lie in \[0, 1\]"):
        evaluate([("x", mask.astype(np.float32), truth)], EvalOptions("membranes"))


def test_membrane_summary_is_the_stack_figure_at_one_threshold() -> None:
    truth = isbi_cross()
    mem = truth == 0
    weak = np.where(mem, 0.3, 0.0)  # membranes found only below threshold 0.3
    false_line = np.where(mem, 1.0, 0.0)
    false_line[5, :19] = 0.25  # a faint false membrane cuts a cell below threshold 0.25
    pairs = [("a", weak, truth), ("b", false_line, truth)]
    rows, summary = evaluate(pairs, EvalOptions("membranes"))
    assert [r["v_rand_threshold"] for r in rows] == [0.0, 0.3]  # each slice's own best
    assert all(r["v_rand"] == pytest.approx(1.0) for r in rows)
    assert {"v_rand_split", "v_rand_merge", "v_info_split", "v_info_merge"} <= set(rows[0])
    whole = isbi_scores(np.stack([weak, false_line]), np.stack([mem, mem]))
    for key in ("v_rand", "v_rand_split", "v_rand_merge", "v_rand_threshold", "v_info"):
        assert summary[key] == whole[key]
    assert summary["v_rand"] < 0.98 and summary["mean_v_rand"] == pytest.approx(1.0)
    assert summary["one_minus_v_rand"] == pytest.approx(1 - summary["v_rand"])
    assert "mean_v_rand_threshold" not in summary
    # warping and pixel errors at the threshold 0.5: the weak membranes are all missed
    assert rows[0]["pixel_error"] == pytest.approx(mem.mean())
    assert summary["pooled_warping_error"] == pytest.approx(
        (rows[0]["warping_error"] + rows[1]["warping_error"]) / 2
    )
    # slices of different sizes: only the means
    _, summary = evaluate(
        pairs[:1] + [("c", isbi_cross(20) == 0, isbi_cross(20))], EvalOptions("membranes")
    )
    assert "v_rand" not in summary and "mean_v_rand" in summary


# --- metric selection -----------------------------------------------------------------------


def test_metrics_option_keeps_the_named_metrics() -> None:
    truth = isbi_cross()
    opts = EvalOptions("membranes", metrics=["v_rand", "warping_error"])
    rows, summary = evaluate([("x", (truth == 0).astype(float), truth)], opts)
    assert list(rows[0]) == ["image", "v_rand", "warping_error"]
    assert list(summary) == [
        "images",
        "v_rand",
        "mean_v_rand",
        "mean_warping_error",
        "pooled_warping_error",
    ]
    rows, summary = evaluate([("a", disks(), disks())], EvalOptions("cells", metrics="pq, seg"))
    assert list(rows[0]) == ["image", "pq", "seg"]
    assert set(summary) == {"images", "mean_pq", "mean_seg", "panoptic_quality", "seg"}
    lab = (disks() > 0).astype(np.uint8)
    _, summary = evaluate([("a", lab, lab)], EvalOptions("semantic", metrics=["recall_1"]))
    assert summary == {"images": 1, "pooled_recall_1": 1.0}
    with pytest.raises(ValueError, match=r"unknown metric of task 'membranes' 'v_rnad': did you"):
        evaluate([("x", truth == 0, truth)], EvalOptions("membranes", metrics=["v_rnad"]))
    with pytest.raises(ValueError, match=r"unknown metric of task 'cells' 'v_rand'"):
        evaluate([("a", disks(), disks())], EvalOptions("cells", metrics=["v_rand"]))
    with pytest.raises(ValueError, match=r"metrics ' , ' names no metric; choose from"):
        evaluate([("a", disks(), disks())], EvalOptions("cells", metrics=" , "))
    with pytest.raises(ValueError, match=r"unknown metric of task 'cells' 'f2'"):
        evaluate_files("no/such/pred", "no/such/truth", EvalOptions("cells", metrics=["f2"]))


def test_metric_keys_cover_rows_and_summary() -> None:
    """Every reported entry belongs to a selectable metric, so metrics=[...] can reach it."""
    truth = isbi_cross()
    cases = {
        "membranes": [("x", np.stack([truth == 0, truth != 0]).astype(float), truth)],
        "cells": [("a", disks(), disks())],
        "semantic": [("a", (disks() > 0).astype(np.uint8), (disks() > 0).astype(np.uint8))],
    }
    for task, pairs in cases.items():
        rows, summary = evaluate(pairs, EvalOptions(task))
        keys = metric_keys(task)
        assert set(rows[0]) - {"image"} <= set(keys)
        reached = {"images"}
        for m in keys:
            kept_rows, kept = evaluate(pairs, EvalOptions(task, metrics=[m]))
            assert len(kept_rows[0]) + len(kept) > 2, (task, m)  # each metric shows somewhere
            reached |= set(kept)
        assert reached == set(summary), task


# --- semantic summary -------------------------------------------------------------------------


def test_semantic_summary_has_accuracy_and_per_class_scores(tmp_path, capsys) -> None:
    truth = np.zeros((10, 10), np.uint8)
    truth[:5] = 255
    pred = truth.copy()
    pred[5, :] = 255  # 10 background pixels called foreground
    rows, summary = evaluate([("a", pred, truth)], EvalOptions("semantic"))
    assert rows[0]["accuracy"] == pytest.approx(0.9)
    assert summary["pooled_accuracy"] == pytest.approx(0.9)
    assert summary["pooled_precision_1"] == pytest.approx(50 / 60)
    assert summary["pooled_recall_1"] == 1.0 and summary["pooled_recall_0"] == pytest.approx(0.8)
    assert summary["pooled_iou_0"] == pytest.approx(40 / 50)
    assert summary["pooled_dice_1"] == pytest.approx(100 / 110)
    (tmp_path / "p").mkdir()
    (tmp_path / "t").mkdir()
    write_image(tmp_path / "p" / "a_mask.png", pred)
    write_image(tmp_path / "t" / "a.png", truth)
    assert main(["evaluate", str(tmp_path / "p"), str(tmp_path / "t")]) == 0
    out = capsys.readouterr().out
    assert "pooled_accuracy 0.9000" in out and "pooled_precision_1 0.8333" in out


# --- reports ------------------------------------------------------------------------------------


def strict_json(text: str) -> dict:
    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_reports_write_undefined_scores_as_null_and_empty_cells(tmp_path) -> None:
    empty = np.zeros((16, 16), np.int32)
    one = empty.copy()
    one[3:6, 3:6] = 1
    rows, summary = evaluate([("empty", empty, empty), ("one", one, one)], EvalOptions("cells"))
    assert math.isnan(rows[0]["seg"])
    write_reports(rows, summary, json_path=tmp_path / "s.json", csv_path=tmp_path / "s.csv")
    data = strict_json((tmp_path / "s.json").read_text())
    assert data["images"][0]["seg"] is None and data["images"][1]["seg"] == 1.0
    assert data["summary"]["seg"] == 1.0
    lines = (tmp_path / "s.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert lines[1].split(",")[header.index("seg")] == ""
    assert lines[2].split(",")[header.index("seg")] == "1.0"
    _, summary = evaluate([("empty", empty, empty)], EvalOptions("cells"))
    write_reports([], summary, json_path=tmp_path / "e.json")
    assert strict_json((tmp_path / "e.json").read_text())["summary"]["mean_seg"] is None


# --- 3D ---------------------------------------------------------------------------------------


def ball(shape=(8, 32, 32), centre=(4, 16, 16), r=3.5) -> np.ndarray:
    z, y, x = np.indices(shape)
    d2 = (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2
    return (d2 <= r * r).astype(np.int32)


def test_volume_option_scores_a_stack_as_one_volume(tmp_path) -> None:
    truth = ball()
    pred = np.roll(truth, 1, axis=2)
    write_labels(tmp_path / "t.tif", truth)
    write_labels(tmp_path / "p.tif", pred)
    rows, summary = evaluate_files(tmp_path / "p.tif", tmp_path / "t.tif", EvalOptions("cells"))
    assert len(rows) == 8 and rows[0]["image"] == "t[0]"  # 2D pages: one disk on 7 of them
    assert sum(r["objects"] for r in rows) == 7
    opts = EvalOptions("cells", volume=True)
    rows, summary = evaluate_files(tmp_path / "p.tif", tmp_path / "t.tif", opts)
    assert [(r["image"], r["objects"], r["found"]) for r in rows] == [("t", 1, 1)]
    assert summary["f1"] == 1.0 and summary["seg"] < 1.0
    # a folder holding a stack, predicted as (Z, C, Y, X) probabilities by a 2D net
    (tmp_path / "pred").mkdir()
    (tmp_path / "truth").mkdir()
    write_labels(tmp_path / "truth" / "v.tif", truth)
    probs = np.stack([truth == 0, truth > 0], axis=1).astype(np.float32)
    tifffile.imwrite(tmp_path / "pred" / "v_probs.tif", probs)
    rows, _ = evaluate_files(tmp_path / "pred", tmp_path / "truth", EvalOptions("cells"))
    assert len(rows) == 8 and sum(r["objects"] for r in rows) == 7
    rows, _ = evaluate_files(tmp_path / "pred", tmp_path / "truth", opts)
    assert [(r["objects"], r["found"], r["seg"]) for r in rows] == [(1, 1, 1.0)]
    tifffile.imwrite(tmp_path / "pred" / "v_probs.tif", probs[:, :, :16])
    with pytest.raises(ValueError, match=r"v: the prediction \(8, 2, 16, 32\) does not match"):
        evaluate_files(tmp_path / "pred", tmp_path / "truth", EvalOptions("cells"))


# --- real ISBI 2012 labels ---------------------------------------------------------------------


@pytest.mark.data
@pytest.mark.skipif(
    not (ISBI_LABELS / "29.png").exists(), reason="ISBI 2012 labels not in ../shared/data"
)
def test_isbi_held_out_slices_with_default_membrane_options(tmp_path) -> None:
    from PIL import Image

    pred = tmp_path / "pred"
    pred.mkdir()
    slices = range(25, 30)
    truths = [np.asarray(Image.open(ISBI_LABELS / f"{s}.png")) for s in slices]
    for s, t in zip(slices, truths):
        mem = (t == 0).astype(np.float32)  # membrane is black
        tifffile.imwrite(pred / f"{s}_probs.tif", np.stack([mem, 1 - mem]))
    rows, summary = evaluate_files(pred, ISBI_LABELS, EvalOptions("membranes"))
    assert [r["image"] for r in rows] == [str(s) for s in slices]
    assert summary["v_rand"] == 1.0 and summary["v_info"] == pytest.approx(1.0)
    assert summary["pooled_pixel_error"] == 0.0 and summary["pooled_warping_error"] == 0.0
    # predict's masks of membranes thinned by 1 px: gaps merge cells (V_Rand is harsh on merges)
    for name in ("eroded", "dilated"):
        (pred / name).mkdir()
        for s, t in zip(slices, truths):
            change = ndi.binary_erosion if name == "eroded" else ndi.binary_dilation
            mask = np.where(change(t == 0), 0, 255).astype(np.uint8)
            write_image(pred / name / f"{s}_mask.png", mask)
    _, eroded = evaluate_files(pred / "eroded", ISBI_LABELS, EvalOptions("membranes"))
    assert eroded["v_rand"] < 0.5 and eroded["v_rand_merge"] < eroded["v_rand_split"] == 1.0
    assert 0.01 < eroded["pooled_pixel_error"] < 0.1 and eroded["pooled_warping_error"] > 0
    # membranes thickened by 1 px: small splits only, no merges
    _, dilated = evaluate_files(pred / "dilated", ISBI_LABELS, EvalOptions("membranes"))
    assert 0.99 < dilated["v_rand"] < 1.0 and dilated["v_rand_split"] < dilated["v_rand_merge"]
    assert 0.01 < dilated["pooled_pixel_error"] < 0.1
