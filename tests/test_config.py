"""The training configuration: presets, YAML round trips, type coercion, ranges and combinations."""

import pytest

from biounet.config import (
    TRAIN_PRESETS,
    build_config,
    config_from_dict,
    dump_config,
    load_config,
    parse_override,
    save_config,
)


def test_cpu_and_gpu_presets_become_volume_presets_for_volumes(tmp_path) -> None:
    vol = build_config("cpu", data={"ndim": 3})
    assert vol.preset == "cpu3d" and vol.model == {"preset": "compact3d"}
    assert vol.weights.balance == "none" and vol.weights.max_class_weight == 10.0
    assert vol.unet_config().padding == "same" and vol.tile == 64
    assert build_config("gpu", overrides=[parse_override("data.ndim=3")]).preset == "gpu3d"
    (tmp_path / "c.yaml").write_text("data:\n  ndim: 3\n")
    assert build_config("cpu", tmp_path / "c.yaml").preset == "cpu3d"  # from a file too
    # the last word on ndim counts; other presets stay as asked
    assert build_config("cpu", tmp_path / "c.yaml", data={"ndim": 2}).preset == "cpu"
    assert build_config("ronneberger2015", data={"ndim": 3}).preset == "ronneberger2015"
    assert build_config("cpu3d").data.ndim == 3 and build_config("gpu3d").amp == "bf16"
    with pytest.raises(ValueError, match="max_class_weight must be 0"):
        build_config("cpu", weights={"max_class_weight": 0.5})


def test_presets_and_overrides() -> None:
    paper = build_config("ronneberger2015")
    assert (
        paper.model["preset"] == "ronneberger2015" and paper.batch_size == 1 and paper.tile == 572
    )
    assert (paper.optim.name, paper.optim.momentum) == ("sgd", 0.99)
    assert (paper.weights.w0, paper.weights.sigma, paper.augment.elastic_sigma) == (10.0, 5.0, 10.0)
    gpu = build_config("gpu")
    assert gpu.amp == "bf16" and gpu.optim.name == "adamw" and gpu.loss.dice > 0
    assert set(TRAIN_PRESETS) == {"ronneberger2015", "cpu", "gpu", "cpu3d", "gpu3d"}
    cfg = build_config(
        "cpu",
        overrides=[parse_override("optim.lr=0.5"), parse_override("augment.scale=[0.8, 1.2]")],
    )
    assert cfg.optim.lr == 0.5 and cfg.augment.scale == (0.8, 1.2) and cfg.optim.name == "adamw"


