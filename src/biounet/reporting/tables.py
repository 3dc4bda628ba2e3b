"""Score tables: per-image rows and the summary as plain text, JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from biounet.core.files import atomic_path

__all__ = ["format_table", "write_reports"]


def format_table(rows: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    """Per-image rows and the aggregate as a plain-text table."""
    if not rows:
        return "no images"
    keys = [k for k in rows[0] if k != "image"]
    width = max(12, *(len(str(r["image"])) for r in rows))
    cols = {k: max(10, len(k) + 2) for k in keys}
    head = f"{'image':<{width}}" + "".join(f"{k:>{cols[k]}}" for k in keys)
    lines = [head, "-" * len(head)]
    for r in rows:
        cells = "".join(
            f"{r[k]:>{cols[k]}.4f}" if isinstance(r[k], float) else f"{r[k]:>{cols[k]}}"
            for k in keys
        )
        lines.append(f"{r['image']!s:<{width}}{cells}")
    lines.append("-" * len(head))
    lines.append(
        "over all images: "
        + ", ".join(
            f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in summary.items()
        )
    )
    return "\n".join(lines)


#: what a spreadsheet reads as the start of a formula in a text cell
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet shows as text: a leading formula character is escaped.

    Names such as ``=HYPERLINK(...)`` or ``@SUM(...)`` (file names can hold them) get a
    leading ``'``, which spreadsheets read as "text follows"; numbers are left alone.

    >>> _cell("=1+2"), _cell("-cell"), _cell("a"), _cell(-0.5)
    ("'=1+2", "'-cell", 'a', -0.5)
    """
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    return value


def _plain(value: Any) -> Any:
    """JSON-ready: NaN and infinite numbers as None, NumPy scalars as Python numbers."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_reports(
    rows: list[dict[str, Any]],
    summary: dict[str, Any],
    *,
    json_path: str | Path | None = None,
    csv_path: str | Path | None = None,
) -> None:
    """Write the scores as JSON (rows and summary) and/or CSV (one row per image), atomically.

    Undefined scores (NaN, such as SEG of an image without reference objects) are ``null`` in
    the JSON, which is strict (no ``NaN``), and empty cells in the CSV.
    """
    if json_path:
        text = json.dumps(_plain({"images": rows, "summary": summary}), indent=2, allow_nan=False)
        with atomic_path(json_path) as tmp:
            tmp.write_text(text)
    if csv_path:
        buf = io.StringIO()
        if rows:
            writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(
                {k: "" if v is None else _cell(v) for k, v in _plain(r).items()} for r in rows
            )
        with atomic_path(csv_path) as tmp:
            tmp.write_text(buf.getvalue())
