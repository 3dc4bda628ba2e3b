"""Distributed training under ``torchrun``: ranks, the process group, and rank 0's word shared.

Each process trains its own share of tiles and DistributedDataParallel averages the gradients.
Only rank 0 validates and writes; every decision that ends or reshapes the loop (the time
budget) is taken on rank 0's clock and broadcast, so all ranks stop at the same iteration.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)

__all__ = ["Ranks", "barrier", "from_rank0", "start", "sync_buffers"]


@dataclass(frozen=True)
class Ranks:
    """A process's place: ``rank`` of ``world`` processes, ``local`` on its machine."""

    rank: int = 0
    world: int = 1
    local: int = 0

    @classmethod
    def from_env(cls) -> Ranks:
        """From ``torchrun``'s ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; (0, 1, 0) without."""
        return cls(
            int(os.environ.get("RANK", 0)),
            int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)),
        )

    @property
    def main(self) -> bool:
        """Whether this is rank 0, the process that validates and writes."""
        return self.rank == 0


def start(ranks: Ranks) -> torch.device:
    """Join the process group (several processes) and return this process's device."""
    if ranks.world > 1 and torch.cuda.is_available():
        # before the process group: NCCL (and its barrier) would otherwise use GPU 0 on every
        # rank, which can hang
        torch.cuda.set_device(ranks.local)
    if ranks.world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return torch.device(f"cuda:{ranks.local}" if torch.cuda.is_available() else "cpu")


def from_rank0(values: Sequence[float], device: torch.device) -> tuple[float, ...]:
    """Rank 0's ``values`` on every rank (one broadcast on the training device, as NCCL needs)."""
    t = torch.tensor(list(values), dtype=torch.float64, device=device)
    torch.distributed.broadcast(t, src=0)
    return tuple(float(v) for v in t.tolist())


def barrier(ranks: Ranks) -> None:
    """Wait for every rank (nothing to wait for in a single process)."""
    if ranks.world > 1:
        torch.distributed.barrier()


def sync_buffers(model: torch.nn.Module, ranks: Ranks) -> None:
    """Give every rank rank 0's buffers (batch-norm statistics).

    DDP syncs buffers from rank 0 before each forward; after the last one every rank updated
    its own, so without this the ranks would end with different models.
    """
    if ranks.world > 1:
        for buf in model.buffers():
            torch.distributed.broadcast(buf, 0)
