"""The torch device to run on: ``"auto"`` resolved, and a device this machine lacks refused."""

from __future__ import annotations

import os

import torch

__all__ = ["process_device", "resolve_device"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The torch device to run on, checked to exist on this machine.

    Parameters
    ----------
    device : str or torch.device
        ``"auto"``: CUDA if available, else the CPU (Apple's MPS is used only when asked for
        by name). ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``, or a ``torch.device``.

    Raises
    ------
    ValueError
        For an unknown name, or a CUDA/MPS device this machine does not have (one line,
        suggesting ``"cpu"`` or ``"auto"``).
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = device if isinstance(device, torch.device) else torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(
            f"unknown device {device!r}: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
        ) from e
    fix = "use device='cpu' or 'auto'"
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} is not available: no CUDA device here; {fix}")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ValueError(
                f"device {str(device)!r} is not available: this machine has {count} CUDA "
                f"device(s) (cuda:0 to cuda:{count - 1}); {fix}"
            )
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"device {str(device)!r} is not available: no Apple MPS here; {fix}")
    return dev


def process_device(device: str) -> str:
    """``device``, but ``"auto"`` under ``torchrun`` is this process's GPU, ``cuda:LOCAL_RANK``.

    So that the processes of a sharded prediction do not all share ``cuda:0``; without
    ``torchrun`` (no ``LOCAL_RANK``) or without CUDA, ``device`` is returned unchanged.
    """
    if device != "auto" or "LOCAL_RANK" not in os.environ or not torch.cuda.is_available():
        return device
    return f"cuda:{os.environ['LOCAL_RANK']}"
