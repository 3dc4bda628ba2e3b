"""What each verb of the ``biounet`` command does: call the library, print what it made.

Each ``cmd_*`` function takes the parsed flags and returns the exit status; the library is
imported inside them, so ``biounet --help`` imports no torch. Errors are raised, not printed:
:mod:`biounet.cli.errors` turns them into exit statuses.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from biounet.cli import options

__all__ = [
    "cmd_demo",
    "cmd_evaluate",
    "cmd_export",
    "cmd_inspect",
    "cmd_models",
    "cmd_plot",
    "cmd_predict",
    "cmd_report",
    "cmd_train",
]


def cmd_demo(args: argparse.Namespace) -> int:
    """``biounet demo``: :func:`biounet.demo.run_demo`, then where its results are."""
    from biounet.demo import run_demo

    result = run_demo(
        args.out,
        data=args.data,
        minutes=args.minutes,
        n_train=args.images,
        n_test=args.test_images,
        size=args.size,
        seed=args.seed if args.seed is not None else 0,
        # the seed goes to run_demo, which seeds the synthetic data and the training with it
        overrides=[o for o in options.config_overrides(args) if "seed" not in o],
        task=args.task,
        report=not args.no_report,
        progress=False if args.no_progress else None,
    )
    print(f"run folder: {result.run} ({result.minutes:.1f} min)")
    print(f"held-out images: {len(result.rows)}; {result.headline()}")
    if result.report is not None:
        print(f"report: {result.report.resolve()}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """``biounet train``: :func:`biounet.train.fit` (or only print the configuration)."""
    from biounet.config import dump_config

    cfg = options.train_config(args)
    if args.print_config:
        print(dump_config(cfg), end="")
        return 0
    if not args.out:
        raise ValueError("give --out RUN, the run folder to create")
    if not args.resume and not args.data:
        raise ValueError("give the DATA folder to train on (or --resume an existing run)")
    from biounet.train import fit

    result = fit(cfg, args.out, resume=args.resume, progress=False if args.no_progress else None)
    print(f"run folder: {result.run} (best model: {result.run / 'best.pt'})")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """``biounet predict``: :func:`biounet.segment.predict_files`, scored with ``--truth``."""
    from biounet.checkpoint import load
    from biounet.core.paths import OutputConflict, same_file
    from biounet.evaluation.options import check_options
    from biounet.evaluation.outputs import check_score_outputs
    from biounet.segment import predict_files
    from biounet.segment.outputs import scored_suffix

    task = options.predict_task(args)
    shard = options.shard(args.shard)  # checked before the model is read
    opts = options.predict_options(args, task)
    check_options(options.eval_options(args, task))  # --threshold, --membrane-class: now
    progress = False if args.no_progress else None
    if args.truth:  # the score files must not replace a truth mask; checked before predicting
        json_path, csv_path = Path(args.out, "evaluation.json"), Path(args.out, "evaluation.csv")
        truth_dir = Path(args.truth) if Path(args.truth).is_dir() else Path(args.truth).parent
        if Path(args.out).exists() and same_file(args.out, truth_dir):
            raise OutputConflict(
                f"--out {args.out} is the folder of the ground truth --truth {args.truth}: "
                "predictions would be mixed with the truth masks; give another --out"
            )
        if Path(args.out).is_dir():
            check_score_outputs(None, args.truth, json_path, csv_path)
    model = load(args.model)
    k = model.num_classes
    if args.truth and task == "membranes" and not args.membrane_class < k:
        raise ValueError(
            f"--membrane-class {args.membrane_class} is not a class of the model (0..{k - 1})"
        )
    done = predict_files(model, args.inputs, args.out, opts, shard=shard, progress=progress)
    print(f"{len(done)} image(s) segmented into {args.out}")
    if args.truth:
        suffix = scored_suffix(task, args.instances)
        _score(args, args.out, args.truth, task, json_path, csv_path, pred_suffix=suffix)
        print(f"scores written to {json_path} and {csv_path}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``biounet evaluate``: :func:`biounet.evaluation.evaluate_files`, as a table."""
    _score(args, args.pred, args.truth, args.task or "semantic", args.json, args.csv)
    return 0


def _score(
    args: argparse.Namespace,
    pred: str | Path,
    truth: str | Path,
    task: str,
    json_path: str | Path | None,
    csv_path: str | Path | None,
    *,
    pred_suffix: str | None = None,
) -> None:
    """Score ``pred`` against ``truth`` for ``task``, print the table, write JSON and CSV.

    ``pred_suffix``: which of predict's outputs to read
    (:func:`biounet.segment.outputs.scored_suffix`).
    """
    from biounet.evaluation import evaluate_files
    from biounet.evaluation.outputs import check_score_outputs
    from biounet.reporting.tables import format_table, write_reports

    opts = options.eval_options(args, task)
    check_score_outputs(pred, truth, json_path, csv_path)  # before anything is computed
    rows, summary = evaluate_files(pred, truth, opts, pred_suffix=pred_suffix)
    print(format_table(rows, summary))
    write_reports(rows, summary, json_path=json_path, csv_path=csv_path)


def cmd_report(args: argparse.Namespace) -> int:
    """``biounet report``: :func:`biounet.reporting.page.write_report`."""
    from biounet.reporting.page import write_report

    page = write_report(args.run, args.out, n_gallery=args.images, device=args.device)
    print(f"report: {page}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """``biounet export``: :func:`biounet.export.export_model`; exit status 1 if it disagrees."""
    from biounet.checkpoint import load
    from biounet.export import ExportCheckError, export_model

    if args.format == "bioimageio":
        return _export_package(args)
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


def _export_package(args: argparse.Namespace) -> int:
    """``biounet export --format bioimageio``: a bioimage.io model package."""
    import numpy as np

    from biounet.checkpoint import load
    from biounet.data.io import read_image
    from biounet.export.bioimageio import export_bioimageio

    model = load(args.model)
    sample = None if not args.sample else np.asarray(read_image(args.sample))
    out = export_bioimageio(model, args.out, sample=sample, name=args.name,
                            authors=args.author, license=args.license)  # fmt: skip
    print(f"bioimage.io package: {out}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    """``biounet plot``: :func:`biounet.reporting.plots.plot_run`, then the PNG's path."""
    from biounet.reporting.plots import plot_run

    print(plot_run(args.run, args.out))
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    """``biounet inspect``: the summary of a trained model, a network or a training preset."""
    from biounet.describe import describe

    print(describe(args.target, near=args.near, count=args.count, flops=not args.no_flops))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """``biounet models``: the shipped models (:mod:`biounet.zoo`), or one model's card."""
    from biounet.zoo import card_text, models_table

    print(card_text(args.name) if args.name else models_table(), end="\n")
    return 0