def test_yaml_file_and_round_trip(tmp_path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("iterations: 7\noptim:\n  lr: 0.25\ndata:\n  annotation: instances\n")
    cfg = build_config("cpu", f)
    assert cfg.iterations == 7 and cfg.optim.lr == 0.25 and cfg.optim.weight_decay == 1e-4
    save_config(cfg, tmp_path / "resolved.yaml")
    assert load_config(tmp_path / "resolved.yaml") == cfg


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("iteration: 5\n", r"unknown key in the config 'iteration': did you mean 'iterations'"),
        ("optim:\n  momentun: 0.9\n", r"unknown key in optim 'momentun': did you mean 'momentum'"),
        ("optim:\n  name: adan\n", r"unknown optimizer 'adan': did you mean 'adam'"),
        ("- a list\n", "a config file holds a mapping"),
        ("iterations: 0\n", "iterations must be >= 1"),
    ],
)
def test_bad_config_files(tmp_path, text, message) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(text)
    with pytest.raises(ValueError, match=message):
        build_config("cpu", f)


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        # YAML 1.1 (PyYAML) reads 1e-3 without a dot as a string
        ("optim:\n  lr: 1e-3\n", ("optim", "lr"), 0.001),
        ("checkpoint_minutes: 2\n", ("checkpoint_minutes",), 2.0),
        ("iterations: 1e4\n", ("iterations",), 10000),
        ("data:\n  val_names: [25, 26]\n", ("data", "val_names"), ["25", "26"]),
        ("data:\n  foreground: null\n", ("data", "foreground"), None),
        ("augment:\n  scale: [0.8, 1.2]\n", ("augment", "scale"), (0.8, 1.2)),
        ("model:\n  dropout: 2e-1\n", ("model",), {"preset": "narrow", "dropout": 0.2}),
        ("data:\n  normalize: {mode: range, vmax: 4e3}\n", ("data", "normalize"), None),
    ],
)
def test_config_values_are_converted_to_their_types(tmp_path, text, key, expected) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(text)
    value = build_config("cpu", f)
    for k in key:
        value = value[k] if isinstance(value, dict) else getattr(value, k)
    if key == ("data", "normalize"):
        assert value == {"mode": "range", "vmax": 4000.0} and isinstance(value["vmax"], float)
    else:
        assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("batch_size=2.5", r"^batch_size: expected int, got 2\.5 \(float\)$"),
        ("deterministic=maybe", r"^deterministic: expected bool \(true or false\), got 'maybe'"),
        ("channels_last=1", r"^channels_last: expected bool \(true or false\), got 1 \(int\)"),
        ("optim.lr=fast", r"^optim\.lr: expected float \(a finite number\), got 'fast' \(str\)"),
        ("optim.lr=.nan", r"^optim\.lr: expected float \(a finite number\), got nan"),
        ("data.val_names=25", r"^data\.val_names: expected list of str, got 25 \(int\)"),
        ("data.foreground=high", r"^data\.foreground: expected int or None, got 'high'"),
        ("loss.dice_class_weights=[1, a]", r"^loss\.dice_class_weights\[1\]: expected float"),
        ("augment.scale=[0.8]", r"^augment\.scale: expected \(float, float\) \(2 values\)"),
        ("optim=adam", r"^optim: expected a mapping, got 'adam'"),
        ("model.dropout=much", r"^model\.dropout: expected float"),
        ("data.normalize={mode: range, vmax: top}", r"^data\.normalize\.vmax: expected float"),
        # ranges
        ("optim.lr=-1", r"optim\.lr must be > 0, got -1\.0"),
        ("optim.lr=0", r"optim\.lr must be > 0, got 0\.0"),
        ("checkpoint_minutes=-1", r"checkpoint_minutes must be >= 0, got -1\.0"),
        ("max_minutes=-0.5", r"max_minutes must be >= 0, got -0\.5"),
        ("workers=-1", r"workers must be >= 0"),
        ("optim.momentum=1", r"optim\.momentum must be in \[0, 1\)"),
        ("oversample=1.5", r"oversample is a probability in \[0, 1\], got 1\.5"),
        ("loss.dice_class_weights=[1, 2, 3]", r"dice_class_weights has 3 values for 2 classes"),
        ("data.val_names=[a]", None),  # fine here; unknown names are found by split()
        # the network and the normalisation, before any data is read
        ("model.dropuot=0.2", r"unknown key in model 'dropuot': did you mean 'dropout'"),
        ("model.preset=narow", r"unknown model\.preset 'narow': did you mean 'narrow'"),
        ("model.dropout=2", r"model: dropout must be in \[0, 1\), got 2\.0"),
        ("model.padding=full", r"^model: unknown padding 'full'"),
        ("model.num_classes=3", r"model\.num_classes \(3\) and data\.num_classes \(2\) disagree"),
        ("model.in_channels=3", r"model\.in_channels: the input channels follow the images"),
        ("data.normalize={mdoe: x}", r"unknown key in data\.normalize 'mdoe': did you mean 'mode'"),
        ("data.normalize={mode: pct}", r"data\.normalize: unknown normalisation mode 'pct'"),
        ("compile=true", None),
    ],
)
def test_config_values_are_checked(setting, message) -> None:
    overrides = [parse_override(setting)]
    if message is None:
        build_config("cpu", overrides=overrides)
        return
    with pytest.raises(ValueError, match=message):
        build_config("cpu", overrides=overrides)


def test_config_combinations_are_checked() -> None:
    with pytest.raises(
        ValueError, match=r"data\.val_path \('v'\) and data\.val_names .* give only one"
    ):
        build_config("cpu", data={"val_path": "v", "val_names": ["a"]})
    with pytest.raises(ValueError, match=r"unknown compile_backend 'eagr': did you mean 'eager'"):
        build_config("cpu", compile=True, compile_backend="eagr")
    with pytest.raises(ValueError, match="loss.ce and loss.dice are both 0"):
        build_config("cpu", loss={"ce": 0, "dice": 0})


def test_dump_config_is_the_resolved_configuration_as_yaml() -> None:
    import yaml

    cfg = build_config("gpu", overrides=[parse_override("optim.lr=1e-4")])
    text = dump_config(cfg)
    d = yaml.safe_load(text)
    assert d["preset"] == "gpu" and d["amp"] == "bf16" and d["optim"]["lr"] == 1e-4
    assert d["model"] == {
        "preset": "ronneberger2015",
        "base_width": 32,
        "norm": "batch",
        "dropout": 0.0,
    }
    assert config_from_dict(d) == cfg  # every field, round trip
