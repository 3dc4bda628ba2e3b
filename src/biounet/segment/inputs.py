"""The input files of a batch: paths, folders and glob patterns expanded, shared between processes.

A list of files can be shared between processes (``shard=(i, n)``, or the ranks of
``torchrun``): file ``k`` goes to process ``k mod n``, so none is done twice or skipped.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path

from biounet.core.paths import resolved
from biounet.data.io import READ_EXTENSIONS, is_image_file

__all__ = ["expand_inputs", "shard_of"]


def expand_inputs(inputs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Files from paths, folders and glob patterns, in a stable sorted order, no duplicates.

    A file named explicitly must have an extension biounet reads (ValueError otherwise), so a
    wrong input is reported before anything is predicted or written. A missing path, or a
    pattern that matches no image, raises FileNotFoundError.
    """
    found: list[Path] = []
    for item in inputs:
        text = str(item)
        p = Path(text)
        if p.is_dir() and p.suffix.lower() != ".zarr":
            files = sorted(q for q in p.iterdir() if is_image_file(q))
            if not files:
                raise ValueError(f"{p}: the folder holds no images ({', '.join(READ_EXTENSIONS)})")
            found.extend(files)
        elif p.exists():
            if not is_image_file(p) and not p.name.startswith("."):
                raise ValueError(
                    f"{p}: unknown image format {p.suffix!r}; biounet reads "
                    f"{', '.join(READ_EXTENSIONS)}"
                )
            found.append(p)
        elif any(c in text for c in "*?["):
            matches = sorted(Path(m) for m in glob.glob(text) if is_image_file(m))
            if not matches:
                raise FileNotFoundError(f"{text}: the pattern matches no image files")
            found.extend(matches)
        elif p.is_symlink():  # a link to nothing, or a loop of links
            target = resolved(p)  # a loop: OSError naming the link
            raise FileNotFoundError(f"{p}: a link to {target}, which does not exist")
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    seen: set[Path] = set()
    unique = []
    for f in found:
        key = resolved(f)  # a link loop (found by a pattern): OSError naming it
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


def shard_of(files: list[Path], shard: tuple[int, int] | None = None) -> list[Path]:
    """The files of one process: ``shard=(i, n)``, else torchrun's ``RANK``/``WORLD_SIZE``."""
    if shard is None:
        shard = (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)))
    i, n = shard
    if not 0 <= i < n:
        raise ValueError(f"shard {i}/{n}: need 0 <= i < n")
    return files[i::n]
