"""The flags of every verb of the ``biounet`` command, one function per verb.

Each ``add_*`` function adds one verb and names its action in :mod:`biounet.cli.commands`.
Flags that verbs share come from :mod:`biounet.cli.flags`. Building the parser imports no
torch or numpy, so ``biounet --help`` answers at once.
"""

from __future__ import annotations

import argparse
from typing import TypeAlias

from biounet._version import __version__
from biounet.cli import commands
from biounet.cli.flags import (
    BACKENDS,
    DEMO_TASKS,
    EXPORT_FORMATS,
    INSTANCE_KINDS,
    MASK_FORMATS,
    OUTPUT_FORMATS,
    evaluation_flags,
    global_flags,
    training_flags,
)

__all__ = ["build_parser"]

#: what ``add_subparsers`` returns (argparse has no public name for its type)
Verbs: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def build_parser() -> argparse.ArgumentParser:
    """The ``biounet`` parser: ``--version``, ``-v``/``-q`` (before or after the verb), verbs.

    Each verb's namespace holds ``func``, its action: a function of the namespace that
    returns the exit status.
    """
    parser = argparse.ArgumentParser(
        prog="biounet",
        description="U-Net (Ronneberger et al. 2015) for biomedical image segmentation.",
    )
    parser.add_argument("--version", action="version", version=f"biounet {__version__}")
    global_flags(parser)
    # -v and -q may also follow the verb: every verb's parser inherits them from this one
    after_verb = argparse.ArgumentParser(add_help=False)
    global_flags(after_verb, after_verb=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in VERBS:
        add(sub, after_verb)
    return parser


def add_demo(sub: Verbs, parent: argparse.ArgumentParser) -> None:
    """``biounet demo``: train, segment, evaluate and report in one go."""
    p = sub.add_parser(
        "demo",
        parents=[parent],
        help="train, segment, evaluate and report on built-in synthetic cells (no download)",
        description="Generate the synthetic cells dataset, train the cpu preset for a few "
        "minutes, segment held-out images with overlap-tile inference, score them (IoU, SEG, "
        "AP@0.5) and write a run folder with the model, predictions, scores and report.html. "
        "With --data, the same on your dataset (its validation images are the held-out set).",
    )
    p.add_argument("--out", metavar="RUN", help="run folder (default: ./biounet-demo, -2, ...)")
    p.add_argument("--data", metavar="DIR", help="your dataset instead of the synthetic cells")
    p.add_argument(
        "--minutes", type=float, default=5.0, metavar="M", help="training time (default 5)"
    )
    p.add_argument("--images", type=int, default=16, metavar="N", help="synthetic training images")
    p.add_argument("--test-images", type=int, default=4, metavar="N", help="synthetic test images")
    p.add_argument("--size", type=int, default=256, metavar="PX", help="synthetic image side")
    p.add_argument(
        "--task",
        choices=DEMO_TASKS,
        help="metrics (default: cells for the synthetic data, else semantic; membranes: "
        "ISBI 2012 scores of binary EM masks whose membranes are the non-foreground value)",
    )
    p.add_argument("--no-report", action="store_true", help="skip report.html")
    training_flags(p)
    p.set_defaults(func=commands.cmd_demo)


def add_inspect(sub: Verbs, parent: argparse.ArgumentParser) -> None:
    """``biounet inspect``: what a preset or a trained model is made of."""
    p = sub.add_parser(
        "inspect",
        parents=[parent],
        help="architecture, parameters, margin and valid tiles of a preset or trained model",
        description="Summarise a U-Net preset or a trained model (checkpoint, run folder or "
        "shipped model): layers, feature-map sizes for a tile, parameter count, FLOPs per "
        "output pixel, the margin, the valid tile sizes near a size and, for a model, the "
        "normalisation stored with it.",
    )
    p.add_argument(
        "target",
        metavar="MODEL|PRESET",
        help="a checkpoint, a run folder, a shipped model or a preset name",
    )
    p.add_argument(
        "--near",
        type=int,
        default=None,
        metavar="PX",
        help="list valid tile sizes near PX (default: the preset's tile)",
    )
    p.add_argument(
        "--count",
        type=int,
        default=3,
        metavar="N",
        help="how many valid sizes to list on each side (default 3)",
    )
    p.add_argument("--no-flops", action="store_true", help="skip counting FLOPs")
    p.set_defaults(func=commands.cmd_inspect)


def add_train(sub: Verbs, parent: argparse.ArgumentParser) -> None:
    """``biounet train``: train a network on a dataset folder, or resume a run."""
    p = sub.add_parser(
        "train",
        parents=[parent],
        help="train a U-Net on a folder of images and annotations",
        description="Train on DATA (images/ + labels/ or masks/, a Cell Tracking Challenge "
        "sequence, or a pair of stacks). Settings: a preset, then --config FILE, then flags "
        "and --set key.sub=value; the resolved configuration is written to OUT/config.yaml.",
    )
    p.add_argument(
        "data", metavar="DATA", nargs="?", help="dataset folder (not needed with --resume)"
    )
    p.add_argument("--out", metavar="RUN", help="run folder to create (or resume)")
    p.add_argument(
        "--preset",
        default=None,
        help="ronneberger2015, cpu, gpu, cpu3d or gpu3d (default: cpu; cpu and gpu "
        "become cpu3d and gpu3d with --set data.ndim=3)",
    )
    p.add_argument("--config", metavar="FILE", help="YAML file of settings over the preset")
    p.add_argument("--iterations", type=int, metavar="N")
    p.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved configuration as YAML and exit (nothing is trained)",
    )
    training_flags(p)
    p.add_argument(
        "--init",
        metavar="MODEL",
        help="start from this trained model's weights and network (a checkpoint, a run folder "
        "or a shipped model such as em-membranes): fine-tuning",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.set_defaults(func=commands.cmd_train)


def add_predict(sub: Verbs, parent: argparse.ArgumentParser) -> None:
    """``biounet predict``: segment image files, optionally scored against a truth."""
    p = sub.add_parser(
        "predict",
        parents=[parent],
        help="segment images with a trained model",
        description="Segment INPUTS (files, folders, globs, multi-page stacks, Zarr) with MODEL "
        "(a checkpoint, run folder or shipped model) and write masks, instance labels, "
        "probability maps and overlays to --out, named after each input.",
    )
    p.add_argument(
        "model",
        metavar="MODEL",
        help="checkpoint (.pt), run folder or shipped model (biounet models)",
    )
    p.add_argument("inputs", metavar="INPUTS", nargs="+")
    p.add_argument("--out", required=True, metavar="DIR")
    # what is written
    p.add_argument("--instances", action="store_true", help="also write instance labels")
    p.add_argument(
        "--instance-kind",
        choices=INSTANCE_KINDS,
        default=None,
        help="how instances are made: cells (watershed of the foreground class) or membranes "
        "(EM: the regions between membranes of --membrane-class); default: membranes with "
        "--task membranes, else cells",
    )
    p.add_argument("--probabilities", action="store_true", help="also write probability maps")
    p.add_argument("--overlays", action="store_true", help="also write overlay PNGs (2D)")
    p.add_argument("--no-masks", action="store_true", help="do not write class masks")
    p.add_argument(
        "--mask-format",
        choices=MASK_FORMATS,
        default="auto",
        help="auto (default): PNG for 2D images, TIFF for stacks and 3D volumes",
    )
    p.add_argument(
        "--format",
        dest="output_format",
        choices=OUTPUT_FORMATS,
        default="auto",
        help="files: mask, labels and probabilities as separate files; ome-zarr: one OME-Zarr "
        "(NGFF 0.5) per input with the probabilities, the class map and the instance labels, "
        "at the input's pixel size; auto (default): ome-zarr for OME-Zarr inputs, else files",
    )
    p.add_argument("--overwrite", action="store_true", help="redo inputs whose outputs exist")
    # how the network runs
    p.add_argument("--tile", type=int, metavar="PX", help="network input tile (default: fitted)")
    p.add_argument("--batch-size", type=int, metavar="N")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--tta", action="store_true", help="average over flips and rotations")
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="run the network eagerly or compiled by torch.compile; auto (default): compiled "
        "when the image has enough tiles for the compile time to pay",
    )
    p.add_argument(
        "--min-size",
        type=int,
        default=None,
        metavar="PX",
        help="instances: drop objects smaller than this (default: the model's instance rule, "
        "derived from its training objects; see biounet inspect MODEL)",
    )
    p.add_argument(
        "--h",
        type=float,
        default=None,
        metavar="PX",
        help="instances: depth of the watershed seeds; a cell is split where its distance "
        "transform has two peaks this much above the saddle between them (default: the "
        "model's instance rule)",
    )
    p.add_argument("--shard", metavar="I/N", help="process only files k with k mod N == I")
    # scoring the outputs
    p.add_argument("--truth", metavar="DIR", help="evaluate the outputs against this truth")
    evaluation_flags(p)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=commands.cmd_predict)


