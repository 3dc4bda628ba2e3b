"""Inference speed of biounet's U-Nets on this machine's CPU, measured side by side.

For the paper's network (``ronneberger2015``) and the ``narrow`` preset, in one run:

* parameters and FLOPs per output pixel (``torch.utils.flop_counter``);
* the forward pass of one tile (eval, ``torch.inference_mode``, batch 1) at the paper's tile
  (572) and at the preset's default tile: median time, achieved GFLOP/s, and the ratio to the
  fp32 matmul GFLOP/s measured in the same process, round by round (the machine is shared and
  noisy, so every ratio pairs measurements taken seconds apart); contiguous and channels-last;
* the same forward pass under ``torch.compile`` (plain, and with inductor's ``freezing``);
* whole-image ``biounet.predict`` on a random float32 image (default 2048 x 2048): output
  megapixels/s, the share of its wall time spent inside the network's forward, the share of the
  computed output area thrown away, and the same network through MONAI's
  ``sliding_window_inference`` at the same tile;
* glibc's allocator: every measurement runs in a fresh subprocess, once with the defaults and
  once per allocator setting (environment variables, ``GLIBC_TUNABLES``, and
  ``biounet.core.runtime.tune_allocator()`` called at start-up), interleaved in cycles.

Run ``python benchmarks/inference.py`` (about 15 minutes on 2 cores) or ``--quick`` (about a
minute, a smoke test); ``--json results.json`` writes everything measured.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

PRESETS = ("ronneberger2015", "narrow")
PAPER_TILE = 572
INT_MAX = str(2**31 - 1)

#: allocator variants: extra environment, and whether the worker calls tune_allocator()
VARIANTS: dict[str, tuple[dict[str, str], bool]] = {
    "default": ({}, False),
    "env-threshold": (
        {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": INT_MAX},
        False,
    ),
    "env-mmap_max": ({"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": INT_MAX}, False),
    "tunables": (
        {"GLIBC_TUNABLES": f"glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold={INT_MAX}"},
        False,
    ),
    "mallopt": ({}, True),
    "mallopt+passive": ({"OMP_WAIT_POLICY": "PASSIVE"}, True),
}
VARIANT_NOTES = {
    "default": "glibc defaults",
    "env-threshold": "MALLOC_MMAP_THRESHOLD_=32MiB (glibc's cap) MALLOC_TRIM_THRESHOLD_=2GiB",
    "env-mmap_max": "MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2GiB",
    "tunables": "GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=2GiB",
    "mallopt": "biounet.core.runtime.tune_allocator() at start-up (mallopt via ctypes)",
    "mallopt+passive": "tune_allocator(), and OMP_WAIT_POLICY=PASSIVE (OpenMP threads sleep "
    "at barriers instead of spinning)",
}
_ALLOCATOR_ENV = (
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_MMAP_MAX_",
    "GLIBC_TUNABLES",
    "OMP_WAIT_POLICY",
)

#: a measurement during which other processes used this share of the CPUs or more is set
#: aside: with 2 OpenMP threads on 2 cores, one core taken by another process slows the
#: forward pass by 2-8x (the threads wait for each other at every barrier)
CONTENDED = 0.12

GOALS = {
    "paper_forward_of_matmul": 0.80,
    "narrow_forward_of_matmul": 0.60,
    "predict_share_in_network": 0.80,
    "predict_area_thrown_away": 0.10,
}


# ====================================================================== measuring (workers)
class Load:
    """CPU time used by other processes (and stolen by the hypervisor) while measuring.

    Reads ``/proc/stat`` (Linux; 10 ms resolution); elsewhere reports nothing.
    """

    def __init__(self) -> None:
        self.start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float, float] | None:
        if not Path("/proc/stat").exists():
            return None
        try:
            fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        except OSError:
            return None
        ticks = os.sysconf("SC_CLK_TCK")
        user, nice, system, _idle, _iowait, irq, softirq, steal = (
            int(v) / ticks for v in fields[:8]
        )
        own = time.process_time()
        return time.perf_counter(), user + nice + system + irq + softirq, steal, own

    def result(self) -> dict[str, float]:
        """``other``: CPUs' worth of time used by other processes; ``steal``: stolen."""
        end = self._sample()
        if self.start is None or end is None:
            return {}
        wall = end[0] - self.start[0]
        busy, steal, own = (e - s for e, s in zip(end[1:], self.start[1:]))
        ncpu = os.cpu_count() or 1
        return {
            "other_cpu_share": max(0.0, busy - own) / (wall * ncpu),
            "steal_share": steal / (wall * ncpu),
            "seconds": wall,
        }


