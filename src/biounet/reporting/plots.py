"""Plots a person can look at: learning curves of a run (PNG, matplotlib without a display)."""

from __future__ import annotations

from pathlib import Path

from biounet.reporting.runlog import read_metrics

__all__ = ["plot_formats", "plot_run"]


def plot_formats() -> tuple[str, ...]:
    """File extensions (without the dot) :func:`plot_run` writes: those of matplotlib.

    ``pgf`` is left out: it needs a LaTeX installation.

    >>> {"png", "pdf", "svg"} <= set(plot_formats())
    True
    """
    from matplotlib.backend_bases import FigureCanvasBase

    return tuple(sorted(set(FigureCanvasBase.get_supported_filetypes()) - {"pgf"}))


def plot_run(run: str | Path, out: str | Path | None = None) -> Path:
    """Learning curves of a run folder: training loss, learning rate, validation metrics.

    Writes ``RUN/learning_curves.png`` (or ``out``, in the format its extension names: PNG,
    PDF, SVG, ... see :func:`plot_formats`) and returns its path.

    Raises
    ------
    ValueError
        ``out`` has an extension matplotlib cannot write, or the metrics log is empty.
    FileNotFoundError
        The run folder or its ``metrics.jsonl`` is missing.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from biounet.core.files import atomic_path

    run = Path(run)
    path = Path(out) if out is not None else run / "learning_curves.png"
    fmt = path.suffix.lower().removeprefix(".")
    if fmt not in plot_formats():
        what = repr(path.suffix) if path.suffix else "a file without an extension"
        raise ValueError(
            f"{path}: cannot write a plot as {what}; use one of "
            f"{', '.join('.' + f for f in plot_formats())}"
        )
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
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=100)
    plt.close(fig)
    return path
