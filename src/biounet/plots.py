"""Plots a person can look at: learning curves of a run (PNG, matplotlib without a display)."""

from __future__ import annotations

from pathlib import Path

from .runlog import read_metrics

__all__ = ["plot_run"]


def plot_run(run: str | Path, out: str | Path | None = None) -> Path:
    """Learning curves of a run folder: training loss, learning rate, validation metrics.

    Writes ``RUN/learning_curves.png`` (or ``out``) and returns its path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .data.io import atomic_path

    run = Path(run)
    records = read_metrics(run)
    train = [r for r in records if "loss" in r]
    val = [r for r in records if "val_pixel_error" in r]
    if not train and not val:
        raise ValueError(f"{run}: the metrics log is empty; nothing to plot yet")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    if train:
        ax.plot([r["iteration"] for r in train], [r["loss"] for r in train], color="C0")
        ax.set_yscale("log")
    ax.set(title="training loss", xlabel="iteration", ylabel="loss")
    ax = axes[1]
    if train:
        ax.plot([r["iteration"] for r in train], [r["lr"] for r in train], color="C1")
    ax.set(title="learning rate", xlabel="iteration", ylabel="lr")
    ax = axes[2]
    for key, colour in (("val_iou", "C2"), ("val_dice", "C3"), ("val_pixel_error", "C4")):
        pts = [(r["iteration"], r[key]) for r in val if key in r]
        if pts:
            ax.plot(*zip(*pts), marker="o", color=colour, label=key.removeprefix("val_"))
    ax.set(title="validation (whole images)", xlabel="iteration", ylim=(0, 1))
    if val:
        ax.legend(loc="center right")
    for a in axes:
        a.grid(alpha=0.3)
    fig.suptitle(run.name)
    fig.tight_layout()
    path = Path(out) if out is not None else run / "learning_curves.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path