@contextlib.contextmanager
def measured(into: dict[str, list[float]]) -> Iterator[None]:
    """Append wall time, CPU time, minor page faults and others' CPU share of the block."""
    load = Load()
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    c0 = time.process_time()
    t0 = time.perf_counter()
    yield
    into.setdefault("wall", []).append(time.perf_counter() - t0)
    into.setdefault("cpu", []).append(time.process_time() - c0)
    into.setdefault("faults", []).append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
    into.setdefault("other", []).append(load.result().get("other_cpu_share", 0.0))


def wait_quiet(max_wait: float, window: float = 0.3) -> float:
    """Sleep until other processes use < ``CONTENDED`` of the CPUs (over ``window`` s).

    Gives up after ``max_wait`` s; returns the seconds waited. The machine may be shared, and
    a pass measured while another process holds a core is set aside anyway.
    """
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < max_wait:
        load = Load()
        time.sleep(window)
        if load.result().get("other_cpu_share", 0.0) < CONTENDED:
            break
    return time.perf_counter() - t0


def clean(s: dict[str, list[float]], key: str = "wall") -> list[float]:
    """The values of ``key`` from the measurements that other processes left alone.

    All of them when none was (the caller reports how many were clean).
    """
    kept = [v for v, o in zip(s[key], s["other"]) if o < CONTENDED]
    return kept or list(s[key])


def n_clean(s: dict[str, list[float]]) -> int:
    """How many measurements ran while other processes took < ``CONTENDED`` of the CPUs."""
    return sum(o < CONTENDED for o in s["other"])


def matmul_gflops(sizes: tuple[int, ...]) -> dict[str, float]:
    """fp32 ``torch.mm`` GFLOP/s at each ``n x n`` size (best of 2), and a 3x3 conv reference."""
    import torch
    from torch.nn import functional as F

    rates: dict[str, float] = {}
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)
        best = float("inf")
        for _ in range(2):
            t = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - t)
        rates[f"mm{n}"] = 2 * n**3 / best / 1e9
    # oneDNN's direct convolution, as a second reference: 3x3, 512 -> 512 channels, 64 x 64 out
    x, w = torch.randn(1, 512, 66, 66), torch.randn(512, 512, 3, 3)
    F.conv2d(x, w)
    t = time.perf_counter()
    F.conv2d(x, w)
    rates["conv3x3_512"] = 2 * 512 * 512 * 9 * 64 * 64 / (time.perf_counter() - t) / 1e9
    rates["matmul"] = max(v for k, v in rates.items() if k.startswith("mm"))
    return rates


def _setup_worker(variant: str) -> dict[str, Any]:
    """Apply the in-process part of an allocator variant; describe the process."""
    import torch

    info: dict[str, Any] = {"variant": variant, "threads": torch.get_num_threads()}
    if VARIANTS[variant][1]:
        from biounet.core.runtime import tune_allocator

        info["tune_allocator"] = tune_allocator()
    return info


