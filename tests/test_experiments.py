"""The studies' helpers (experiments/): splits, links, learning-curve fits, naive tiles, seams,
the peer adapter, the shipped model's recipe; what their tables and figures are made of, checked without running a study."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


@pytest.fixture(scope="module")
def ex():
    """The experiments' modules, imported as their scripts import each other."""
    sys.path.insert(0, str(EXPERIMENTS))
    try:
        yield {
            m: importlib.import_module(m)
            for m in ("common", "isbi", "ablations", "peers", "em_membranes")
        }
    finally:
        sys.path.remove(str(EXPERIMENTS))


def test_folds_partition_the_thirty_slices(ex) -> None:
    common = ex["common"]
    [(name, train, test)] = common.isbi_folds(1)
    assert (name, train[-1], test) == ("", "24", ("25", "26", "27", "28", "29"))
    folds = common.isbi_folds(5)
    tests = [t for _, _, t in folds]
    assert sorted(sum(tests, ())) == [f"{i:02d}" for i in range(30)]
    for _, train, test in folds:
        assert len(test) == 6 and not set(train) & set(test) and len(train) == 24
        assert int(test[-1]) - int(test[0]) == 5  # consecutive slices


def test_link_slices_links_and_refuses_another_split(ex, tmp_path) -> None:
    common = ex["common"]
    src = tmp_path / "src"
    for sub in ("images", "labels"):
        (src / sub).mkdir(parents=True)
        for n in ("00", "01", "02"):
            (src / sub / f"{n}.png").write_bytes(n.encode())
    dst = common.link_slices(src, tmp_path / "split", ["00", "02"])
    assert sorted(p.name for p in (dst / "labels").iterdir()) == ["00.png", "02.png"]
    assert (dst / "images" / "02.png").is_symlink()
    assert (dst / "images" / "02.png").read_bytes() == b"02"
    assert common.link_slices(src, tmp_path / "split", ["02", "00"]) == dst  # same split: kept
    with pytest.raises(ValueError, match="not the split"):
        common.link_slices(src, tmp_path / "split", ["00", "01"])
    with pytest.raises(FileNotFoundError, match="07.png"):
        common.link_slices(src, tmp_path / "other", ["07"])


def test_extrapolation_recovers_a_power_law(ex) -> None:
    n = np.array([200, 400, 800, 1600, 3200, 6400], float)
    error = 0.05 + 0.4 * (n / n[-1]) ** -0.6
    curve = [{"iterations": int(i), "v_rand": 1 - e} for i, e in zip(n, error)]
    fit = ex["isbi"].extrapolate(curve)
    assert fit["asymptote"] == pytest.approx(0.05, abs=1e-3)
    assert fit["exponent"] == pytest.approx(0.6, abs=1e-2)
    assert fit["at_10x"] == pytest.approx(0.05 + 0.4 * 10**-0.6, abs=1e-3)
    assert fit["rms_residual"] < 1e-4
    short = ex["isbi"].extrapolate(curve[:3])  # too few points: nothing claimed
    assert short["asymptote"] is None and short["error_now"] == pytest.approx(error[2])


def test_validation_curve_of_a_resumed_run_and_an_error_fit(ex, tmp_path) -> None:
    import json

    records = [{"iteration": 10, "loss": 1.0}, {"iteration": 20, "val_pixel_error": 0.5},
               {"iteration": 40, "val_pixel_error": 0.4}, {"iteration": 40, "val_pixel_error": 0.3},
               {"iteration": 80, "val_pixel_error": 0.2}]  # fmt: skip
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    curve = ex["isbi"].validation_curve(tmp_path)
    assert curve == [{"iterations": 20, "val_pixel_error": 0.5},
                     {"iterations": 40, "val_pixel_error": 0.3},  # the resumed run's record
                     {"iterations": 80, "val_pixel_error": 0.2}]  # fmt: skip
    n = np.array([100, 200, 400, 800, 1600], float)
    error = 0.1 + 0.2 * (n / n[-1]) ** -0.5
    fit = ex["isbi"].extrapolate(
        [{"iterations": int(i), "e": e} for i, e in zip(n, error)], "e", score=False
    )
    assert fit["asymptote"] == pytest.approx(0.1, abs=1e-3)
    assert fit["scale"] == pytest.approx(0.2, abs=1e-3)
    assert fit["error_now"] == pytest.approx(error[-1]) and fit["iterations"] == 1600
    assert fit["determined"]
    rng = np.random.default_rng(0)  # a plateau with noise: no limit to claim
    flat = [{"iterations": int(i), "e": 0.2 + 0.03 * rng.standard_normal()} for i in n]
    assert not ex["isbi"].extrapolate(flat, "e", score=False).get("determined")


def test_border_distance_against_a_loop(ex) -> None:
    d = ex["ablations"].border_distance(23, 7)
    borders = [6.5, 13.5, 20.5]  # between 6|7, 13|14, 20|21
    want = [min(abs(i - b) for b in borders) - 0.5 for i in range(23)]
    assert d.tolist() == want
    assert ex["ablations"].border_distance(5, 8).tolist() == [5] * 5  # one tile: no border


