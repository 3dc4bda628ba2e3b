"""The report's sections other than the gallery: headline cards, curves, metrics, configuration."""

from __future__ import annotations

import base64
import json
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from biounet.checkpoint import load_checkpoint
from biounet.config import TrainConfig, to_dict
from biounet.inference.trained import TrainedModel
from biounet.reporting.page.markup import NAV, esc, img_tag, number_text, table
from biounet.reporting.plots import plot_run
from biounet.reporting.runlog import read_metrics

__all__ = ["HEADLINE", "config_section", "curves_section", "metric_section", "summary_section"]

#: summary keys of ``evaluation.json`` shown as headline cards, in this order (if present)
HEADLINE = (
    "f1", "mean_ap", "panoptic_quality", "seg", "pooled_iou", "pooled_dice",
    "pooled_pixel_error", "mean_v_rand", "mean_v_info", "mean_rand_error",
)  # fmt: skip


def summary_section(
    run: Path, cfg: TrainConfig, model: TrainedModel, records: list[dict[str, Any]]
) -> str:
    """The header's subtitle and the headline cards (training progress, scores).

    ``records`` are those of the run's ``metrics.jsonl``.
    """
    ckpt = run / ("last.pt" if (run / "last.pt").exists() else "best.pt")
    meta = load_checkpoint(ckpt)
    mc, key = model.config, cfg.selection_metric()
    done, planned = meta.get("iteration", "?"), meta.get("planned_iterations", cfg.iterations)
    cards: list[tuple[str, Any]] = [
        ("iterations", f"{done} / {planned}"),
        ("parameters", f"{n / 1e6:.2f} M" if (n := model.net.count_parameters()) > 1e5 else n),
    ]
    if meta.get("best"):
        b = meta["best"]
        cards.append((f"best validation {b['metric']} (iteration {b['iteration']})", b["value"]))
    val = [r[f"val_{key}"] for r in records if f"val_{key}" in r]
    losses = [r["loss"] for r in records if "loss" in r]
    cards += [(f"last validation {key}", v) for v in val[-1:]]
    cards += [("final training loss", v) for v in losses[-1:]]
    if meta.get("train_seconds"):
        cards.append(("training time, min", float(meta["train_seconds"]) / 60))
    if (run / "evaluation.json").exists():
        summary = json.loads((run / "evaluation.json").read_text()).get("summary", {})
        cards += [(f"test {k}", summary[k]) for k in HEADLINE if k in summary][:6]
    trained = datetime.fromtimestamp(ckpt.stat().st_mtime)
    subtitle = (
        f"trained {trained:%Y-%m-%d %H:%M} · {cfg.model.get('preset', 'custom')} U-Net "
        f"(depth {mc.depth}, width {mc.base_width}, {mc.padding} padding, {mc.ndim}D, "
        f"{mc.num_classes} classes) · {cfg.data.annotation} annotations · "
        f"data {cfg.data.path or 'in memory'}"
    )
    items = "".join(
        f'<div class="card"><div class="v">{esc(number_text(v))}</div>'
        f'<div class="k">{esc(k)}</div></div>'
        for k, v in cards
    )
    return (
        f'<p>{esc(subtitle)}</p></header>{NAV}<main><section id="summary"><h2>Summary</h2>'
        f'<div class="cards">{items}</div></section>'
    )


def curves_section(run: Path) -> str:
    """The learning curves (plotted afresh, else the run's PNG) as a figure, or a note why not."""
    path = run / "learning_curves.png"
    with tempfile.TemporaryDirectory() as tmp:
        try:
            data = plot_run(run, Path(tmp) / "curves.png").read_bytes()
        except (FileNotFoundError, ValueError) as e:
            if not path.exists():
                return f'<p class="note">No learning curves: {esc(e)}</p>'
            data = path.read_bytes()
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    alt = "learning curves: training loss, learning rate, validation scores"
    return (
        f"<figure>{img_tag(uri, alt, 'plot', 'learning-curves')}<figcaption>Training loss "
        "(log scale), learning rate and validation scores by iteration.</figcaption></figure>"
    )


def metric_section(run: Path, cfg: TrainConfig) -> tuple[str, list[dict[str, Any]]]:
    """Evaluation and validation tables; and all records of ``metrics.jsonl``."""
    parts = []
    ev = run / "evaluation.json"
    if ev.exists():
        report = json.loads(ev.read_text())
        summary, images = report.get("summary", {}), report.get("images", [])
        parts.append(f"<h3>Evaluation ({esc(ev.name)})</h3>")
        parts.append(table(["summary", "value"], [[k, v] for k, v in summary.items()]))
        if images:
            keys = list(dict.fromkeys(k for r in images for k in r))
            parts.append(table(keys, [[r.get(k) for k in keys] for r in images]))
    try:
        records = read_metrics(run)
    except FileNotFoundError:
        records = []
    parts.append("<h3>Validation during training (whole images)</h3>")
    parts.append(_validation_table(records, cfg.selection_metric()))
    return "".join(parts), records


def _validation_table(records: list[dict[str, Any]], metric: str) -> str:
    """The validation records as a table, the best (by ``metric``) and the last marked."""
    val = [r for r in records if any(k.startswith("val_") for k in r)]
    if not val:
        return '<p class="note">No validation records in metrics.jsonl.</p>'
    keys = list(dict.fromkeys(k for r in val for k in r if k.startswith("val_")))
    key = f"val_{metric}"
    lower = metric in ("pixel_error", "loss")
    scored = [r for r in val if isinstance(r.get(key), float | int)]
    best = min(scored, key=lambda r: r[key] * (1 if lower else -1)) if scored else None
    tags = ["best" if r is best else "" for r in val]
    labels = [", ".join(n for n, on in (("best", r is best), ("last", r is val[-1])) if on)
              for r in val]  # fmt: skip
    return table(
        ["iteration", *[k.removeprefix("val_") for k in keys], ""],
        [[r["iteration"], *[r.get(k) for k in keys], lab] for r, lab in zip(val, labels)],
        tags,
    )


def config_section(run: Path, cfg: TrainConfig) -> str:
    """The resolved configuration as a key/value table, and ``config.yaml`` as written."""
    rows = [[k, v] for k, v in _flatten(to_dict(cfg))]
    return (
        table(["key", "value"], rows, kind="kv")
        + "<details><summary>config.yaml as written</summary>"
        + f"<pre>{esc((run / 'config.yaml').read_text())}</pre></details>"
    )


def _flatten(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested mappings as ``("optim.lr", 0.003)`` pairs; lists shown as YAML flow lists."""
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        if isinstance(v, dict) and v and k != "normalize":
            out += _flatten(v, f"{prefix}{k}.")
        else:
            plain = isinstance(v, str | int | float) and not isinstance(v, bool)
            out.append((prefix + k, v if plain else json.dumps(v)))
    return out
