"""One large image segmented by all ``torchrun`` processes together, each writing its own chunks.

Under ``torchrun --nproc-per-node N -m biounet predict ...`` the processes share the work in two
ways (:func:`biounet.segment.predict_files`): ordinary files go to one process each (file
``k`` to rank ``k mod N``), while each Zarr input, typically one image far larger than memory,
is predicted by all of them together. Its probabilities go into one Zarr store that every
rank writes, each rank only its own output chunks
(:class:`~biounet.inference.tiling.shards.Shard`, taken from the process group by
``biounet.predict``); the result is bit-identical to a single-process run.

The protocol for one such image, on a gloo process group (also on GPUs: only a few small
messages travel, the images never do):

1. rank 0 decides whether the image is skipped (its outputs exist) and tells the others;
2. rank 0 creates the temporary store (:func:`~biounet.core.files.atomic_path`) and sends its
   path to the others (:func:`shared_store`);
3. every rank predicts into it;
4. the ranks agree whether all succeeded: if one failed, all raise and the temporary store is
   removed; else rank 0 renames it into place and writes the other outputs (masks, labels)
   while the others go on to the next image.

A process that dies outright (killed, out of memory) cannot take part in step 4; ``torchrun``
then stops the others, and the ``.part`` store it leaves is removed by the next run
(:func:`~biounet.core.files.clean_stale_parts`).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

from biounet.core.files import atomic_path

__all__ = ["Group", "shared_store", "torchrun_group"]

T = TypeVar("T")

#: how long a process waits for the others at one step (rank 0 writes masks meanwhile)
TIMEOUT = datetime.timedelta(hours=2)


@dataclass(frozen=True)
class Group:
    """The processes of a ``torchrun`` launch, for the few messages of a shared prediction.

    Attributes
    ----------
    rank, world : int
        This process, of ``world`` (at least 2).
    handle : object or None
        The gloo process group the messages use (None: the default group, when it is gloo).
    """

    rank: int
    world: int
    handle: Any = None

    @property
    def main(self) -> bool:
        """Whether this is rank 0, the process that creates, renames and writes the outputs."""
        return self.rank == 0

    def broadcast(self, value: T) -> T:
        """Rank 0's ``value`` (any picklable object), on every rank."""
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0, group=self.handle)
        return box[0]

    def all_ok(self, ok: bool) -> bool:
        """Whether ``ok`` holds on every rank."""
        flag = torch.tensor([1 if ok else 0], dtype=torch.int32)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN, group=self.handle)
        return bool(flag.item())

    def barrier(self) -> None:
        """Wait for every rank."""
        torch.distributed.barrier(group=self.handle)


@contextmanager
def torchrun_group(needed: bool = True) -> Iterator[Group | None]:
    """The processes of this ``torchrun`` launch as a :class:`Group`; None for one process.

    None also when not ``needed``, or where ``torch.distributed`` is missing. Joins the
    default process group (gloo) if nobody has yet, and stays in it: under ``torchrun``,
    joining again after leaving reuses the launch's rendezvous keys and can hang, so a second
    call (or the caller) uses the same group. A default group of another backend (NCCL) gets
    a gloo group beside it for the messages.
    """
    dist = torch.distributed
    world = int(os.environ.get("WORLD_SIZE", 1))
    if not needed or not dist.is_available() or (world < 2 and not dist.is_initialized()):
        yield None
        return
    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=TIMEOUT)
    if dist.get_world_size() < 2:
        yield None
        return
    gloo = dist.get_backend() == "gloo"
    handle = None if gloo else dist.new_group(backend="gloo", timeout=TIMEOUT)
    yield Group(dist.get_rank(), dist.get_world_size(), handle)


@contextmanager
def shared_store(
    group: Group, target: Path, create: Callable[[Path], object], what: str
) -> Iterator[Path]:
    """A temporary store that every rank writes into; renamed to ``target`` if all succeed.

    Rank 0 makes it beside ``target`` (:func:`~biounet.core.files.atomic_path`; ``create``
    turns the empty temporary file into the store) and sends the others its path; the block
    runs on every rank. Then the ranks agree: if the block raised on any rank, every rank
    raises (rank 0 removes the temporary store), else rank 0 renames it to ``target``
    (flushed to disk) and goes on, as do the others without waiting. ``what`` (e.g.
    ``"predicting big.zarr"``) names the work in errors.
    """
    if not group.main:
        where = group.broadcast(None)
        if where is None:
            raise RuntimeError(f"process 0 failed before {what}; its error is shown above")
        with _agreed(group, what):
            yield Path(where)
        return
    with atomic_path(target) as tmp:
        try:
            create(tmp)
        except BaseException:
            group.broadcast(None)
            raise
        group.broadcast(str(tmp))
        with _agreed(group, what):
            yield tmp


@contextmanager
def _agreed(group: Group, what: str) -> Iterator[None]:
    """Run the block; then raise on every rank if it raised on any."""
    try:
        yield
    except Exception:
        group.all_ok(False)
        raise
    if not group.all_ok(True):
        raise RuntimeError(f"another process failed while {what}; its error is shown above")
