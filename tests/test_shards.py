"""One image across ranks: chunk ownership, and sharded tiling bit-identical to one process."""

import importlib.util
import itertools
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

import biounet
from biounet.checkpoint import save_checkpoint
from biounet.data import Normalizer
from biounet.inference.tiling import (
    Shard,
    chunk_aligned_stride,
    dihedral_transforms,
    spatial_chunks,
    tile_apply,
)
from biounet.inference.tiling.plans import TileLayout
from biounet.inference.tiling.stitch import image_region
from biounet.inference.tiling.transforms import identity
from biounet.segment import PredictOptions, predict_files
from biounet.segment.together import Group, shared_store, torchrun_group


def owners(spatial: tuple, chunks: tuple, world: int) -> np.ndarray:
    """Per pixel, how many ranks own it (summed over ranks, each painting its boxes)."""
    count = np.zeros(spatial, int)
    for r in range(world):
        for box in Shard(r, world, chunks).boxes(spatial):
            count[box] += 1
    return count


def rank_map(spatial: tuple, chunks: tuple, world: int) -> np.ndarray:
    """Per pixel, the rank that owns it."""
    ranks = np.full(spatial, -1)
    for r in range(world):
        for box in Shard(r, world, chunks).boxes(spatial):
            ranks[box] = r
    return ranks


CASES = [
    ((37, 23), (8, 8)),
    ((64, 64), (16, 32)),
    ((5, 3), (8, 8)),  # one chunk
    ((31, 17, 9), (4, 8, 5)),
    ((7, 40, 13), (3, 7, 13)),
]


