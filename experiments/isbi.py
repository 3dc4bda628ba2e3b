"""The ISBI 2012 protocol: train on slices 00-24, test on 25-29, scored as the challenge scores.

Runs (each resumable; ``--runs`` picks):

* ``cpu30``, ``cpu60``: the ``cpu`` preset within 30 and 60 minutes of this machine's time
  (``max_minutes``; the preset's own validation split of 20% of slices 00-24 picks ``best.pt``);
* ``paper``: the paper's preset (``ronneberger2015``: its network, 572 px tiles, batch 1, SGD
  with momentum 0.99 at a constant rate, weighted cross-entropy, elastic deformation) for
  ``--paper-minutes`` in all, trained in segments of ``--segment`` minutes; after each segment
  its latest weights are scored on slices 25-29, which gives the learning curve that
  :func:`extrapolate` fits. A later invocation with a larger ``--paper-minutes`` resumes it;
* with ``--folds 5``: ``cpu30`` on each of 5 folds of 6 consecutive slices (5-fold
  cross-validation over the 30 slices; 2.5 hours).

Every run is scored on its test slices with and without the paper's averaging over the 8
rotations and flips (``predict(tta=True)``): pixel error, V_Rand and V_Info (the challenge's
foreground-restricted scores, thinned, the best threshold for the stack), the warping error and
the adapted Rand error, all by :func:`biounet.evaluate`. Results: ``experiments/results/isbi/``.

Usage::

    python experiments/isbi.py                       # cpu30, cpu60, paper (60 min): ~2.7 h
    python experiments/isbi.py --runs paper --paper-minutes 180   # extend the paper run
    python experiments/isbi.py --folds 5 --runs cpu30            # cross-validation
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import common
import numpy as np
from common import (
    ISBI_SCORES,
    RESULTS,
    biounet_membranes,
    config_dict,
    isbi_folds,
    isbi_split,
    machine,
    markdown_table,
    peak_rss_mib,
    read_images,
    read_log,
    read_truths,
    run_once,
    score_membranes,
    train_resumable,
    write_results,
)

STUDY = "isbi"
#: the held-out slice the figures show
SHOWN = "27"
RUNS = {
    "cpu30": {"preset": "cpu", "minutes": 30.0},
    "cpu60": {"preset": "cpu", "minutes": 60.0},
    "paper": {"preset": "ronneberger2015", "minutes": None},  # --paper-minutes
}


def isbi_config(preset: str, train: Path, minutes: float, seed: int = 0) -> Any:
    """The training configuration of ``preset`` on the slices in ``train``, for ``minutes``."""
    from biounet.config import build_config

    data = {"path": str(train), "annotation": "binary", "foreground": 255}
    over = [{"data": data, "max_minutes": minutes, "iterations": 10_000_000, "seed": seed}]
    return build_config(preset, None, over)


def score_model(model: Any, test: Path, run: Path) -> dict[str, Any]:
    """Scores of a model on the test slices, plain and with rotation/flip averaging.

    The membrane probability of the slice :data:`SHOWN` (if tested) is kept in ``run`` for
    the figures.
    """
    images, truths = read_images(test), read_truths(test)
    out: dict[str, Any] = {}
    for tta in (False, True):
        pred = biounet_membranes(model, images, tta)
        tag = "tta" if tta else "plain"
        out[tag] = score_membranes(pred["probs"], truths)
        out[f"{tag}_mpix_per_s"] = pred["mpix_per_s"]
        membrane = {n: p[0].astype(np.float16) for n, p in pred["probs"].items()}
        np.savez_compressed(run / f"test_{tag}.npz", **membrane)  # to score again later
        if SHOWN in pred["probs"]:
            np.save(run / f"membrane_{tag}.npy", pred["probs"][SHOWN][0])
    return out


def work_budgeted(out: Path, name: str, preset: str, minutes: float, fold: str) -> dict[str, Any]:
    """Train ``preset`` for ``minutes`` on the fold's training slices, score its test slices."""
    import biounet

    run = out / "runs" / name
    train, test = isbi_split(out, fold)
    cfg = isbi_config(preset, train, minutes)
    trained = train_resumable(cfg, run / "train")
    train_peak = peak_rss_mib()
    model = biounet.load(run / "train")
    scores = score_model(model, test, run)
    return {**trained, **scores, "train_peak_mib": train_peak, "peak_mib": peak_rss_mib(),
            "preset": preset, "minutes": minutes, "fold": fold or "protocol",
            "config": config_dict(cfg)}  # fmt: skip


