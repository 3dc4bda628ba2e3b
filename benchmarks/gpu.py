"""GPU speed of biounet's U-Nets: forward, training step, training loop and whole images.

One prepared run for a lent GPU (an H100 or H200, no internet, about ten minutes), measuring
in one process, each figure beside its reference:

1. **The paper's network** (``ronneberger2015``, tile 572 -> 388): the forward pass (eval,
   ``torch.inference_mode``) and one training step (biounet's own
   :func:`biounet.train.step.train_step`: SGD with momentum 0.99 and the paper's weighted
   cross-entropy, on random tensors with a random weight map) at batch 1 and 4, in fp32
   (cuDNN's default TF32 convolutions), under bf16 autocast, in channels-last, both, with
   ``cudnn.benchmark``, and under ``torch.compile`` (default mode; plain, and with bf16 and
   channels-last; a failure is recorded, not raised). For each: median ms, images/s,
   TFLOP/s (``torch.utils.flop_counter``, counted once per mode and batch on fp32 eager: the
   arithmetic is the same in every variant), peak memory (``torch.cuda.max_memory_allocated``
   above what was allocated before the variant was built) and the speed-up over fp32 eager,
   from rounds that alternate the variant with fp32 eager (CUDA events; warm-up first,
   compilation included in the warm-up and reported).
   The learning rate is lowered to 1e-4 so random data cannot make the loss diverge; the
   arithmetic does not depend on it.
2. **The ``gpu`` training preset** (the paper's topology at width 32 with batch norm, bf16,
   channels-last, batch 8, AdamW, Dice + CE, data-loader workers): ``biounet.fit`` on
   synthetic cells (:func:`biounet.data.synthetic.make_cells`) for a fixed number of
   iterations (no validation, one checkpoint at the end, a time budget as a safety net):
   iterations/s and output pixels/s from its metrics log, the share of each iteration spent
   waiting for tiles, and the same step on pre-made tensors (no data pipeline) in the same
   process, with the ratio of the two.
3. **Whole images**: ``biounet.predict`` on a random 4096 x 4096 float32 image with ``narrow``
   and the paper's network (contiguous and channels-last), against MONAI's
   ``sliding_window_inference`` at the same tile and batch, with the overlap
   ``2 * margin / tile`` so that it runs as many tiles (the valid net's output is zero-padded
   back to the tile for MONAI, as in ``benchmarks/inference.py``); megapixels/s, rounds
   interleaved. Without MONAI the comparison is skipped and the reason recorded.

The ``torch.compile`` variants of part 1 run last, after parts 2 and 3, as they take the
longest. A section that fails is recorded in the results and the run goes on; once
``--max-seconds`` (default 480) of wall time are used, the remaining sections and variants
are skipped and say so. With ``--json`` the results are rewritten after every section, so a
run cut short keeps what it measured.

Run from the repository root after ``pip install -e .``::

    python benchmarks/gpu.py --json gpu.json           # on the GPU machine, under 10 minutes
    python benchmarks/gpu.py --quick                   # a smoke test, under a minute on a CPU

Without CUDA the script runs on the CPU and says loudly that its figures are not GPU figures;
``--quick`` shrinks every section (small tiles and images, few iterations, no compilation) so
that it also serves as a test of the script itself there.
"""

from __future__ import annotations

import argparse
import copy
import gc
import itertools
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PAPER = "ronneberger2015"
PAPER_TILE = 572
#: the learning rate of part 1's training step (random data; see the module docstring)
BENCH_LR = 1e-4
#: a timed block of calls lasts about this long on a GPU (the number of calls is fitted to it)
BLOCK_S = 0.3
CPU_NOTE = (
    "NOTE: no CUDA device: everything below ran on the CPU. These are NOT GPU figures; the run "
    "only shows that the script works."
)


@dataclass(frozen=True)
class Variant:
    """How part 1 runs the network: bf16 autocast, channels-last, cuDNN autotuning, compiled."""

    bf16: bool = False
    channels_last: bool = False
    cudnn_benchmark: bool = False
    compile: bool = False


VARIANTS: dict[str, Variant] = {
    "fp32": Variant(),
    "bf16": Variant(bf16=True),
    "channels_last": Variant(channels_last=True),
    "bf16+cl": Variant(bf16=True, channels_last=True),
    "cudnn.benchmark": Variant(cudnn_benchmark=True),
    "compile": Variant(compile=True),
    "compile+bf16+cl": Variant(bf16=True, channels_last=True, compile=True),
}
SECTIONS = ("network", "train", "predict", "compile")


