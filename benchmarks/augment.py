"""Cost of making augmented training tiles, against the training step they feed.

For the narrow (CPU) network at a CPU-sized tile, measures in one run:
  - the time to produce one batch of augmented tiles with ``TileDataset`` (paper elastic
    deformation, rotation, flips, scaling, grey values; cubic image resampling), and
  - one training step (forward, cross-entropy weighted by the weight map, backward, SGD) of
    the network on such a batch,
and reports the share of augmentation in ``augmentation + step`` (goal: under 15%).

Run: ``python benchmarks/augment.py [--tile 380] [--batch 2] [--repeats 10]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from biounet import UNet
from biounet.data import AnnotationSpec, Normalizer, Sample, TileDataset, prepare
from biounet.data.augment import AugmentConfig


def synthetic_samples(n: int, size: int) -> list[Sample]:
    try:
        from biounet.data.synthetic import make_cells

        out = []
        for i in range(n):
            image, labels = make_cells((size, size), seed=i)
            out.append(Sample(f"cells{i}", image[None], labels))
        return out
    except ImportError:  # pragma: no cover - before the generator exists
        rng = np.random.default_rng(0)
        return [
            Sample(
                f"r{i}", rng.random((1, size, size)), (rng.random((size, size)) > 0.5).astype(int)
            )
            for i in range(n)
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tile", type=int, default=380, help="network input tile, px")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    net = UNet.from_preset("narrow")
    in_tile = (args.tile, args.tile)
    out_tile = net.output_shape(in_tile)
    t0 = time.perf_counter()
    images = prepare(synthetic_samples(4, 512), AnnotationSpec("instances"), Normalizer())
    prep = time.perf_counter() - t0
    ds = TileDataset(
        images,
        in_tile=in_tile,
        out_tile=out_tile,
        augment=AugmentConfig(),
        length=args.batch * (args.repeats + 1),
        seed=0,
    )
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.99)

    def make_batch(i: int) -> dict[str, torch.Tensor]:
        items = [ds[i * args.batch + j] for j in range(args.batch)]
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}

    def step(batch: dict[str, torch.Tensor]) -> None:
        logits = net(batch["image"])
        loss = torch.nn.functional.cross_entropy(
            logits, batch["target"].clamp(min=0), reduction="none"
        )
        loss = (loss * batch["weight"]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step(make_batch(0))  # warm-up
    aug_t, step_t = [], []
    for i in range(1, args.repeats + 1):
        t0 = time.perf_counter()
        batch = make_batch(i)
        t1 = time.perf_counter()
        step(batch)
        t2 = time.perf_counter()
        aug_t.append(t1 - t0)
        step_t.append(t2 - t1)
    a, s = statistics.median(aug_t), statistics.median(step_t)
    print(
        f"narrow preset, tile {in_tile} -> {out_tile}, batch {args.batch}, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"  prepare (targets + weight maps) for 4 images of 512x512: {prep:.2f} s")
    print(f"  augmented batch: {a * 1000:.0f} ms   training step: {s * 1000:.0f} ms")
    share = a / (a + s)
    print(
        f"  augmentation share of (augmentation + step): {share:.1%} "
        f"(goal < 15%: {'met' if share < 0.15 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