def work_paper(out: Path, total: float, segment: float) -> dict[str, Any]:
    """The paper preset in segments up to ``total`` minutes, scored after each segment."""
    import biounet

    run = out / "runs" / "paper"
    train, test = isbi_split(out, "")
    curve_path = run / "curve.json"
    curve = json.loads(curve_path.read_text()) if curve_path.exists() else []
    images, truths = read_images(test), read_truths(test)
    reached = curve[-1]["minutes"] if curve else 0.0
    while reached < total - 1e-6:
        reached = min(total, reached + segment)
        cfg = isbi_config("ronneberger2015", train, reached)
        (run / "train" / "trained.json").unlink(missing_ok=True)  # extend: train on
        trained = train_resumable(cfg, run / "train")
        model = biounet.load(run / "train" / "last.pt")
        pred = biounet_membranes(model, images, tta=False)
        point = {"minutes": reached, **trained, **score_membranes(pred["probs"], truths)}
        curve.append(point)
        curve_path.write_text(json.dumps(curve, indent=1))
        print(f"  paper: {reached:.0f} min, it {trained['iterations']}: "
              f"V_Rand {point['v_rand']:.4f}", flush=True)  # fmt: skip
    cfg = isbi_config("ronneberger2015", train, total)
    model = biounet.load(run / "train")
    scores = score_model(model, test, run)
    return {**curve[-1], **scores, "curve": curve, "preset": "ronneberger2015",
            "minutes": total, "fold": "protocol", "peak_mib": peak_rss_mib(),
            "config": config_dict(cfg)}  # fmt: skip