# ====================================================================== small tools
class Guard:
    """The wall-clock budget of the run: how much is left, and whether a step still fits."""

    def __init__(self, limit_s: float) -> None:
        self.limit = limit_s
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.perf_counter() - self.start

    def left(self) -> float:
        """Seconds left in the budget (negative once spent)."""
        return self.limit - self.elapsed()

    def allows(self, need_s: float = 0.0) -> bool:
        """Whether ``need_s`` more seconds fit in the budget."""
        return self.left() >= need_s

    def reason(self) -> str:
        """Why something was skipped, for the results."""
        used = f"{self.elapsed():.0f} s of --max-seconds {self.limit:.0f}"
        return f"wall-clock guard ({used})"


def log(guard: Guard, msg: str) -> None:
    print(f"[{guard.elapsed():6.1f} s] {msg}", file=sys.stderr, flush=True)


def error_text(e: BaseException) -> str:
    first = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
    return f"{type(e).__name__}: {first}"


def synchronize(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free(device: Any) -> None:
    """Return freed memory to the CUDA caching allocator's pool of free blocks."""
    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def memory_mark(device: Any) -> int:
    """Bytes allocated now; the peak counter restarts from here."""
    import torch

    if device.type != "cuda":
        return 0
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    return int(torch.cuda.memory_allocated(device))


def peak_mib(device: Any, mark: int) -> float | None:
    """The peak allocated since :func:`memory_mark`, above what was allocated then, MiB."""
    import torch

    if device.type != "cuda":
        return None
    synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - mark) / 2**20


def seconds_per_call(step: Callable[[], None], reps: int, device: Any) -> float:
    """Time ``reps`` calls of ``step`` as one block: CUDA events on a GPU, else the clock."""
    import torch

    synchronize(device)
    if device.type == "cuda":
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            step()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3 / reps
    t = time.perf_counter()
    for _ in range(reps):
        step()
    return (time.perf_counter() - t) / reps


def calls_per_block(step: Callable[[], None], device: Any, quick: bool) -> int:
    """How many calls make a block of about ``BLOCK_S`` (1 in quick mode)."""
    if quick:
        return 1
    t = seconds_per_call(step, 1, device)
    return max(1, min(50, round(BLOCK_S / max(t, 1e-6))))


def machine(device: Any) -> dict[str, Any]:
    """The GPU (or CPU), the software and the numeric settings that change the figures."""
    import torch

    info: dict[str, Any] = {
        "device": str(device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cudnn_benchmark_default": torch.backends.cudnn.benchmark,
        "gpu_figures": device.type == "cuda",
    }
    try:
        import biounet

        info["biounet"] = biounet.__version__
    except Exception as e:  # report, never fail
        info["biounet"] = error_text(e)
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            gpu=torch.cuda.get_device_name(device),
            capability=f"{props.major}.{props.minor}",
            gpu_memory_gib=props.total_memory / 2**30,
            multiprocessors=props.multi_processor_count,
        )
    else:
        info["gpu"] = None
        info["note"] = CPU_NOTE
    try:
        import monai

        info["monai"] = monai.__version__
    except ImportError:
        info["monai"] = "monai not installed"
    return info


# ====================================================================== 1. the paper's network
def build_step(
    v: Variant, mode: str, batch: int, base: Any, tile: int, device: Any
) -> Callable[[], None]:
    """A call that runs one forward pass or one training step of a copy of ``base``."""
    import torch

    from biounet.config import LossConfig, OptimConfig
    from biounet.train.optim import build_optimizer
    from biounet.train.step import Precision, place, train_step

    model = copy.deepcopy(base)
    fmt = torch.channels_last if v.channels_last else torch.contiguous_format
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 1, tile, tile, generator=gen).to(device).contiguous(memory_format=fmt)
    if mode == "forward":
        model.eval().to(device)
        if v.channels_last:
            model.to(memory_format=fmt)
        fnet = torch.compile(model) if v.compile else model

        def forward() -> None:
            torch.backends.cudnn.benchmark = v.cudnn_benchmark
            with (
                torch.inference_mode(),
                torch.autocast(device.type, dtype=torch.bfloat16, enabled=v.bf16),
            ):
                fnet(x)

        return forward
    precision = Precision(device, "bf16" if v.bf16 else "off", v.channels_last)
    model.train()
    place(model, precision)
    tnet = torch.compile(model) if v.compile else model
    optim = OptimConfig(name="sgd", lr=BENCH_LR, momentum=0.99)
    losses = LossConfig(ce=1.0, dice=0.0)  # the paper's loss: weighted cross-entropy alone
    opt = build_optimizer(optim, model.parameters())
    scaler = precision.scaler()
    out = model.geometry.output_size(tile)
    data = {
        "image": x,
        "target": torch.randint(0, 2, (batch, out, out), generator=gen).to(device),
        "weight": (1 + 9 * torch.rand(batch, out, out, generator=gen)).to(device),
    }
    count = itertools.count()

    def step() -> None:
        torch.backends.cudnn.benchmark = v.cudnn_benchmark
        train_step(tnet, data, opt, scaler, precision, losses, optim, next(count))

    return step


