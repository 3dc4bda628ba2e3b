"""Writing the report page: the run folder's checks and the sections put into one HTML file."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from biounet._version import __version__
from biounet.checkpoint import load
from biounet.config import load_config
from biounet.core.device import resolve_device
from biounet.core.files import atomic_path
from biounet.reporting.page.gallery import gallery_section
from biounet.reporting.page.markup import CSS, HEAD, SCRIPT, esc
from biounet.reporting.page.sections import (
    config_section,
    curves_section,
    metric_section,
    summary_section,
)

__all__ = ["write_report"]

log = logging.getLogger(__name__)


def write_report(
    run: str | Path,
    out: str | Path | None = None,
    *,
    n_gallery: int = 4,
    device: str = "cpu",
    progress: bool | None = False,
) -> Path:
    """Write a self-contained HTML report of a training run folder.

    Parameters
    ----------
    run : path
        A run folder written by :func:`biounet.train.fit` (``config.yaml``, ``best.pt`` or
        ``last.pt``, ``metrics.jsonl``; optionally ``evaluation.json``).
    out : path, optional
        The HTML file to write (atomically); default ``RUN/report.html``.
    n_gallery : int
        Validation images (training images when there are none) shown in the gallery; each is
        segmented on a central crop of at most 512 px per axis (128 px in 3D, shown as
        orthogonal views through its densest true foreground).
    device : str
        Where the gallery's predictions run: ``"cpu"``, ``"cuda"``, ``"auto"``, ... The model
        is read on the CPU and moved there for predicting.
    progress : bool, optional
        Progress bars over the gallery images and their tiles; None: when writing to a
        terminal (tqdm decides).

    Returns
    -------
    Path
        The report written.

    Raises
    ------
    FileNotFoundError
        ``run`` does not exist, or lacks ``config.yaml`` or a checkpoint.
    ValueError
        ``run`` is a file, ``n_gallery`` is negative, ``out`` does not end in ``.html`` or
        ``.htm``, or ``device`` is unknown or not on this machine (e.g. ``"cuda"`` without
        CUDA).
    """
    run = Path(run)
    _check_run(run)
    if n_gallery < 0:
        raise ValueError(f"n_gallery must be >= 0, got {n_gallery}")
    path = Path(out) if out is not None else run / "report.html"
    if path.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"{path}: the report is an HTML page; give a file name ending in .html")
    cfg = load_config(run / "config.yaml")
    dev = resolve_device(device)  # first: a missing CUDA is not a corrupt checkpoint
    model = load(run, device=dev)  # on the gallery's device once, not per image
    metrics_html, records = metric_section(run, cfg)
    name = run.resolve().name
    parts = [
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">\n{HEAD}'
        f"<title>biounet report: {esc(name)}</title><style>{CSS}</style></head>\n"
        f'<body data-images-loaded="pending">\n<header><h1>{esc(name)}</h1>',
        summary_section(run, cfg, model, records),
        '<section id="curves"><h2>Learning curves</h2>',
        curves_section(run),
        f'</section>\n<section id="metrics"><h2>Metrics</h2>{metrics_html}</section>\n',
        '<section id="gallery"><h2>Gallery</h2>',
        gallery_section(run, cfg, model, n_gallery, dev, progress),
        '</section>\n<section id="config"><h2>Configuration</h2>',
        config_section(run, cfg),
        "</section></main>\n",
        f"<footer>biounet {__version__} · report written {datetime.now():%Y-%m-%d %H:%M}</footer>",
        f"\n<script>{SCRIPT}</script>\n</body></html>\n",
    ]
    with atomic_path(path) as tmp:
        tmp.write_text("".join(parts), encoding="utf-8")
    log.info("wrote %s", path)
    return path


def _check_run(run: Path) -> None:
    """Raise FileNotFoundError or ValueError unless ``run`` is a run folder with a checkpoint."""
    if not run.exists():
        raise FileNotFoundError(f"{run}: no such run folder")
    if not run.is_dir():
        raise ValueError(f"{run}: a file; expected a run folder (as `biounet train --out` writes)")
    if not (run / "config.yaml").exists():
        raise FileNotFoundError(f"{run}: not a biounet run folder (no config.yaml)")
    if not any((run / n).exists() for n in ("best.pt", "last.pt")):
        raise FileNotFoundError(f"{run}: no checkpoint (best.pt or last.pt) in the run folder yet")
