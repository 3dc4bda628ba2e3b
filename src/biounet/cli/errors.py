"""How a verb's failure reaches the user: its exit status and what is printed.

A user error (a bad value, a missing or unwritable file, an optional extra not installed) is
one line, ``biounet VERB: error: ...``, exit status 2; with ``-v`` its traceback comes first.
Anything else raised inside the library is a bug: its traceback is shown, then a line asking
for a report, exit status 1. Ctrl-C is exit status 130, as a shell reports SIGINT.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable

__all__ = ["BUG", "INTERRUPTED", "USER_ERROR", "is_user_error", "run_verb", "user_message"]

USER_ERROR = 2
BUG = 1
INTERRUPTED = 130


def is_user_error(e: BaseException) -> bool:
    """Whether ``e`` says what the user must change, rather than that biounet has a bug.

    ValueError and OSError (FileNotFoundError, FileExistsError, PermissionError, a full disk,
    ...) are the user's, and so is a FloatingPointError (a loss that diverged: its message
    names the learning rate to lower), a :class:`biounet.core.checks.InputTypeError` (a value
    of the wrong type, such as a complex-valued image) and running out of memory (a tile or
    batch too large for the device). So is an ImportError, e.g. of an optional extra such as
    ``biounet[export]`` that is not installed, unless it is a failed import of biounet's own
    code. Any other TypeError is a bug.
    """
    if isinstance(e, ImportError):
        name = e.name or ""
        return name != "biounet" and not name.startswith("biounet.")
    if _is_input_type_error(e) or _is_out_of_memory(e):
        return True
    return isinstance(e, ValueError | OSError | FloatingPointError)


def _is_input_type_error(e: BaseException) -> bool:
    # by name: importing biounet.core.checks here would load numpy for every --help
    return any(
        c.__name__ == "InputTypeError" and c.__module__ == "biounet.core.checks"
        for c in type(e).__mro__
    )


def _is_out_of_memory(e: BaseException) -> bool:
    torch = sys.modules.get("torch")  # an out-of-memory error comes from a torch already loaded
    oom = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    return oom is not None and isinstance(e, oom)


def user_message(e: BaseException) -> str:
    """The one-line message of a user error.

    An OSError raised by the system (with ``strerror``) reads ``FILE: reason``, e.g.
    ``out/a.png: No space left on device``; biounet's own errors already name their file. Out
    of memory names the way out.
    """
    if _is_out_of_memory(e):
        first = str(e).splitlines()[0] if str(e) else "out of memory"
        return f"{first}; use a smaller --tile or --batch-size, or --device cpu"
    if isinstance(e, OSError) and e.strerror:
        where = f"{e.filename}: " if e.filename else ""
        return f"{where}{e.strerror}"
    return str(e)


def run_verb(
    command: Callable[[argparse.Namespace], int], args: argparse.Namespace, verb: str
) -> int:
    """Run ``command(args)`` and return its exit status, or that of how it failed.

    Parameters
    ----------
    command : callable
        The verb's action (a ``cmd_*`` function of :mod:`biounet.cli.commands`).
    args : argparse.Namespace
        The parsed flags; ``args.verbose`` (a count) shows user errors' tracebacks.
    verb : str
        The verb, for the messages (``biounet VERB: error: ...``).
    """
    try:
        return int(command(args))
    except KeyboardInterrupt:
        print(f"biounet {verb}: interrupted", file=sys.stderr)
        return INTERRUPTED
    except Exception as e:
        if not is_user_error(e):
            traceback.print_exc()
            print(
                f"biounet {verb}: unexpected error ({type(e).__name__}), likely a bug in "
                "biounet: please report it to the developers with the traceback above",
                file=sys.stderr,
            )
            return BUG
        if getattr(args, "verbose", 0):
            traceback.print_exc()
        print(f"biounet {verb}: error: {user_message(e)}", file=sys.stderr)
        return USER_ERROR
