"""Flags that several verbs share, the choices they offer, and the settings they stand for.

Nothing here imports torch or numpy: ``biounet --help`` builds every parser. So the choices are
literal tuples; ``tests/test_cli.py`` checks each against the library constant it stands for
(named in the comment beside it), so they cannot drift apart.
"""

from __future__ import annotations

import argparse

from biounet.evaluation.options import TASKS

__all__ = [
    "ANNOTATION_KINDS",
    "BACKENDS",
    "CONFIG_KEYS",
    "DEMO_TASKS",
    "EVAL_TASKS",
    "EXPORT_FORMATS",
    "INSTANCE_KINDS",
    "MASK_FORMATS",
    "OUTPUT_FORMATS",
    "evaluation_flags",
    "global_flags",
    "training_flags",
]

# the evaluation's options load no numpy: its tasks come straight from there. The other lists
# live in modules that load numpy or torch, which `biounet --help` must not: they are copies,
# and tests/test_cli.py ties each to its library constant.
EVAL_TASKS = TASKS
DEMO_TASKS = ("cells", "semantic", "membranes")  # biounet.demo.TASKS
INSTANCE_KINDS = ("cells", "membranes")  # biounet.inference.postprocess.INSTANCE_KINDS
MASK_FORMATS = ("auto", "png", "tif")  # biounet.segment.MASK_FORMATS
OUTPUT_FORMATS = ("auto", "files", "ome-zarr")  # biounet.segment.OUTPUT_FORMATS
BACKENDS = ("auto", "eager", "compile")  # biounet.inference.backend.BACKENDS
ANNOTATION_KINDS = ("binary", "classes", "instances")  # biounet.data.annotations.ANNOTATION_KINDS
EXPORT_FORMATS = ("torchscript", "onnx", "bioimageio")  # biounet.export.EXPORT_FORMATS


def global_flags(parser: argparse.ArgumentParser, *, after_verb: bool = False) -> None:
    """``-v``/``--verbose`` and ``-q``/``--quiet``, before the verb or (``after_verb``) after it.

    After the verb the defaults are ``argparse.SUPPRESS``: a verb's parser then sets the
    attribute only when the flag is given, and so does not undo ``biounet -q VERB``.
    """
    verbose_default: object = argparse.SUPPRESS if after_verb else 0
    quiet_default: object = argparse.SUPPRESS if after_verb else False
    parser.add_argument(
        "-v", "--verbose", action="count", default=verbose_default, help="more log output"
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", default=quiet_default, help="warnings and errors only"
    )


#: the configuration key each flag of :func:`training_flags` sets (a flag left out sets nothing;
#: ``--set KEY=VALUE`` reaches every other key)
CONFIG_KEYS: dict[str, tuple[str, ...]] = {
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


def training_flags(p: argparse.ArgumentParser) -> None:
    """Options of ``train`` that ``demo`` shares; each sets a setting of :data:`CONFIG_KEYS`."""
    p.add_argument("--batch-size", type=int, metavar="N")
    p.add_argument("--lr", type=float, metavar="LR", help="learning rate")
    p.add_argument("--tile", type=int, metavar="PX", help="input tile (rounded up to a valid size)")
    p.add_argument("--val", metavar="DIR", help="a separate validation set")
    p.add_argument("--val-names", metavar="NAME", nargs="+", help="validation samples by name")
    p.add_argument("--val-fraction", type=float, metavar="F", help="random validation share")
    p.add_argument("--annotation", choices=ANNOTATION_KINDS)
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


def evaluation_flags(p: argparse.ArgumentParser) -> None:
    """Options of ``evaluate`` that ``predict --truth`` shares (the fields of ``EvalOptions``)."""
    p.add_argument(
        "--task",
        choices=EVAL_TASKS,
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