def _model(preset: str, channels_last: bool = False) -> Any:
    import torch

    import biounet

    torch.manual_seed(0)
    model = biounet.UNet.from_preset(preset).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def worker_forward(p: dict[str, Any]) -> dict[str, Any]:
    """Forward time of one tile per (preset, tile, memory format), interleaved with matmul."""
    import torch

    from biounet.model.summary import flops_per_output_pixel

    info = _setup_worker(p["variant"])
    load = Load()
    configs = [tuple(c) for c in p["configs"]]  # (preset, tile, channels_last)
    models: dict[tuple[str, bool], Any] = {}
    inputs, flops, meta = {}, {}, {}
    for preset, tile, cl in configs:
        if (preset, cl) not in models:
            models[(preset, cl)] = (
                copy.deepcopy(models[(preset, False)]).to(memory_format=torch.channels_last)
                if cl and (preset, False) in models
                else _model(preset, cl)
            )
        m = models[(preset, cl)]
        x = torch.randn(1, 1, tile, tile)
        inputs[(preset, tile, cl)] = x.contiguous(
            memory_format=torch.channels_last if cl else torch.contiguous_format
        )
        out = m.geometry.output_size(tile)
        flops[(preset, tile, cl)] = flops_per_output_pixel(m, tile) * out * out
        meta[(preset, tile)] = {
            "parameters": m.count_parameters(),
            "flops_per_output_pixel": flops_per_output_pixel(m, tile),
            "output_tile": out,
        }
    stats: dict[tuple[str, int, bool], dict[str, list[float]]] = {c: {} for c in configs}
    refs: list[dict[str, float]] = []
    mm: dict[str, list[float]] = {}
    waited = 0.0
    with torch.inference_mode():
        for c in configs:
            for _ in range(p["warmup"]):
                models[(c[0], c[2])](inputs[c])
        for _ in range(p["repeats"]):
            waited += wait_quiet(p["max_wait"])
            with measured(mm):
                refs.append(matmul_gflops(tuple(p["mm_sizes"])))
            for c in configs:
                waited += wait_quiet(p["max_wait"])
                with measured(stats[c]):
                    models[(c[0], c[2])](inputs[c])
    mm["gflops"] = [r["matmul"] for r in refs]
    mm["conv"] = [r["conv3x3_512"] for r in refs]
    rows = []
    for c in configs:
        s = stats[c]
        rows.append(
            {
                "preset": c[0],
                "tile": c[1],
                "channels_last": c[2],
                **meta[(c[0], c[1])],
                "gflop_per_tile": flops[c] / 1e9,
                **s,
            }
        )
    return {
        **info,
        "rows": rows,
        "refs": refs,
        "matmul": mm,
        "load": load.result(),
        "waited_s": waited,
    }


def worker_compile(p: dict[str, Any]) -> dict[str, Any]:
    """``torch.compile`` against eager, per (preset, tile), rounds interleaved."""
    import torch
    import torch._dynamo
    import torch._inductor.config as inductor_config

    info = _setup_worker(p["variant"])
    load = Load()
    rows = []
    for preset, tile in p["configs"]:
        model = _model(preset)
        x = torch.randn(1, 1, tile, tile)
        for mode in p["modes"]:
            row: dict[str, Any] = {"preset": preset, "tile": tile, "mode": mode}
            rows.append(row)
            torch._dynamo.reset()
            try:
                compiled = torch.compile(model)
                with torch.inference_mode(), inductor_config.patch(freezing=mode == "freezing"):
                    t = time.perf_counter()
                    compiled(x)
                    row["compile_s"] = time.perf_counter() - t
                    model(x)
                    eager: dict[str, list[float]] = {}
                    comp: dict[str, list[float]] = {}
                    for _ in range(p["repeats"]):
                        wait_quiet(p["max_wait"])
                        with measured(eager):
                            model(x)
                        wait_quiet(p["max_wait"])
                        with measured(comp):
                            compiled(x)
                    row["max_abs_diff"] = float((compiled(x) - model(x)).abs().max())
                row["eager_s"] = statistics.median(clean(eager))
                row["compiled_s"] = statistics.median(clean(comp))
                row["clean"] = f"{min(n_clean(eager), n_clean(comp))}/{p['repeats']}"
                row["speedup"] = row["eager_s"] / row["compiled_s"]
            except Exception as e:  # report, never fail: compile needs a C++ toolchain
                row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
    return {**info, "rows": rows, "load": load.result()}