def extrapolate(
    curve: list[dict[str, Any]], key: str = "v_rand", score: bool = True
) -> dict[str, Any]:
    """Fit ``error = a + b * n**-c`` to a learning curve over iterations ``n``.

    ``error`` is ``1 - key`` for a score (``score``: V_Rand, V_Info) and ``key`` itself for an
    error (``val_pixel_error``). Returns the fitted ``a`` (the error the recipe tends to) with
    its standard error, the exponent, the error predicted at 4x and 10x the iterations reached,
    and the fit's residual; ``None`` values when fewer than four points, or the fit fails.
    ``determined`` is False when the limit's standard error is as large as the limit itself
    (a curve still on its plateau, say): the projections are then not worth reading.
    """
    from scipy.optimize import curve_fit

    n = np.array([p["iterations"] for p in curve], dtype=float)
    e = np.array([1.0 - p[key] if score else p[key] for p in curve], dtype=float)
    out: dict[str, Any] = {
        "points": len(n),
        "iterations": int(n[-1]) if n.size else 0,
        "key": key,
        "error_now": float(e[-1]) if e.size else None,
    }
    if n.size < 4:
        return {**out, "asymptote": None, "at_4x": None, "at_10x": None}

    def model(x: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
        return a + b * (x / n[-1]) ** (-c)

    try:
        p, cov = curve_fit(model, n, e, p0=(e[-1] / 2, e[-1] / 2, 0.5),
                           bounds=([0, 0, 0.01], [1, 10, 3]), maxfev=20000)  # fmt: skip
    except (RuntimeError, ValueError):
        return {**out, "asymptote": None, "at_4x": None, "at_10x": None}
    sd = np.sqrt(np.clip(np.diag(cov), 0, None))
    resid = float(np.sqrt(np.mean((model(n, *p) - e) ** 2)))
    return {**out, "asymptote": float(p[0]), "asymptote_sd": float(sd[0]),
            "determined": bool(sd[0] < p[0]), "scale": float(p[1]),
            "exponent": float(p[2]),
            "at_4x": float(model(np.array(4 * n[-1]), *p)),
            "at_10x": float(model(np.array(10 * n[-1]), *p)), "rms_residual": resid}  # fmt: skip


def validation_curve(train: Path, key: str = "val_pixel_error") -> list[dict[str, Any]]:
    """A run's validation ``key`` over iterations, from its ``metrics.jsonl``.

    The last record of an iteration logged twice (a resumed run) wins.
    """
    by_it = {r["iteration"]: r[key] for r in read_log(train) if key in r}
    return [{"iterations": i, key: v} for i, v in sorted(by_it.items())]


def fits(out: Path, paper: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The extrapolations of the paper preset's curves (and of ``cpu60``'s, to compare)."""
    found = {"paper, held-out 1 - V_Rand": extrapolate(paper["curve"], "v_rand"),
             "paper, held-out 1 - V_Info": extrapolate(paper["curve"], "v_info")}  # fmt: skip
    for run in ("paper", "cpu60"):
        curve = validation_curve(out / "runs" / run / "train")
        if curve:
            fit = extrapolate(curve, "val_pixel_error", score=False)
            found[f"{run}, validation pixel error"] = fit
    return found


def fits_table(found: dict[str, dict[str, Any]]) -> str:
    """The extrapolations as a Markdown table."""
    rows = []
    for name, f in found.items():
        a, ok = f.get("asymptote"), f.get("determined")
        limit = None if a is None else f"{a:.3f} ± {f['asymptote_sd']:.3g}"
        rows.append({"curve": name, "points": f["points"], "iterations": f["iterations"],
                     "now": f["error_now"], "rms": f.get("rms_residual"),
                     "a": limit if ok or a is None else f"not determined ({limit})",
                     **({"c": f["exponent"], "x4": f["at_4x"], "x10": f["at_10x"]}
                        if ok else {})})  # fmt: skip
    cols = {"curve": "curve", "points": "points", "iterations": "iterations reached",
            "now": "error now", "a": "fitted limit a", "c": "exponent c",
            "x4": "at 4x iterations", "x10": "at 10x", "rms": "rms residual"}  # fmt: skip
    return markdown_table(rows, cols)


def table(results: list[dict[str, Any]]) -> str:
    """The Markdown tables: the scores of every run, plain and averaged."""
    rows = []
    for r in results:
        seconds = r.get("clock_seconds") or r.get("train_seconds", 0)
        for tag in ("plain", "tta"):
            if tag not in r:
                continue
            rows.append({"run": r["run"], "averaging": "8 rotations/flips" if tag == "tta"
                         else "none", "iterations": r.get("iterations"),
                         "minutes": seconds / 60, **r[tag],
                         "mpix": r.get(f"{tag}_mpix_per_s")})  # fmt: skip
    cols = {"run": "run", "averaging": "test-time averaging", "iterations": "iterations",
            "minutes": "training min", **ISBI_SCORES, "mpix": "predict MP/s"}  # fmt: skip
    return markdown_table(rows, cols)


def report(out: Path) -> None:
    """Gather the runs' results into ``experiments/results/isbi`` (tables, JSON, figures)."""
    results = []
    for path in sorted((out / "runs").glob("*/result.json")):
        results.append(json.loads(path.read_text()))
    if not results:
        return
    for r in results:  # runs trained before their result recorded the trainer's clock
        r.setdefault("clock_seconds", common.clock_seconds(out / "runs" / r["run"] / "train"))
    order = {n: i for i, n in enumerate(RUNS)}
    results.sort(key=lambda r: (order.get(r["run"].split("-")[0], 9), r["run"]))
    lines = [f"# ISBI 2012 protocol ({time.strftime('%Y-%m-%d')})", "",
             "Trained on slices 00-24, scored on 25-29 (folds: their own test slices).", "",
             table(results), ""]  # fmt: skip
    paper = next((r for r in results if r["run"] == "paper"), None)
    extra: dict[str, Any] = {}
    if paper:
        extra = fits(out, paper)
        lines += ["## The paper preset's learning curve", "", "Its latest weights after each "
                  "segment, scored on slices 25-29:", "", markdown_table(
            paper["curve"], {"minutes": "minutes", "iterations": "iterations",
                             **ISBI_SCORES})]  # fmt: skip
        lines += ["", "Fits of error = a + b n^-c over iterations n (a: the error the curve "
                  "tends to; none with fewer than 4 points):", "", fits_table(extra),
                  ""]  # fmt: skip
    import figures

    lines += figures.isbi_figures(out, results, RESULTS / STUDY, extra)
    data = {"study": STUDY, "machine": machine(), "runs": results, "extrapolation": extra}
    write_results(STUDY, "\n".join(lines), data)


def main() -> None:
    """Run what is missing of the study, each run in a fresh process, then write the results."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "runs" / STUDY)
    ap.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    ap.add_argument("--paper-minutes", type=float, default=60.0)
    ap.add_argument("--segment", type=float, default=20.0)
    ap.add_argument("--folds", type=int, default=1, choices=(1, 5))
    ap.add_argument("--data-root", type=Path, default=common.DATA_ROOT)
    ap.add_argument(
        "--minutes-factor", type=float, default=1.0, help="scale every budget (a smoke test: 0.02)"
    )
    ap.add_argument("--only", help=argparse.SUPPRESS)  # one run, in this process
    ap.add_argument("--report", action="store_true", help="only rewrite the results")
    args = ap.parse_args()
    common.DATA_ROOT = args.data_root
    if not (args.data_root / "isbi2012" / "images").is_dir():
        sys.exit(f"{args.data_root / 'isbi2012'}: no ISBI 2012 data (see --data-root)")
    if args.only:
        only(args)
        return
    if not args.report:
        for name in planned(args):
            result = args.out / "runs" / name / "result.json"
            if result.exists() and not stale(result, args):
                continue
            cmd = [sys.executable, __file__, "--out", str(args.out), "--only", name,
                   "--paper-minutes", str(args.paper_minutes), "--segment", str(args.segment),
                   "--data-root", str(args.data_root),
                   "--minutes-factor", str(args.minutes_factor)]  # fmt: skip
            subprocess.run(cmd, check=True)
    report(args.out)


def planned(args: argparse.Namespace) -> list[str]:
    """The runs this invocation asks for."""
    if args.folds > 1:
        return [f"{r}-{f}" for r in args.runs if r != "paper" for f, _, _ in isbi_folds(args.folds)]
    return list(args.runs)


def stale(result: Path, args: argparse.Namespace) -> bool:
    """A paper run that has not yet reached ``--paper-minutes``."""
    r = json.loads(result.read_text())
    return bool(
        r["run"] == "paper" and r["minutes"] < args.paper_minutes * args.minutes_factor - 1e-6
    )


def only(args: argparse.Namespace) -> None:
    """One run, in this process."""
    name = args.only
    base, _, fold = name.partition("-")
    spec, f = RUNS[base], args.minutes_factor
    if base == "paper":
        total, segment = args.paper_minutes * f, args.segment * f
        run_once(args.out, name, lambda _: work_paper(args.out, total, segment), redo=True)
        return
    minutes = spec["minutes"] * f
    run_once(args.out, name, lambda _: work_budgeted(args.out, name, spec["preset"], minutes, fold))


if __name__ == "__main__":
    main()
