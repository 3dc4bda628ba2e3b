"""The metrics log of a run: JSON lines, one record per logged iteration or validation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from biounet.core.files import atomic_path
from biounet.reporting.tensorboard import TensorBoardLog

__all__ = ["MetricsLog", "read_metrics"]


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All records of a metrics log (a ``metrics.jsonl`` file or the run folder holding it).

    A truncated last line (an interrupted write) is skipped.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "metrics.jsonl"
    if not p.exists():
        raise FileNotFoundError(f"{p}: no metrics log (is this a biounet run folder?)")
    records = []
    for line in p.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


class MetricsLog:
    """Appends records to ``path``; ``after=N`` drops records past iteration ``N`` first.

    On resume, the iterations after the last checkpoint run again, so their old records go:
    at the first write, so that a resumed run that fails before it logs anything leaves the
    log as it was. With ``tensorboard``, every record also goes to TensorBoard event files in
    ``tensorboard/`` beside ``path`` (:class:`~biounet.reporting.tensorboard.TensorBoardLog`),
    with validation pictures; use the log as a context manager so that they are closed.
    """

    def __init__(
        self, path: str | Path, *, after: int | None = None, tensorboard: bool = False
    ) -> None:
        self.path = Path(path)
        self.after = after
        self.tensorboard = (
            TensorBoardLog(self.path.parent / "tensorboard", after=after) if tensorboard else None
        )

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the TensorBoard event file (the JSON lines are flushed at every write)."""
        if self.tensorboard is not None:
            self.tensorboard.close()

    def pictures(self, shown: list[tuple[str, Any]], iteration: int) -> None:
        """Validation pictures for TensorBoard (nothing without it)."""
        if self.tensorboard is not None and shown:
            self.tensorboard.pictures(shown, iteration)

    def write(self, **record: Any) -> None:
        """Append one record (flushed at once)."""
        if self.after is not None and self.path.exists():
            kept = [r for r in read_metrics(self.path) if r.get("iteration", 0) <= self.after]
            with atomic_path(self.path) as tmp:
                tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        self.after = None
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tensorboard is not None:
            self.tensorboard.scalars(record)