def worker_predict(p: dict[str, Any]) -> dict[str, Any]:
    """``biounet.predict`` (contiguous, channels-last) and MONAI on one image, interleaved."""
    import numpy as np
    import torch
    from torch.nn import functional as F

    import biounet
    from biounet.inference.predictor import choose_tile
    from biounet.inference.tiling import plan_crop

    info = _setup_worker(p["variant"])
    load = Load()
    n = p["size"][p["preset"]] if isinstance(p["size"], dict) else p["size"]
    image = np.random.default_rng(0).random((n, n), dtype=np.float32)
    model = _model(p["preset"])
    g = model.geometry
    tile, stride = choose_tile(model, (n, n), None)
    out_tile = g.output_size(tile[0])
    counts = [len(plan_crop(s, out_tile, st, g.margin)) for s, st in zip((n, n), stride)]
    n_tiles = counts[0] * counts[1]
    computed = n_tiles * out_tile**2

    forward = {"s": 0.0, "calls": 0}
    plain_forward = model.forward

    def timed_forward(x: torch.Tensor) -> torch.Tensor:
        t = time.perf_counter()
        y = plain_forward(x)
        forward["s"] += time.perf_counter() - t
        forward["calls"] += 1
        return y

    model.forward = timed_forward  # type: ignore[method-assign]
    margin = g.margin
    overlap = 2 * margin / tile[0]

    def monai_predictor(x: torch.Tensor) -> torch.Tensor:
        # MONAI wants same-size outputs: pad the valid net's output back to the tile (zeros)
        return F.pad(torch.softmax(model(x), dim=1), (margin,) * 4)

    methods = list(p["methods"])
    try:  # imported before timing: the import alone takes seconds
        from monai.inferers import sliding_window_inference
    except ImportError:
        methods = [m for m in methods if m != "monai"]

    def run(method: str, image: np.ndarray = image) -> Any:
        if method == "monai":
            with torch.inference_mode():
                return sliding_window_inference(
                    torch.from_numpy(image)[None, None],
                    roi_size=tile,
                    sw_batch_size=1,
                    predictor=monai_predictor,
                    overlap=overlap,
                    mode="constant",
                )
        return biounet.predict(model, image, device="cpu", channels_last=method == "biounet-cl")

    # warm-up, one tile each: oneDNN builds its kernels for each tile shape and memory format
    # on first use, and MONAI's first call has one-off costs too
    small = image[: out_tile - 4, : out_tile - 4]
    for method in methods:
        run(method, small)
    results: dict[str, dict[str, list[float]]] = {m: {} for m in methods}
    for _ in range(p["repeats"]):
        for method in methods:
            forward.update(s=0.0, calls=0)
            s = results[method]
            wait_quiet(p["max_wait"])
            with measured(s):
                run(method)
            s.setdefault("forward", []).append(forward["s"])
            s.setdefault("calls", []).append(forward["calls"])
    rows = []
    for method in methods:
        s = results[method]
        s["share"] = [f / w for f, w in zip(s["forward"], s["wall"])]
        s["cpu_per_wall"] = [a / b for a, b in zip(s["cpu"], s["wall"])]
        rows.append(
            {
                "method": method,
                **s,
                "clean": n_clean(s),
                "median_s": statistics.median(clean(s)),
                "mpix_per_s": n * n / statistics.median(clean(s)) / 1e6,
                "share_in_forward": statistics.median(clean(s, "share")),
                "forward_calls": s["calls"][0],
                "median_faults": statistics.median(clean(s, "faults")),
                "median_cpu_per_wall": statistics.median(clean(s, "cpu_per_wall")),
            }
        )
    by = {r["method"]: r for r in rows}
    if "monai" in by and "biounet" in by:
        # side by side: round r of biounet against round r of MONAI, clean rounds if any
        a, b = by["biounet"], by["monai"]
        pairs = [
            (x, y)
            for x, y, ox, oy in zip(a["wall"], b["wall"], a["other"], b["other"])
            if max(ox, oy) < CONTENDED
        ] or list(zip(a["wall"], b["wall"]))
        a["time_vs_monai"] = statistics.median(x / y for x, y in pairs)
    return {
        **info,
        "preset": p["preset"],
        "size": n,
        "tile": tile,
        "stride": stride,
        "output_tile": out_tile,
        "tiles": n_tiles,
        "area_thrown_away": 1 - n * n / computed,
        "monai_overlap": overlap,
        "monai_windows": by.get("monai", {}).get("forward_calls"),
        "monai_area_thrown_away": (
            1 - n * n / (by["monai"]["forward_calls"] * out_tile**2) if "monai" in by else None
        ),
        "rows": rows,
        "load": load.result(),
    }


WORKERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "forward": worker_forward,
    "compile": worker_compile,
    "predict": worker_predict,
}


