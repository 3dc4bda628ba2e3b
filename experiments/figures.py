"""The studies' figures: learning curves, predictions and errors on a held-out slice, seams."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import common
import numpy as np
from common import read_log

#: the crop of a 512 px slice the prediction figures show (rows, columns), px
CROP = (slice(128, 384), slice(128, 384))


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def learning_curves(runs: dict[str, Path], path: Path, key: str = "val_loss") -> None:
    """Training loss and the validation ``key`` of each run over its training minutes."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for label, folder in runs.items():
        records = read_log(folder)
        if not records:
            continue
        train = [r for r in records if "loss" in r and "seconds_per_it" in r]
        minutes = np.cumsum([r["seconds_per_it"] * _gap(train, i) for i, r in enumerate(train)])
        minutes /= 60
        loss = np.array([r["loss"] for r in train])
        k = max(1, len(loss) // 50)
        smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
        axes[0].plot(minutes[k - 1 :], smooth, label=label, lw=1)
        its = np.array([r["iteration"] for r in train])
        val = [r for r in records if key in r]
        if val:
            t = np.interp([r["iteration"] for r in val], its, minutes)
            axes[1].plot(t, [r[key] for r in val], "o-", ms=3, label=label, lw=1)
    axes[0].set(xlabel="training minutes", ylabel="training loss (smoothed)", yscale="log")
    axes[1].set(xlabel="training minutes", ylabel=key.replace("_", " "))
    for a in axes:
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _gap(records: list[dict[str, Any]], i: int) -> int:
    """Iterations between logged record ``i`` and the one before it."""
    if i == 0:
        return int(records[0]["iteration"])
    return int(records[i]["iteration"] - records[i - 1]["iteration"])


def membrane_errors(
    image: np.ndarray, truth: np.ndarray, preds: dict[str, np.ndarray], path: Path
) -> None:
    """A held-out slice: the image, the truth, and per method its membrane map and errors.

    ``truth``: label image (membrane 0). ``preds``: membrane probability ``(Y, X)`` by method.
    Errors at 0.5: membrane missed (red), membrane where there is none (blue).
    """
    plt = _plt()
    n = len(preds)
    fig, axes = plt.subplots(2, n + 1, figsize=(2.6 * (n + 1), 5.4))
    axes = np.asarray(axes).reshape(2, n + 1)
    t = truth[CROP] == 0
    axes[0, 0].imshow(image[CROP], cmap="gray")
    axes[0, 0].set_title("image", fontsize=9)
    axes[1, 0].imshow(t, cmap="gray_r")
    axes[1, 0].set_title("true membrane", fontsize=9)
    for j, (label, p) in enumerate(preds.items(), start=1):
        p = p[CROP]
        axes[0, j].imshow(p, cmap="gray_r", vmin=0, vmax=1)
        axes[0, j].set_title(label, fontsize=9)
        m = p > 0.5
        rgb = np.ones((*m.shape, 3))
        rgb[t & m] = 0.55
        rgb[t & ~m] = (0.85, 0.1, 0.1)
        rgb[~t & m] = (0.1, 0.3, 0.9)
        axes[1, j].imshow(rgb)
        err = float((m != t).mean())
        axes[1, j].set_title(f"errors ({100 * err:.1f}% px)", fontsize=9)
    for a in axes.ravel():
        a.set_xticks([])
        a.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def isbi_figures(
    out: Path, results: list[dict[str, Any]], folder: Path, fits: dict[str, dict[str, Any]]
) -> list[str]:
    """The ISBI study's figures in ``folder``; Markdown lines that show them.

    ``fits``: the paper preset's extrapolations (:func:`isbi.fits`), drawn on its curve.
    """
    from biounet.data.io import read_image

    folder.mkdir(parents=True, exist_ok=True)
    runs = {r["run"]: out / "runs" / r["run"] / "train" for r in results}
    runs = {k: v for k, v in runs.items() if (v / "metrics.jsonl").exists()}
    lines = []
    if runs:
        learning_curves(runs, folder / "learning_curves.png")
        lines += ["![learning curves](learning_curves.png)", ""]
    shown = "27"
    preds = {}
    for r in results:
        for tag in ("plain", "tta"):
            f = out / "runs" / r["run"] / f"membrane_{tag}.npy"
            if f.exists():
                preds[f"{r['run']} ({tag})"] = np.load(f)
    src = common.DATA_ROOT / "isbi2012"
    if preds and (src / "images" / f"{shown}.png").exists():
        image = np.asarray(read_image(src / "images" / f"{shown}.png"))
        truth = np.asarray(read_image(src / "labels" / f"{shown}.png"))
        membrane_errors(image, truth, preds, folder / "predictions.png")
        lines += [f"![slice {shown}: predictions and errors](predictions.png)", ""]
    paper = next((r for r in results if r["run"] == "paper"), None)
    if paper and len(paper.get("curve", [])) > 1:
        paper_curve(out, results, fits, folder / "paper_curve.png")
        lines += ["![the paper preset's learning curves](paper_curve.png)", ""]
    return lines


def paper_curve(
    out: Path, results: list[dict[str, Any]], fits: dict[str, dict[str, Any]], path: Path
) -> None:
    """The paper preset's curves over iterations, beside the ``cpu`` runs'.

    Left: validation pixel error, the paper's and ``cpu60``'s, with the power-law fit of the
    paper's dashed to 10x its iterations. Right: the held-out errors after each segment, and
    the ``cpu`` runs' final ones.
    """
    import isbi

    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for run, style in (("paper", "o-"), ("cpu60", ".-")):
        curve = isbi.validation_curve(out / "runs" / run / "train")
        if not curve:
            continue
        n = np.array([p["iterations"] for p in curve], dtype=float)
        e = np.array([p["val_pixel_error"] for p in curve])
        axes[0].plot(n, e, style, ms=3, lw=1, label=run)
        fit = fits.get(f"{run}, validation pixel error", {})
        if run == "paper" and fit.get("determined"):
            x = np.geomspace(n[0], 10 * n[-1], 100)
            a, b, c = fit["asymptote"], fit["scale"], fit["exponent"]
            axes[0].plot(x, a + b * (x / n[-1]) ** (-c), "--", color="C0", lw=1,
                         label=f"fit, limit {a:.3f}")  # fmt: skip
    axes[0].set(xlabel="iterations", ylabel="validation pixel error", xscale="log")
    curve = results[[r["run"] for r in results].index("paper")]["curve"]
    its = [p["iterations"] for p in curve]
    for key, mark in (("v_rand", "o-"), ("v_info", "s-")):
        axes[1].plot(its, [1 - p[key] for p in curve], mark, label=f"paper, 1 - {key}")
    for r in results:
        if r["run"] in ("cpu30", "cpu60") and "plain" in r:
            axes[1].plot(r["iterations"], 1 - r["plain"]["v_rand"], "k^", ms=5)
            axes[1].annotate(r["run"], (r["iterations"], 1 - r["plain"]["v_rand"]), fontsize=8)
    axes[1].set(xlabel="iterations", ylabel="error on slices 25-29", xscale="log", yscale="log")
    for a in axes:
        a.grid(alpha=0.3, which="both")
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
