"""Segment an image far larger than memory, from disk to disk, and measure peak memory.

The image is a uint8 Zarr array on disk, written chunk by chunk (a smooth pattern plus noise;
never the whole array in memory); ``biounet.predict`` with the ``narrow`` preset writes its
float32 probabilities, shape ``(2, N, N)``, tile by tile into a second on-disk Zarr array passed
as ``out=``. Reported: wall time, time per tile, the share of it inside the network, the peak
resident memory (sampled every 50 ms with psutil, and the kernel's ``ru_maxrss``), and the time
extrapolated to a 20,000 x 20,000 image.

One size (a fresh process, so that ``ru_maxrss`` is this size's own)::

    python benchmarks/large_image.py --size 4096

Several sizes, each in its own process, to show that peak memory does not grow with the image::

    python benchmarks/large_image.py --sizes 2048 4096 8192 20000 --json large.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

GIB = 2**30
TARGET_RSS = 1.5 * GIB
FULL_SIZE = 20_000


class PeakRSS:
    """Samples this process's resident memory in a background thread; keeps the peak."""

    def __init__(self, interval: float = 0.05) -> None:
        import psutil

        self._proc = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self.peak = self.now()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now(self) -> int:
        """Resident memory now, bytes."""
        return int(self._proc.memory_info().rss)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, self.now())

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.now())


def cpu_sample() -> tuple[float, float, float] | None:
    """(wall clock, CPU seconds used by all processes, by this one), from ``/proc/stat``."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:8]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields)
    busy = (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")
    return time.perf_counter(), busy, time.process_time()


def other_share(start: tuple[float, float, float] | None) -> float | None:
    """Share of the machine's CPUs that other processes used since ``start``."""
    end = cpu_sample()
    if start is None or end is None:
        return None
    wall, busy, own = (e - s for e, s in zip(end, start))
    return max(0.0, busy - own) / (wall * (os.cpu_count() or 1))


