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
import logging
import math
import os
import sys
import threading
import time

__all__ = [
    "TRIM_THRESHOLD",
    "allocator_tuned",
    "auto_tune_allocator",
    "share_cores",
    "tune_allocator",
]

#: ``mallopt`` parameter numbers, from glibc's ``<malloc.h>``
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4

#: bytes of free memory kept at the top of the heap (``mallopt`` takes a C ``int``)
TRIM_THRESHOLD = 2**31 - 1

_lock = threading.Lock()
_tuned = False

log = logging.getLogger(__name__)


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


#: how often :func:`share_cores` looks at the machine again, s
SHARE_EVERY = 2.0
#: the share of a core another process must use to be given it
SHARE_THRESHOLD = 0.25


class _CoreShare:
    """What :func:`share_cores` remembers: the last sample of the CPU counters, the threads."""

    def __init__(self) -> None:
        self.sample: tuple[float, int, int] | None = None  #: (wall s, all busy, own jiffies)
        self.threads: int | None = None  #: torch's thread count when first seen (the most)
        self.current: int | None = None  #: the count last seen or set here


_share = _CoreShare()


def _cpu_counters() -> tuple[float, int, int] | None:
    """(wall s, busy jiffies of all CPUs, this process's jiffies), or None without /proc."""
    try:
        with open("/proc/stat") as f:
            cpu = [int(v) for v in f.readline().split()[1:]]
        with open("/proc/self/stat") as f:
            own = f.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    busy = sum(cpu[:3]) + sum(cpu[5:8])  # user nice system, irq softirq steal
    return time.monotonic(), busy, int(own[11]) + int(own[12])  # utime + stime


def share_cores() -> int | None:
    """Leave the cores other processes use to them: fewer torch threads while they run.

    With one OpenMP thread per core, a process that takes one core slows biounet's forward
    and training steps 2-17x (the threads spin at every barrier, waiting for the one the
    scheduler put aside; ``benchmarks/threads.py``). Called regularly by ``predict`` and
    ``fit`` on a CPU: every :data:`SHARE_EVERY` s it measures the CPU time of the other
    processes since the last look (``/proc/stat`` less this process's own) and sets torch's
    thread count to the cores they leave free, at least 1 and at most the count torch
    started with. A core counts as taken when others use :data:`SHARE_THRESHOLD` of it.

    Nothing is changed where the count was chosen: ``OMP_NUM_THREADS`` or
    ``BIOUNET_THREADS`` set (a number fixes the count, ``0``/``off`` keeps torch's), or
    ``torch.set_num_threads`` called since biounet first looked, or deterministic algorithms
    switched on (``deterministic: true``). Without ``/proc`` (not Linux) nothing is done.

    Returns
    -------
    int or None
        The thread count set, or None where nothing was decided this time.
    """
    import torch

    fixed = os.environ.get("BIOUNET_THREADS", "auto").strip().lower()
    if torch.are_deterministic_algorithms_enabled():
        return None  # a deterministic run keeps its thread count (and its sums' order)
    if "OMP_NUM_THREADS" in os.environ or fixed not in ("", "auto"):
        if fixed.isdigit() and int(fixed) > 0 and torch.get_num_threads() != int(fixed):
            torch.set_num_threads(int(fixed))
        return None
    with _lock:
        if _share.threads is None:
            _share.threads = _share.current = torch.get_num_threads()
        if torch.get_num_threads() != _share.current:  # set by someone else since: theirs
            return None
        last = _share.sample
        if last is not None and time.monotonic() - last[0] < SHARE_EVERY:
            return None
        now = _cpu_counters()
        if now is None:
            return None
        _share.sample = now
        if last is None:
            return None
        hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        others = ((now[1] - last[1]) - (now[2] - last[2])) / hz / (now[0] - last[0])
        taken = max(0, math.ceil(others - SHARE_THRESHOLD))
        want = max(1, _share.threads - taken)
        if want != torch.get_num_threads():
            log.info("other processes use %.1f core(s): %d thread(s)", others, want)
            torch.set_num_threads(want)
        _share.current = want
        return want
