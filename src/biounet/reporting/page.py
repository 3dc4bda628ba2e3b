"""``biounet report RUN``: one self-contained HTML page about a training run.

The page (``RUN/report.html`` by default) shows the run at a glance: headline numbers, the
learning curves, the validation history and (when ``RUN/evaluation.json`` exists) the test
scores, the resolved configuration, and a gallery of a few validation images with four panels
each: the input, the ground truth and the prediction drawn over it (instance outlines for
instance annotations), and the loss weight map. Every picture is an embedded PNG (a base64
``data:`` URI) and the style sheet is inline, so the file opens anywhere without a network or
the run folder. A short inline script records in ``<body data-images-loaded="k/n">`` how many
of the ``n`` pictures the browser decoded, which the browser test reads.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
import logging
import math
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from biounet._version import __version__
from biounet.config.schema import TrainConfig, load_config, to_dict
from biounet.core.checks import tqdm_disable
from biounet.data.layouts import Sample

log = logging.getLogger(__name__)

__all__ = ["write_report"]

#: largest crop per spatial axis (px) that the gallery segments: 2D, 3D
CROP = {2: 512, 3: 128}
#: summary keys of ``evaluation.json`` shown as headline cards, in this order (if present)
HEADLINE = (
    "f1", "mean_ap", "panoptic_quality", "seg", "pooled_iou", "pooled_dice",
    "pooled_pixel_error", "mean_v_rand", "mean_v_info", "mean_rand_error",
)  # fmt: skip

_CSS = """
:root{--muted:#5b6475;--line:#dde1e8;--accent:#2f6fde}*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,sans-serif;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:1.1rem 2rem}header h1{margin:0;font-size:1.5rem}
header p{margin:.2rem 0 0;color:#c9cfdb}nav a{margin-right:1.1rem;color:var(--accent)}
nav{padding:.45rem 2rem;background:#fff;border-bottom:1px solid var(--line);position:sticky;top:0}
main{max-width:1280px;margin:auto;padding:.5rem 2rem 2rem}figure{margin:0}
h2{border-bottom:2px solid var(--line);padding-bottom:.2rem;margin-top:1.6rem}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:.7rem}
.card,.sample{background:#fff;border:1px solid var(--line);border-radius:8px;padding:.5rem .9rem}
.card .v{font-size:1.35rem;font-weight:600}.k,figcaption,.cap{color:var(--muted);font-size:.85rem}
.scroll{overflow-x:auto}table{border-collapse:collapse;background:#fff;margin:.4rem 0 1rem}
th,td{border:1px solid var(--line);padding:.2rem .6rem;text-align:right}th{background:#eef1f5}
td:first-child,th:first-child,table.kv td{text-align:left}tr.best td{background:#eaf7ea}
.plot{width:100%;height:auto;background:#fff;border:1px solid var(--line)}
.sample{margin-bottom:1rem}.sample h3{margin:.2rem 0 .4rem;font-size:1rem}
.panels{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:.6rem}
.panel{width:100%;height:auto;image-rendering:pixelated;border:1px solid var(--line)}
.colorbar{width:240px;height:14px;vertical-align:middle;border:1px solid var(--line)}
.note{background:#fff8e1;border:1px solid #f0d98c;padding:.5rem .8rem;border-radius:6px}
pre{background:#fff;border:1px solid var(--line);padding:.8rem;overflow:auto}
footer{color:var(--muted);font-size:.8rem;text-align:center;padding:1rem}
"""

_HEAD = '<meta name="viewport" content="width=device-width, initial-scale=1">'
_NAV = (
    '<nav><a href="#summary">Summary</a><a href="#curves">Learning curves</a>'
    '<a href="#metrics">Metrics</a><a href="#gallery">Gallery</a>'
    '<a href="#config">Configuration</a></nav>'
)
_SCRIPT = """
window.addEventListener("load", function () {
  var all = Array.prototype.slice.call(document.images);
  var ok = all.filter(function (im) { return im.complete && im.naturalWidth > 0; });
  document.body.dataset.imagesLoaded = ok.length + "/" + all.length;
});
"""


# ------------------------------------------------------------------------------- small pieces
def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any) -> str:
    """A table cell's text: floats to 4 significant places, NaN/None as a dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"


def _png_uri(rgb: np.ndarray) -> str:
    """A ``data:`` URI of a ``(Y, X)`` or ``(Y, X, 3)`` uint8 picture as PNG."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _img(uri: str, alt: str, cls: str, ident: str = "") -> str:
    idattr = f' id="{_esc(ident)}"' if ident else ""
    return f'<img{idattr} class="{cls}" alt="{_esc(alt)}" src="{uri}">'


def _table(
    header: list[str], rows: list[list[Any]], classes: list[str] | None = None, kind: str = ""
) -> str:
    """An HTML table of CSS class ``kind``; ``classes`` gives each row a class (``"best"``)."""
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{_esc(_num(v))}</td>" for v in row) + "</tr>")
    rows_html = "".join(body)
    return f'<div class="scroll"><table class="{kind}"><tr>{head}</tr>{rows_html}</table></div>'


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


def _grey(x: np.ndarray) -> np.ndarray:
    """``(C, Y, X)`` float image as uint8 ``(Y, X)`` grey (channel 0) or ``(Y, X, 3)`` RGB."""
    a = np.moveaxis(x[:3], 0, -1) if x.shape[0] == 3 else x[0]
    lo, hi = np.percentile(a, [1, 99.8])
    out: np.ndarray = np.clip((a - lo) / max(hi - lo, 1e-6) * 255, 0, 255).round()
    return out.astype(np.uint8)


# ------------------------------------------------------------------------------ the run folder
def _check_run(run: Path) -> None:
    if not run.exists():
        raise FileNotFoundError(f"{run}: no such run folder")
    if not run.is_dir():
        raise ValueError(f"{run}: a file; expected a run folder (as `biounet train --out` writes)")
    if not (run / "config.yaml").exists():
        raise FileNotFoundError(f"{run}: not a biounet run folder (no config.yaml)")
    if not any((run / n).exists() for n in ("best.pt", "last.pt")):
        raise FileNotFoundError(f"{run}: no checkpoint (best.pt or last.pt) in the run folder yet")


def _resolve(path: str, run: Path) -> str:
    """A data path as written in ``config.yaml``: as given, else relative to the run folder."""
    if not path:
        return path
    p = Path(path)
    candidates = [p, run / p, run.parent / p]
    if run.name in p.parts:  # e.g. "demo/data/train" seen from another working directory
        candidates.append(run.joinpath(*p.parts[p.parts.index(run.name) + 1 :]))
    return str(next((c for c in candidates if c.exists()), p))


def _curves(run: Path) -> tuple[str | None, str]:
    """The learning curves as a PNG data URI (plotted afresh, else the run's), or None and why."""
    from biounet.reporting.plots import plot_run

    path = run / "learning_curves.png"
    with tempfile.TemporaryDirectory() as tmp:
        try:
            data = plot_run(run, Path(tmp) / "curves.png").read_bytes()
        except (FileNotFoundError, ValueError) as e:
            if not path.exists():
                return None, str(e)
            data = path.read_bytes()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii"), ""


# ------------------------------------------------------------------------------------ gallery
def _crop(s: Sample, normalizer: Any, ndim: int) -> tuple[Sample, str]:
    """A central crop of ``s``, normalised with the whole image's statistics; and a caption."""
    spatial = tuple(int(n) for n in s.image.shape[1:])
    sizes = [min(n, CROP[ndim]) for n in spatial]
    window = tuple(slice((n - m) // 2, (n - m) // 2 + m) for n, m in zip(spatial, sizes))
    offset, scale = normalizer.stats(s.image)
    shape = (-1,) + (1,) * ndim
    x = np.asarray(s.image[(slice(None),) + window], np.float32)
    x = (x - offset.reshape(shape)) / scale.reshape(shape)
    ann = None if s.annotation is None else np.asarray(s.annotation)[window]
    note = "×".join(map(str, spatial))
    if tuple(sizes) != spatial:
        note = f"central {'×'.join(map(str, sizes))} crop of {note}"
    return Sample(s.name, x, ann, s.image_path, s.annotation_path), note


def _gallery(
    run: Path, cfg: TrainConfig, model: Any, n: int, device: Any, progress: bool | None
) -> str:
    """The gallery section's HTML: a few images with four panels each, or a note why not."""
    from tqdm.auto import tqdm

    from biounet.data.layouts import find_dataset
    from biounet.data.normalize import Normalizer
    from biounet.data.tiles import prepare
    from biounet.inference.postprocess import instances
    from biounet.inference.predictor import predict
    from biounet.metrics import ConfusionMatrix
    from biounet.segment.files import overlay
    from biounet.train.loop import split

    d = cfg.data
    if n < 1:
        return '<p class="note">No gallery (n_gallery = 0).</p>'
    if not d.path:
        return '<p class="note">No gallery: trained on in-memory samples (no data.path).</p>'
    data = dataclasses.replace(d, path=_resolve(d.path, run), val_path=_resolve(d.val_path, run))
    try:
        samples = find_dataset(data.path, ndim=d.ndim, channel_axis=d.channel_axis)
        train_s, val_s = split(samples, dataclasses.replace(cfg, data=data))
    except (FileNotFoundError, ValueError) as e:
        return f'<p class="note">No gallery: the training data is not readable ({_esc(e)}).</p>'
    chosen, which = (val_s, "validation") if val_s else (train_s, "training")
    norm = model.normalizer or Normalizer.from_dict(d.normalize)
    crops = [_crop(s, norm, d.ndim) for s in chosen[:n]]
    if not crops:
        return f'<p class="note">No gallery: no images in {_esc(data.path)}.</p>'
    spec = d.annotation_spec()
    prepared = prepare([c for c, _ in crops], spec, Normalizer(mode="none"), cfg.weights)
    is_inst = d.annotation == "instances"
    rows, vmax = [], max(float(t.weights.max()) for t in prepared)
    kw: dict[str, Any] = {"device": device, "progress": progress}  # None: tqdm decides
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    for i, ((s, note), t) in enumerate(
        tqdm(
            list(zip(crops, prepared)),
            desc="report",
            unit="img",
            disable=tqdm_disable(progress),
        )
    ):
        probs = predict(model, t.image, normalize=False, **kw)
        pred = probs.argmax(0)
        cm = ConfusionMatrix(d.num_classes)
        cm.update(t.classes, pred)
        truth = np.clip(t.classes, 0, None)
        if is_inst and s.annotation is not None:
            truth = np.where(t.classes < 0, 0, s.annotation).astype(np.int64)
            pred = instances(probs)
        img, w = t.image, t.weights
        if d.ndim == 3:  # the middle slice
            z = img.shape[1] // 2
            img, truth, pred, w = img[:, z], truth[z], pred[z], w[z]
            note += f", slice z = {z}"
        coloured = (cmap(np.clip(w / max(vmax, 1e-6), 0, 1))[..., :3] * 255).round()
        panels = [
            ("input", "input", _grey(img)),
            ("truth", "ground truth", overlay(img, truth, instances=is_inst)),
            ("prediction", "prediction", overlay(img, pred, instances=is_inst)),
            ("weights", "weight map", coloured.astype(np.uint8)),
        ]
        counts = (
            f"; objects: {int(truth.max())} true, {int(pred.max())} predicted" if is_inst else ""
        )
        figs = "".join(
            f"<figure>{_img(_png_uri(a), f'{s.name}: {text}', f'panel panel-{k}', f'g{i}-{k}')}"
            f"<figcaption>{text}</figcaption></figure>"
            for k, text, a in panels
        )
        rows.append(
            f'<div class="sample"><h3>{_esc(s.name)}</h3><div class="panels">{figs}</div>'
            f'<p class="cap">{_esc(note)}; pixel IoU {cm.scores()["iou"]:.3f}{counts}</p>'
            "</div>"
        )
    bar = (cmap(np.linspace(0, 1, 256))[None, :, :3] * 255).round().astype(np.uint8)
    legend = (
        f"<p>{len(rows)} {which} image(s); overlays: objects tinted, "
        f"{'each instance outlined' if is_inst else 'outlines'} in yellow. Weight map: "
        f"0 {_img(_png_uri(bar), 'weight colour scale', 'colorbar', 'colorbar')} "
        f"{vmax:.3g}</p>"
    )
    return legend + "".join(rows)


# ------------------------------------------------------------------------------------ the page
def _metric_sections(run: Path, cfg: TrainConfig) -> tuple[str, list[dict[str, Any]]]:
    """Evaluation and validation tables; and all records of ``metrics.jsonl``."""
    from biounet.reporting.runlog import read_metrics

    parts = []
    ev = run / "evaluation.json"
    if ev.exists():
        report = json.loads(ev.read_text())
        summary, images = report.get("summary", {}), report.get("images", [])
        parts.append(f"<h3>Evaluation ({_esc(ev.name)})</h3>")
        parts.append(_table(["summary", "value"], [[k, v] for k, v in summary.items()]))
        if images:
            keys = list(dict.fromkeys(k for r in images for k in r))
            parts.append(_table(keys, [[r.get(k) for k in keys] for r in images]))
    try:
        records = read_metrics(run)
    except FileNotFoundError:
        records = []
    val = [r for r in records if any(k.startswith("val_") for k in r)]
    parts.append("<h3>Validation during training (whole images)</h3>")
    if val:
        keys = list(dict.fromkeys(k for r in val for k in r if k.startswith("val_")))
        key = f"val_{cfg.best_metric}"
        lower = cfg.best_metric in ("pixel_error", "loss")
        scored = [r for r in val if isinstance(r.get(key), float | int)]
        best = min(scored, key=lambda r: r[key] * (1 if lower else -1)) if scored else None
        tags = ["best" if r is best else "" for r in val]
        labels = [", ".join(n for n, on in (("best", r is best), ("last", r is val[-1])) if on)
                  for r in val]  # fmt: skip
        parts.append(
            _table(
                ["iteration", *[k.removeprefix("val_") for k in keys], ""],
                [[r["iteration"], *[r.get(k) for k in keys], lab] for r, lab in zip(val, labels)],
                tags,
            )
        )
    else:
        parts.append('<p class="note">No validation records in metrics.jsonl.</p>')
    return "".join(parts), records


def _summary(run: Path, cfg: TrainConfig, model: Any, records: list[dict[str, Any]]) -> str:
    """The header's subtitle and the headline cards (training progress, scores)."""
    from biounet.checkpoint import load_checkpoint

    ckpt = run / ("last.pt" if (run / "last.pt").exists() else "best.pt")
    meta = load_checkpoint(ckpt)
    mc, key = model.config, cfg.best_metric
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
        f'<div class="card"><div class="v">{_esc(_num(v))}</div><div class="k">{_esc(k)}</div>'
        "</div>"
        for k, v in cards
    )
    return (
        f'<p>{_esc(subtitle)}</p></header>{_NAV}<main><section id="summary"><h2>Summary</h2>'
        f'<div class="cards">{items}</div></section>'
    )


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
        A run folder written by :func:`biounet.train.loop.fit` (``config.yaml``, ``best.pt`` or
        ``last.pt``, ``metrics.jsonl``; optionally ``evaluation.json``).
    out : path, optional
        The HTML file to write (atomically); default ``RUN/report.html``.
    n_gallery : int
        Validation images (training images when there are none) shown in the gallery; each is
        segmented on a central crop of at most 512 px per axis (128 px in 3D, where the middle
        slice is shown).
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
    from biounet.checkpoint import load
    from biounet.core.device import resolve_device
    from biounet.core.files import atomic_path

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
    metrics_html, records = _metric_sections(run, cfg)
    curves, why = _curves(run)
    alt = "learning curves: training loss, learning rate, validation scores"
    name = run.resolve().name
    parts = [
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">\n{_HEAD}'
        f"<title>biounet report: {_esc(name)}</title><style>{_CSS}</style></head>\n"
        f'<body data-images-loaded="pending">\n<header><h1>{_esc(name)}</h1>',
        _summary(run, cfg, model, records),
        '<section id="curves"><h2>Learning curves</h2>',
        f"<figure>{_img(curves, alt, 'plot', 'learning-curves')}<figcaption>Training loss "
        "(log scale), learning rate and validation scores by iteration.</figcaption></figure>"
        if curves
        else f'<p class="note">No learning curves: {_esc(why)}</p>',
        f'</section>\n<section id="metrics"><h2>Metrics</h2>{metrics_html}</section>\n',
        '<section id="gallery"><h2>Gallery</h2>',
        _gallery(run, cfg, model, n_gallery, dev, progress),
        '</section>\n<section id="config"><h2>Configuration</h2>',
        _table(["key", "value"], [[k, v] for k, v in _flatten(to_dict(cfg))], kind="kv"),
        "<details><summary>config.yaml as written</summary>",
        f"<pre>{_esc((run / 'config.yaml').read_text())}</pre></details></section></main>\n",
        f"<footer>biounet {__version__} · report written {datetime.now():%Y-%m-%d %H:%M}</footer>",
        f"\n<script>{_SCRIPT}</script>\n</body></html>\n",
    ]
    with atomic_path(path) as tmp:
        tmp.write_text("".join(parts), encoding="utf-8")
    log.info("wrote %s", path)
    return path