@pytest.mark.parametrize(("spatial", "chunks"), CASES)
@pytest.mark.parametrize("world", [1, 2, 3, 5, 8])
def test_each_chunk_has_exactly_one_owner(spatial, chunks, world) -> None:
    assert (owners(spatial, chunks, world) == 1).all()
    ranks = rank_map(spatial, chunks, world)
    grid = [range(0, n, c) for n, c in zip(spatial, chunks)]
    for start in itertools.product(*grid):
        block = ranks[tuple(slice(s, s + c) for s, c in zip(start, chunks))]
        assert (block == block.flat[0]).all()  # no chunk split between ranks
    n_chunks = math.prod(math.ceil(n / c) for n, c in zip(spatial, chunks))
    for r in range(world):
        boxes = Shard(r, world, chunks).boxes(spatial)
        assert len(boxes) <= 2 * len(spatial) - 1
        owned = sum(
            math.prod(math.ceil(s.stop / c) - s.start // c for s, c in zip(b, chunks))
            for b in boxes
        )
        assert owned in (n_chunks // world, n_chunks // world + 1)  # balanced


def test_ranks_own_contiguous_runs_of_chunks_in_c_order() -> None:
    ranks = rank_map((12, 12), (4, 4), 2)[::4, ::4]  # one entry per chunk
    assert ranks.ravel().tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1]
    assert rank_map((3, 3), (1, 1), 9).ravel().tolist() == list(range(9))
    assert [Shard(r, 4, (8,)).boxes((8,)) for r in range(4)] == [[], [], [], [(slice(0, 8),)]]


LAYOUTS = [
    # (spatial, tile, margin, mode, stride, chunks)
    ((37, 23), (10, 12), 1, "crop", None, (8, 8)),
    ((37, 23), (10, 10), 1, "crop", (5, 7), (16, 8)),
    ((40, 32), (16, 16), 0, "blend", None, (8, 16)),
    ((19, 21, 11), (8, 8, 6), 1, "crop", None, (5, 8, 4)),
    ((19, 21, 11), (8, 8, 8), 0, "blend", None, (8, 8, 4)),
]


@pytest.mark.parametrize(("spatial", "tile", "margin", "mode", "stride", "chunks"), LAYOUTS)
@pytest.mark.parametrize("tta", [False, True])
@pytest.mark.parametrize("world", [2, 3])
def test_owned_parts_split_every_tile_once(
    spatial, tile, margin, mode, stride, chunks, tta, world
) -> None:
    ndim = len(spatial)
    layout = TileLayout.checked(ndim, tile, margin, mode, stride, 0.5, 2)
    shards = [Shard(r, world, chunks) for r in range(world)]
    ranks = rank_map(spatial, chunks, world)
    for g in dihedral_transforms(ndim) if tta else [identity(ndim)]:
        written = [np.zeros(spatial, int) for _ in shards]
        for _, tiles in layout.jobs(g, spatial):
            region = tuple(image_region(g, tiles, spatial))
            cover = np.zeros(spatial, int)
            for r, shard in enumerate(shards):
                for part in shard.owned_parts(region, spatial):
                    assert (ranks[part] == r).all()  # a rank writes only its own chunks
                    cover[part] += 1
                    written[r][part] += 1
            expected = np.zeros(spatial, int)
            expected[region] = 1
            assert np.array_equal(cover, expected)  # the parts tile the region exactly
        # each rank writes all its pixels: once (crop) or as often as a single run (blend)
        total = sum(written)
        assert total.min() >= 1
        for r in range(world):
            assert np.array_equal(written[r] > 0, ranks == r)


def test_chunk_aligned_stride_is_the_largest_fit() -> None:
    for stride, chunk, align in itertools.product(
        range(1, 70), (1, 6, 8, 12, 16, 25, 32), (1, 2, 4, 8)
    ):
        s = chunk_aligned_stride((stride,), (chunk,), align)[0]
        fits = [
            d for d in range(1, stride + 1) if d % align == 0 and (chunk % d == 0 or d % chunk == 0)
        ]
        assert s == (max(fits) if fits else stride), (stride, chunk, align)
    assert chunk_aligned_stride((496, 512), (512, 512), 16) == (256, 512)
    with pytest.raises(ValueError, match="one entry per spatial axis"):
        chunk_aligned_stride((8, 8), (8,), 1)


@pytest.mark.parametrize("world", [2, 3])
def test_aligned_crop_tiles_are_computed_by_one_rank(world) -> None:
    spatial, chunks, margin = (96, 80), (32, 16), 2
    stride = chunk_aligned_stride((20, 20), chunks, alignment=4)
    assert stride == (16, 16)
    tile = tuple(s + 2 * margin for s in stride)
    layout = TileLayout.checked(2, tile, margin, "crop", stride, 0.5, 1)
    g = identity(2)
    jobs = layout.jobs(g, spatial)
    computed = [
        sum(
            bool(Shard(r, world, chunks).owned_parts(image_region(g, t, spatial), spatial))
            for _, t in jobs
        )
        for r in range(world)
    ]
    assert sum(computed) == len(jobs)  # no tile twice
    unaligned = TileLayout.checked(2, (24, 24), margin, "crop", (20, 20), 0.5, 1).jobs(g, spatial)
    twice = sum(
        bool(Shard(r, world, chunks).owned_parts(image_region(g, t, spatial), spatial))
        for r in range(world)
        for _, t in unaligned
    )
    assert twice > len(unaligned)  # straddling tiles: computed by both owners


# --- tile_apply with ranks simulated one after the other in this process -------------------


def pointwise(x: torch.Tensor) -> torch.Tensor:
    return 2 * x + 1


def batch_dependent(x: torch.Tensor) -> torch.Tensor:
    """A predictor whose output depends on the batch it is in (like some GPU kernels)."""
    return x * 0.37 + x.mean() + x.shape[0]


def conv_fn(ndim: int, padding: int) -> torch.nn.Module:
    torch.manual_seed(3)
    conv = (torch.nn.Conv2d if ndim == 2 else torch.nn.Conv3d)(2, 3, 3, padding=padding)
    return conv.eval().requires_grad_(False)


RUNS = [
    # (spatial, tile, mode, tta, predictor, batch)
    ((45, 38), (12, 10), "crop", False, "conv", 1),
    ((45, 38), (12, 10), "crop", True, "conv", 3),
    ((45, 38), (16, 16), "blend", False, "conv", 2),
    ((45, 38), (16, 16), "blend", True, "batch", 3),
    ((45, 38), (12, 10), "crop", True, "batch", 4),
    ((17, 20, 9), (8, 8, 8), "crop", True, "pointwise", 2),
    ((17, 20, 9), (8, 8, 8), "blend", True, "conv", 1),
]


@pytest.mark.parametrize(("spatial", "tile", "mode", "tta", "kind", "batch"), RUNS)
@pytest.mark.parametrize("world", [2, 3])
def test_ranks_one_after_another_match_one_process_bit_for_bit(
    spatial, tile, mode, tta, kind, batch, world
) -> None:
    ndim = len(spatial)
    image = np.random.default_rng(0).normal(size=(2, *spatial)).astype(np.float32)
    margin = 1 if mode == "crop" and kind == "conv" else 0
    fn = {"pointwise": pointwise, "batch": batch_dependent}.get(kind) or conv_fn(ndim, 1 - margin)
    kw = dict(
        tile_shape=tile,
        margin=margin,
        mode=mode,
        align=2,
        transforms=dihedral_transforms(ndim) if tta else None,
        batch_size=batch,
        channels=3 if kind == "conv" else 2,
    )
    single = tile_apply(fn, image, **kw)
    out = np.full_like(single, np.nan)  # a pixel no rank writes stays NaN
    chunks = (8,) * ndim
    for r in range(world):
        tile_apply(fn, image, out=out, shard=Shard(r, world, chunks), **kw)
    assert out.tobytes() == single.tobytes()


def test_ranks_write_their_own_chunks_of_a_zarr_array(tmp_path) -> None:
    image = np.random.default_rng(1).random((2, 50, 41), dtype=np.float32)
    fn = conv_fn(2, 0)
    kw = dict(tile_shape=(18, 18), margin=1, transforms=dihedral_transforms(2), channels=3)
    single = tile_apply(fn, image, **kw)
    out = zarr.create_array(
        str(tmp_path / "p.zarr"),
        shape=(3, 50, 41),
        chunks=(3, 16, 16),
        dtype="f4",
        fill_value=np.nan,
    )
    calls = []
    for r in range(2):
        shard = Shard(r, 2, spatial_chunks(out))
        calls.append(0)

        def counted(x: torch.Tensor) -> torch.Tensor:
            calls[-1] += len(x)
            return fn(x)

        tile_apply(counted, image, out=out, shard=shard, **kw)
        ranks = rank_map((50, 41), (16, 16), 2)
        written = ~np.isnan(out[0])
        assert np.array_equal(written, ranks <= r)  # rank r wrote its chunks, nothing else
    assert np.asarray(out).tobytes() == single.tobytes()
    per_rank = sum(
        1
        for _ in TileLayout.checked(2, (18, 18), 1, "crop", None, 0.5, 1).jobs(
            identity(2), (50, 41)
        )
    )
    assert all(c < 8 * per_rank for c in calls)  # each rank computed a part of the tiles


def test_a_rank_without_chunks_computes_and_writes_nothing() -> None:
    # one chunk, two ranks: the last rank owns it
    image = np.ones((1, 6, 6), np.float32)
    out = np.full((1, 6, 6), 7.0, np.float32)
    calls = []
    tile_apply(
        lambda x: calls.append(1) or x,
        image,
        tile_shape=(4, 4),
        out=out,
        mode="blend",
        shard=Shard(0, 2, (8, 8)),
    )
    assert calls == [] and (out == 7).all()
    tile_apply(
        lambda x: x, image, tile_shape=(4, 4), out=out, mode="blend", shard=Shard(1, 2, (8, 8))
    )
    single = tile_apply(lambda x: x, image, tile_shape=(4, 4), mode="blend")
    assert out.tobytes() == single.tobytes()


def test_shard_errors() -> None:
    image = np.ones((1, 6, 6), np.float32)
    with pytest.raises(ValueError, match="pass out="):
        tile_apply(lambda x: x, image, tile_shape=(4, 4), shard=Shard(0, 2, (4, 4)))
    with pytest.raises(ValueError, match="give one chunk size per spatial axis"):
        tile_apply(
            lambda x: x,
            image,
            tile_shape=(4, 4),
            out=np.zeros((1, 6, 6), np.float32),
            shard=Shard(0, 2, (4,)),
        )
    with pytest.raises(ValueError, match="rank must be in"):
        Shard(2, 2, (4, 4))
    with pytest.raises(ValueError, match="world must be"):
        Shard(0, 0, (4, 4))
    with pytest.raises(ValueError, match="chunks must be positive"):
        Shard(0, 1, (4, 0))


def test_spatial_chunks_and_no_shard_in_one_process(tmp_path) -> None:
    assert spatial_chunks(np.zeros((2, 8, 8))) is None
    a = zarr.create_array(
        str(tmp_path / "a.zarr"), shape=(2, 40, 30), chunks=(1, 16, 8), dtype="f4"
    )
    assert spatial_chunks(a) == (16, 8)  # the channel axis may be split: a rank owns them all
    b = zarr.create_array(
        str(tmp_path / "b.zarr"),
        shape=(2, 40, 30),
        chunks=(2, 8, 5),
        shards=(2, 16, 10),
        dtype="f4",
    )
    assert spatial_chunks(b) == (16, 10)  # a shard is rewritten whole: the unit of writing
    assert not torch.distributed.is_initialized()
    assert Shard.from_env(a) is None and Shard.from_env(None) is None


# --- two real processes --------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="needs torch.distributed with gloo",
)
def test_two_processes_predict_one_zarr_image_bit_identical(tmp_path) -> None:
    """``torchrun`` with 2 CPU ranks: ``tile_apply`` and ``biounet predict`` on one Zarr image."""
    torch.manual_seed(0)
    model_path = save_checkpoint(
        tmp_path / "m.pt",
        biounet.UNet(depth=2, base_width=4),
        normalize=Normalizer().to_dict(),
        class_names=["background", "cell"],
        tile=44,
    )
    rng = np.random.default_rng(2)
    big = zarr.create_array(
        str(tmp_path / "big.zarr"), shape=(700, 60), chunks=(128, 60), dtype="u2"
    )
    big[...] = rng.integers(0, 4000, (700, 60))  # 700 px: two 512 px output chunks
    worker = Path(__file__).parent / "helpers" / "shard_worker.py"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1"]
    cmd += [f"--master_port={_free_port()}", str(worker), str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-4000:]

    # the command line's path: one Zarr input, probabilities and masks, against one process
    opts = PredictOptions(probabilities=True)
    predict_files(
        biounet.load(model_path), [tmp_path / "big.zarr"], tmp_path / "one", opts, progress=False
    )
    both = zarr.open_array(str(tmp_path / "two" / "big_probs.zarr"), mode="r")
    one = zarr.open_array(str(tmp_path / "one" / "big_probs.zarr"), mode="r")
    assert np.asarray(both).tobytes() == np.asarray(one).tobytes()
    assert (tmp_path / "two" / "big_mask.png").read_bytes() == (
        tmp_path / "one" / "big_mask.png"
    ).read_bytes()
    assert not list((tmp_path / "two").glob(".*"))  # no temporary store left
    forwards = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert all(f["predict_files"] > 0 for f in forwards)  # both ranks computed tiles

    # tile_apply itself, crop mode with test-time augmentation, with each rank's shard
    spec = importlib.util.spec_from_file_location("shard_worker", worker)
    assert spec is not None and spec.loader is not None
    helper = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helper)
    fn, image, kw = helper.tiles_case(tmp_path)
    calls = []
    single = tile_apply(lambda x: calls.append(len(x)) or fn(x), image, **kw)
    assert (
        np.asarray(zarr.open_array(str(tmp_path / "tiles.zarr"), mode="r")).tobytes()
        == single.tobytes()
    )
    shares = [f["tile_apply"] for f in forwards]
    assert sum(shares) == sum(calls) and all(
        0 < n < sum(calls) for n in shares
    )  # split, none twice


