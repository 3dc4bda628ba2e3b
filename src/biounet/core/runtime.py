"""Process-wide runtime settings that make CPU inference and training faster.

:func:`tune_allocator` keeps glibc's ``malloc`` from handing large buffers back to the operating
system. By default glibc serves every request of 32 MiB or more (its largest dynamic ``mmap``
threshold) with a fresh ``mmap`` and returns it with ``munmap`` on ``free``. A U-Net's activations
are tens to hundreds of MiB each, so every forward pass allocates them anew and page-faults every
page of them once more (the kernel zero-fills each page): on a 2-core CPU that is about a fifth
of the forward time of the paper's network (see ``benchmarks/inference.py``). Raising the
``mmap`` threshold cannot help, because glibc caps it at 32 MiB; disabling ``mmap`` for
``malloc`` (``M_MMAP_MAX = 0``) and keeping freed memory at the top of the heap (a large
``M_TRIM_THRESHOLD``) does: the buffers are reused from the heap, already mapped, and the page
faults disappear.

The price: memory freed by the process stays mapped (up to the trim threshold, 2 GiB here)
instead of going back to the OS, so the resident size stays at its peak. Call
``ctypes.CDLL("libc.so.6").malloc_trim(0)`` to give it back explicitly.

:func:`biounet.predict`, :func:`biounet.fit` and the ``biounet`` command call
:func:`auto_tune_allocator` when they run on a CPU; set ``BIOUNET_TUNE_ALLOCATOR=0`` in the
environment to keep glibc's defaults.

The same settings can be made without code, before the process starts, with
``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647`` or
``GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=2147483647``.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading

__all__ = ["TRIM_THRESHOLD", "allocator_tuned", "auto_tune_allocator", "tune_allocator"]

#: ``mallopt`` parameter numbers, from glibc's ``<malloc.h>``
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4

#: bytes of free memory kept at the top of the heap (``mallopt`` takes a C ``int``)
TRIM_THRESHOLD = 2**31 - 1

_lock = threading.Lock()
_tuned = False


def _glibc() -> ctypes.CDLL | None:
    """The C library of this process if it is glibc, else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)  # the symbols already loaded into the process
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it (not musl)
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    return libc


def tune_allocator() -> bool:
    """Stop glibc from unmapping large freed buffers, so tensors reuse mapped memory.

    Sets ``M_MMAP_MAX = 0`` (``malloc`` never uses ``mmap``; every buffer comes from the heap)
    and ``M_TRIM_THRESHOLD = 2 GiB`` (freed memory stays mapped for the next pass) with
    ``mallopt``. Call it once, early, before large tensors are allocated: it affects only later
    allocations. Safe to call more than once and from any thread.

    Returns
    -------
    bool
        True if the allocator is (now or already) tuned; False where this is not Linux with
        glibc (macOS, Windows, musl), in which case nothing is done.

    Notes
    -----
    The resident size of the process then stays at its peak instead of shrinking after large
    tensors are freed (see the module docstring). Memory use itself does not grow: freed
    buffers are reused.

    Examples
    --------
    >>> from biounet.core.runtime import tune_allocator
    >>> tune_allocator()  # doctest: +SKIP
    True
    """
    global _tuned
    with _lock:
        if _tuned:
            return True
        libc = _glibc()
        if libc is None:
            return False
        ok = libc.mallopt(_M_MMAP_MAX, 0) == 1
        ok = libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
        _tuned = bool(ok)
        return _tuned


def allocator_tuned() -> bool:
    """Whether :func:`tune_allocator` has tuned the allocator in this process."""
    return _tuned


def auto_tune_allocator() -> bool:
    """:func:`tune_allocator`, unless ``BIOUNET_TUNE_ALLOCATOR`` is ``0``/``false``/``no``/``off``.

    Called by biounet's own CPU entry points (:func:`biounet.predict`, :func:`biounet.fit`, the
    command line). Returns whether the allocator is tuned afterwards.
    """
    if os.environ.get("BIOUNET_TUNE_ALLOCATOR", "").strip().lower() in {"0", "false", "no", "off"}:
        return _tuned
    return tune_allocator()
