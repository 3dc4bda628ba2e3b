"""Output paths checked against inputs and each other before any work starts.

The rule every command follows: once its inputs and outputs are known, and before it reads,
computes or writes anything, no output may be an input (or the same file under another name:
a hard or symbolic link), no two outputs may be one file, and no output may lie inside an input
folder it would be read from again. A conflict is an :class:`OutputConflict` naming both paths.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["OutputConflict", "check_outputs", "resolved", "same_file"]


class OutputConflict(ValueError):
    """An output path that would replace an input, or another output, of the same command."""


def resolved(path: str | os.PathLike[str]) -> Path:
    """``path`` made absolute with its links followed; a link loop is a one-line error.

    Raises
    ------
    OSError
        For a symbolic link loop (``ELOOP``), naming the link.
    """
    p = Path(path)
    try:
        return p.resolve()
    except RuntimeError as e:  # Python < 3.13 reports a loop this way
        raise OSError(40, "symbolic link loop (the link points back at itself)", str(p)) from e
    except OSError as e:
        if e.errno == 40 or "loop" in str(e).lower():
            raise OSError(40, "symbolic link loop (the link points back at itself)", str(p)) from e
        raise


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether ``a`` and ``b`` are one file: the same resolved path, or hard links of one file."""
    if _key(a) == _key(b):
        return True
    inode = _inode(a)  # None: it does not exist (yet)
    return inode is not None and inode == _inode(b)


def check_outputs(
    outputs: Mapping[Any, str] | Iterable[tuple[Any, str]],
    inputs: Mapping[Any, str],
    *,
    input_folders: Iterable[str | os.PathLike[str]] = (),
) -> None:
    """Raise :class:`OutputConflict` if an output would replace an input or another output.

    Parameters
    ----------
    outputs : mapping of path (str or PathLike) to str, or iterable of (path, str)
        Every file the command will write, with what it is (for the message, e.g.
        ``"the mask of a.png"``); pairs, where two producers may name one path.
    inputs : mapping of path (str or PathLike) to str
        Every file the command reads, with what it is (``"the image a.png"``).
    input_folders : iterable of path
        Folders whose files are inputs (a folder given to ``predict``): an output inside one
        would be mixed with the inputs and read as one by the next run.

    Examples
    --------
    >>> check_outputs({"a.json": "the scores"}, {"a.png": "the truth"})
    >>> check_outputs({"a.png": "the scores"}, {"./a.png": "the truth"})
    Traceback (most recent call last):
    ...
    biounet.core.paths.OutputConflict: the scores a.png would replace the truth ./a.png; ...
    """
    # inputs by resolved path, and by (device, inode) to catch hard links: linear, not
    # outputs x inputs (a batch may hold tens of thousands of files)
    by_path: dict[Path, tuple[str, str]] = {}
    by_inode: dict[tuple[int, int], tuple[str, str]] = {}
    for inp, in_what in inputs.items():
        by_path[_key(inp)] = (str(inp), in_what)
        inode = _inode(inp)
        if inode is not None:
            by_inode[inode] = (str(inp), in_what)
    seen: dict[Path, tuple[str, str]] = {}
    pairs = outputs.items() if isinstance(outputs, Mapping) else outputs
    for out, what in pairs:
        key = _key(out)
        if key in seen:
            other, other_what = seen[key]
            raise OutputConflict(
                f"{what} {out} and {other_what} {other} are one file; give them different "
                "names (for predict: inputs of one name in different folders or formats go "
                "to separate --out folders)"
            )
        seen[key] = (str(out), what)
        inode = _inode(out)
        hit = by_path.get(key) or (by_inode.get(inode) if inode is not None else None)
        if hit is not None:
            raise OutputConflict(
                f"{what} {out} would replace {hit[1]} {hit[0]}; nothing was written: "
                "choose another output path"
            )
    roots = {_key(folder): folder for folder in input_folders}
    for key, (out, what) in seen.items():
        if key.parent in roots:
            raise OutputConflict(
                f"{what} {out} would be written into the input folder {roots[key.parent]}, "
                "beside the images it comes from (and read as an input by the next run); "
                "nothing was written: give an --out folder that holds no inputs"
            )


def _key(path: str | os.PathLike[str]) -> Path:
    """The resolved, case-normalised path that identifies a file."""
    return Path(os.path.normcase(resolved(path)))


def _inode(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """``(device, inode)`` of an existing file (links followed), else None."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)