# ====================================================================== orchestrating
def spawn(task: str, params: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one worker in a fresh interpreter under ``params["variant"]``; its result or error."""
    extra, _ = VARIANTS[params["variant"]]
    env = {k: v for k, v in os.environ.items() if k not in _ALLOCATOR_ENV}
    env.update(extra)
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker",
            task,
            "--params",
            json.dumps(params),
        ]
        cmd += ["--result", str(result)]
        t = time.perf_counter()
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {**params, "error": f"timed out after {timeout:.0f} s"}
        if proc.returncode != 0 or not result.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            return {**params, "error": f"exit {proc.returncode}: {' | '.join(tail)}"}
        out = json.loads(result.read_text())
        out["process_s"] = time.perf_counter() - t
        return out


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def plan(args: argparse.Namespace) -> dict[str, Any]:
    """What to run, from the command line."""
    quick = args.quick
    default_tiles = {"ronneberger2015": 572, "narrow": 700}
    configs = []
    for preset in PRESETS:
        tiles = sorted({PAPER_TILE, default_tiles[preset]})
        for tile in tiles:
            configs.append((preset, tile, False))
        configs.append((preset, default_tiles[preset], True))
    return {
        "variants": args.variants or (["default", "mallopt"] if quick else list(VARIANTS)),
        "predict_variants": ["default"] if quick else ["default", "mallopt"],
        "cycles": args.cycles or (1 if quick else 2),
        "max_wait": args.max_wait if args.max_wait is not None else (2.0 if quick else 20.0),
        "forward": {
            "configs": configs,
            "repeats": args.repeats or (2 if quick else 3),
            "warmup": 1 if quick else 2,
            "mm_sizes": [2048] if quick else [2048, 4096],
        },
        "predict": {
            # quick: the paper's net on one 700 px tile only (it takes ~4 s a tile)
            "size": {
                "ronneberger2015": args.image_size or (512 if quick else 2048),
                "narrow": args.image_size or (1024 if quick else 2048),
            },
            "methods": ["biounet", "biounet-cl", "monai"],
            "repeats": {"ronneberger2015": 1, "narrow": 1}
            if quick
            else {"ronneberger2015": 2, "narrow": 3},
        },
        "compile": None
        if (quick or args.no_compile)
        else {
            "configs": [("ronneberger2015", PAPER_TILE), ("narrow", 700)],
            "modes": ["default", "freezing"],
            "repeats": 3,
        },
    }


def orchestrate(args: argparse.Namespace) -> dict[str, Any]:
    """Run every worker, cycles interleaving the allocator variants; collect the results."""
    cfg = plan(args)
    results: dict[str, Any] = {
        "machine": machine(),
        "plan": cfg,
        "variant_notes": VARIANT_NOTES,
        "forward": [],
        "predict": [],
        "compile": [],
    }
    t0 = time.perf_counter()
    sections = set(args.sections)
    for cycle in range(cfg["cycles"] if "forward" in sections else 0):
        for variant in cfg["variants"]:
            log(f"[{time.perf_counter() - t0:6.0f} s] cycle {cycle + 1}: forward, {variant}")
            params = {**cfg["forward"], "variant": variant, "max_wait": cfg["max_wait"]}
            r = spawn("forward", params, timeout=1800)
            results["forward"].append({**r, "cycle": cycle})
    for preset in PRESETS if "predict" in sections else ():
        for variant in cfg["predict_variants"]:
            log(f"[{time.perf_counter() - t0:6.0f} s] predict {preset}, {variant}")
            params = {
                **cfg["predict"],
                "repeats": cfg["predict"]["repeats"][preset],
                "preset": preset,
                "variant": variant,
                "max_wait": cfg["max_wait"],
            }
            results["predict"].append(spawn("predict", params, timeout=1800))
    if cfg["compile"] and "compile" in sections:
        log(f"[{time.perf_counter() - t0:6.0f} s] torch.compile")
        params = {**cfg["compile"], "variant": "default", "max_wait": cfg["max_wait"]}
        r = spawn("compile", params, timeout=1200)
        results["compile"].append(r)
    results["total_s"] = time.perf_counter() - t0
    results["summary"] = summarise(results)
    return results


def machine() -> dict[str, Any]:
    """The machine and software versions."""
    import torch

    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "libc": " ".join(platform.libc_ver()),
        "loadavg_at_start": os.getloadavg(),
        "allocator_env_ignored": {k: os.environ[k] for k in _ALLOCATOR_ENV if k in os.environ},
    }


# ====================================================================== summarising
def _pool(workers: list[dict[str, Any]], key: str) -> dict[str, list[float]]:
    """Concatenate the measurement lists of ``key`` over workers (cycles)."""
    pooled: dict[str, list[float]] = {}
    for w in workers:
        for k, v in w[key].items():
            if isinstance(v, list):
                pooled.setdefault(k, []).extend(v)
    return pooled


def forward_table(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (preset, tile, format, variant), pooled over cycles, clean passes only.

    ``of_matmul``: the median forward GFLOP/s over the median matmul GFLOP/s of the same
    workers (matmul measured before every round of forward passes, in the same process).
    """
    workers: dict[str, list[dict[str, Any]]] = {}
    for w in results["forward"]:
        if "rows" in w:
            workers.setdefault(w["variant"], []).append(w)
    table = []
    for variant, ws in workers.items():
        mm = _pool(ws, "matmul")
        mm_clean = [g for g, o in zip(mm["gflops"], mm["other"]) if o < CONTENDED]
        conv_clean = [g for g, o in zip(mm["conv"], mm["other"]) if o < CONTENDED]
        matmul = statistics.median(mm_clean or mm["gflops"])
        for i, r0 in enumerate(ws[0]["rows"]):
            s = _pool([{"row": w["rows"][i]} for w in ws], "row")
            med = statistics.median(clean(s))
            gflop = r0["gflop_per_tile"]
            table.append(
                {
                    **{k: r0[k] for k in ("preset", "tile", "channels_last", "parameters")},
                    **{k: r0[k] for k in ("flops_per_output_pixel", "output_tile")},
                    "gflop_per_tile": gflop,
                    "variant": variant,
                    "passes": len(s["wall"]),
                    "clean": n_clean(s),
                    "median_s": med,
                    "best_s": min(s["wall"]),
                    "contended_s": statistics.median(contended)
                    if (contended := [t for t, o in zip(s["wall"], s["other"]) if o >= CONTENDED])
                    else None,
                    "gflops": gflop / med,
                    "matmul_gflops": matmul,
                    "conv_gflops": statistics.median(conv_clean or mm["conv"]),
                    "of_matmul": gflop / med / matmul,
                    "best_of_matmul": gflop / min(s["wall"]) / max(mm["gflops"]),
                    "faults_per_pass": statistics.median(clean(s, "faults")),
                    "cpu_per_wall": statistics.median(
                        c / w for c, w, o in zip(s["cpu"], s["wall"], s["other"]) if o < CONTENDED
                    )
                    if n_clean(s)
                    else statistics.median(c / w for c, w in zip(s["cpu"], s["wall"])),
                }
            )
    return table


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    """The forward table, speed-ups against the default allocator, and the goals."""
    table = forward_table(results)
    by = {(r["preset"], r["tile"], r["channels_last"], r["variant"]): r for r in table}
    speedups: dict[str, dict[str, float]] = {}
    for (preset, tile, cl, variant), r in by.items():
        base = by.get((preset, tile, cl, "default"))
        if variant != "default" and base is not None:
            speedups[f"{preset}/{tile}/{'cl' if cl else 'contig'}/{variant}"] = {
                "median": base["median_s"] / r["median_s"],
                "best": base["best_s"] / r["best_s"],
            }
    goals: dict[str, Any] = {}
    for variant in ("default", "mallopt"):
        for cl in (False, True):
            fmt = "channels_last" if cl else "contiguous"
            paper = by.get(("ronneberger2015", PAPER_TILE, cl, variant))
            narrow = by.get(("narrow", 700, cl, variant))
            if paper is not None:
                goals[f"paper forward >= 80% of matmul ({variant}, {fmt})"] = (
                    paper["of_matmul"],
                    paper["of_matmul"] >= GOALS["paper_forward_of_matmul"],
                )
            if narrow is not None:
                goals[f"narrow forward >= 60% of matmul ({variant}, {fmt}, tile 700)"] = (
                    narrow["of_matmul"],
                    narrow["of_matmul"] >= GOALS["narrow_forward_of_matmul"],
                )
    for w in results["predict"]:
        for r in w.get("rows", []):
            if r["method"] == "monai":
                continue
            name = f"{w['preset']} {r['method']} ({w['variant']})"
            goals[f"predict >= 80% of time in the network: {name}"] = (
                r["share_in_forward"],
                r["share_in_forward"] >= GOALS["predict_share_in_network"],
            )
        if "area_thrown_away" in w:
            goals[f"predict <= 10% of computed area thrown away: {w['preset']}"] = (
                w["area_thrown_away"],
                w["area_thrown_away"] <= GOALS["predict_area_thrown_away"],
            )
    return {"forward": table, "allocator_speedup_vs_default": speedups, "goals": goals}


# ====================================================================== printing
def report(results: dict[str, Any]) -> str:
    """The human-readable tables."""
    m = results["machine"]
    lines = [
        f"machine: {m['cpu']}, {m['cpus']} CPUs, torch {m['torch']} ({m['torch_threads']} "
        f"threads), {m['libc']}, load average at start {m['loadavg_at_start'][0]:.2f}",
        "",
        "== forward pass of one tile (batch 1, eval, inference_mode)",
        f"   passes during which other processes used >= {CONTENDED:.0%} of the CPUs are set",
        "   aside (clean: how many were kept, of all, pooled over cycles); ms: median of the",
        "   clean passes; best: fastest pass; %matmul: GFLOP/s at the median over the median",
        "   fp32 torch.mm GFLOP/s (best of the sizes, measured before each round in the same",
        "   process); best%: fastest pass over fastest matmul; faults: minor page faults per",
        "   pass; cpu: CPU seconds per wall second (2.00 = both cores busy); busy ms: median",
        "   of the passes set aside, if any (another process held CPU meanwhile)",
    ]
    for w in results["forward"]:
        if "error" in w:
            lines.append(f"   {w['variant']} cycle {w['cycle']}: ERROR {w['error']}")
    table = results["summary"]["forward"]
    lines.append(
        f"   {'preset':<16}{'tile':>5}{'format':>7}{'variant':>16}{'clean':>6}{'ms':>7}"
        f"{'best':>7}{'GFLOP/s':>8}{'%matmul':>8}{'best%':>6}{'faults':>8}{'cpu':>5}"
        f"{'busy ms':>8}"
    )
    order = {v: i for i, v in enumerate(VARIANTS)}
    table = sorted(
        table, key=lambda r: (r["preset"], r["tile"], r["channels_last"], order[r["variant"]])
    )
    shown: set[tuple[str, int]] = set()
    for r in table:
        if (r["preset"], r["tile"]) not in shown:
            shown.add((r["preset"], r["tile"]))
            lines.append(
                f"   {r['preset']}: {r['parameters']:,} parameters, tile {r['tile']} -> "
                f"{r['output_tile']}, {r['flops_per_output_pixel'] / 1e6:.3f} MFLOP per output "
                f"pixel, {r['gflop_per_tile']:.1f} GFLOP per tile"
            )
        lines.append(
            f"   {r['preset']:<16}{r['tile']:>5}{'cl' if r['channels_last'] else 'contig':>7}"
            f"{r['variant']:>16}{str(r['clean']) + '/' + str(r['passes']):>6}"
            f"{r['median_s'] * 1e3:>7.0f}{r['best_s'] * 1e3:>7.0f}{r['gflops']:>8.1f}"
            f"{r['of_matmul'] * 100:>7.0f}%{r['best_of_matmul'] * 100:>5.0f}%"
            f"{r['faults_per_pass']:>8.0f}{r['cpu_per_wall']:>5.2f}"
            f"{r['contended_s'] * 1e3 if r['contended_s'] else float('nan'):>8.0f}"
        )
    lines.append("   references (clean medians per variant; GFLOP/s):")
    seen: set[str] = set()
    for r in table:
        if r["variant"] not in seen:
            seen.add(r["variant"])
            lines.append(
                f"     {r['variant']:<16} fp32 torch.mm {r['matmul_gflops']:6.1f}   oneDNN 3x3 "
                f"conv 512->512 ch {r['conv_gflops']:6.1f}"
            )
    others = [w["load"].get("other_cpu_share", 0.0) for w in results["forward"] if "load" in w]
    if others:
        lines.append(
            f"   CPU share taken by other processes per worker: "
            f"{', '.join(f'{o:.0%}' for o in others)}"
        )
    lines.append("")
    lines.append("== allocator variants (forward-time speed-up over default: clean medians, best)")
    for name, note in results["variant_notes"].items():
        if name in seen:
            lines.append(f"   {name:<16} {note}")
    lines.append(f"   {'preset/tile/format/variant':<48}{'median':>8}{'best':>8}")
    for k, v in results["summary"]["allocator_speedup_vs_default"].items():
        lines.append(
            f"   {k:<48}{'x' + format(v['median'], '.2f'):>8}{'x' + format(v['best'], '.2f'):>8}"
        )
    if results["compile"]:
        lines.append("")
        lines.append(
            "== torch.compile (default allocator; speed-up over eager, rounds interleaved)"
        )
        for w in results["compile"]:
            if "error" in w:
                lines.append(f"   ERROR {w['error']}")
            for r in w.get("rows", []):
                if "error" in r:
                    lines.append(f"   {r['preset']} {r['tile']} {r['mode']}: FAILED {r['error']}")
                elif "speedup" in r:
                    lines.append(
                        f"   {r['preset']:<16}{r['tile']:>5} {r['mode']:<9} compile "
                        f"{r['compile_s']:5.0f} s, eager {r['eager_s'] * 1e3:6.0f} ms, "
                        f"compiled {r['compiled_s'] * 1e3:6.0f} ms, x{r['speedup']:.2f} "
                        f"(clean {r['clean']}, max |diff| {r['max_abs_diff']:.1e})"
                    )
    lines.append("")
    lines.append("== whole image: biounet.predict vs MONAI sliding_window_inference (same tile)")
    for w in results["predict"]:
        if "error" in w:
            lines.append(f"   {w.get('preset')} {w.get('variant')}: ERROR {w['error']}")
            continue
        lines.append(
            f"   {w['preset']} ({w['variant']} allocator), {w['size']}x{w['size']} float32: "
            f"tile {w['tile'][0]} -> {w['output_tile']}, stride {w['stride'][0]}, "
            f"{w['tiles']} tiles, {w['area_thrown_away']:.1%} of computed output thrown away; "
            f"MONAI overlap {w['monai_overlap']:.3f} -> {w['monai_windows']} windows "
            f"({w['monai_area_thrown_away']:.1%} of valid output area redundant); other load "
            f"{w['load'].get('other_cpu_share', float('nan')):.0%}"
        )
        lines.append(
            f"     {'method':<12}{'clean':>6}{'s':>8}{'MPix/s':>9}{'in forward':>12}{'faults':>10}"
            f"{'cpu':>6}{'time/MONAI':>12}"
        )
        for r in w["rows"]:
            vs = f"{r['time_vs_monai']:.2f}" if "time_vs_monai" in r else ""
            lines.append(
                f"     {r['method']:<12}{str(r['clean']) + '/' + str(len(r['wall'])):>6}"
                f"{r['median_s']:>8.2f}{r['mpix_per_s']:>9.3f}{r['share_in_forward']:>11.0%}"
                f"{r['median_faults']:>10.0f}{r['median_cpu_per_wall']:>6.2f}"
                f"{vs:>12}"
            )
    lines.append("   (MONAI: the valid net's output is zero-padded back to the tile so MONAI can")
    lines.append(
        "    blend it; the compute is the same, the borders are not the paper's mirroring)"
    )
    lines.append("")
    lines.append("== goals")
    for k, (v, ok) in results["summary"]["goals"].items():
        lines.append(f"   {'MET ' if ok else 'MISS'} {k}: {v:.0%}")
    lines.append("")
    lines.append(f"total {results['total_s']:.0f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke test: about a minute")
    parser.add_argument("--json", type=Path, help="write all results to this JSON file")
    parser.add_argument("--cycles", type=int, help="rounds over the allocator variants")
    parser.add_argument("--repeats", type=int, help="timed forward passes per worker")
    parser.add_argument("--image-size", type=int, help="whole-image side, px (default 2048)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), help="allocators")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument(
        "--sections",
        nargs="+",
        choices=["forward", "predict", "compile"],
        default=["forward", "predict", "compile"],
        help="what to measure (default: all)",
    )
    parser.add_argument(
        "--max-wait",
        type=float,
        help="before each timed pass, wait up to this many seconds for the other processes on "
        "the machine to go quiet (default 20; --quick: 2)",
    )
    parser.add_argument("--worker", choices=list(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--params", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        out = WORKERS[args.worker](json.loads(args.params))
        args.result.write_text(json.dumps(out))
        return 0
    results = orchestrate(args)
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