def test_seam_profile_finds_a_seam(ex) -> None:
    a = np.zeros((40, 40), np.float32)
    b = a.copy()
    b[:, 19:21] = 1.0  # a difference on the columns beside the border at 20
    prof = ex["ablations"].seam_profile(a, b, (20, 20), far=5)
    assert prof[0] > 0.4 and all(p == 0 for p in prof[1:])
    assert ex["ablations"].seam_profile(a, a, (20, 20), far=3) == [0.0] * 4


def tiny_model(padding: str):
    from biounet.inference import TrainedModel
    from biounet.model import UNet

    torch.manual_seed(0)
    net = UNet(in_channels=1, num_classes=2, depth=2, base_width=4, padding=padding).eval()
    tile = (76, 76) if padding == "valid" else (32, 32)  # valid: 36 px out, 20 margin
    return TrainedModel(net=net, normalizer=None, class_names=[], tile=tile)


def test_naive_tiles_are_the_network_on_each_tile_alone(ex) -> None:
    model = tiny_model("valid")
    net, m = model.net, model.net.margin
    out = net.output_shape(model.tile)[0]
    image = np.random.default_rng(0).random((2 * out, out + 5)).astype(np.float32)
    probs = ex["ablations"].naive_probs(model, image)
    assert probs.shape == (2, *image.shape)
    padded = np.zeros((out + 2 * m, out + 2 * m), np.float32)
    padded[m : m + out, m : m + 5] = image[out:, out:]  # the last tile: 5 columns, zeros around
    with torch.inference_mode():
        want = torch.softmax(net(torch.from_numpy(padded)[None, None]), 1)[0, :, :, :5]
    np.testing.assert_allclose(probs[:, out:, out:], want.numpy(), atol=1e-6)
    import biounet

    overlap = biounet.predict(model, image)  # overlap-tile: differs, most at the tile borders
    diff = np.abs(probs - overlap)[0]
    assert diff[out - 1 : out + 1].mean() > 2 * diff[out // 2 - 2 : out // 2].mean()


def test_a_peer_network_trains_and_loads_in_the_pipeline(ex, tmp_path, monkeypatch) -> None:
    import biounet
    from biounet.config import build_config
    from biounet.data.synthetic import write_synthetic
    from biounet.model.unet import UNet

    monkeypatch.setattr(UNet, "from_config", UNet.from_config)  # restored after the test

    def peer(c_in: int, c_out: int) -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Conv2d(c_in, 6, 3, padding=1), torch.nn.ReLU(),
                                   torch.nn.Conv2d(6, c_out, 1))  # fmt: skip

    ex["peers"].use_peer_in_biounet(peer)
    data = write_synthetic(tmp_path / "data", 3, shape=(64, 64), seed=0)
    cfg = build_config("cpu", None, [
        {"data": {"path": str(data), "annotation": "instances", "instance_target": "two_class"},
         "iterations": 3, "tile": 64,
         "val_every": 3, "compile": False},
        {"model": {"padding": "same", "depth": 5, "base_width": 2, "dropout": 0.0}},
    ])  # fmt: skip
    biounet.fit(cfg, tmp_path / "run", progress=False)
    model = biounet.load(tmp_path / "run")
    assert type(model.net).__name__ == "PeerInBiounet"
    assert sum(p.numel() for p in model.net.peer.parameters()) == 6 * 9 + 6 + 6 * 2 + 2
    image = np.random.default_rng(1).random((70, 90)).astype(np.float32)
    probs = biounet.predict(model, image)
    assert probs.shape == (2, 70, 90)
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)


def test_the_em_recipe_ships_half_precision_weights_that_load_by_path(ex, tmp_path) -> None:
    import hashlib
    import json

    import biounet
    from biounet.data.synthetic import write_synthetic

    em = ex["em_membranes"]
    data = write_synthetic(tmp_path / "data", 3, shape=(64, 64), seed=0)
    cfg = em.recipe(data, 0.5)
    assert (cfg.data.val_fraction, cfg.max_minutes, cfg.data.foreground) == (0.0, 0.5, 255)
    assert cfg.preset == "cpu" and cfg.model["preset"] == "narrow"
    from dataclasses import replace

    small = replace(cfg, iterations=2, tile=92, compile=False,
                    model={"depth": 2, "base_width": 4},
                    data=replace(cfg.data, annotation="instances"))  # fmt: skip
    biounet.fit(small, tmp_path / "run", progress=False)
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    em.ship(tmp_path / "run", {"task": "membranes"}, zoo)
    card = json.loads((zoo / "em-membranes.json").read_text())
    assert card["sha256"] == hashlib.sha256((zoo / "em-membranes.pt").read_bytes()).hexdigest()
    saved = torch.load(zoo / "em-membranes.pt", weights_only=True)
    assert "optimizer" not in saved and "state_dict" in saved
    floats = [v for v in saved["state_dict"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    assert card["parameters"] == sum(v.numel() for v in saved["state_dict"].values())
    full, half = biounet.load(tmp_path / "run"), biounet.load(zoo / "em-membranes.pt")
    image = np.random.default_rng(0).random((80, 80)).astype(np.float32)
    np.testing.assert_allclose(biounet.predict(half, image), biounet.predict(full, image),
                               atol=1e-2)  # fmt: skip
    assert not list(zoo.glob("*.part"))
