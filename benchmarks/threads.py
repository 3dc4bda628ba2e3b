"""Thread policies for a shared CPU: biounet's speed when other processes want the cores too.

With as many OpenMP threads as cores, a forward pass slows down several-fold as soon as another
process takes one core: the runtime's threads spin at every barrier, waiting for the one thread
that the scheduler has put aside. This script measures, in one run, which thread policy copes:

* workloads: ``biounet.predict`` of the ``narrow`` preset (untrained) on a random float32 image
  (default 1024 x 1024; seconds per call and output megapixels/s), and a short training run of
  the same network (random tiles of 380 px, batch 1, SGD, cross-entropy; seconds per iteration);
* policies: torch's defaults (one thread per core, the OpenMP runtime's own wait policy);
  ``OMP_WAIT_POLICY=PASSIVE`` (threads sleep at barriers instead of spinning);
  ``torch.set_num_threads(cores - 1)``; both; and the runtime's own spin setting
  (``GOMP_SPINCOUNT`` for GNU libgomp, ``KMP_BLOCKTIME`` for Intel's or LLVM's runtime);
* loads: quiet, and 1 or 2 competing busy processes (each a pure-Python loop, ``while True:
  pass``, on no particular core, using one core's worth of CPU and almost no memory traffic),
  started after the warm-up and killed after the timed part.

Every (workload, policy, load) measurement runs in a fresh interpreter, so the environment
variables take effect before torch is imported; the measurements are interleaved in cycles.
Before each one the worker waits for other processes on the machine to go quiet, and sets aside
the samples during which processes other than itself and its busy loops used 12 % of the CPUs
or more (``/proc/stat``). It prints, per workload, the median time for each policy and load, its
ratio to the default policy on a quiet machine and to the default policy under the same load,
then one recommendation per load and one for a default that suits every load.

Run ``python benchmarks/threads.py --json threads.json`` (about 10 minutes on 2 cores; with
``--json`` each finished measurement is also appended to ``threads.json.partial.jsonl``, and
``--resume`` skips those already there) or ``--quick`` (about a minute, a smoke test).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Policy:
    """A thread policy: environment set before torch starts, and the thread count."""

    note: str
    env: dict[str, str] = field(default_factory=dict)
    fewer_threads: bool = False  #: ``torch.set_num_threads(cores - 1)`` at start-up
    runtime: str | None = None  #: the OpenMP runtime it is meant for ("gnu", "intel"), if one
    share: bool = False  #: biounet.core.runtime.share_cores() on (else BIOUNET_THREADS=off)


POLICIES: dict[str, Policy] = {
    "default": Policy(
        "torch's defaults: a thread per core, the runtime's own wait policy "
        "(BIOUNET_THREADS=off: biounet leaves the count alone)",
        {"BIOUNET_THREADS": "off"},
    ),
    "share": Policy(
        "biounet's default: share_cores() every few seconds gives up the cores that other "
        "processes use (predict calls it per tile batch; the training workload per step)",
        share=True,
    ),
    "passive": Policy(
        "OMP_WAIT_POLICY=PASSIVE: threads sleep at barriers instead of spinning",
        {"OMP_WAIT_POLICY": "PASSIVE"},
    ),
    "cores-1": Policy("torch.set_num_threads(cores - 1) at start-up", fewer_threads=True),
    "passive+cores-1": Policy(
        "OMP_WAIT_POLICY=PASSIVE and torch.set_num_threads(cores - 1)",
        {"OMP_WAIT_POLICY": "PASSIVE"},
        fewer_threads=True,
    ),
    "spin0": Policy(
        "GOMP_SPINCOUNT=0: GNU libgomp never spins (what PASSIVE does there; a cross-check)",
        {"GOMP_SPINCOUNT": "0"},
        runtime="gnu",
    ),
    "spin10k": Policy(
        "GOMP_SPINCOUNT=10000: GNU libgomp spins 1/30 as long as its default before sleeping",
        {"GOMP_SPINCOUNT": "10000"},
        runtime="gnu",
    ),
    "blocktime0": Policy(
        "KMP_BLOCKTIME=0: Intel's/LLVM's OpenMP sleeps at once at a barrier",
        {"KMP_BLOCKTIME": "0"},
        runtime="intel",
    ),
}

#: environment variables that would change the thread policy: cleared in every worker, so that
#: each runs under its policy alone
_THREAD_ENV = (
    "OMP_NUM_THREADS",
    "OMP_WAIT_POLICY",
    "OMP_DYNAMIC",
    "OMP_PROC_BIND",
    "OMP_PLACES",
    "GOMP_SPINCOUNT",
    "GOMP_CPU_AFFINITY",
    "KMP_BLOCKTIME",
    "KMP_AFFINITY",
    "MKL_NUM_THREADS",
)

WORKLOADS = ("predict", "train")

#: a sample during which processes other than the worker and its busy loops used this share of
#: the CPUs or more is set aside (the same threshold as ``benchmarks/inference.py``)
CONTENDED = 0.12

#: a policy is recommended over the default only when it is this much faster
MARGIN = 0.05

#: the competing load: one core's worth of pure-Python work, no memory traffic to speak of; it
#: exits by itself within ~30 ms once its parent (the worker) is gone
BUSY_LOOP = (
    "import os\np = os.getppid()\nwhile os.getppid() == p:\n    for _ in range(10**6):\n"
    "        pass\n"
)


def load_name(n: int) -> str:
    return "quiet" if n == 0 else f"{n} busy"


# ====================================================================== measuring (workers)
def cores() -> int:
    """The CPUs this process may run on (its affinity mask), else all of them."""
    with contextlib.suppress(AttributeError, OSError):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def openmp_runtime() -> dict[str, str]:
    """The OpenMP runtime loaded into this process (after importing torch): kind and library."""
    libs: set[str] = set()
    with contextlib.suppress(OSError):
        libs = set(re.findall(r"\S*lib(?:gomp|iomp5|omp)[^/\s]*\.so[^/\s]*", open_maps()))
    names = sorted({Path(p).name for p in libs})
    kind = "unknown"
    if any("iomp" in n for n in names):
        kind = "intel"
    elif any("gomp" in n for n in names):
        kind = "gnu"
    elif any(n.startswith("libomp") for n in names):
        kind = "intel"  # LLVM's libomp shares Intel's KMP_* settings
    return {"kind": kind, "libraries": ", ".join(names) or "none found"}


def open_maps() -> str:
    return Path("/proc/self/maps").read_text()


def _ticks(pid: int | str) -> float:
    """User + system CPU seconds of a process from ``/proc/<pid>/stat`` (0 when unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _system() -> tuple[float, float] | None:
    """Busy and stolen CPU seconds of the whole machine (``/proc/stat``), or None."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) / ticks for v in fields[:8])
    return user + nice + system + irq + softirq, steal


class Sample:
    """Wall time, own CPU time, the busy loops' CPU time and everybody else's, over a block."""

    def __init__(self, busy_pids: list[int]) -> None:
        self.pids = busy_pids
        self.t = time.perf_counter()
        self.own = time.process_time()
        self.busy = sum(_ticks(p) for p in busy_pids)
        self.system = _system()

    def result(self) -> dict[str, float]:
        """The block's figures since construction.

        ``wall``: seconds; ``cpu``: own CPU s per wall s; ``load_cores``: the busy loops' CPU s
        per wall s; ``foreign``: other processes' share of all CPUs (what is set aside);
        ``steal``: the hypervisor's share.
        """
        wall = time.perf_counter() - self.t
        own = time.process_time() - self.own
        busy = sum(_ticks(p) for p in self.pids) - self.busy
        out = {"wall": wall, "cpu": own / wall, "load_cores": busy / wall, "foreign": 0.0}
        end = _system()
        if self.system is not None and end is not None:
            ncpu = os.cpu_count() or 1
            others = end[0] - self.system[0] - own - busy
            out["foreign"] = max(0.0, others) / (wall * ncpu)
            out["steal"] = (end[1] - self.system[1]) / (wall * ncpu)
        return out


def wait_quiet(max_wait: float, window: float = 0.3) -> float:
    """Sleep until other processes use < ``CONTENDED`` of the CPUs over ``window`` s.

    Gives up after ``max_wait`` s and returns the seconds waited.
    """
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < max_wait:
        s = Sample([])
        time.sleep(window)
        if s.result()["foreign"] < CONTENDED:
            break
    return time.perf_counter() - t0


@contextlib.contextmanager
def busy_load(n: int) -> Iterator[list[int]]:
    """``n`` busy-loop processes, running while the block runs; yields their process ids."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-S", "-c", BUSY_LOOP],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(n)
    ]
    try:
        if procs:
            time.sleep(0.25)  # let them start and take their cores
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def _setup(p: dict[str, Any]) -> dict[str, Any]:
    """Apply the in-process part of the policy (thread count); describe the process."""
    import torch

    from biounet.core.runtime import tune_allocator

    policy = POLICIES[p["policy"]]
    if policy.fewer_threads:
        torch.set_num_threads(max(1, cores() - 1))
    # biounet.predict and biounet.fit tune glibc's allocator on a CPU; the bare training loop
    # does it here, so that both workloads run as biounet runs them
    tune_allocator()
    return {
        "threads": torch.get_num_threads(),
        "runtime": openmp_runtime(),
        "env": {k: os.environ[k] for k in _THREAD_ENV if k in os.environ},
    }


