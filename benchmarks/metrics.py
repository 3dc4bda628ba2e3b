"""Time the ISBI 2012 and instance metrics of ``biounet.metrics`` per 512 x 512 slice.

Truth: a synthetic EM-like membrane slice (``biounet.data.synthetic.make_membranes``) and, when
``../shared/data/isbi2012/labels/00.png`` exists, a real ISBI 2012 label (membrane = black).
Prediction: the truth membrane blurred (Gaussian, sigma 1 px, scaled by 1 / 0.45) plus Gaussian
noise, clipped to [0, 1], as a "probability map"; ``--noise`` sets the noise (default 0.15;
0.3 is harder for the warping error). Binary predictions threshold it at 0.5; predicted
instances are its 4-connected non-membrane regions. Each metric runs once to warm up, then
``--repeats`` times; the table gives the median and best wall time. Goal: warping error under
5 s per slice. The adapted Rand error takes the thresholded regions with the predicted membrane
as label 0, which scikit-image's definition counts as one region: it is high for that reason.
The last row times one slice through ``biounet.evaluate`` with the default membranes
options, as ``biounet evaluate --task membranes`` scores it: truth as an ISBI label PNG (membrane
0, cells 255), prediction as ``predict``'s ``(2, Y, X)`` probabilities with class 0 = membrane.

Usage: ``python benchmarks/metrics.py [--repeats 5] [--noise 0.15] [--seed 0]``
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from biounet.data.synthetic import make_membranes
from biounet.evaluation import EvalOptions, evaluate
from biounet.metrics import (
    InstanceAccumulator,
    adapted_rand_error,
    average_precision,
    info_scores,
    isbi_scores,
    match_instances,
    rand_scores,
    seg_score,
    topology_errors,
    warping_error,
)

ISBI_LABEL = Path(__file__).resolve().parents[2] / "shared/data/isbi2012/labels/00.png"
GOAL_S = 5.0
CROSS = ndi.generate_binary_structure(2, 1)


def perturbed(truth: np.ndarray, noise: float, seed: int) -> np.ndarray:
    """A membrane "probability map": the blurred truth plus Gaussian noise, in [0, 1]."""
    rng = np.random.default_rng(seed)
    blurred = ndi.gaussian_filter(truth.astype(np.float64), 1.0) / 0.45  # 1 px lines reach 0.9
    prob = blurred + rng.normal(0.0, noise, truth.shape)
    return np.clip(prob, 0.0, 1.0)


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median and best wall time of ``fn()`` in seconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), float(np.min(times))


def run(name: str, truth: np.ndarray, prob: np.ndarray, repeats: int) -> None:
    """Print the timing table and the scores for one truth membrane mask and one map."""
    pred = prob > 0.5
    truth_cells = ndi.label(~truth, CROSS)[0]
    pred_cells = ndi.label(~pred, CROSS)[0]
    png = np.where(truth, 0, 255).astype(np.uint8)  # as an ISBI label PNG
    probs = np.stack([prob, 1.0 - prob]).astype(np.float32)  # predict's _probs, class 0 membrane
    slice_ = [(name, probs, png)]
    membranes = EvalOptions("membranes")
    cases: list[tuple[str, Callable[[], object]]] = [
        ("isbi_scores (11 thresholds, thinned)", lambda: isbi_scores(prob, truth)),
        ("isbi_scores (11 thresholds, thin=False)", lambda: isbi_scores(prob, truth, thin=False)),
        ("rand_scores (1 labelling)", lambda: rand_scores(truth_cells, pred_cells)),
        ("info_scores (1 labelling)", lambda: info_scores(truth_cells, pred_cells)),
        ("adapted_rand_error", lambda: adapted_rand_error(truth_cells, pred_cells)),
        ("warping_error", lambda: warping_error(truth, pred)),
        ("match_instances (IoU 0.5)", lambda: match_instances(truth_cells, pred_cells)),
        ("average_precision (0.50:0.95)", lambda: average_precision(truth_cells, pred_cells)),
        ("seg_score", lambda: seg_score(truth_cells, pred_cells)),
        (
            "InstanceAccumulator.update",
            lambda: InstanceAccumulator().update(truth_cells, pred_cells),
        ),
        ("evaluate, membranes (1 slice, all metrics)", lambda: evaluate(slice_, membranes)),
    ]
    print(
        f"\n{name}: {truth.shape}, {truth.mean():.1%} membrane, "
        f"{truth_cells.max()} true / {pred_cells.max()} predicted regions, "
        f"pixel error at 0.5: {np.mean(truth != pred):.4f}"
    )
    print(f"{'metric':42s} {'median s':>9s} {'best s':>9s}")
    for label, fn in cases:
        med, best = timed(fn, repeats)
        print(f"{label:42s} {med:9.4f} {best:9.4f}")
    scores = isbi_scores(prob, truth)
    topo = topology_errors(truth, pred)
    inst = match_instances(truth_cells, pred_cells)
    print(
        f"scores: V_Rand {scores['v_rand']:.4f} (th {scores['v_rand_threshold']}), "
        f"V_Info {scores['v_info']:.4f} (th {scores['v_info_threshold']}), "
        f"adapted Rand error {adapted_rand_error(truth_cells, pred_cells)['error']:.4f}, "
        f"warping error {topo['warping_error']:.5f} ({topo['splits']:.0f} splits, "
        f"{topo['mergers']:.0f} mergers, {topo['additions']:.0f} additions, "
        f"{topo['deletions']:.0f} deletions), F1 {inst['f1']:.3f}, "
        f"mean AP {average_precision(truth_cells, pred_cells).mean():.3f}, "
        f"SEG {seg_score(truth_cells, pred_cells):.3f}"
    )
    warp_s, _ = timed(lambda: warping_error(truth, pred), 1)
    print(
        f"warping error goal < {GOAL_S:.0f} s per slice: {'met' if warp_s < GOAL_S else 'MISSED'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--noise", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, numpy {np.__version__}")

    _, membranes, _ = make_membranes((512, 512), seed=args.seed)
    truth = membranes.astype(bool)
    run("synthetic make_membranes", truth, perturbed(truth, args.noise, args.seed), args.repeats)
    if ISBI_LABEL.exists():
        from PIL import Image

        real = np.asarray(Image.open(ISBI_LABEL)) == 0  # membrane is black
        run(
            f"ISBI 2012 {ISBI_LABEL.name}",
            real,
            perturbed(real, args.noise, args.seed),
            args.repeats,
        )
    else:
        print(f"\n{ISBI_LABEL} not found: real-label timing skipped")


if __name__ == "__main__":
    main()