def add_evaluate(sub: Verbs, parent: argparse.ArgumentParser) -> None:
    """``biounet evaluate``: score predictions against a ground truth."""
    p = sub.add_parser(
        "evaluate",
        parents=[parent],
        help="score predictions against ground truth",
        description="Score PRED against TRUTH (folders paired by file name, or stacks paired "
        "page by page) with the metrics of the task: semantic (pixel error, IoU, Dice), "
        "cells (AP at IoU 0.5:0.95, F1, PQ, SEG) or membranes (ISBI 2012: V_Rand, V_Info, "
        "warping error, Rand error, pixel error).",
    )
    p.add_argument("pred", metavar="PRED")
    p.add_argument("truth", metavar="TRUTH")
    evaluation_flags(p)
    p.add_argument("--json", metavar="FILE", help="write per-image and overall scores as JSON")
    p.add_argument("--csv", metavar="FILE", help="write per-image scores as CSV")
    p.set_defaults(func=commands.cmd_evaluate)


def add_report(sub: Verbs, parent: argparse.ArgumentParser) -> None:
    """``biounet report``: the HTML page of a run."""
    p = sub.add_parser(
        "report",
        parents=[parent],
        help="a self-contained HTML report page of a run",
        description="Write RUN/report.html: configuration, learning curves, scores and a "
        "gallery of input / ground truth / prediction / weight map for a few validation "
        "images. Self-contained: it opens without network access.",
    )
    p.add_argument("run", metavar="RUN")
    p.add_argument("--out", metavar="HTML", help="where to write (default RUN/report.html)")
    p.add_argument("--images", type=int, default=4, metavar="N", help="gallery size (default 4)")
    p.add_argument("--device", default="cpu", help="for the gallery's predictions")
    p.set_defaults(func=commands.cmd_report)