def _measure(
    p: dict[str, Any], step: Callable[[], None], samples: int, per_sample: int
) -> dict[str, Any]:
    """Wait for quiet, start the load, time ``samples`` blocks of ``per_sample`` steps each."""
    waited = wait_quiet(p["max_wait"])
    rows: list[dict[str, float]] = []
    with busy_load(p["load"]) as pids:
        for _ in range(samples):
            s = Sample(pids)
            for _ in range(per_sample):
                step()
            r = s.result()
            r["seconds"] = r["wall"] / per_sample
            rows.append(r)
    return {"waited_s": waited, "samples": rows}


def worker_predict(p: dict[str, Any]) -> dict[str, Any]:
    """``biounet.predict`` of an untrained ``narrow`` net on a random image, timed."""
    import numpy as np
    import torch

    import biounet
    from biounet.inference.predictor import choose_tile

    info = _setup(p)
    cfg = p["predict"]
    n = cfg["size"]
    torch.manual_seed(0)
    model = biounet.UNet.from_preset(cfg["preset"]).eval()
    image = np.random.default_rng(0).random((n, n), dtype=np.float32)
    tile, _ = choose_tile(model, (n, n))
    out_tile = model.geometry.output_size(tile[0])

    def run(im: np.ndarray = image) -> None:
        biounet.predict(model, im, tile_shape=tile, device="cpu")

    # warm-up on one tile of the same shape: oneDNN builds its kernels on first use
    for _ in range(2):
        run(image[:out_tile, :out_tile])
    out = _measure(p, run, cfg["repeats"], 1)
    return {**info, **out, "tile": tile[0], "output_tile": out_tile, "pixels": n * n}


