"""The ``biounet`` command: verbs that parse arguments and call the library (imported lazily).

Each verb lives in a ``_cmd_*`` function; heavy imports (torch) happen inside them, so
``biounet --help`` answers at once.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from ._version import __version__

log = logging.getLogger("biounet")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="biounet",
        description="U-Net (Ronneberger et al. 2015) for biomedical image segmentation.",
    )
    parser.add_argument("--version", action="version", version=f"biounet {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "inspect",
        help="architecture, parameter count, margin and valid tile sizes of a preset",
        description="Summarise a U-Net preset: layers, feature-map sizes for a tile, parameter "
        "count, FLOPs per output pixel, the margin and the valid tile sizes near a size.",
    )
    p.add_argument("preset", metavar="PRESET", help="a preset name, e.g. ronneberger2015")
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
    return parser


def _cmd_inspect(args: argparse.Namespace) -> int:
    from ._checks import look_up
    from .model.presets import PRESETS
    from .model.summary import describe

    name = look_up(args.preset, list(PRESETS), "preset")
    print(describe(name, near=args.near, count=args.count, flops=not args.no_flops))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``biounet`` console script; returns the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG
        if args.verbose > 1
        else logging.INFO
        if args.verbose
        else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except (ValueError, FileNotFoundError, TypeError) as e:
        print(f"biounet {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"biounet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
