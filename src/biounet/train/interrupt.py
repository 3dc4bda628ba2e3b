"""Ctrl-C during training: finish the step, save ``last.pt``, then stop (exit status 130)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["Interrupt", "interruptible"]


class Interrupt:
    """Whether Ctrl-C (SIGINT) was pressed since :func:`interruptible` began."""

    requested: bool = False


@contextmanager
def interruptible() -> Iterator[Interrupt]:
    """Turn the first SIGINT into a request the loop answers between steps.

    Inside the block the first Ctrl-C only sets :attr:`Interrupt.requested`, so the step in
    progress completes and the loop can save a checkpoint at that iteration before raising
    ``KeyboardInterrupt``; a second Ctrl-C interrupts at once, as usual. Outside the main
    thread (where Python delivers no signals), or where SIGINT is ignored (a job started in
    the background with ``nohup`` or ``&``), nothing changes.
    """
    state = Interrupt()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:  # meant to run through Ctrl-C
        yield state
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        state.requested = True
        signal.signal(signal.SIGINT, previous)  # a second Ctrl-C: at once

    signal.signal(signal.SIGINT, handler)
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, previous)