def worker_train(p: dict[str, Any]) -> dict[str, Any]:
    """SGD steps of the ``narrow`` net on random tiles (cross-entropy), timed."""
    import torch
    from torch.nn import functional as F

    import biounet

    info = _setup(p)
    cfg = p["train"]
    torch.manual_seed(0)
    net = biounet.UNet.from_preset(cfg["preset"]).train()
    g = net.geometry
    tile = g.nearest_valid_sizes(cfg["tile"])[1]
    out = g.output_size(tile)
    x = torch.randn(cfg["batch"], 1, tile, tile)
    y = torch.randint(0, 2, (cfg["batch"], out, out))
    opt = torch.optim.SGD(net.parameters(), lr=cfg["lr"], momentum=0.9)

    from biounet.core.runtime import share_cores

    share = POLICIES[p["policy"]].share

    def step() -> None:
        if share:
            share_cores()  # what fit does every iteration
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(cfg["warmup"]):
        step()
    chunk = cfg["chunk"]
    result = _measure(p, step, cfg["iterations"] // chunk, chunk)
    return {**info, **result, "tile": tile, "output_tile": out}


WORKERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "predict": worker_predict,
    "train": worker_train,
}


# ====================================================================== orchestrating
def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def spawn(params: dict[str, Any], timeout: float) -> dict[str, Any]:
    """One measurement in a fresh interpreter, under its policy's environment."""
    env = {k: v for k, v in os.environ.items() if k not in _THREAD_ENV}
    if not POLICIES[params["policy"]].share:
        env["BIOUNET_THREADS"] = "off"
    env.update(POLICIES[params["policy"]].env)
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", params["workload"]]
        cmd += ["--params", json.dumps(params), "--result", str(result)]
        t = time.perf_counter()
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f} s"}
        if proc.returncode != 0 or not result.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            return {"error": f"exit {proc.returncode}: {' | '.join(tail)}"}
        out = json.loads(result.read_text())
        out["process_s"] = time.perf_counter() - t
        return out


