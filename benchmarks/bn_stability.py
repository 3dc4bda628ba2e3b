"""How much validation scores swing from batch norm alone, with and without recalibration.

Late in a run the learning rate is near 0 and the weights barely move, yet the validation scores
of the ``cpu`` preset swung by several points of IoU between validations: batch norm's running
averages (momentum 0.1) follow the last ~10 batches of two tiles. This benchmark isolates that
effect on a trained run: starting from its ``last.pt``, it repeats ``--rounds`` times: feed
``--batches`` batches of augmented training tiles through the network in train mode without
changing a weight (what training does to the statistics at a learning rate of 0), then validate
twice on the run's validation images, once with the running averages as they are and once with
the statistics recomputed over ``--tiles`` training tiles (``biounet.train.batchnorm``, what
training now does before each validation). The spread (standard deviation, max - min) of the
scores over the rounds is the lottery a user would draw.

Usage::

    python benchmarks/bn_stability.py RUN --rounds 8 --batches 10 --tiles 64 --json bn.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch


def prepare(run: Path, n_val: int) -> tuple[Any, Any, list[Any], list[Any], tuple[int, ...]]:
    """The run's configuration, network (last.pt) and prepared training/validation images."""
    import biounet
    from biounet.config import load_config
    from biounet.data.normalize import Normalizer
    from biounet.train.data import harmonise_channels, load_samples, prepare_split, split

    cfg = load_config(run / "config.yaml")
    model = biounet.load(run / "last.pt")
    train_s, val_s = harmonise_channels(*split(load_samples(cfg.data), cfg.data, cfg.seed))
    spec, norm = cfg.data.annotation_spec(), Normalizer.from_dict(cfg.data.normalize)
    train, val = prepare_split(train_s, val_s[:n_val], spec, norm, cfg.weights, run / "cache")
    tile = (model.geometry.nearest_valid_sizes(cfg.tile)[1],) * cfg.data.ndim
    return cfg, model, train, val, tile


def tiles(cfg: Any, images: list[Any], model: Any, tile: tuple[int, ...], n: int, seed: int):
    from biounet.data.tiles import TileDataset

    ds = TileDataset(
        images,
        in_tile=tile,
        out_tile=model.geometry.output_shape(tile),
        augment=cfg.augment,
        length=n,
        seed=seed,
        oversample=cfg.oversample,
    )
    return [ds[i]["image"] for i in range(n)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--batches", type=int, default=10, help="train-mode batches per round")
    parser.add_argument("--tiles", type=int, default=64, help="tiles of the recalibration")
    parser.add_argument("--val-images", type=int, default=4)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    from biounet.train.batchnorm import recalibrated, recalibration_batches
    from biounet.train.validate import validate

    t0 = time.monotonic()
    cfg, model, train, val, tile = prepare(args.run, args.val_images)
    net, dev = model.net, torch.device("cpu")
    cfg.recalibrate_bn = args.tiles
    stacked = recalibration_batches(cfg, train, net, tile)  # what training recomputes over
    rule = model.instance_rule
    scores: dict[str, list[dict[str, float]]] = {"running": [], "recalibrated": []}
    for r in range(args.rounds):
        # the statistics drift as in training at a learning rate of 0: train-mode forwards
        drift = tiles(cfg, train, model, tile, 2 * args.batches, seed=cfg.seed + 1000 + r)
        net.train()
        with torch.no_grad():
            for i in range(0, len(drift), 2):
                net(torch.stack(drift[i : i + 2]))
        net.eval()
        scores["running"].append(validate(net, val, cfg.data.num_classes, dev, instances=rule))
        with recalibrated(net, stacked, device=dev):
            scores["recalibrated"].append(
                validate(net, val, cfg.data.num_classes, dev, instances=rule)
            )
        print(
            f"round {r}: IoU running {scores['running'][-1]['iou']:.4f}, "
            f"recalibrated {scores['recalibrated'][-1]['iou']:.4f}",
            flush=True,
        )
    summary = {}
    for kind, rows in scores.items():
        for key in ("iou", "ap_50"):
            values = [row[key] for row in rows if key in row]
            if values:
                summary[f"{kind}_{key}"] = {
                    "mean": statistics.fmean(values),
                    "std": statistics.pstdev(values),
                    "range": max(values) - min(values),
                    "values": values,
                }
    report = {
        "run": str(args.run),
        "rounds": args.rounds,
        "batches_per_round": args.batches,
        "recalibration_tiles": args.tiles,
        "val_images": len(val),
        "seconds": time.monotonic() - t0,
        "torch": torch.__version__,
        "summary": summary,
    }
    for key, s in summary.items():
        print(f"{key:24s} mean {s['mean']:.4f}  std {s['std']:.4f}  max-min {s['range']:.4f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
