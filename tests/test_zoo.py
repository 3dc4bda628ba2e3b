"""Shipped models (biounet.zoo): found by name wherever a checkpoint is, listed with their cards,
and a starting point for fine-tuning (train --init); the em-membranes model when it is shipped."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

import biounet
import biounet.zoo as zoo
from biounet.checkpoint import save_checkpoint
from biounet.cli import main
from biounet.model import UNet

CARD = {"title": "tiny test cells", "task": "semantic", "licence": "MIT",
        "training_data": {"name": "nothing real"},
        "held_out": {"scores": {"iou": 0.5, "dice": 0.66}}}  # fmt: skip


def tiny(path, num_classes=2, in_channels=1, depth=2, half=False):
    """A small checkpoint at ``path`` (weights in half precision with ``half``); its network."""
    torch.manual_seed(0)
    net = UNet(in_channels=in_channels, num_classes=num_classes, depth=depth, base_width=4,
               padding="same", norm="batch")  # fmt: skip
    save_checkpoint(path, net, normalize={"mode": "percentile"},
                    class_names=[f"c{i}" for i in range(num_classes)], tile=[32, 32],
                    train_config={}, instances=None, scale=1.0, spacing=None)  # fmt: skip
    if half:
        p = torch.load(path, weights_only=True)
        p["state_dict"] = {k: v.half() if v.is_floating_point() else v
                           for k, v in p["state_dict"].items()}  # fmt: skip
        torch.save(p, path)
    return net


@pytest.fixture
def shelf(tmp_path, monkeypatch):
    """A zoo folder holding one shipped model, ``tiny`` (half precision), and a card alone."""
    folder = tmp_path / "zoo"
    folder.mkdir()
    net = tiny(folder / "tiny.pt", half=True)
    (folder / "tiny.json").write_text(json.dumps(CARD))
    (folder / "orphan.json").write_text(json.dumps(CARD))  # no weights: not shipped
    monkeypatch.setattr(zoo, "_folder", lambda: folder)
    return net


def test_shipped_models_are_card_and_weights(shelf) -> None:
    models = zoo.shipped()
    assert list(models) == ["tiny"]
    assert models["tiny"].title == "tiny test cells"
    assert zoo.resolve("tiny") == models["tiny"].path


def test_a_path_that_exists_wins_over_a_name(shelf, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny").mkdir()
    assert zoo.resolve("tiny").resolve() == (tmp_path / "tiny").resolve()
    assert str(zoo.resolve("elsewhere.pt")) == "elsewhere.pt"


def test_load_by_name_gives_float32_weights_of_the_model(shelf) -> None:
    model = biounet.load("tiny")
    got = model.net.state_dict()
    for k, v in shelf.state_dict().items():
        assert got[k].dtype == v.dtype
        torch.testing.assert_close(got[k], v.half().to(v.dtype), rtol=0, atol=0)
    image = np.random.default_rng(0).random((40, 50)).astype(np.float32)
    assert biounet.predict(model, image).shape == (2, 40, 50)


def test_a_misspelt_name_lists_the_shipped_models(shelf) -> None:
    with pytest.raises(FileNotFoundError, match=r"shipped: tiny; see biounet models"):
        biounet.load("tinny")
    with pytest.raises(FileNotFoundError, match=r"missing\.pt: no such checkpoint$"):
        biounet.load("missing.pt")  # a path: no list of names


def test_models_command_lists_and_shows_cards(shelf, capsys) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("tiny: tiny test cells\n") and "iou 0.5, dice 0.66" in out
    assert "orphan" not in out
    assert main(["models", "tiny"]) == 0
    card = capsys.readouterr().out
    assert "name: tiny" in card and "licence: MIT" in card and "checkpoint: " in card
    assert main(["models", "huge"]) == 2
    assert "no shipped model 'huge' (shipped: tiny)" in capsys.readouterr().err


def test_predict_and_inspect_by_name(shelf, tmp_path, capsys) -> None:
    from biounet.data import write_image

    write_image(tmp_path / "im.png", (np.arange(48 * 40) % 251).astype(np.uint8).reshape(48, 40))
    assert main(["predict", "tiny", str(tmp_path / "im.png"), "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "im_mask.png").exists()
    assert main(["inspect", "tiny", "--no-flops"]) == 0
    assert "checkpoint: " in capsys.readouterr().out


# --- init: fine-tuning from a trained model -----------------------------------------------------


def init_config(tmp_path, init, **data):
    from biounet.config import build_config
    from biounet.data.synthetic import write_synthetic

    path = write_synthetic(tmp_path / "data", 3, shape=(64, 64), seed=0)
    return build_config("cpu", None, [{
        "data": {"path": str(path), "annotation": "instances", "val_fraction": 0.34, **data},
        "iterations": 2, "tile": 64, "val_every": 2, "compile": False, "recalibrate_bn": 0,
        "init": init,
    }])  # fmt: skip


def test_init_adopts_the_network_and_its_weights(shelf, tmp_path) -> None:
    from biounet.train.setup import build_model
    from biounet.train.warmstart import adopt_network, load_start

    cfg = init_config(tmp_path, "tiny", instance_target="two_class")
    assert cfg.model["preset"] == "narrow"  # the preset's network, until init replaces it
    ck = adopt_network(cfg)
    assert cfg.model["depth"] == 2 and cfg.model["base_width"] == 4 and "preset" not in cfg.model
    net = build_model(cfg, 1)
    load_start(net, ck, "tiny")
    for k, v in shelf.state_dict().items():  # every tensor, the head too (2 classes both)
        torch.testing.assert_close(net.state_dict()[k], v.half().to(v.dtype), rtol=0, atol=0)


def test_init_with_other_classes_starts_a_fresh_head(shelf, tmp_path, caplog) -> None:
    from biounet.train.setup import build_model
    from biounet.train.warmstart import adopt_network, load_start

    cfg = init_config(tmp_path, "tiny")  # three-class target: 3 classes, the model has 2
    ck = adopt_network(cfg)
    net = build_model(cfg, 1)
    fresh = net.head.weight.detach().clone()
    with caplog.at_level("INFO"):
        load_start(net, ck, "tiny")
    assert "3 classes here, 2 in the trained model; the 1x1 head starts afresh" in caplog.text
    assert net.head.weight.shape[0] == 3 and torch.equal(net.head.weight, fresh)
    for k, v in shelf.state_dict().items():  # the rest is the trained model's
        if not k.startswith("head."):
            torch.testing.assert_close(net.state_dict()[k], v.half().to(v.dtype), rtol=0, atol=0)


def test_init_refuses_other_channels_and_dimensions(shelf, tmp_path) -> None:
    from biounet.train.setup import build_model
    from biounet.train.warmstart import adopt_network, load_start

    cfg = init_config(tmp_path, "tiny", instance_target="two_class")
    ck = adopt_network(cfg)
    with pytest.raises(ValueError, match=r"trained on images of 1 channel\(s\), these have 3"):
        load_start(build_model(cfg, 3), ck, "tiny")
    cfg3 = init_config(tmp_path / "b", "tiny", instance_target="two_class")
    cfg3.data.ndim = 3
    with pytest.raises(ValueError, match="a 2D network cannot start a run on 3D data"):
        adopt_network(cfg3)


@pytest.mark.slow
def test_train_init_runs_and_resumes_with_the_adopted_network(shelf, tmp_path, capsys) -> None:
    from biounet.config import load_config

    cfg = init_config(tmp_path, "tiny")
    run = tmp_path / "run"
    flags = ["train", cfg.data.path, "--out", str(run), "--init", "tiny", "--iterations", "2",
             "--set", "tile=64", "--set", "val_every=2", "--set", "compile=false",
             "--set", "data.annotation=instances", "--set", "recalibrate_bn=0"]  # fmt: skip
    assert main(flags) == 0
    saved = load_config(run / "config.yaml")
    assert saved.init == "tiny" and saved.model["depth"] == 2
    assert main(["train", "--out", str(run), "--resume", "--iterations", "3"]) == 0
    assert biounet.load(run).net.config.depth == 2


# --- the shipped EM model ------------------------------------------------------------------------


@pytest.mark.skipif("em-membranes" not in zoo.shipped(), reason="em-membranes not shipped yet")
def test_the_em_model_is_shipped_with_a_complete_card() -> None:
    m = zoo.shipped()["em-membranes"]
    card = m.card
    assert card["task"] == "membranes" and card["recipe"]["script"] == "experiments/em_membranes.py"
    assert set(card["held_out"]["scores"]) >= {"v_rand", "v_info", "pooled_pixel_error"}
    assert hashlib.sha256(m.path.read_bytes()).hexdigest() == card["sha256"]
    assert m.path.stat().st_size < 8 * 2**20  # small enough for the wheel
    model = biounet.load("em-membranes")
    assert model.class_names[:1] and model.num_classes == 2
    probs = biounet.predict(model, np.full((64, 64), 128, np.uint8))
    assert probs.shape == (2, 64, 64)