def machine() -> dict[str, Any]:
    """The machine, torch and its OpenMP runtime (torch is imported here, not used)."""
    import torch

    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    parallel = torch.__config__.parallel_info().splitlines()
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "cores": cores(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "parallel_backend": next(
            (ln.split(":", 1)[1].strip() for ln in parallel if ln.startswith("ATen parallel")),
            "?",
        ),
        "openmp": openmp_runtime(),
        "python": platform.python_version(),
        "loadavg_at_start": os.getloadavg(),
        "thread_env_ignored": {k: os.environ[k] for k in _THREAD_ENV if k in os.environ},
    }


def plan(args: argparse.Namespace, runtime: str) -> dict[str, Any]:
    """What to run, from the command line and the OpenMP runtime found."""
    quick = args.quick
    if args.policies:
        policies = list(args.policies)
    else:
        policies = ["default", "share", "passive", "cores-1", "passive+cores-1"]
        if not quick:
            policies += {"gnu": ["spin10k"], "intel": ["blocktime0"]}.get(runtime, [])
    loads = args.loads if args.loads is not None else ([0, 1] if quick else [0, 1, 2])
    iterations = args.iterations or (6 if quick else 20)
    chunk = min(iterations, 3 if quick else 5)
    return {
        "policies": policies,
        "skipped_policies": [
            name for name in policies if POLICIES[name].runtime not in (None, runtime)
        ],
        "loads": sorted(set(loads)),
        "workloads": list(args.workloads or WORKLOADS),
        "cycles": args.cycles or (1 if quick else 2),
        "max_wait": args.max_wait if args.max_wait is not None else (2.0 if quick else 20.0),
        "predict": {
            "preset": "narrow",
            "size": args.image_size or (256 if quick else 1024),
            "repeats": args.repeats or (2 if quick else 3),
        },
        "train": {
            "preset": "narrow",
            "tile": args.train_tile or (252 if quick else 380),
            "batch": args.batch,
            "iterations": iterations // chunk * chunk,
            "chunk": chunk,
            "warmup": 1 if quick else 2,
            "lr": 1e-3,
        },
    }


def signature(cfg: dict[str, Any], workload: str) -> str:
    """A short hash of what a measurement of ``workload`` depends on (for ``--resume``)."""
    key = json.dumps([workload, cfg[workload], cfg["max_wait"]], sort_keys=True)
    return hashlib.sha1(key.encode()).hexdigest()[:12]


def schedule(cfg: dict[str, Any]) -> list[tuple[int, int, str, str]]:
    """(cycle, load, workload, policy) in run order: loads and policies rotate per cycle."""
    order = []
    policies = [p for p in cfg["policies"] if p not in cfg["skipped_policies"]]
    for cycle in range(cfg["cycles"]):
        loads = (
            cfg["loads"][cycle % len(cfg["loads"]) :] + cfg["loads"][: cycle % len(cfg["loads"])]
        )
        for load in loads:
            for workload in cfg["workloads"]:
                k = cycle % len(policies)
                for policy in policies[k:] + policies[:k]:
                    order.append((cycle, load, workload, policy))
    return order