# --- the protocol of biounet.segment.together, with the other ranks played in this process --


class FakeGroup(Group):
    """Rank ``rank`` of 2; the other rank's messages are given (``others_ok``, ``sent``)."""

    def __init__(self, rank: int, others_ok: bool = True, sent: object = None) -> None:
        super().__init__(rank, 2)
        object.__setattr__(self, "log", [])
        object.__setattr__(self, "others_ok", others_ok)
        object.__setattr__(self, "sent", sent)

    def broadcast(self, value):  # type: ignore[no-untyped-def]
        self.log.append(("broadcast", value))
        return value if self.main else self.sent

    def all_ok(self, ok: bool) -> bool:
        self.log.append(("all_ok", ok))
        return ok and self.others_ok


def test_shared_store_is_renamed_only_when_every_rank_succeeded(tmp_path) -> None:
    def create(tmp: Path) -> None:
        tmp.unlink()
        tmp.mkdir()

    target = tmp_path / "p.zarr"
    g = FakeGroup(0)
    with shared_store(g, target, create, "predicting x") as store:
        (store / "chunk").write_text("1")
    assert (target / "chunk").read_text() == "1"
    assert g.log == [("broadcast", str(store)), ("all_ok", True)]

    g = FakeGroup(0, others_ok=False)  # rank 1 failed: rank 0 raises, nothing is renamed
    with pytest.raises(RuntimeError, match="another process failed while predicting x"):
        with shared_store(g, tmp_path / "q.zarr", create, "predicting x") as store:
            (store / "chunk").write_text("1")
    assert not (tmp_path / "q.zarr").exists() and not list(tmp_path.glob(".*"))

    g = FakeGroup(1, sent=str(tmp_path / "p.zarr"))  # rank 1 fails: it tells rank 0, raises
    with pytest.raises(ValueError, match="boom"):
        with shared_store(g, tmp_path / "unused", create, "predicting x"):
            raise ValueError("boom")
    assert g.log == [("broadcast", None), ("all_ok", False)]

    g = FakeGroup(1, sent=None)  # rank 0 could not create the store
    with pytest.raises(RuntimeError, match="process 0 failed before predicting x"):
        with shared_store(g, tmp_path / "unused", create, "predicting x"):
            pass


def test_predict_files_without_torchrun_joins_no_group(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with torchrun_group(True) as group:
        assert group is None
    assert not torch.distributed.is_initialized()
