"""Time ``biounet.data.weightmap.weight_map`` on a 512 x 512 image of 200 cells against brute force.

The cells are the Voronoi cells of 200 random points (seeded), each shrunk so that neighbours are
separated by a 1-2 px gap, like the paper's touching cells. Brute force computes one distance
transform of the whole image per cell and keeps the two smallest distances per pixel. Both run in
this process, so the ratio holds even when the machine is busy. Goal: under 100 ms.

Usage: ``python benchmarks/weightmap.py [--repeats 15] [--seed 0]``
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
from scipy import ndimage as ndi

from biounet.data.weightmap import separation_borders, weight_map

GOAL_MS = 100.0


def voronoi_cells(shape: tuple[int, int], n: int, seed: int) -> np.ndarray:
    """``n`` Voronoi cells labelled 1..n with a background gap along every cell border."""
    rng = np.random.default_rng(seed)
    seeds = np.zeros(shape, dtype=np.int32)
    points = rng.choice(shape[0] * shape[1], size=n, replace=False)
    seeds.flat[points] = np.arange(1, n + 1)
    _, index = ndi.distance_transform_edt(seeds == 0, return_indices=True)
    cells = seeds[tuple(index)]
    border = (ndi.grey_dilation(cells, size=3) != cells) | (
        ndi.grey_erosion(cells, size=3) != cells
    )
    cells[border] = 0
    return cells


def brute_force(labels: np.ndarray, w0: float = 10.0, sigma: float = 5.0) -> np.ndarray:
    """Eq. 2 at every pixel (``weight_map``'s default ``border_on="all"``), class weights 1.

    One full-image distance transform per object.
    """
    d1 = np.full(labels.shape, np.inf)
    d2 = np.full(labels.shape, np.inf)
    for v in np.unique(labels[labels != 0]):
        dist = ndi.distance_transform_edt(labels != v)
        d2 = np.minimum(d2, np.maximum(d1, dist))
        d1 = np.minimum(d1, dist)
    term = w0 * np.exp(-((d1 + d2) ** 2) / (2 * sigma**2))
    return np.asarray(1.0 + term)


def median_ms(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` in ms, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    labels = voronoi_cells((512, 512), 200, args.seed)
    n_objects = len(np.unique(labels)) - 1
    print(f"{platform.processor() or platform.machine()}, numpy {np.__version__}")
    print(f"labels: {labels.shape}, {n_objects} objects, {np.mean(labels == 0):.1%} background")

    fast_ms = median_ms(lambda: weight_map(labels, class_weights=None), args.repeats)
    balanced_ms = median_ms(lambda: weight_map(labels), args.repeats)
    sep_ms = median_ms(lambda: separation_borders(labels), args.repeats)
    t0 = time.perf_counter()
    reference = brute_force(labels)
    brute_ms = 1e3 * (time.perf_counter() - t0)
    err = np.abs(weight_map(labels, class_weights=None) - reference).max()

    print(f"weight_map (class_weights=None):   {fast_ms:8.1f} ms  (median of {args.repeats})")
    print(f"weight_map (balanced):             {balanced_ms:8.1f} ms")
    print(f"separation_borders (width=2):      {sep_ms:8.1f} ms")
    print(f"brute force (one EDT per object):  {brute_ms:8.1f} ms  (1 run)")
    print(f"speed-up: {brute_ms / fast_ms:.0f}x; max |difference| {err:.2e} (tol 1e-6 + float32)")
    verdict = "met" if balanced_ms < GOAL_MS else "NOT met"
    print(f"goal < {GOAL_MS:.0f} ms for 512x512 with 200 objects: {verdict}")


if __name__ == "__main__":
    main()
