import argparse
import re
import subprocess
import sys

import pytest

from biounet.cli import main


def test_help_does_not_import_torch() -> None:
    # `biounet --help` must answer at once: the CLI module may not import torch or numpy
    code = "import sys, biounet.cli, biounet; print('torch' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_help_lists_the_verbs(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: biounet")
    for verb in ("demo", "inspect", "train", "predict", "evaluate", "report", "export", "plot"):
        assert re.search(rf"^ +{verb} +\S", out, re.MULTILINE), verb


def test_inspect_paper_preset(capsys) -> None:
    assert main(["inspect", "ronneberger2015", "--near", "570"]) == 0
    out = capsys.readouterr().out
    assert "parameters: 31,030,658" in out
    assert "convolution layers: 23" in out
    assert "margin: 92 px per side" in out
    assert "556->372  [572->388]  588->404" in out
    assert "widths 64-128-256-512-1024" in out
    # counted by torch's flop counter; by hand: 2 * C_in * C_out * k**2 per output px and conv,
    # summed over the 23 convolutions at 572 px in, 388 px out: 300.86 GFLOP, 1.9985 M per px
    assert "FLOPs per output pixel at tile 572: 1.998 M (300.9 GFLOP per tile)" in out
    # the margin is the context of an output tile on the pooling grid, not a pixel's receptive
    # field (a single pixel of the paper's net sees 188 to 204 px, depending on its phase)
    assert "margin: 92 px per side (the context of an output tile that starts on the 16 px" in out
    assert "receptive field" not in out
    # the feature-map table: level 0 is 568 px after its convolutions, the output 388
    assert "    0     64          568        388" in out


def test_inspect_3d_preset_without_flops(capsys) -> None:
    assert main(["inspect", "narrow3d", "--no-flops"]) == 0
    out = capsys.readouterr().out
    assert "3D U-Net" in out and "margin: 44 voxels per side" in out
    assert "FLOPs" not in out