def ru_maxrss() -> int:
    """The kernel's peak resident memory of this process, bytes (Linux: KiB; macOS: bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def write_image(path: Path, size: int, chunk: int = 1024) -> Any:
    """A ``size x size`` uint8 Zarr array at ``path``, filled one chunk at a time.

    A smooth pattern of blobs plus noise, so the network sees structure; each chunk is computed
    from its own coordinates and seed, so at most one chunk is in memory.
    """
    import numpy as np
    import zarr

    image = zarr.create_array(
        store=str(path), shape=(size, size), chunks=(chunk, chunk), dtype="uint8"
    )
    for i in range(0, size, chunk):
        for j in range(0, size, chunk):
            y = np.arange(i, min(i + chunk, size), dtype=np.float32)[:, None]
            x = np.arange(j, min(j + chunk, size), dtype=np.float32)[None, :]
            smooth = np.sin(y / 23.0) * np.cos(x / 31.0) + 0.5 * np.sin((x + y) / 57.0)
            rng = np.random.default_rng([i, j])
            noise = rng.normal(0.0, 0.25, smooth.shape)
            block = np.clip(128 + 80 * (smooth + noise), 0, 255).astype(np.uint8)
            image[i : i + block.shape[0], j : j + block.shape[1]] = block
    return image


def run_one(size: int, *, tune: bool, channels_last: bool, workdir: Path | None) -> dict[str, Any]:
    """Segment one ``size x size`` image from disk to disk in this process; the measurements."""
    import numpy as np
    import torch
    import zarr

    import biounet
    from biounet.inference.predictor import choose_tile
    from biounet.inference.tiling import plan_crop

    tuned = False
    if tune:
        from biounet.core.runtime import tune_allocator

        tuned = tune_allocator()
    result: dict[str, Any] = {
        "size": size,
        "tune_allocator": tuned,
        "channels_last": channels_last,
        "threads": torch.get_num_threads(),
    }
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        t = time.perf_counter()
        image = write_image(Path(tmp) / "image.zarr", size)
        result["write_image_s"] = time.perf_counter() - t

        torch.manual_seed(0)
        model = biounet.UNet.from_preset("narrow").eval()
        g = model.geometry
        tile, stride = choose_tile(model, (size, size), None)
        out_tile = g.output_size(tile[0])
        per_axis = [len(plan_crop(size, out_tile, s, g.margin)) for s in stride]
        # one output chunk per tile: each tile's write is a whole chunk, no read-modify-write
        out = zarr.create_array(
            store=str(Path(tmp) / "probabilities.zarr"),
            shape=(model.config.num_classes, size, size),
            chunks=(model.config.num_classes, stride[0], stride[1]),
            dtype="float32",
        )
        result.update(
            tile=tile[0],
            stride=stride[0],
            output_tile=out_tile,
            tiles=per_axis[0] * per_axis[1],
            tiles_for_full_size=_tiles(model, FULL_SIZE),
        )

        forward = {"s": 0.0, "calls": 0}
        plain_forward = model.forward

        def timed_forward(x: torch.Tensor) -> torch.Tensor:
            t0 = time.perf_counter()
            y = plain_forward(x)
            forward["s"] += time.perf_counter() - t0
            forward["calls"] += 1
            return y

        model.forward = timed_forward  # type: ignore[method-assign]
        rss = PeakRSS()
        result["rss_before_predict"] = rss.now()
        cpu0 = cpu_sample()
        with rss:
            t = time.perf_counter()
            biounet.predict(model, image, out=out, device="cpu", channels_last=channels_last)
            wall = time.perf_counter() - t
        result.update(
            predict_s=wall,
            s_per_tile=wall / result["tiles"],
            forward_share=forward["s"] / wall,
            forward_calls=forward["calls"],
            peak_rss=rss.peak,
            ru_maxrss=ru_maxrss(),
            rss_after=rss.now(),
            megapixels_per_s=size * size / wall / 1e6,
            extrapolated_full_s=wall / result["tiles"] * result["tiles_for_full_size"],
            other_cpu_share=other_share(cpu0),
        )
        # every chunk written, and a few windows are probabilities (sum to 1 over classes)
        result["chunks_written"] = int(out.nchunks_initialized)
        result["chunks_expected"] = int(out.nchunks)
        rng = np.random.default_rng(0)
        worst = 0.0
        for _ in range(8):
            i, j = (int(v) for v in rng.integers(0, max(1, size - 64), 2))
            window = np.asarray(out[:, i : i + 64, j : j + 64])
            worst = max(worst, float(np.abs(window.sum(axis=0) - 1).max()))
        result["max_sum_error"] = worst
        result["disk_bytes"] = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file())
    return result


def _tiles(model: Any, size: int) -> int:
    from biounet.inference.predictor import choose_tile
    from biounet.inference.tiling import plan_crop

    g = model.geometry
    tile, stride = choose_tile(model, (size, size), None)
    out_tile = g.output_size(tile[0])
    return math.prod(len(plan_crop(size, out_tile, s, g.margin)) for s in stride)


def spawn(size: int, args: argparse.Namespace, tune: bool) -> dict[str, Any]:
    """Run one size in a fresh interpreter (its own ``ru_maxrss``); its result or error."""
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--size", str(size)]
        cmd += ["--result", str(result)]
        cmd += [] if tune else ["--no-tune-allocator"]
        cmd += ["--channels-last"] if args.channels_last else []
        cmd += ["--dir", str(args.dir)] if args.dir else []
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not result.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            return {"size": size, "tune_allocator": tune, "error": " | ".join(tail)}
        out: dict[str, Any] = json.loads(result.read_text())
        return out


def table(results: list[dict[str, Any]]) -> str:
    """The measurements, one line per run."""
    lines = [
        f"{'size':>6}{'alloc':>8}{'tiles':>7}{'predict s':>11}{'s/tile':>8}{'MPix/s':>8}"
        f"{'in net':>8}{'RSS before':>12}{'peak RSS':>10}{'ru_maxrss':>11}{'<1.5GiB':>9}"
        f"{'20k est.':>10}{'written':>11}{'other':>7}"
    ]
    for r in results:
        alloc = "tuned" if r.get("tune_allocator") else "default"
        if "error" in r:
            lines.append(f"{r['size']:>6}{alloc:>8}  ERROR {r['error']}")
            continue
        peak = max(r["peak_rss"], r["ru_maxrss"])
        lines.append(
            f"{r['size']:>6}{alloc:>8}{r['tiles']:>7}{r['predict_s']:>11.1f}"
            f"{r['s_per_tile']:>8.3f}{r['megapixels_per_s']:>8.2f}{r['forward_share']:>8.0%}"
            f"{r['rss_before_predict'] / 2**20:>9.0f}MiB{r['peak_rss'] / 2**20:>7.0f}MiB"
            f"{r['ru_maxrss'] / 2**20:>8.0f}MiB{'yes' if peak < TARGET_RSS else 'NO':>9}"
            f"{r['extrapolated_full_s'] / 60:>8.1f}mn"
            f"{r['chunks_written']:>6}/{r['chunks_expected']:<4}"
            f"{r['other_cpu_share'] if r['other_cpu_share'] is not None else float('nan'):>7.0%}"
        )
    r0 = next((r for r in results if "error" not in r), None)
    if r0:
        lines.append(
            f"narrow preset, tile {r0['tile']} -> {r0['output_tile']}, stride {r0['stride']}; "
            f"input uint8 Zarr (1024^2 chunks), output float32 Zarr (2, N, N) in "
            f"{r0['stride']}^2 chunks; {r0['threads']} torch threads; "
            f"20k est.: s/tile x {r0['tiles_for_full_size']} tiles; other: share of the CPUs "
            f"that other processes used meanwhile"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, help="run one size in this process")
    parser.add_argument("--sizes", type=int, nargs="+", help="run each size in a fresh process")
    parser.add_argument(
        "--allocators",
        nargs="+",
        choices=["tuned", "default"],
        default=["tuned"],
        help="with --sizes: run each size with biounet.core.runtime.tune_allocator(), without, "
        "or both",
    )
    parser.add_argument(
        "--no-tune-allocator", action="store_true", help="with --size: keep glibc's defaults"
    )
    parser.add_argument("--channels-last", action="store_true", help="predict(channels_last=True)")
    parser.add_argument("--dir", type=Path, help="where the temporary Zarr arrays go")
    parser.add_argument("--json", type=Path, help="write the results to this JSON file")
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if (args.size is None) == (args.sizes is None):
        parser.error("give exactly one of --size N or --sizes N [N ...]")
    if args.size is not None:
        r = run_one(
            args.size,
            tune=not args.no_tune_allocator,
            channels_last=args.channels_last,
            workdir=args.dir,
        )
        results = [r]
        if args.result:  # a worker of --sizes
            args.result.write_text(json.dumps(r))
            return 0
    else:
        results = []
        for size in args.sizes:
            for alloc in args.allocators:
                print(f"running {size} x {size} ({alloc} allocator) ...", file=sys.stderr)
                results.append(spawn(size, args, tune=alloc == "tuned"))
                print(table(results[-1:]).splitlines()[1], file=sys.stderr, flush=True)
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
