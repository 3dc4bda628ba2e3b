"""The score files of an evaluation, checked against its inputs before anything is computed."""

from __future__ import annotations

import os
from pathlib import Path

from biounet.core.paths import check_outputs

__all__ = ["check_score_outputs"]


def _files(path: str | os.PathLike[str]) -> list[Path]:
    """The files an input path stands for: itself, or every file of a folder (not below)."""
    p = Path(path)
    if p.is_dir() and p.suffix.lower() != ".zarr":
        return sorted(q for q in p.iterdir() if q.is_file())
    return [p] if p.exists() else []


def check_score_outputs(
    pred: str | os.PathLike[str] | None,
    truth: str | os.PathLike[str] | None,
    json_path: str | os.PathLike[str] | None,
    csv_path: str | os.PathLike[str] | None,
) -> None:
    """Raise before scoring if a score file cannot be written or would replace an input.

    ``pred`` and ``truth`` are the files or folders scored (None: not known yet, e.g. the
    output folder of a prediction still to run). A score path that is a folder, whose folder
    does not exist, that is the other score path, or that is one of the inputs' files (a
    prediction, a truth mask; links followed) is an error naming both.
    """
    outputs = {}
    for path, what in ((json_path, "the JSON scores"), (csv_path, "the CSV scores")):
        if not path:
            continue
        p = Path(path)
        if p.is_dir():
            raise IsADirectoryError(
                21, f"a folder, not a file: give a file name such as {p / p.name}.json", str(p)
            )
        parent = p.parent if str(p.parent) else Path(".")
        if not parent.is_dir():
            raise FileNotFoundError(2, f"its folder {parent} does not exist", str(p))
        outputs[p] = what
    inputs = {f: "the prediction" for f in _files(pred)} if pred else {}
    if truth:
        inputs.update({f: "the ground truth" for f in _files(truth)})
    check_outputs(list(outputs.items()), inputs)