def count_flops(step: Callable[[], None]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


def bench_network(
    args: argparse.Namespace, device: Any, guard: Guard, variants: list[str], with_base_row: bool
) -> dict[str, Any]:
    """Part 1 for ``variants``: per mode and batch, each variant alternated with fp32 eager."""
    import torch

    import biounet

    torch.manual_seed(0)
    base = biounet.UNet.from_preset(PAPER)
    tile = args.tile
    out = base.geometry.output_size(tile)
    info = {
        "preset": PAPER,
        "parameters": base.count_parameters(),
        "tile": tile,
        "output_tile": out,
        "variants": {k: asdict(VARIANTS[k]) for k in variants},
    }
    rows: list[dict[str, Any]] = []
    benchmark_before = torch.backends.cudnn.benchmark
    compile_s: list[float] = []
    try:
        for mode in ("forward", "train"):
            for batch in args.batch_sizes:
                try:
                    rows += _bench_group(
                        args, device, guard, variants, with_base_row, base, mode, batch, compile_s
                    )
                except Exception as e:  # the fp32 reference itself failed (e.g. out of memory)
                    why = f"the fp32 eager reference failed: {error_text(e)}"
                    rows += [
                        {"mode": mode, "batch": batch, "variant": v, "error": why} for v in variants
                    ]
                    log(guard, f"network: {mode}, batch {batch}: {why}")
                    free(device)
    finally:
        torch.backends.cudnn.benchmark = benchmark_before
    return {**info, "rows": rows}


def _bench_group(
    args: argparse.Namespace,
    device: Any,
    guard: Guard,
    variants: list[str],
    with_base_row: bool,
    base: Any,
    mode: str,
    batch: int,
    compile_s: list[float],
) -> list[dict[str, Any]]:
    """One mode and batch size: fp32 eager, then each variant in rounds alternating with it."""
    tile = args.tile
    out = base.geometry.output_size(tile)
    key = {"mode": mode, "batch": batch}
    if not guard.allows(5):
        return [{**key, "variant": v, "skipped": guard.reason()} for v in variants]
    log(guard, f"network: {mode}, batch {batch}: fp32 eager")
    mark = memory_mark(device)
    base_step = build_step(VARIANTS["fp32"], mode, batch, base, tile, device)
    t = time.perf_counter()
    for _ in range(args.warmup):
        base_step()
    synchronize(device)
    base_warm = time.perf_counter() - t
    base_peak = peak_mib(device, mark)
    flops = count_flops(base_step)
    base_reps = calls_per_block(base_step, device, args.quick)
    common = {**key, "flops": flops, "out_pixels": batch * out * out}
    rows: list[dict[str, Any]] = []
    if with_base_row:
        times = [seconds_per_call(base_step, base_reps, device) for _ in range(args.rounds)]
        rows.append(
            _row(
                {**common, "variant": "fp32", "warmup_s": base_warm, "peak_mib": base_peak},
                times,
                [1.0] * len(times),
                base_reps,
            )
        )
    for name in variants:
        if name == "fp32":
            continue
        v = VARIANTS[name]
        need = (1.5 * max(compile_s, default=60.0)) if v.compile else 5.0
        if not guard.allows(need):
            rows.append({**key, "variant": name, "skipped": guard.reason()})
            continue
        log(guard, f"network: {mode}, batch {batch}: {name}")
        step: Callable[[], None] | None = None
        try:
            if v.compile:
                import torch._dynamo

                torch._dynamo.reset()
            mark = memory_mark(device)
            t = time.perf_counter()
            step = build_step(v, mode, batch, base, tile, device)
            for _ in range(args.warmup + (2 if v.compile else 0)):
                step()
            synchronize(device)
            warm = time.perf_counter() - t
            if v.compile:
                compile_s.append(warm)
            peak = peak_mib(device, mark)
            reps = calls_per_block(step, device, args.quick)
            times, ratios = [], []
            for _ in range(args.rounds):
                b = seconds_per_call(base_step, base_reps, device)
                s = seconds_per_call(step, reps, device)
                times.append(s)
                ratios.append(b / s)
            rows.append(
                _row(
                    {**common, "variant": name, "warmup_s": warm, "peak_mib": peak},
                    times,
                    ratios,
                    reps,
                )
            )
        except Exception as e:  # compile needs a toolchain; bf16 needs a recent GPU: report
            rows.append({**key, "variant": name, "error": error_text(e)})
            log(guard, f"  {name} failed: {error_text(e)}")
        finally:
            step = None
            free(device)
    del base_step
    free(device)
    return rows


def _row(
    fields: dict[str, Any], times: list[float], ratios: list[float], reps: int
) -> dict[str, Any]:
    med = statistics.median(times)
    return {
        **fields,
        "calls_per_round": reps,
        "rounds": len(times),
        "times_s": times,
        "median_ms": med * 1e3,
        "best_ms": min(times) * 1e3,
        "images_per_s": fields["batch"] / med,
        "tflops": fields["flops"] / med / 1e12,
        "speedup_vs_fp32": statistics.median(ratios),
    }


# ====================================================================== 2. the gpu preset
def bench_train(args: argparse.Namespace, device: Any, guard: Guard) -> dict[str, Any]:
    """``biounet.fit`` with the ``gpu`` preset on synthetic cells, beside the bare step."""
    from biounet.config import build_config
    from biounet.data import Sample
    from biounet.data.synthetic import make_cells
    from biounet.reporting.runlog import read_metrics
    from biounet.train import fit

    n_images, size = (2, 192) if args.quick else (8, 768)
    data = []
    for i in range(n_images):
        image, labels = make_cells((size, size), seed=i)
        data.append(Sample(f"cells{i}", image[None], labels))
    overrides: dict[str, Any] = {
        "iterations": args.train_iterations,
        "log_every": 1,
        "val_every": 10**9,
        "checkpoint_minutes": 10**6,
        "recalibrate_bn": 0,
        "data": {"annotation": "instances", "val_fraction": 0.0},
    }
    if args.quick:  # a smoke test: the smallest valid tile, a small batch, no worker processes
        overrides.update(tile=188, batch_size=1, workers=0)
    # a safety net: the run stops early rather than overrun the guard (the figures stay valid)
    minutes = max(0.2, min(args.train_minutes, (guard.left() - 30) / 60))
    overrides["max_minutes"] = minutes
    cfg = build_config("gpu", overrides=[overrides])
    warm = 1 if args.quick else max(3, args.train_iterations // 10)
    log(
        guard,
        f"train: gpu preset, fit for {args.train_iterations} iterations (<= {minutes:.1f} min)",
    )
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = fit(cfg, Path(tmp) / "run", samples=data, progress=False)
        records = [r for r in read_metrics(Path(tmp) / "run") if "loss" in r]
    fit_s = time.perf_counter() - t
    fit_device = next(result.model.net.parameters()).device  # fit picks CUDA when present
    kept = records[warm:] or records
    step_s = statistics.median(r["seconds_per_it"] for r in kept)
    data_share = statistics.median(r["data_share"] for r in kept)

    # the same network, optimiser, loss and precision on pre-made tensors, on fit's device
    log(guard, "train: gpu preset, the bare step on pre-made tensors")
    bare = _bare_step(cfg, fit_device, warm, max(2, min(len(kept), 50)))
    free(fit_device)
    px = bare["batch"] * bare["output_tile"] ** 2
    return {
        "preset": "gpu",
        "device": str(fit_device),
        **bare,
        "workers": cfg.workers,
        "images": f"{n_images} synthetic cell images of {size} x {size}",
        "iterations_planned": args.train_iterations,
        "iterations_logged": len(records),
        "warmup_iterations_dropped": len(records) - len(kept),
        "fit_wall_s": fit_s,
        "fit_s_per_it": step_s,
        "fit_it_per_s": 1 / step_s,
        "fit_out_px_per_s": px / step_s,
        "fit_data_share": data_share,
        "bare_it_per_s": 1 / bare["bare_s_per_it"],
        "bare_out_px_per_s": px / bare["bare_s_per_it"],
        "fit_over_bare": step_s / bare["bare_s_per_it"],
    }


def _bare_step(cfg: Any, device: Any, warm: int, n: int) -> dict[str, Any]:
    """Median seconds of biounet's train_step for ``cfg`` on random tensors already on device."""
    import torch

    from biounet.train import build_model
    from biounet.train.optim import build_optimizer
    from biounet.train.step import Precision, place, train_step

    torch.manual_seed(0)
    model = build_model(cfg, 1).train()
    g = model.geometry
    tile = g.nearest_valid_sizes(cfg.tile)[1]
    out = g.output_size(tile)
    b = cfg.batch_size
    precision = Precision.of(cfg, device)
    place(model, precision)
    opt = build_optimizer(cfg.optim, model.parameters())
    scaler = precision.scaler()
    gen = torch.Generator().manual_seed(0)
    batch = {
        "image": torch.randn(b, 1, tile, tile, generator=gen).to(device),
        "target": torch.randint(0, cfg.data.num_classes, (b, out, out), generator=gen).to(device),
        "weight": (1 + 9 * torch.rand(b, out, out, generator=gen)).to(device),
    }
    count = itertools.count()

    def step() -> None:
        train_step(model, batch, opt, scaler, precision, cfg.loss, cfg.optim, next(count))

    for _ in range(warm):
        step()
    times = [seconds_per_call(step, 1, device) for _ in range(n)]
    return {
        "amp": precision.amp,
        "channels_last": precision.channels_last,
        "tile": tile,
        "output_tile": out,
        "batch": b,
        "bare_s_per_it": statistics.median(times),
    }


# ====================================================================== 3. whole images
def bench_predict(args: argparse.Namespace, device: Any, guard: Guard) -> dict[str, Any]:
    """``biounet.predict`` against MONAI's sliding window, per preset, rounds interleaved."""
    out: dict[str, Any] = {"presets": []}
    try:  # imported before timing: the import alone takes seconds
        from monai.inferers import sliding_window_inference
    except ImportError:
        sliding_window_inference = None
        out["monai"] = "monai not installed"
        log(guard, "predict: monai not installed; biounet alone")
    for preset in ("narrow", PAPER):
        if not guard.allows(10):
            out["presets"].append({"preset": preset, "skipped": guard.reason()})
            continue
        try:
            out["presets"].append(
                _predict_one(args, device, guard, preset, sliding_window_inference)
            )
        except Exception as e:
            out["presets"].append({"preset": preset, "error": error_text(e)})
            log(guard, f"  predict {preset} failed: {error_text(e)}")
        finally:
            free(device)
    return out


def _predict_one(
    args: argparse.Namespace, device: Any, guard: Guard, preset: str, sliding: Any
) -> dict[str, Any]:
    import numpy as np
    import torch
    from torch.nn import functional as F

    import biounet
    from biounet.inference.predictor import choose_tile
    from biounet.inference.tiling import plan_crop

    n = args.image_size
    image = np.random.default_rng(0).random((n, n), dtype=np.float32)
    torch.manual_seed(0)
    model = biounet.UNet.from_preset(preset).eval().to(device)  # predict then leaves it there
    g = model.geometry
    tile, stride = choose_tile(model, (n, n), None)
    out_tile = g.output_size(tile[0])
    counts = [len(plan_crop(s, out_tile, st, g.margin)) for s, st in zip((n, n), stride)]
    n_tiles = counts[0] * counts[1]
    margin = g.margin
    overlap = 2 * margin / tile[0]
    batch = args.predict_batch or (4 if device.type == "cuda" else 1)

    seen = {"tiles": 0}
    plain_forward = model.forward

    def counting_forward(x: torch.Tensor) -> torch.Tensor:
        seen["tiles"] += int(x.shape[0])
        return plain_forward(x)

    model.forward = counting_forward  # type: ignore[method-assign]

    def monai_predictor(x: torch.Tensor) -> torch.Tensor:
        # MONAI wants same-size outputs: the valid net's output padded back to the tile (zeros)
        return F.pad(torch.softmax(model(x), dim=1), (margin,) * 4)

    methods = ["biounet", "biounet-cl"] + (["monai"] if sliding is not None else [])

    def run(method: str) -> Any:
        if method == "monai":
            with torch.inference_mode():
                probs = sliding(
                    torch.from_numpy(image)[None, None],
                    roi_size=tile,
                    sw_batch_size=batch,
                    predictor=monai_predictor,
                    overlap=overlap,
                    mode="constant",
                    sw_device=device,
                    device=device,
                )
                return probs.cpu().numpy()  # on the host, as biounet.predict returns it
        return biounet.predict(
            model,
            image,
            device=device,
            batch_size=batch,
            channels_last=method == "biounet-cl",
            progress=False,
        )

    log(guard, f"predict: {preset}, {n} x {n}, tile {tile[0]} -> {out_tile}, {n_tiles} tiles")
    tiles_run: dict[str, int] = {}
    warm: dict[str, float] = {}
    for method in methods:  # warm-up: a whole image each (cuDNN picks kernels per shape)
        seen["tiles"] = 0
        t = time.perf_counter()
        run(method)
        synchronize(device)
        warm[method] = time.perf_counter() - t
        tiles_run[method] = seen["tiles"]
    walls: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(args.predict_repeats):
        if not guard.allows(2 * sum(warm.values())):
            break
        for method in methods:
            synchronize(device)
            t = time.perf_counter()
            run(method)
            synchronize(device)
            walls[method].append(time.perf_counter() - t)
    rows = []
    for method in methods:
        w = walls[method] or [warm[method]]
        med = statistics.median(w)
        row: dict[str, Any] = {
            "method": method,
            "wall_s": w,
            "warmup_s": warm[method],
            "median_s": med,
            "mpix_per_s": n * n / med / 1e6,
            "tiles_run": tiles_run[method],
        }
        if "monai" in walls and method != "monai" and walls["monai"]:
            row["time_vs_monai"] = statistics.median(
                a / b for a, b in zip(walls[method], walls["monai"])
            )
        rows.append(row)
    model.forward = plain_forward  # type: ignore[method-assign]
    return {
        "preset": preset,
        "size": n,
        "tile": tile[0],
        "stride": stride[0],
        "output_tile": out_tile,
        "tiles": n_tiles,
        "batch": batch,
        "area_thrown_away": 1 - n * n / (n_tiles * out_tile**2),
        "monai_overlap": overlap,
        "rows": rows,
    }


# ====================================================================== running and printing
def plan(args: argparse.Namespace, device: Any) -> argparse.Namespace:
    """Fill in the defaults that depend on ``--quick`` and the device."""
    quick = args.quick
    if args.variants is None:
        names = list(VARIANTS)
        if quick or args.no_compile:
            names = [n for n in names if not VARIANTS[n].compile]
        if quick:
            names = [n for n in names if n in ("fp32", "bf16", "channels_last")]
        elif device.type != "cuda":
            names = [n for n in names if n != "cudnn.benchmark"]
        args.variants = names
    if "fp32" not in args.variants:
        args.variants = ["fp32", *args.variants]
    if args.tile is None:
        args.tile = 188 if quick else PAPER_TILE
    if args.batch_sizes is None:
        args.batch_sizes = [1] if quick else [1, 4]
    if args.rounds is None:
        args.rounds = 1 if quick else 5
    if args.warmup is None:
        args.warmup = 1 if quick else 3
    if args.train_iterations is None:
        args.train_iterations = 3 if quick else 150
    if args.image_size is None:
        args.image_size = 64 if quick else 4096
    if args.predict_repeats is None:
        args.predict_repeats = 1 if quick else 5
    return args


def run_section(
    results: dict[str, Any],
    key: str,
    fn: Callable[[], dict[str, Any]],
    guard: Guard,
    args: argparse.Namespace,
) -> None:
    """Run one section into ``results[key]``: its result, its error, or why it was skipped."""
    if key not in args.sections:
        results[key] = {"skipped": "not asked for (--sections)"}
        return
    if not guard.allows(5):
        results[key] = {"skipped": guard.reason()}
        log(guard, f"{key}: {guard.reason()}")
        return
    t = time.perf_counter()
    try:
        results[key] = fn()
    except Exception as e:  # one failed section must not cost the others
        results[key] = {
            "error": error_text(e),
            "traceback": traceback.format_exc(limit=-4).splitlines()[-12:],
        }
        log(guard, f"{key} FAILED: {error_text(e)}")
    results[key]["section_s"] = time.perf_counter() - t
    save(results, args, guard)


def save(results: dict[str, Any], args: argparse.Namespace, guard: Guard) -> None:
    if args.json:
        results["total_s"] = guard.elapsed()
        args.json.write_text(json.dumps(results, indent=1, default=str))


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def report(results: dict[str, Any]) -> str:
    """The human-readable tables."""
    m = results["machine"]
    lines = [
        f"device: {m.get('gpu') or 'CPU'} ({m['device']}); torch {m['torch']}, CUDA {m['cuda']}, "
        f"cuDNN {m['cudnn']}, {m['cpus']} CPUs; biounet {m.get('biounet')}; MONAI {m['monai']}",
        f"TF32: cuDNN convolutions {m['cudnn_allow_tf32']}, matmul {m['matmul_allow_tf32']}; "
        f"cudnn.benchmark by default {m['cudnn_benchmark_default']}",
    ]
    if not m["gpu_figures"]:
        lines += ["", "!" * 96, CPU_NOTE, "!" * 96]
    lines += ["", "== 1. the paper's network: forward (eval, inference_mode) and training step"]
    net = results.get("network", {})
    comp = results.get("compile", {})
    if "rows" in net:
        lines.append(
            f"   {net['preset']}: {net['parameters']:,} parameters, tile {net['tile']} -> "
            f"{net['output_tile']}; train = biounet's train_step, SGD momentum 0.99 (lr "
            f"{BENCH_LR:g}), weighted CE; x fp32: median over rounds of fp32-eager time / "
            "variant time, measured alternately"
        )
    for what, part in (("eager", net), ("torch.compile", comp)):
        for k in ("error", "skipped"):
            if k in part:
                lines.append(f"   {what}: {k.upper()}: {part[k]}")
    rows = net.get("rows", []) + comp.get("rows", [])
    if rows:
        lines.append(
            f"   {'mode':<8}{'batch':>5}  {'variant':<17}{'ms':>9}{'best':>9}{'img/s':>9}"
            f"{'TFLOP/s':>9}{'peak MiB':>10}{'x fp32':>8}{'warm-up s':>10}"
        )
        order = {v: i for i, v in enumerate(VARIANTS)}
        rows = sorted(rows, key=lambda r: (r["mode"] != "forward", r["batch"], order[r["variant"]]))
        for r in rows:
            head = f"   {r['mode']:<8}{r['batch']:>5}  {r['variant']:<17}"
            if "error" in r or "skipped" in r:
                what = "FAILED " + r["error"] if "error" in r else "skipped: " + r["skipped"]
                lines.append(head + what)
                continue
            lines.append(
                head + f"{r['median_ms']:>9.2f}{r['best_ms']:>9.2f}{r['images_per_s']:>9.1f}"
                f"{r['tflops']:>9.1f}{_fmt(r['peak_mib'], '.0f'):>10}"
                f"{'x' + format(r['speedup_vs_fp32'], '.2f'):>8}{r['warmup_s']:>10.1f}"
            )
        flops = {(r["mode"], r["batch"]): r["flops"] for r in rows if "flops" in r}
        if flops:
            lines.append(
                "   FLOPs per call: "
                + ", ".join(f"{k[0]} b{k[1]} {v / 1e12:.3f} T" for k, v in flops.items())
            )
    lines += [
        "",
        "== 2. the gpu training preset: biounet.fit on synthetic cells, and the bare step",
    ]
    t = results.get("train", {})
    if "fit_s_per_it" in t:
        lines += [
            f"   {t['device']}, amp {t['amp']}, channels_last {t['channels_last']}, tile "
            f"{t['tile']} -> {t['output_tile']}, batch {t['batch']}, {t['workers']} workers; "
            f"{t['images']}; {t['iterations_logged']} iterations ({t['warmup_iterations_dropped']} "
            f"dropped as warm-up), fit took {t['fit_wall_s']:.0f} s in all",
            f"   {'':<24}{'s/it':>9}{'it/s':>9}{'out Mpx/s':>11}{'waiting for data':>18}",
            f"   {'biounet.fit':<24}{t['fit_s_per_it']:>9.4f}{t['fit_it_per_s']:>9.2f}"
            f"{t['fit_out_px_per_s'] / 1e6:>11.2f}{t['fit_data_share']:>17.0%}",
            f"   {'bare step (no data)':<24}{t['bare_s_per_it']:>9.4f}{t['bare_it_per_s']:>9.2f}"
            f"{t['bare_out_px_per_s'] / 1e6:>11.2f}",
            f"   fit / bare step time: x{t['fit_over_bare']:.2f}",
        ]
    for k in ("error", "skipped"):
        if k in t:
            lines.append(f"   {k.upper()}: {t[k]}")
    lines += ["", "== 3. whole image: biounet.predict vs MONAI sliding_window_inference"]
    p = results.get("predict", {})
    for k in ("error", "skipped", "monai"):
        if k in p:
            lines.append(f"   {k.upper()}: {p[k]}")
    for w in p.get("presets", []):
        if "rows" not in w:
            what = f"FAILED {w['error']}" if "error" in w else f"skipped: {w.get('skipped')}"
            lines.append(f"   {w['preset']}: {what}")
            continue
        lines.append(
            f"   {w['preset']}: {w['size']} x {w['size']} float32, tile {w['tile']} -> "
            f"{w['output_tile']}, stride {w['stride']}, {w['tiles']} tiles in batches of "
            f"{w['batch']}, {w['area_thrown_away']:.1%} of computed output thrown away; MONAI "
            f"overlap {w['monai_overlap']:.3f}"
        )
        lines.append(
            f"     {'method':<12}{'runs':>5}{'s':>9}{'MPix/s':>9}{'tiles':>7}{'time/MONAI':>12}"
        )
        for r in w["rows"]:
            lines.append(
                f"     {r['method']:<12}{len(r['wall_s']):>5}{r['median_s']:>9.3f}"
                f"{r['mpix_per_s']:>9.2f}{r['tiles_run']:>7}"
                f"{_fmt(r.get('time_vs_monai'), '.2f'):>12}"
            )
    if p.get("presets"):
        lines.append(
            "   (MONAI: the valid net's output is zero-padded back to the tile; same compute, "
            "other borders)"
        )
    if not m["gpu_figures"]:
        lines += ["", CPU_NOTE]
    lines += ["", f"total {results.get('total_s', 0):.0f} s"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="a smoke test, under a minute on a CPU"
    )
    parser.add_argument("--json", type=Path, help="write all results to this JSON file")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=480.0,
        help="wall-clock budget: sections and variants that would start past it are skipped "
        "(default 480)",
    )
    parser.add_argument(
        "--sections",
        nargs="+",
        choices=SECTIONS,
        default=list(SECTIONS),
        help="what to measure (default: all; compile = the torch.compile variants of part 1)",
    )
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", help="part 1 batch sizes (default 1 4; quick 1)"
    )
    parser.add_argument("--tile", type=int, help="part 1 input tile (default 572; quick 188)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), help="part 1 variants")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument("--rounds", type=int, help="part 1 timed rounds per variant (default 5)")
    parser.add_argument("--warmup", type=int, help="part 1 warm-up calls (default 3)")
    parser.add_argument("--train-iterations", type=int, help="part 2 iterations (default 150)")
    parser.add_argument(
        "--train-minutes", type=float, default=2.0, help="part 2 time budget (default 2)"
    )
    parser.add_argument("--image-size", type=int, help="part 3 image side (default 4096)")
    parser.add_argument("--predict-batch", type=int, help="part 3 tiles per pass (GPU: 4)")
    parser.add_argument("--predict-repeats", type=int, help="part 3 timed rounds (default 5)")
    args = parser.parse_args(argv)

    import torch

    guard = Guard(args.max_seconds)
    cuda = torch.cuda.is_available()
    if args.device == "cuda" and not cuda:
        parser.error("--device cuda: no CUDA device here")
    device = torch.device("cuda" if cuda and args.device != "cpu" else "cpu")
    if device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device())
    else:
        print(CPU_NOTE, file=sys.stderr, flush=True)
    args = plan(args, device)
    results: dict[str, Any] = {"machine": machine(device), "plan": vars(args).copy()}
    eager = [v for v in args.variants if not VARIANTS[v].compile]
    compiled = [v for v in args.variants if VARIANTS[v].compile]
    run_section(
        results, "network", lambda: bench_network(args, device, guard, eager, True), guard, args
    )
    run_section(results, "train", lambda: bench_train(args, device, guard), guard, args)
    run_section(results, "predict", lambda: bench_predict(args, device, guard), guard, args)
    if compiled:
        run_section(
            results,
            "compile",
            lambda: bench_network(args, device, guard, compiled, False),
            guard,
            args,
        )
    else:
        results["compile"] = {"skipped": "no compile variant asked for (--quick, --no-compile)"}
    results["total_s"] = guard.elapsed()
    print(report(results))
    save(results, args, guard)
    if args.json:
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
