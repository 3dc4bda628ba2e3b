"""The ``biounet`` command: verbs that parse arguments and call the library (imported lazily).

Each verb lives in a ``_cmd_*`` function; heavy imports (torch) happen inside them, so
``biounet --help`` answers at once.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from biounet._version import __version__

log = logging.getLogger("biounet")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="biounet",
        description="U-Net (Ronneberger et al. 2015) for biomedical image segmentation.",
    )
    parser.add_argument("--version", action="version", version=f"biounet {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "demo",
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
        choices=["cells", "semantic", "membranes"],
        help="metrics (default: cells for the synthetic data, else semantic; membranes: "
        "ISBI 2012 scores of binary EM masks whose membranes are the non-foreground value)",
    )
    p.add_argument("--no-report", action="store_true", help="skip report.html")
    _training_flags(p)
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser(
        "inspect",
        help="architecture, parameters, margin and valid tiles of a preset or trained model",
        description="Summarise a U-Net preset or a trained model (checkpoint or run folder): "
        "layers, feature-map sizes for a tile, parameter count, FLOPs per output pixel, the "
        "margin, the valid tile sizes near a size and, for a model, the normalisation stored "
        "with it.",
    )
    p.add_argument(
        "preset", metavar="MODEL|PRESET", help="a checkpoint, a run folder or a preset name"
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
    p.set_defaults(func=_cmd_inspect)

    p = sub.add_parser(
        "train",
        help="train a U-Net on a folder of images and annotations",
        description="Train on DATA (images/ + labels/ or masks/, a Cell Tracking Challenge "
        "sequence, or a pair of stacks). Settings: a preset, then --config FILE, then flags "
        "and --set key.sub=value; the resolved configuration is written to OUT/config.yaml.",
    )
    p.add_argument(
        "data", metavar="DATA", nargs="?", help="dataset folder (not needed with --resume)"
    )
    p.add_argument("--out", metavar="RUN", help="run folder to create (or resume)")
    p.add_argument("--preset", default=None, help="ronneberger2015, cpu or gpu (default: cpu)")
    p.add_argument("--config", metavar="FILE", help="YAML file of settings over the preset")
    p.add_argument("--iterations", type=int, metavar="N")
    p.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved configuration as YAML and exit (nothing is trained)",
    )
    _training_flags(p)
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "predict",
        help="segment images with a trained model",
        description="Segment INPUTS (files, folders, globs, multi-page stacks, Zarr) with MODEL "
        "(a checkpoint or run folder) and write masks, instance labels, probability maps and "
        "overlays to --out, named after each input.",
    )
    p.add_argument("model", metavar="MODEL", help="checkpoint (.pt) or run folder")
    p.add_argument("inputs", metavar="INPUTS", nargs="+")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--instances", action="store_true", help="also write instance labels")
    p.add_argument(
        "--instance-kind",
        choices=["cells", "membranes"],
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
        choices=["auto", "png", "tif"],
        default="auto",
        help="auto (default): PNG for 2D images, TIFF for stacks and 3D volumes",
    )
    p.add_argument("--overwrite", action="store_true", help="redo inputs whose outputs exist")
    p.add_argument("--tile", type=int, metavar="PX", help="network input tile (default: fitted)")
    p.add_argument("--batch-size", type=int, metavar="N")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--tta", action="store_true", help="average over flips and rotations")
    p.add_argument(
        "--min-size",
        type=int,
        default=0,
        metavar="PX",
        help="instances: drop objects smaller than this",
    )
    p.add_argument("--shard", metavar="I/N", help="process only files k with k mod N == I")
    p.add_argument("--truth", metavar="DIR", help="evaluate the outputs against this truth")
    _evaluation_flags(p)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser(
        "evaluate",
        help="score predictions against ground truth",
        description="Score PRED against TRUTH (folders paired by file name, or stacks paired "
        "page by page) with the metrics of the task: semantic (pixel error, IoU, Dice), "
        "cells (AP at IoU 0.5:0.95, F1, PQ, SEG) or membranes (ISBI 2012: V_Rand, V_Info, "
        "warping error, Rand error, pixel error).",
    )
    p.add_argument("pred", metavar="PRED")
    p.add_argument("truth", metavar="TRUTH")
    _evaluation_flags(p)
    p.add_argument("--json", metavar="FILE", help="write per-image and overall scores as JSON")
    p.add_argument("--csv", metavar="FILE", help="write per-image scores as CSV")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser(
        "report",
        help="a self-contained HTML report page of a run",
        description="Write RUN/report.html: configuration, learning curves, scores and a "
        "gallery of input / ground truth / prediction / weight map for a few validation "
        "images. Self-contained: it opens without network access.",
    )
    p.add_argument("run", metavar="RUN")
    p.add_argument("--out", metavar="HTML", help="where to write (default RUN/report.html)")
    p.add_argument("--images", type=int, default=4, metavar="N", help="gallery size (default 4)")
    p.add_argument("--device", default="cpu", help="for the gallery's predictions")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser(
        "export",
        help="the network alone as TorchScript or ONNX, checked against PyTorch",
        description="Export MODEL's network (tiling stays in biounet) as TorchScript or ONNX, "
        "check it numerically against the PyTorch model (ONNX through onnxruntime) and write "
        "a JSON beside it with the input axes, valid tiles, margin, classes and normalisation.",
    )
    p.add_argument("model", metavar="MODEL", help="checkpoint (.pt) or run folder")
    p.add_argument("--format", required=True, choices=["torchscript", "onnx"])
    p.add_argument("--out", required=True, metavar="FILE")
    p.add_argument("--tile", type=int, metavar="PX", help="example tile (default: fitted)")
    p.add_argument("--atol", type=float, default=1e-4, help="largest allowed difference")
    p.add_argument("--no-check", action="store_true", help="skip the numerical check")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser(
        "plot",
        help="learning curves of a run as PNG",
        description="Write RUN/learning_curves.png from RUN/metrics.jsonl.",
    )
    p.add_argument("run", metavar="RUN")
    p.add_argument("--out", metavar="PNG", help="where to write (default RUN/learning_curves.png)")
    p.set_defaults(func=_cmd_plot)
    return parser


_FLAGS = {
    "iterations": ("iterations",),
    "batch_size": ("batch_size",),
    "lr": ("optim", "lr"),
    "tile": ("tile",),
    "val": ("data", "val_path"),
    "val_names": ("data", "val_names"),
    "val_fraction": ("data", "val_fraction"),
    "annotation": ("data", "annotation"),
    "foreground": ("data", "foreground"),
    "num_classes": ("data", "num_classes"),
    "ignore": ("data", "ignore"),
    "workers": ("workers",),
    "seed": ("seed",),
    "deterministic": ("deterministic",),
}


def _training_flags(p: argparse.ArgumentParser) -> None:
    """Options of ``train`` that ``demo`` shares (see ``_FLAGS``)."""
    p.add_argument("--batch-size", type=int, metavar="N")
    p.add_argument("--lr", type=float, metavar="LR", help="learning rate")
    p.add_argument("--tile", type=int, metavar="PX", help="input tile (rounded up to a valid size)")
    p.add_argument("--val", metavar="DIR", help="a separate validation set")
    p.add_argument("--val-names", metavar="NAME", nargs="+", help="validation samples by name")
    p.add_argument("--val-fraction", type=float, metavar="F", help="random validation share")
    p.add_argument("--annotation", choices=["binary", "classes", "instances"])
    p.add_argument("--foreground", type=int, metavar="V", help="object value in binary masks")
    p.add_argument("--num-classes", type=int, metavar="K")
    p.add_argument("--ignore", type=int, metavar="V", help="value of unannotated pixels")
    p.add_argument("--workers", type=int, metavar="N", help="data-loader processes")
    p.add_argument("--seed", type=int)
    p.add_argument("--deterministic", action="store_true", default=None)
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any setting, e.g. --set optim.lr=0.001 --set augment.rotate=0",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _overrides(args: argparse.Namespace) -> list[dict[str, Any]]:
    """``--set`` settings, then the named flags, as nested dicts over the configuration."""
    from biounet.config.schema import parse_override

    overrides = [parse_override(o) for o in args.overrides]
    for flag, keys in _FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            d: dict = {}
            node = d
            for k in keys[:-1]:
                node = node.setdefault(k, {})
            node[keys[-1]] = value
            overrides.append(d)
    return overrides


def _evaluation_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--task",
        choices=["semantic", "cells", "membranes"],
        default=None,
        help="which metrics (default: semantic; cells with --instances)",
    )
    p.add_argument(
        "--truth-foreground",
        type=int,
        metavar="V",
        help="value of the objects in binary truth masks (default: the larger value); task "
        "membranes: value of the membranes (default 0, as in ISBI 2012 labels)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="for probability maps (membranes: for the warping, pixel and Rand errors; "
        "V_Rand and V_Info take the best of 0.0-1.0)",
    )
    p.add_argument(
        "--metrics",
        metavar="A,B,...",
        help="report only these metrics (e.g. v_rand,v_info,warping_error); default all",
    )
    p.add_argument(
        "--volume",
        action="store_true",
        help="score 3D stacks as volumes, not page by page",
    )
    p.add_argument(
        "--membrane-class",
        type=int,
        default=0,
        metavar="K",
        help="membranes: the class of a probability map that is membrane",
    )


def _eval_options(args: argparse.Namespace, task: str) -> Any:
    from biounet.evaluation.scoring import EvalOptions

    return EvalOptions(
        task=task,
        truth_foreground=args.truth_foreground,
        threshold=args.threshold,
        membrane_class=args.membrane_class,
        metrics=args.metrics,
        volume=args.volume,
    )


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from biounet.evaluation.scoring import evaluate_files
    from biounet.reporting.tables import format_table, write_reports

    rows, summary = evaluate_files(
        args.pred, args.truth, _eval_options(args, args.task or "semantic")
    )
    print(format_table(rows, summary))
    write_reports(rows, summary, json_path=args.json, csv_path=args.csv)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from biounet.demo import run_demo

    result = run_demo(
        args.out,
        data=args.data,
        minutes=args.minutes,
        n_train=args.images,
        n_test=args.test_images,
        size=args.size,
        seed=args.seed if args.seed is not None else 0,
        overrides=[o for o in _overrides(args) if "seed" not in o],
        task=args.task,
        report=not args.no_report,
        progress=False if args.no_progress else None,
    )
    print(f"run folder: {result.run} ({result.minutes:.1f} min)")
    print(f"held-out images: {len(result.rows)}; {result.headline()}")
    if result.report is not None:
        print(f"report: {result.report.resolve()}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from biounet.config.schema import RESUMABLE, build_config, dump_config, resume_config

    overrides = _overrides(args)
    if args.data:
        overrides.append({"data": {"path": str(Path(args.data))}})
    if args.resume:
        if not args.out:
            raise ValueError("--resume needs --out RUN, the run folder to continue")
        if args.preset is not None or args.config:
            raise ValueError(
                "--preset and --config cannot be used with --resume: the run keeps "
                f"RUN/config.yaml; only these may change: {', '.join(RESUMABLE)}"
            )
        cfg = resume_config(args.out, overrides)  # ValueError lists anything else that changed
    else:
        cfg = build_config(args.preset or "cpu", args.config, overrides)
    if args.print_config:
        print(dump_config(cfg), end="")
        return 0
    if not args.out:
        raise ValueError("give --out RUN, the run folder to create")
    if not args.resume and not args.data:
        raise ValueError("give the DATA folder to train on (or --resume an existing run)")
    from biounet.train.loop import fit

    result = fit(cfg, args.out, resume=args.resume, progress=False if args.no_progress else None)
    print(f"run folder: {result.run} (best model: {result.run / 'best.pt'})")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from biounet.checkpoint import load
    from biounet.segment.files import PredictOptions, predict_files

    shard = None
    if args.shard:
        try:
            i, n = (int(v) for v in args.shard.split("/"))
        except ValueError:
            raise ValueError(f"--shard {args.shard!r}: write it as I/N, e.g. 0/4") from None
        shard = (i, n)
    device = args.device
    if device == "auto" and "LOCAL_RANK" in os.environ:
        import torch

        if torch.cuda.is_available():
            device = f"cuda:{os.environ['LOCAL_RANK']}"
    model = load(args.model)
    opts = PredictOptions(
        masks=not args.no_masks,
        instances=args.instances,
        probabilities=args.probabilities,
        overlays=args.overlays,
        overwrite=args.overwrite,
        mask_format=args.mask_format,
        instance_kind=args.instance_kind or ("membranes" if args.task == "membranes" else "cells"),
        membrane_class=args.membrane_class,
        postprocess={"min_size": args.min_size} if args.min_size else {},
        tile_shape=args.tile,
        batch_size=args.batch_size,
        tta=args.tta,
        device=device,
    )
    # the instance kinds are named after the tasks that score them
    task = args.task or (opts.instance_kind if args.instances else "semantic")
    if args.truth and task == "membranes":
        opts.probabilities = True
    done = predict_files(
        model,
        args.inputs,
        args.out,
        opts,
        shard=shard,
        progress=False if args.no_progress else None,
    )
    print(f"{len(done)} image(s) segmented into {args.out}")
    if args.truth:
        from pathlib import Path

        from biounet.evaluation.scoring import evaluate_files
        from biounet.reporting.tables import format_table, write_reports

        suffix = {
            "cells": "_labels" if args.instances else "_mask",
            "membranes": "_probs",
            "semantic": "_mask",
        }[task]
        rows, summary = evaluate_files(
            args.out, args.truth, _eval_options(args, task), pred_suffix=suffix
        )
        print(format_table(rows, summary))
        out = Path(args.out)
        write_reports(
            rows, summary, json_path=out / "evaluation.json", csv_path=out / "evaluation.csv"
        )
        print(f"scores written to {out / 'evaluation.json'} and {out / 'evaluation.csv'}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from biounet.reporting.page import write_report

    page = write_report(args.run, args.out, n_gallery=args.images, device=args.device)
    print(f"report: {page}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from biounet.checkpoint import load
    from biounet.export import ExportCheckError, export_model

    try:
        report = export_model(
            load(args.model),
            args.out,
            format=args.format,
            tile_shape=args.tile,
            check=not args.no_check,
            atol=args.atol,
        )
    except ExportCheckError as e:  # the exported file disagrees with PyTorch: nothing kept
        print(f"biounet export: error: {e}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from biounet.reporting.plots import plot_run

    print(plot_run(args.run, args.out))
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from pathlib import Path

    from biounet.checkpoint import describe_checkpoint
    from biounet.core.checks import look_up
    from biounet.model.presets import PRESETS
    from biounet.model.summary import describe

    kw = {"near": args.near, "count": args.count, "flops": not args.no_flops}
    if args.preset not in PRESETS and (
        Path(args.preset).exists() or args.preset.endswith((".pt", ".pth")) or "/" in args.preset
    ):
        print(describe_checkpoint(args.preset, **kw))
        return 0
    from biounet.config.schema import TRAIN_PRESETS

    if args.preset in TRAIN_PRESETS and args.preset not in PRESETS:
        # a training preset (cpu, gpu): the network it trains, with its training tile
        from biounet.config.schema import build_config
        from biounet.model.summary import describe_model
        from biounet.train.loop import build_model

        cfg = build_config(args.preset)
        model = build_model(cfg, 1)
        title = f"{args.preset}: the network of the {args.preset!r} training preset"
        near = args.near if args.near is not None else cfg.tile
        print(describe_model(model, title, near=near, count=args.count, flops=kw["flops"]))
        return 0
    try:
        name = look_up(args.preset, list(dict.fromkeys([*PRESETS, *TRAIN_PRESETS])), "preset")
    except ValueError as e:
        raise ValueError(f"{e} (or give a checkpoint file or run folder)") from None
    print(describe(name, **kw))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``biounet`` console script; returns the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    # other libraries log warnings only; biounet's own messages follow -q / -v
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    log.setLevel(level)
    try:
        return int(args.func(args))
    # ImportError: an optional extra (e.g. biounet[export]) is not installed
    except (
        ValueError,
        FileNotFoundError,
        FileExistsError,
        PermissionError,
        TypeError,
        ImportError,
    ) as e:
        print(f"biounet {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # disk full, a path through a file, ...: one line, not a traceback
        where = f"{e.filename}: " if e.filename else ""
        print(f"biounet {args.command}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"biounet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