def orchestrate(args: argparse.Namespace) -> dict[str, Any]:
    """Every measurement in its own process, interleaved; resumable from the partial file."""
    info = machine()
    cfg = plan(args, info["openmp"]["kind"])
    partial = args.json.with_name(args.json.name + ".partial.jsonl") if args.json else None
    done: dict[tuple[int, int, str, str], dict[str, Any]] = {}
    if partial is not None and partial.exists():
        if args.resume:
            for line in partial.read_text().splitlines():
                with contextlib.suppress(ValueError, KeyError):
                    rec = json.loads(line)
                    if rec["signature"] == signature(cfg, rec["workload"]) and "error" not in rec:
                        done[(rec["cycle"], rec["load"], rec["workload"], rec["policy"])] = rec
            log(f"resuming: {len(done)} measurements from {partial}")
        else:
            partial.unlink()
    todo = schedule(cfg)
    timeout = 300.0 if args.quick else 1200.0
    measurements = []
    t0 = time.perf_counter()
    for i, key in enumerate(todo):
        cycle, load, workload, policy = key
        if key in done:
            measurements.append(done[key])
            continue
        params = {
            "workload": workload,
            "policy": policy,
            "load": load,
            "cycle": cycle,
            "max_wait": cfg["max_wait"],
            workload: cfg[workload],
        }
        r = spawn(params, timeout)
        rec = {
            "cycle": cycle,
            "load": load,
            "workload": workload,
            "policy": policy,
            "signature": signature(cfg, workload),
            **r,
        }
        measurements.append(rec)
        if partial is not None:
            with partial.open("a") as f:
                f.write(json.dumps(rec) + "\n")
        median = (
            f"{statistics.median(s['seconds'] for s in r['samples']):.3f} s"
            if "samples" in r
            else r.get("error", "?")
        )
        log(
            f"[{time.perf_counter() - t0:5.0f} s] {i + 1}/{len(todo)} cycle {cycle + 1} "
            f"{workload:<8}{policy:<17}{load_name(load):<8}{median}"
        )
    results = {
        "machine": info,
        "plan": cfg,
        "policy_notes": {k: POLICIES[k].note for k in cfg["policies"]},
        "measurements": measurements,
        "total_s": time.perf_counter() - t0,
    }
    results["summary"] = summarise(results)
    return results


# ====================================================================== summarising
def summarise(results: dict[str, Any]) -> dict[str, Any]:
    """Median per (workload, policy, load) over clean samples, ratios, and recommendations."""
    cfg = results["plan"]
    pooled: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    meta: dict[tuple[str, str, int], dict[str, Any]] = {}
    errors = []
    for m in results["measurements"]:
        key = (m["workload"], m["policy"], m["load"])
        if "error" in m:
            errors.append(f"{m['workload']} {m['policy']} {load_name(m['load'])}: {m['error']}")
            continue
        pooled.setdefault(key, []).extend(m["samples"])
        meta[key] = m
    rows = []
    for (workload, policy, load), samples in pooled.items():
        kept = [s for s in samples if s["foreign"] < CONTENDED] or samples
        med = statistics.median(s["seconds"] for s in kept)
        m = meta[(workload, policy, load)]
        row = {
            "workload": workload,
            "policy": policy,
            "load": load,
            "threads": m["threads"],
            "samples": len(samples),
            "clean": sum(s["foreign"] < CONTENDED for s in samples),
            "median_s": med,
            "best_s": min(s["seconds"] for s in samples),
            "cpu_per_wall": statistics.median(s["cpu"] for s in kept),
            "load_cores": statistics.median(s["load_cores"] for s in kept),
            "foreign": statistics.median(s["foreign"] for s in samples),
        }
        if workload == "predict":
            row["mpix_per_s"] = m["pixels"] / med / 1e6
        else:
            row["it_per_s"] = 1 / med
        rows.append(row)
    by = {(r["workload"], r["policy"], r["load"]): r for r in rows}
    for r in rows:
        quiet = by.get((r["workload"], "default", 0))
        same = by.get((r["workload"], "default", r["load"]))
        r["vs_default_quiet"] = r["median_s"] / quiet["median_s"] if quiet else None
        r["vs_default_same_load"] = r["median_s"] / same["median_s"] if same else None
    # per load: each policy's time over the default's, geometric mean over the workloads
    score: dict[int, dict[str, float]] = {}
    for load in cfg["loads"]:
        for policy in cfg["policies"]:
            ratios = [
                by[(w, policy, load)]["vs_default_same_load"]
                for w in cfg["workloads"]
                if (w, policy, load) in by and by[(w, policy, load)]["vs_default_same_load"]
            ]
            if ratios and len(ratios) == len(cfg["workloads"]):
                score.setdefault(load, {})[policy] = math.exp(
                    statistics.fmean(math.log(x) for x in ratios)
                )
    recommend = {}
    for load, s in score.items():
        best = min(s, key=s.__getitem__)
        pick = best if s[best] <= 1 - MARGIN or "default" not in s else "default"
        recommend[load] = {"policy": pick, "fastest": best, "scores": s}
    # one default for all loads: the policy whose worst time over the fastest policy at a load
    # (geometric mean over workloads) is the smallest
    regret: dict[str, float] = {}
    for policy in cfg["policies"]:
        if all(policy in s for s in score.values()) and score:
            regret[policy] = max(s[policy] / min(s.values()) for s in score.values())
    overall = None
    if regret:
        best = min(regret, key=regret.__getitem__)
        close = "default" in regret and regret["default"] <= regret[best] * (1 + MARGIN)
        overall = {"policy": "default" if close else best, "regret": regret}
    rows.sort(
        key=lambda r: (
            cfg["workloads"].index(r["workload"]),
            r["load"],
            cfg["policies"].index(r["policy"]),
        )
    )
    return {"table": rows, "recommend": recommend, "overall": overall, "errors": errors}


