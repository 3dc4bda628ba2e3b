"""One image across ranks: the speed-up of 2 processes over 1, and a plan for a whole slide.

Measured (``torchrun`` subprocesses, CPU gloo): the ``narrow`` preset segments an N x N uint8
Zarr image into float32 probabilities ``(2, N, N)`` in a Zarr array whose chunks are the tile
stride, once with 1 process and once with 2, each process writing only its own chunks
(:class:`biounet.inference.tiling.Shard`). Reported: wall time (from a barrier before to a
barrier after), tiles computed per rank, seconds per tile, the speed-up, and whether the two
results are bit-identical. Each process gets ``cores / ranks`` torch threads (``--threads``), so
both runs use the same cores::

    python benchmarks/ranks.py --size 4096
    python benchmarks/ranks.py --size 1024 --ranks 1 2      # smoke test, about a minute

``--api predict`` goes through ``biounet.predict(..., out=)`` instead of the tiler
(``predict`` takes the shard from the process group itself).

Planned (no network runs): ``--plan`` writes the arithmetic for a 100,000 x 100,000 slide on 8
GPUs, for the ``narrow`` and the paper's (``ronneberger2015``) network at their default tiles
and at the tiles ``predict`` fits: tiles per rank, bytes read and written per rank, and the
wall time from a measured time per tile::

    python benchmarks/ranks.py --plan --tile-seconds narrow=0.01 ronneberger2015=0.05 \
        --markdown plan.md
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PRESETS = ("narrow", "ronneberger2015")


# --- the measured run ----------------------------------------------------------------------


def write_image(path: Path, size: int, chunk: int = 1024) -> None:
    """A ``size x size`` uint8 Zarr image (blobs plus noise), written one chunk at a time."""
    import numpy as np
    import zarr

    image = zarr.create_array(str(path), shape=(size, size), chunks=(chunk, chunk), dtype="u1")
    for i, j in itertools.product(range(0, size, chunk), repeat=2):
        y = np.arange(i, min(i + chunk, size), dtype=np.float32)[:, None]
        x = np.arange(j, min(j + chunk, size), dtype=np.float32)[None, :]
        smooth = np.sin(y / 23.0) * np.cos(x / 31.0) + 0.5 * np.sin((x + y) / 57.0)
        noise = np.random.default_rng([i, j]).normal(0.0, 0.25, smooth.shape)
        block = np.clip(128 + 80 * (smooth + noise), 0, 255).astype(np.uint8)
        image[i : i + block.shape[0], j : j + block.shape[1]] = block


def worker(folder: Path, api: str) -> None:
    """One rank (run by ``torchrun``): segment ``folder/image.zarr`` into ``folder/probs.zarr``."""
    import torch
    import zarr

    import biounet
    import biounet.inference.predictor as predictor
    from biounet.inference.tiling import Shard, tile_apply

    world = int(os.environ.get("WORLD_SIZE", 1))
    if world > 1:
        torch.distributed.init_process_group("gloo")
    rank = int(os.environ.get("RANK", 0))
    torch.manual_seed(0)
    net = biounet.UNet.from_preset("narrow").eval()
    image = zarr.open_array(str(folder / "image.zarr"), mode="r")
    n = int(image.shape[0])
    tile, stride = predictor.choose_tile(net, (n, n), None)
    path = str(folder / "probs.zarr")
    if rank == 0:  # chunks = stride: every tile writes whole chunks of one rank
        zarr.create_array(path, shape=(2, n, n), chunks=(2, *stride), dtype="f4")
    tiles = [0]
    forward = net.forward

    def counted(x: torch.Tensor) -> torch.Tensor:
        tiles[0] += len(x)
        return forward(x)

    net.forward = counted  # type: ignore[method-assign]
    _barrier(world)
    out = zarr.open_array(path, mode="r+")
    shard = Shard.from_env(out)
    t0 = time.perf_counter()
    if api == "predict":
        # predict shares the tiles among the ranks itself (Shard.from_env); a fixed backend
        biounet.predict(net, image, out=out, device="cpu", backend="eager")
    else:

        def fn(x: torch.Tensor) -> torch.Tensor:
            return torch.softmax(net(x), dim=1)

        with torch.inference_mode():
            x = image if image.ndim == 3 else _ChannelFirst(image)
            tile_apply(
                fn, x, tile_shape=tile, margin=net.margin, stride=stride, out=out, shard=shard
            )
    wall = time.perf_counter() - t0
    _barrier(world)
    total = time.perf_counter() - t0
    result = dict(rank=rank, world=world, tiles=tiles[0], busy_s=wall, wall_s=total)
    result.update(tile=tile[0], stride=stride[0], threads=torch.get_num_threads())
    (folder / f"rank{rank}.json").write_text(json.dumps(result))


class _ChannelFirst:
    """A ``(Y, X)`` array seen as ``(1, Y, X)``, read lazily."""

    def __init__(self, a: Any) -> None:
        self.a, self.shape, self.dtype = a, (1, *a.shape), a.dtype

    def __getitem__(self, index: Any) -> Any:
        return self.a[index[1:]][None]


def _barrier(world: int) -> None:
    import torch

    if world > 1:
        torch.distributed.barrier()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(folder: Path, ranks: int, threads: int, api: str) -> list[dict[str, Any]]:
    """``torchrun`` this script's worker with ``ranks`` processes; the ranks' results."""
    for old in folder.glob("rank*.json"):
        old.unlink()
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={ranks}"]
    cmd += ["--nnodes=1", f"--master_port={_free_port()}", str(Path(__file__).resolve())]
    cmd += ["--worker", str(folder), "--api", api]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{ranks} rank(s) failed:\n{proc.stderr[-3000:]}")
    results = [json.loads((folder / f"rank{r}.json").read_text()) for r in range(ranks)]
    for r in results:
        r["launch_s"] = time.perf_counter() - t0
    return results


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The runs with each rank count of ``args.ranks``; checks their results are identical."""
    import numpy as np
    import zarr

    cores = os.cpu_count() or 1
    rows = []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        write_image(folder / "image.zarr", args.size)
        reference = None
        for ranks in args.ranks:
            threads = args.threads or max(1, cores // ranks)
            results = launch(folder, ranks, threads, args.api)
            probs = np.asarray(zarr.open_array(str(folder / "probs.zarr"), mode="r"))
            if reference is None:
                reference = probs
            same = probs.tobytes() == reference.tobytes()
            rows.append(dict(ranks=ranks, threads=threads, results=results, identical=same))
            print(row_text(rows[-1], rows[0]), file=sys.stderr, flush=True)
            (folder / "probs.zarr").rename(folder / f"probs{ranks}.zarr")
    return rows


def row_text(row: dict[str, Any], base: dict[str, Any]) -> str:
    """One line of the table: wall time, tiles per rank, s/tile, speed-up over ``base``."""
    wall = max(r["wall_s"] for r in row["results"])
    base_wall = max(r["wall_s"] for r in base["results"])
    tiles = "/".join(str(r["tiles"]) for r in row["results"])
    per_tile = max(r["busy_s"] / max(1, r["tiles"]) for r in row["results"])
    return (
        f"{row['ranks']:>5}{row['threads']:>8}{wall:>9.1f}{tiles:>14}{per_tile:>9.3f}"
        f"{base_wall / wall:>9.2f}x{'yes' if row['identical'] else 'NO':>11}"
    )


def table(rows: list[dict[str, Any]], size: int, api: str) -> str:
    """The measured runs as text."""
    r0 = rows[0]["results"][0]
    lines = [f"{'ranks':>5}{'threads':>8}{'wall s':>9}{'tiles/rank':>14}{'s/tile':>9}"]
    lines[0] += f"{'speed-up':>10}{'identical':>11}"
    lines += [row_text(row, rows[0]) for row in rows]
    lines.append(
        f"narrow preset, {size} x {size} uint8 Zarr -> float32 (2, N, N) Zarr in "
        f"{r0['stride']}^2 chunks, tile {r0['tile']}, stride {r0['stride']}; via {api}; "
        "wall: barrier to barrier (start-up excluded); s/tile: the slowest rank's; identical: "
        "bit for bit to the first row (CPU convolutions may round differently with another "
        "thread count per process: --threads 1 compares like with like)"
    )
    return "\n".join(lines)


# --- the plan for a whole slide ------------------------------------------------------------


def tile_keeps(size: int, out_tile: int, stride: int, margin: int) -> list[tuple[int, int]]:
    """The ``[lo, hi)`` output range of each crop-mode tile along one axis."""
    from biounet.inference.tiling import plan_crop

    return [t.keep for t in plan_crop(size, out_tile, stride, margin)]


def tiles_per_rank(keeps: list[tuple[int, int]], size: int, chunk: int, world: int) -> list[int]:
    """Tiles each rank computes on a square image (same tiles on both axes, chunk ``chunk``)."""
    from biounet.inference.tiling import Shard

    counts = []
    for r in range(world):
        mine: set[tuple[int, ...]] = set()
        for box in Shard(r, world, (chunk, chunk)).boxes((size, size)):
            axes = [
                [i for i, (lo, hi) in enumerate(keeps) if lo < b.stop and hi > b.start] for b in box
            ]
            mine.update(itertools.product(*axes))
        counts.append(len(mine))
    return counts


def plan(args: argparse.Namespace) -> str:
    """The written plan for a ``args.slide`` px square slide on ``args.gpus`` GPUs (Markdown)."""
    from biounet import UNet
    from biounet.inference.predictor import choose_tile
    from biounet.model.presets import PRESETS as NETS

    n, world, gib = args.slide, args.gpus, 2**30
    seconds = parse_tile_seconds(args.tile_seconds)
    out = [
        f"# {n:,} x {n:,} px on {world} GPUs\n",
        f"One 2D slide, {n * n / 1e9:.1f} Gpx; output chunks = the tile stride (so no tile is "
        f"computed twice); {world} ranks own contiguous runs of chunks (bands of rows).\n",
        "| network | tile -> output, stride | tiles | tiles per rank (max) | input read per rank "
        "(u8 / u16) | probabilities written per rank | s/tile | wall (1 GPU) | wall "
        f"({world} GPUs) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, which in itertools.product(PRESETS, ("preset tile", "fitted tile")):
        net = UNet.from_preset(name)
        g = net.geometry
        tile, stride = choose_tile(net, (n, n), NETS[name].tile if which == "preset tile" else None)
        out_tile = g.output_size(tile[0])
        keeps = tile_keeps(n, out_tile, stride[0], g.margin)
        total = len(keeps) ** 2
        per_rank = tiles_per_rank(keeps, n, stride[0], world)
        worst = max(per_rank)
        read = worst * tile[0] ** 2  # px the tiles read, margins re-read
        owned = math.ceil(n * n / world)
        written = owned * net.config.num_classes * 4
        s = seconds.get(name)
        walls = f"{_hm(total * s)} | {_hm(worst * s)}" if s else "- | -"
        out.append(
            f"| {name} ({which}) | {tile[0]} -> {out_tile}, {stride[0]} | {total:,} | "
            f"{worst:,} (sum {sum(per_rank):,}) | {read / gib:.1f} / {2 * read / gib:.1f} GiB | "
            f"{written / gib:.1f} GiB | {s if s else '-'} | {walls} |"
        )
    probs = n * n * 2 * 4
    out += [
        "",
        f"- Input: {n * n / gib:.1f} GiB (uint8) or {2 * n * n / gib:.1f} GiB (uint16) in all; "
        "each rank reads its band plus the tiles' margins (the table counts every tile's "
        "read, margins re-read, before any chunk cache).",
        f"- Probabilities: float32, 2 classes, {probs / gib:.1f} GiB in all, each rank writing "
        "only its own chunks.",
        f"- Mask: uint8, {n * n / gib:.1f} GiB, written by rank 0 after the others finish; "
        f"`biounet predict` builds it from the whole probability map in memory "
        f"({probs / gib:.0f} GiB on rank 0), so at this size write only the probabilities "
        "(`--probabilities --no-masks`) and threshold them chunk by chunk.",
        "- Wall time: the slowest rank's tiles x the measured s/tile (network time only; add "
        "the reads and writes above at the shared file system's rate).",
    ]
    return "\n".join(out) + "\n"


def parse_tile_seconds(items: list[str] | None) -> dict[str, float]:
    """``["narrow=0.01", "ronneberger2015=0.05"]`` or ``["0.02"]`` (all presets) as a dict."""
    seconds: dict[str, float] = {}
    for item in items or []:
        name, _, value = item.rpartition("=")
        for preset in [name] if name else PRESETS:
            if preset not in PRESETS:
                raise SystemExit(
                    f"--tile-seconds: unknown preset {preset!r} ({', '.join(PRESETS)})"
                )
            seconds[preset] = float(value)
    return seconds


def _hm(seconds: float) -> str:
    """``1 h 05 min`` / ``12.3 min`` / ``45 s``."""
    if seconds >= 3600:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096, help="image size N, px (N x N)")
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2], help="process counts")
    parser.add_argument("--threads", type=int, help="torch threads per rank (cores / ranks)")
    parser.add_argument("--api", choices=["tiler", "predict"], default="tiler")
    parser.add_argument("--dir", type=Path, help="where the temporary Zarr arrays go")
    parser.add_argument("--json", type=Path, help="write the measurements here")
    parser.add_argument("--plan", action="store_true", help="print the plan for a whole slide")
    parser.add_argument("--slide", type=int, default=100_000, help="--plan: slide size, px")
    parser.add_argument("--gpus", type=int, default=8, help="--plan: ranks (one GPU each)")
    parser.add_argument("--tile-seconds", nargs="+", metavar="[PRESET=]S", help="--plan")
    parser.add_argument("--markdown", type=Path, help="--plan: also write it to this file")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.api)
        return 0
    if args.plan:
        text = plan(args)
        print(text)
        if args.markdown:
            args.markdown.write_text(text)
        return 0
    rows = measure(args)
    print(table(rows, args.size, args.api))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0 if all(row["identical"] for row in rows) else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
