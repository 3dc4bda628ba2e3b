"""The ``biounet`` console script: parse the flags, set the log level, run the verb."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from biounet.cli.errors import run_verb
from biounet.cli.parser import build_parser

__all__ = ["main"]

log = logging.getLogger("biounet")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``biounet`` console script; returns the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after ``biounet`` (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 2 for a user error (one line on stderr), 1 for an unexpected error (a
        bug: with its traceback), 130 when interrupted; see :mod:`biounet.cli.errors`.
        argparse itself exits with status 2 for unknown flags, and 0 after ``--help``.
    """
    args = build_parser().parse_args(argv)
    # other libraries log warnings only; biounet's own messages follow -q / -v
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO)
    return run_verb(args.func, args, args.command)