# ====================================================================== printing
def report(results: dict[str, Any]) -> str:
    """The human-readable tables and recommendations."""
    m, cfg, summary = results["machine"], results["plan"], results["summary"]
    lines = [
        f"machine: {m['cpu']}, {m['cpus']} CPUs ({m['cores']} usable), torch {m['torch']} "
        f"({m['torch_threads']} threads, {m['parallel_backend']} backend, OpenMP runtime "
        f"{m['openmp']['kind']}: {m['openmp']['libraries']}), load average at start "
        f"{m['loadavg_at_start'][0]:.2f}",
    ]
    if m["thread_env_ignored"]:
        lines.append(f"   ignored (cleared in every worker): {m['thread_env_ignored']}")
    lines.append("policies:")
    for name, note in results["policy_notes"].items():
        skipped = " [skipped: not this runtime]" if name in cfg["skipped_policies"] else ""
        lines.append(f"   {name:<17}{note}{skipped}")
    lines.append(
        f"loads: {', '.join(load_name(n) for n in cfg['loads'])} (busy = a pure-Python loop "
        "process each); cycles: " + str(cfg["cycles"])
    )
    for e in summary["errors"]:
        lines.append(f"   ERROR {e}")
    p, t = cfg["predict"], cfg["train"]
    rows = summary["table"]
    tiles = {
        r["workload"]: (r["tile"], r["output_tile"]) for r in results["measurements"] if "tile" in r
    }
    titles = {
        "predict": f"biounet.predict, {p['preset']}, random {p['size']} x {p['size']} float32"
        + (f", tile {tiles['predict'][0]} -> {tiles['predict'][1]}" if "predict" in tiles else "")
        + f"; {p['repeats']} calls per measurement; s per call",
        "train": f"training, {t['preset']}, tile "
        + (f"{tiles['train'][0]} -> {tiles['train'][1]}" if "train" in tiles else str(t["tile"]))
        + f", batch {t['batch']}, SGD, cross-entropy; {t['iterations']} iterations per "
        f"measurement in samples of {t['chunk']}; s per iteration",
    }
    lines += [
        "",
        "clean: samples kept / all; a sample is set aside when processes other than the worker",
        f"and its busy loops used >= {CONTENDED:.0%} of the CPUs meanwhile (!: none was clean, "
        "all kept);",
        "s: median of the kept samples over the cycles; cpu: the worker's CPU s per wall s;",
        "load got: CPU s per wall s that the busy loops got (cores); other: median share of all",
        "CPUs used by the other processes; xdef,quiet / xdef,load: time over the default",
        "policy's on a quiet machine / under the same load (above 1: slower)",
    ]
    for workload in cfg["workloads"]:
        rate = "MPix/s" if workload == "predict" else "it/s"
        lines += [
            "",
            f"== {titles[workload]}",
            f"   {'load':<8}{'policy':<17}{'thr':>4}{'clean':>7}{'s':>8}{rate:>8}{'cpu':>6}"
            f"{'load got':>9}{'other':>6}{'xdef,quiet':>11}{'xdef,load':>10}",
        ]
        for r in (r for r in rows if r["workload"] == workload):
            lines.append(
                f"   {load_name(r['load']):<8}{r['policy']:<17}{r['threads']:>4}"
                f"{'!' * (not r['clean']) + str(r['clean']) + '/' + str(r['samples']):>7}"
                f"{r['median_s']:>8.3f}{r.get('mpix_per_s', r.get('it_per_s', 0.0)):>8.2f}"
                f"{r['cpu_per_wall']:>6.2f}{r['load_cores']:>9.2f}{r['foreign']:>6.0%}"
                f"{_x(r['vs_default_quiet']):>11}"
                f"{_x(r['vs_default_same_load']):>10}"
            )
    lines += [
        "",
        "== recommendation (time over the default policy under the same load, geometric mean",
        f"   over {' and '.join(cfg['workloads'])}; another policy only when >= {MARGIN:.0%} "
        "faster)",
    ]
    for load, rec in summary["recommend"].items():
        ranked = sorted(rec["scores"].items(), key=lambda kv: kv[1])
        others = ", ".join(f"{k} {_x(v)}" for k, v in ranked)
        lines.append(f"   {load_name(int(load)) + ':':<9}{rec['policy']:<17}({others})")
    overall = summary["overall"]
    if overall:
        regret = ", ".join(
            f"{k} {_x(v)}" for k, v in sorted(overall["regret"].items(), key=lambda kv: kv[1])
        )
        lines.append(
            f"   {'overall:':<9}{overall['policy']:<17}(worst time over the fastest policy at "
            f"any load: {regret})"
        )
    dirty = [r for r in rows if not r["clean"]]
    if dirty:
        lines.append(
            f"   WARNING: {len(dirty)} of {len(rows)} measurements have no clean sample (other "
            "processes kept the CPUs busy), so these figures include their load: rerun when the "
            "machine is quiet, or with a longer --max-wait"
        )
    lines += ["", f"total {results['total_s']:.0f} s"]
    return "\n".join(lines)


