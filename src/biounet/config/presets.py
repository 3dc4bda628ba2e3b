"""Training presets: the paper's recipe, CPU and GPU recipes for images and for volumes.

``cpu`` and ``gpu`` are dimension-aware: a configuration built from them with ``data.ndim: 3``
starts from ``cpu3d`` / ``gpu3d`` instead (:func:`biounet.config.build_config`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["TRAIN_PRESETS"]

#: the volume presets that ``cpu`` and ``gpu`` become for ``data.ndim: 3``
VOLUME_PRESETS = {"cpu": "cpu3d", "gpu": "gpu3d"}

#: Training presets, each a partial :class:`~biounet.config.schema.TrainConfig` as a nested dict
TRAIN_PRESETS: dict[str, dict[str, Any]] = {
    # the paper: its network, batch 1 with large tiles, SGD with momentum 0.99, weighted CE
    # (w0 = 10, sigma = 5), elastic deformation (3x3 grid, 10 px), dropout 0.5, He init. The
    # paper gives no learning rate: on its ISBI 2012 data 0.01 never lowered the loss and
    # diverged (NaN) at iteration 58; 0.001 trains (loss 2.8 -> 1.5 in 50 iterations)
    "ronneberger2015": dict(
        model={"preset": "ronneberger2015"},
        tile=572,
        batch_size=1,
        iterations=10000,
        optim={"name": "sgd", "lr": 0.001, "momentum": 0.99, "schedule": "constant"},
        loss={"ce": 1.0, "dice": 0.0},
        weights={"w0": 10.0, "sigma": 5.0, "balance": "image"},
        augment={"elastic_sigma": 10.0, "elastic_grid": 3},
        val_every=500,
    ),
    # a usable model on a 2-core CPU in minutes: the narrow net (16..256, batch norm), tiles of
    # 380 -> 196 px (27% of each tile's area is supervised, against 7% at 252 px), AdamW with a
    # cosine schedule, weighted CE + Dice, oversampling objects and borders. Instances: the
    # 3-class target and large objects shrunk to 32 px (chosen on the Usiigaci validation
    # images, benchmarks/results/instances-usiigaci.md)
    "cpu": dict(
        model={"preset": "narrow", "dropout": 0.1},
        tile=380,
        batch_size=2,
        iterations=1500,
        optim={
            "name": "adamw",
            "lr": 3e-3,
            "weight_decay": 1e-4,
            "schedule": "cosine",
            "warmup": 50,
        },
        loss={"ce": 1.0, "dice": 1.0},
        weights={"w0": 10.0, "sigma": 5.0, "balance": "image"},
        oversample=0.3,
        val_every=250,
        workers=0,
        data={"scale": "auto", "instance_target": "three_class"},
    ),
    # modern, for GPUs: the paper's topology with batch norm, AdamW + poly schedule,
    # Dice + CE, bf16 mixed precision, channels-last, bigger batches
    "gpu": dict(
        model={"preset": "ronneberger2015", "base_width": 32, "norm": "batch", "dropout": 0.0},
        tile=572,
        batch_size=8,
        iterations=20000,
        optim={
            "name": "adamw",
            "lr": 1e-3,
            "weight_decay": 1e-4,
            "schedule": "poly",
            "warmup": 200,
            "clip_grad": 12.0,
        },
        loss={"ce": 1.0, "dice": 1.0},
        weights={"w0": 10.0, "sigma": 5.0, "balance": "image"},
        oversample=0.3,
        workers=4,
        amp="bf16",
        channels_last=True,
        val_every=1000,
        data={"scale": "auto", "instance_target": "three_class"},
    ),
}

#: what the volume presets change of ``cpu`` and ``gpu`` (the rest is theirs): no class
#: balancing weights (sparse nuclei make inverse frequencies of 30-60; uncapped they cost 0.09
#: validation AP@0.5, capped at 10 (kept for balance: image) 0.02 against none), tiles centred
#: on objects half of the time, and batch-norm statistics over 16 tiles (a 3D tile holds ~3x
#: the voxels of a 2D tile's pixels: 16 measure as well as 64 do in 2D, at a quarter of the
#: time taken from each validation); chosen on synthetic nucleus stacks, results/volumes.md
_VOLUMES: dict[str, Any] = dict(
    weights={"w0": 10.0, "sigma": 5.0, "balance": "none", "max_class_weight": 10.0},
    oversample=0.5,
    recalibrate_bn=16,
    data={"ndim": 3, "scale": "auto", "instance_target": "three_class"},
)
# volumes on a 2-core CPU in minutes: the compact3d net (same padding, blended tiles, so
# shallow stacks still get an output per voxel), tiles of 64 px across and as many um along a
# coarse z (2.8x the iterations of 96 px in 10 minutes, and better)
TRAIN_PRESETS["cpu3d"] = {
    **TRAIN_PRESETS["cpu"],
    **_VOLUMES,
    "model": {"preset": "compact3d"},
    "tile": 64,
}
# volumes on a GPU: depth 4, widths 32..512, bigger tiles and batches, bf16
TRAIN_PRESETS["gpu3d"] = {
    **TRAIN_PRESETS["gpu"],
    **_VOLUMES,
    "model": {"preset": "compact3d", "depth": 4, "base_width": 32, "dropout": 0.0},
    "tile": 128,
    "batch_size": 4,
    "channels_last": False,
}