def test_unknown_preset_is_one_clear_line(capsys) -> None:
    assert main(["inspect", "ronneberger"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        "biounet inspect: error: unknown preset 'ronneberger': did you mean 'ronneberger2015'? "
        "(choices: 'ronneberger2015', 'narrow', 'narrow3d', 'compact3d', 'cpu', 'gpu', 'cpu3d', "
        "'gpu3d') (or give a checkpoint file, a run folder or a shipped model: biounet models)"
    )


def test_inspect_training_preset(capsys) -> None:
    # `cpu`, the default training preset, is the narrow net at its 380 px training tile
    assert main(["inspect", "cpu", "--no-flops"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("cpu: the network of the 'cpu' training preset")
    assert "parameters: 1,942,306" in out and "tile 380 -> output 196 px" in out
    assert main(["inspect", "gpu", "--no-flops"]) == 0
    assert "widths 32-64-128-256-512" in capsys.readouterr().out


def test_train_print_config(capsys) -> None:
    import yaml

    assert (
        main(["train", "--preset", "ronneberger2015", "--print-config", "--set", "tile=508"]) == 0
    )
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["preset"] == "ronneberger2015" and cfg["tile"] == 508
    assert cfg["optim"]["name"] == "sgd" and cfg["optim"]["momentum"] == 0.99
    assert cfg["weights"]["w0"] == 10.0 and cfg["weights"]["sigma"] == 5.0


def test_train_needs_out_and_data(capsys) -> None:
    assert main(["train", "somewhere"]) == 2
    assert "give --out RUN" in capsys.readouterr().err
    assert main(["train", "--out", "x"]) == 2
    assert "give the DATA folder" in capsys.readouterr().err


def test_resume_refuses_changed_settings(tmp_path, capsys) -> None:
    from biounet.config import build_config, save_config

    run = tmp_path / "run"
    run.mkdir()
    save_config(build_config("cpu", data={"path": "DATA"}), run / "config.yaml")
    assert main(["train", "--out", str(run), "--resume", "--lr", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "optim.lr" in err and "cannot change" in err
    assert main(["train", "--out", str(run), "--resume", "--preset", "gpu"]) == 2
    assert "--preset and --config cannot be used with --resume" in capsys.readouterr().err


def test_console_script_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "biounet.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.startswith("biounet ")


def test_inspect_a_trained_model(tmp_path, capsys) -> None:
    import torch

    import biounet
    from biounet.checkpoint import save_checkpoint
    from biounet.data import Normalizer

    torch.manual_seed(0)
    net = biounet.UNet(depth=2, base_width=4)
    (tmp_path / "run").mkdir()
    path = save_checkpoint(
        tmp_path / "run" / "best.pt",
        net,
        iteration=7,
        normalize=Normalizer(mode="percentile", low=2.0, high=99.0).to_dict(),
        class_names=["background", "cell"],
        tile=60,
    )
    assert main(["inspect", str(tmp_path / "run"), "--count", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{path}: a trained U-Net")
    assert f"parameters: {net.count_parameters():,}" in out
    assert f"margin: {net.margin} px per side" in out
    assert "tile 60 -> output 20 px" in out
    assert "valid tile sizes near 60 (input->output): 56->16  [60->20]" in out
    assert "FLOPs per output pixel at tile 60" in out
    assert "checkpoint: " in out and "(iteration 7, biounet " in out
    assert "classes: background, cell" in out
    assert "normalisation applied by predict: mode=percentile, low=2.0, high=99.0" in out


def test_inspect_missing_checkpoint_is_one_line(tmp_path, capsys) -> None:
    assert main(["inspect", str(tmp_path / "gone.pt")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"biounet inspect: error: {tmp_path / 'gone.pt'}: no such checkpoint"
    )


@pytest.mark.parametrize(
    "verb", ["demo", "inspect", "train", "predict", "evaluate", "report", "export", "plot"]
)
def test_every_verb_has_help(verb, capsys) -> None:
    # the README: `biounet VERB --help` lists every option
    with pytest.raises(SystemExit) as exit_:
        main([verb, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: biounet {verb}") and "--" in out


def test_quiet_and_verbose_set_the_log_level() -> None:
    import logging

    log = logging.getLogger("biounet")
    for flags, level in ((["-q"], logging.WARNING), (["-v"], logging.DEBUG), ([], logging.INFO)):
        assert main([*flags, "inspect", "narrow", "--no-flops"]) == 0
        assert log.level == level, flags


def test_help_of_every_verb_imports_neither_torch_nor_numpy() -> None:
    # building every verb's parser (the choices included) stays light
    code = (
        "import sys\n"
        "from biounet.cli import main\n"
        "for argv in (['--help'], ['predict', '--help'], ['demo', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('torch' in sys.modules, 'numpy' in sys.modules, file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stderr.split() == ["False", "False"]


def choice_flags(parser: argparse.ArgumentParser, verb: str = "") -> dict[tuple[str, str], tuple]:
    """(verb, flag's dest) -> its choices, for every flag of every verb that has choices."""
    found = {}
    # argparse lists a parser's flags only in its `_actions`; the verbs are a `_SubParsersAction`
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(choice_flags(sub, name))
        elif action.choices is not None:
            found[verb, action.dest] = tuple(action.choices)
    return found


def test_every_choice_list_is_the_library_constant() -> None:
    # the parser keeps its choices as literal tuples (no torch at --help); each must be the
    # library's own list, and a new flag with choices must be tied here to the list it mirrors
    import biounet.data.annotations
    import biounet.demo
    import biounet.evaluation
    import biounet.export
    import biounet.inference.backend
    import biounet.inference.postprocess
    import biounet.segment
    from biounet.cli.parser import build_parser

    tasks = biounet.evaluation.TASKS
    annotation_kinds = biounet.data.annotations.ANNOTATION_KINDS
    ties = {
        ("demo", "task"): biounet.demo.TASKS,
        ("demo", "annotation"): annotation_kinds,
        ("train", "annotation"): annotation_kinds,
        ("predict", "task"): tasks,
        ("predict", "instance_kind"): biounet.inference.postprocess.INSTANCE_KINDS,
        ("predict", "mask_format"): biounet.segment.MASK_FORMATS,
        ("predict", "output_format"): biounet.segment.OUTPUT_FORMATS,
        ("predict", "backend"): biounet.inference.backend.BACKENDS,
        ("evaluate", "task"): tasks,
        ("export", "format"): biounet.export.EXPORT_FORMATS,
    }
    found = choice_flags(build_parser())
    assert sorted(found) == sorted(ties), "tie each flag with choices to its library constant"
    for flag, choices in found.items():
        assert choices == tuple(ties[flag]), flag


def test_choice_flags_finds_a_new_untied_flag() -> None:
    from biounet.cli.parser import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub.choices["plot"].add_argument("--style", choices=("dark", "light"))
    assert choice_flags(parser)["plot", "style"] == ("dark", "light")


@pytest.mark.parametrize(
    "argv",
    [
        ["predict", "m.pt", "x.png", "--out", "o"],
        ["train", "DATA"],
        ["evaluate", "pred", "truth"],
        ["inspect", "narrow"],
    ],
)
def test_global_flags_also_follow_the_verb(argv) -> None:
    from biounet.cli.parser import build_parser

    parse = build_parser().parse_args
    assert parse(argv).quiet is False and parse(argv).verbose == 0
    for args in (parse(["-q", *argv]), parse([*argv, "-q"]), parse([*argv, "--quiet"])):
        assert args.quiet is True and args.verbose == 0
    for args in (parse(["-v", *argv]), parse([*argv, "-v"]), parse([*argv, "--verbose"])):
        assert args.verbose == 1 and args.quiet is False
    assert parse([*argv, "-vv"]).verbose == 2
    # a flag given before the verb is kept when the verb's parser does not see it again
    assert parse(["-q", *argv, "-v"]).quiet is True


def test_quiet_and_verbose_after_the_verb_set_the_log_level() -> None:
    import logging

    log = logging.getLogger("biounet")
    for flags, level in ((["-q"], logging.WARNING), (["-v"], logging.DEBUG), ([], logging.INFO)):
        assert main(["inspect", "narrow", "--no-flops", *flags]) == 0
        assert log.level == level, flags


@pytest.mark.parametrize(
    "error, message",
    [
        (ValueError("tile 13 is too small"), "tile 13 is too small"),
        (
            FloatingPointError("the loss became nan at iteration 3; lower optim.lr"),
            "the loss became nan at iteration 3; lower optim.lr",
        ),
        (FileNotFoundError("run/best.pt: no such checkpoint"), "run/best.pt: no such checkpoint"),
        (FileExistsError("out holds a run"), "out holds a run"),
        (PermissionError("out: cannot create the folder"), "out: cannot create the folder"),
        (OSError(28, "No space left on device", "out/a.png"), "out/a.png: No space left on device"),
        (
            FileNotFoundError(2, "No such file or directory", "x.tif"),
            "x.tif: No such file or directory",
        ),
        (
            ImportError("ONNX export needs onnx: pip install 'biounet[export]'"),
            "ONNX export needs onnx",
        ),
        (ModuleNotFoundError("No module named 'zarr'", name="zarr"), "No module named 'zarr'"),
    ],
)
def test_user_errors_are_one_line_with_status_2(monkeypatch, capsys, error, message) -> None:
    import biounet.cli.commands

    def fail(args):
        raise error

    monkeypatch.setattr(biounet.cli.commands, "cmd_plot", fail)
    assert main(["plot", "run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"biounet plot: error: {message}") and len(err.splitlines()) == 1
    # -v (before or after the verb) shows where it came from first
    for argv in (["-v", "plot", "run"], ["plot", "run", "-v"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("Traceback (most recent call last):") and "in fail" in err
        assert err.splitlines()[-1].startswith(f"biounet plot: error: {message}")


def test_wrong_types_given_by_the_user_and_out_of_memory_are_user_errors(
    monkeypatch, capsys
) -> None:
    import torch

    import biounet.cli.commands
    from biounet.core.checks import InputTypeError

    cases = [
        (
            InputTypeError("image values are complex (complex64)"),
            "image values are complex (complex64)",
        ),
        (
            torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
            "CUDA out of memory. Tried to allocate 2.00 GiB; use a smaller --tile or "
            "--batch-size, or --device cpu",
        ),
    ]
    for error, message in cases:

        def fail(args, error=error):
            raise error

        monkeypatch.setattr(biounet.cli.commands, "cmd_plot", fail)
        assert main(["plot", "run"]) == 2
        err = capsys.readouterr().err
        assert err == f"biounet plot: error: {message}\n"


def test_a_complex_image_is_a_one_line_error(tmp_path, capsys) -> None:
    import numpy as np

    from biounet import UNet
    from biounet.checkpoint import save_checkpoint

    model = save_checkpoint(tmp_path / "m.pt", UNet(depth=1, base_width=2, padding="same"))
    np.save(tmp_path / "c.npy", np.ones((8, 8), np.complex64))
    assert main(["predict", str(model), str(tmp_path / "c.npy"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("biounet predict: error: ") and "complex" in err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "error",
    [
        TypeError("unsupported operand"),
        KeyError("tile"),
        RuntimeError("CUDA error"),
        AttributeError("'NoneType' object has no attribute 'net'"),
        ImportError("cannot import name 'x' from 'biounet.metrics'", name="biounet.metrics"),
        ModuleNotFoundError("No module named 'biounet.gone'", name="biounet.gone"),
    ],
)
def test_unexpected_errors_show_the_traceback_with_status_1(monkeypatch, capsys, error) -> None:
    import biounet.cli.commands

    def fail(args):
        raise error

    monkeypatch.setattr(biounet.cli.commands, "cmd_plot", fail)
    assert main(["plot", "run"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and "in fail" in err
    assert f"{type(error).__name__}: " in err  # the exception, as Python shows it
    assert err.splitlines()[-1] == (
        f"biounet plot: unexpected error ({type(error).__name__}), likely a bug in biounet: "
        "please report it to the developers with the traceback above"
    )
    assert "biounet plot: error:" not in err


def test_interrupt_is_status_130(monkeypatch, capsys) -> None:
    import biounet.cli.commands

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(biounet.cli.commands, "cmd_plot", interrupted)
    assert main(["plot", "run"]) == 130
    assert capsys.readouterr().err == "biounet plot: interrupted\n"