def _x(v: float | None) -> str:
    return "-" if v is None else f"x{v:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke test: about a minute")
    parser.add_argument("--json", type=Path, help="write all results to this JSON file")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="with --json: reuse the measurements in JSON.partial.jsonl from an interrupted run",
    )
    parser.add_argument("--cycles", type=int, help="rounds over all measurements (default 2)")
    parser.add_argument("--policies", nargs="+", choices=list(POLICIES), help="thread policies")
    parser.add_argument(
        "--loads", nargs="+", type=int, help="busy processes competing (default 0 1 2)"
    )
    parser.add_argument("--workloads", nargs="+", choices=list(WORKLOADS))
    parser.add_argument("--image-size", type=int, help="predict: image side, px (default 1024)")
    parser.add_argument("--repeats", type=int, help="predict: calls per measurement (default 3)")
    parser.add_argument("--train-tile", type=int, help="train: input tile, px (default 380)")
    parser.add_argument("--batch", type=int, default=1, help="train: tiles per batch")
    parser.add_argument("--iterations", type=int, help="train: per measurement (default 20)")
    parser.add_argument(
        "--max-wait",
        type=float,
        help="before each measurement, wait up to this many seconds for the other processes "
        "on the machine to go quiet (default 20; --quick: 2)",
    )
    parser.add_argument("--worker", choices=list(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--params", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        out = WORKERS[args.worker](json.loads(args.params))
        args.result.write_text(json.dumps(out))
        return 0
    if args.resume and not args.json:
        parser.error("--resume needs --json (the partial results sit beside it)")
    results = orchestrate(args)
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
        print(f"results written to {args.json}")
        partial = args.json.with_name(args.json.name + ".partial.jsonl")
        partial.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
