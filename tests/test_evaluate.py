import json

import numpy as np
import pytest
import tifffile

from biounet.cli import main
from biounet.data import write_image, write_labels
from biounet.evaluation import EvalOptions, evaluate, evaluate_files, pair_files


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
        from biounet.evaluation import PREFERRED

        ((_, (chosen, _), _),) = pair_files(pred, truth, prefer=PREFERRED[task])
        assert chosen.name == name
    rows, _ = evaluate_files(pred, truth, EvalOptions("cells"))
    assert rows[0]["f1"] == 1.0 and rows[0]["found"] == 2