def add_export(sub: Verbs, parent: argparse.ArgumentParser) -> None:
    """``biounet export``: the network as TorchScript or ONNX, checked against PyTorch."""
    p = sub.add_parser(
        "export",
        parents=[parent],
        help="the network as TorchScript or ONNX, or a bioimage.io model package",
        description="Export MODEL's network (tiling stays in biounet) as TorchScript or ONNX, "
        "check it numerically against the PyTorch model (ONNX through onnxruntime) and write "
        "a JSON beside it with the input axes, valid tiles, margin, classes and normalisation; "
        "or, with --format bioimageio, a bioimage.io model package (a folder, or a .zip) for "
        "Fiji (deepImageJ), ilastik and the bioimage.io model zoo.",
    )
    p.add_argument(
        "model",
        metavar="MODEL",
        help="checkpoint (.pt), run folder or shipped model (biounet models)",
    )
    p.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    p.add_argument("--out", required=True, metavar="FILE")
    p.add_argument("--tile", type=int, metavar="PX", help="example tile (default: fitted)")
    p.add_argument("--atol", type=float, default=1e-4, help="largest allowed difference")
    p.add_argument("--no-check", action="store_true", help="skip the numerical check")
    package = p.add_argument_group("bioimage.io package (--format bioimageio)")
    package.add_argument(
        "--sample", metavar="IMAGE", help="an image like the model's input for the test tensors"
    )
    package.add_argument("--name", help="the package's name (default: biounet + the run)")
    package.add_argument(
        "--author", action="append", default=[], metavar="NAME", help="an author (repeatable)"
    )
    package.add_argument("--license", default="CC-BY-4.0", help="SPDX id (default CC-BY-4.0)")
    p.set_defaults(func=commands.cmd_export)


def add_plot(sub: Verbs, parent: argparse.ArgumentParser) -> None:
    """``biounet plot``: the learning curves of a run."""
    p = sub.add_parser(
        "plot",
        parents=[parent],
        help="learning curves of a run as PNG",
        description="Write RUN/learning_curves.png from RUN/metrics.jsonl.",
    )
    p.add_argument("run", metavar="RUN")
    p.add_argument("--out", metavar="PNG", help="where to write (default RUN/learning_curves.png)")
    p.set_defaults(func=commands.cmd_plot)


def add_models(sub: Verbs, parent: argparse.ArgumentParser) -> None:
    """``biounet models``: the models shipped with biounet."""
    p = sub.add_parser(
        "models",
        parents=[parent],
        help="list the pretrained models shipped with biounet",
        description="The models shipped with biounet, usable by name wherever a checkpoint is "
        "(predict, export, inspect, train --init): what each was trained on, its licence and "
        "its scores on held-out images. With NAME: its whole card.",
    )
    p.add_argument("name", metavar="NAME", nargs="?", help="show this model's card")
    p.set_defaults(func=commands.cmd_models)


#: the verbs, in the order ``biounet --help`` lists them
VERBS = (
    add_demo,
    add_inspect,
    add_train,
    add_predict,
    add_evaluate,
    add_report,
    add_export,
    add_plot,
    add_models,
)
