"""Files written safely: atomic writes, output folders, and clean-up after a killed writer.

:func:`atomic_path` writes to a temporary ``.NAME.*.part`` beside the target, flushes it to disk
and renames it, so an interruption never leaves a half-written file; :func:`clean_stale_parts`
removes what a killed process left; :func:`ensure_folder` and :func:`output_folder` create
output folders with clear errors. Every layer that writes uses these, so they depend on nothing
else in biounet.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

__all__ = [
    "FolderLock",
    "atomic_path",
    "check_free_space",
    "clean_stale_parts",
    "disk_full",
    "ensure_folder",
    "output_folder",
]

#: errno of a full disk (ENOSPC) and of an exceeded quota (EDQUOT)
_FULL = (28, 122)


def _umask() -> int:
    """The process's file-creation mask (from /proc where it can be read without changing it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync(path: Path) -> None:
    """Flush ``path`` (a file, or every file of a folder) and its folder's entry to disk."""
    files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
    for f in files:
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())


def _fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (the rename) to disk, where the OS allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems (and Windows) cannot fsync a folder
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success flush it to disk and rename it.

    The temporary path, ``.NAME.<random>.part`` in the target's folder, exists as an empty
    file; the caller may replace it by a folder (e.g. a Zarr store). On success it is
    ``fsync``-ed (every file, for a folder) and renamed to ``path`` with ``os.replace``, so
    ``path`` is either the old content or the complete new one, also after a power cut. On an
    error (or an interruption) the temporary file is removed and ``path`` is untouched; a
    process killed outright leaves the ``.part`` file, which :func:`clean_stale_parts`
    removes.
    """
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"{target}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise PermissionError(f"{target}: the folder {parent} is not writable")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=parent)
    os.close(fd)
    tmp_path = Path(tmp)
    old: Path | None = None
    try:
        yield tmp_path
        if tmp_path.is_file():  # mkstemp makes it private (0600); give it the usual mode
            os.chmod(tmp_path, 0o666 & ~_umask())
        if tmp_path.exists():
            _fsync(tmp_path)
        if tmp_path.is_dir() and target.is_dir():
            # os.replace cannot replace a non-empty folder: move the old one aside first
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", suffix=".part", dir=parent))
            os.replace(target, old / target.name)
            try:
                os.replace(tmp_path, target)
            except BaseException:
                os.replace(old / target.name, target)  # put the old content back
                raise
        else:
            os.replace(tmp_path, target)
        _fsync_folder(parent)
    finally:
        if tmp_path.exists():
            _remove(tmp_path)
        if old is not None:
            _remove(old)


def check_free_space(path: str | os.PathLike[str], nbytes: int, what: str = "the file") -> None:
    """Raise ``OSError(ENOSPC)`` naming ``path`` unless its folder has ``nbytes`` free (+5%).

    For writers that cannot fail cleanly on a full disk (a C++ exporter may abort the
    process): checked before they start. A folder whose free space cannot be read passes.
    """
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    try:
        free = shutil.disk_usage(parent).free
    except OSError:
        return
    need = int(nbytes * 1.05) + (1 << 20)
    if free < need:
        raise OSError(
            28,
            f"not enough free space for {what} (about {need / 2**20:.1f} MiB needed, "
            f"{free / 2**20:.1f} MiB free in {parent}); free some space or write elsewhere",
            str(p),
        )


def disk_full(e: BaseException) -> bool:
    """Whether ``e`` says the disk (or the quota) is full, also when torch wraps the OSError."""
    if isinstance(e, OSError) and e.errno in _FULL:
        return True
    text = str(e).lower()
    return isinstance(e, RuntimeError) and (
        "no space left" in text or "file write failed" in text or "quota" in text
    )


_PART = re.compile(r"^\..+\.part$")


def clean_stale_parts(folder: str | os.PathLike[str], *, min_age: float = 0.0) -> list[Path]:
    """Delete the temporary ``.*.part`` files (and folders) that :func:`atomic_path` left.

    A writer killed outright (SIGKILL, power cut) cannot remove its temporary file; call this
    when (re)starting work in an output folder, e.g. a training run's folder on resume.

    Parameters
    ----------
    folder : path
        The folder to clean (not its subfolders). A missing folder is not an error.
    min_age : float, default 0.0
        Only delete entries last modified at least this many seconds ago, to spare the
        temporary files of a writer that is still running in the same folder.

    Returns
    -------
    list of Path
        What was deleted, sorted.
    """
    root = Path(folder)
    if not root.is_dir():
        return []
    now = time.time()
    removed = []
    for p in sorted(root.iterdir()):
        if not _PART.match(p.name):
            continue
        try:
            if now - p.lstat().st_mtime < min_age:
                continue
            _remove(p)
        except OSError as e:
            log.warning("%s: cannot remove a stale temporary file (%s)", p, e.strerror)
            continue
        removed.append(p)
    if removed:
        log.info(
            "%s: removed %d stale temporary file(s): %s",
            root,
            len(removed),
            ", ".join(p.name for p in removed),
        )
    return removed


def ensure_folder(path: str | os.PathLike[str], what: str = "output folder") -> Path:
    """Create folder ``path`` (and its parents) if needed; a clear error if it cannot be written.

    Raises FileExistsError when ``path`` or one of its parents is a file, PermissionError
    when the folder cannot be created or written.
    """
    p = Path(path)
    for q in (p, *p.parents):
        if q.exists() and not q.is_dir():
            raise FileExistsError(
                f"{p}: cannot use it as the {what}; {q} is a file. Give a folder path"
            )
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PermissionError(f"{p}: cannot create the {what} ({e.strerror})") from e
    if not os.access(p, os.W_OK | os.X_OK):
        raise PermissionError(f"{p}: the {what} is not writable")
    return p


@contextmanager
def output_folder(
    path: str | os.PathLike[str], what: str = "output folder", *, remove_if_failed: bool = True
) -> Iterator[Path]:
    """:func:`ensure_folder` for the duration of a block.

    If the block raises (Ctrl-C included) and ``remove_if_failed``, the folders this call
    created are removed again while they are still empty, so an early error leaves no empty
    folder behind; folders that existed before, or hold files, stay.
    """
    p = Path(path)
    created = [q for q in (p, *p.parents) if not q.exists()]  # the deepest first
    folder = ensure_folder(p, what)
    try:
        yield folder
    except BaseException:
        if remove_if_failed:
            for q in created:
                try:
                    q.rmdir()  # only if empty
                except OSError:
                    break
        raise


class FolderLock:
    """An exclusive lock on a folder while one process works in it (``FOLDER/.lock``).

    The operating system releases it when the process ends, however it ends (SIGKILL
    included), so a crash never leaves a folder locked; the file itself stays, holding the
    process id of the last holder for the message another process gets. Where ``fcntl`` is
    missing (Windows), locking is skipped.
    """

    def __init__(self, folder: str | os.PathLike[str], what: str = "run folder") -> None:
        self.path = Path(folder) / ".lock"
        self.what = what
        self._fh: Any = None

    def acquire(self) -> FolderLock:
        """Take the lock; a folder locked by another process is a ``BlockingIOError``."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise BlockingIOError(
                11,
                f"the {self.what} is in use by {holder}; wait for it to finish, or use "
                "another folder",
                str(self.path.parent),
            ) from e
        fh.seek(0)
        fh.truncate()
        fh.write(f"process {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        """Let go of the lock (closing the file releases it)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
