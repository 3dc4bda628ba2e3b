"""Peers trained side by side on ISBI 2012: MONAI's U-Nets, segmentation_models_pytorch's Unet.

Every run trains for the same ``--minutes`` on this machine, on the same 20 slices of 00-24
(``VAL``, the other five, pick the best weights by each recipe's own validation metric), and is
scored on slices 25-29 by :func:`biounet.evaluate` (what ``biounet evaluate --task membranes``
runs): pixel error, V_Rand, V_Info, warping error, adapted Rand error. Runs:

* ``biounet``: the ``cpu`` preset (its network, loss, augmentation, overlap-tile inference);
* ``monai_basicunet``, ``monai_unet``: MONAI's 2D segmentation tutorial recipe
  (``unet_training_dict``): intensities scaled to [0, 1], 4 patches of 96 px per image drawn
  half on membrane and half off (``RandCropByPosNegLabeld``), random 90 degree rotations,
  batch of 2 images, Dice loss on a sigmoid, Adam at 1e-3, the best validation Dice kept,
  ``sliding_window_inference`` with 96 px windows overlapping by 0.25; ``BasicUNet`` with its
  defaults, ``UNet`` with the tutorial's channels (16..256, 2 residual units);
* ``smp_resnet18``, ``smp_resnet34``: ``segmentation_models_pytorch.Unet`` with a ResNet
  encoder, random initialisation (no download), the library's example recipe: images
  standardised, batch of 8 random 256 px crops, no augmentation, the binary Dice loss on
  logits, Adam at 2e-4 with a cosine schedule over the budget, the best validation IoU kept,
  whole-image inference;
* ``biounet+smp_resnet34``, ``biounet+basicunet``: biounet's pipeline (the ``cpu`` preset's
  loss, weights, augmentation, schedule, blended tiles) with the peer's network in place of
  biounet's (:class:`PeerInBiounet`), to separate the network from the pipeline.

Speed, measured in the run's own process: training pixels/s (supervised output pixels per
second of the budget's wall time), inference megapixels/s on the test slices, peak resident
memory. The table gives quality and speed as ratios to ``biounet``.

The peers are benchmark-only extras: ``pip install -e ".[peers]"`` (MONAI,
segmentation_models_pytorch and its timm and torchvision; see experiments/README.md for a
CPU-only torch). Usage (resumable; about 80 minutes at the default 10 minutes per run)::

    python experiments/peers.py
    python experiments/peers.py --runs biounet smp_resnet34 --minutes 30
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import common
import numpy as np
from common import (
    ISBI_SCORES,
    RESULTS,
    config_dict,
    isbi_split,
    machine,
    markdown_table,
    peak_rss_mib,
    read_images,
    read_truths,
    run_missing,
    run_once,
    score_membranes,
    train_resumable,
    write_results,
)

STUDY = "peers"
#: the validation slices of every run (the other 20 of 00-24 train)
VAL = ("04", "09", "14", "19", "24")
RUNS = ("biounet", "monai_basicunet", "monai_unet", "smp_resnet18", "smp_resnet34",
        "biounet+smp_resnet34", "biounet+basicunet")  # fmt: skip
SHOWN = "27"


# --- the peers' networks ------------------------------------------------------------------------


def import_smp() -> Any:
    """``segmentation_models_pytorch``, also beside a torchvision built for another torch.

    smp takes its ResNet encoders from torchvision's pure-Python model code. A torchvision
    wheel whose compiled operators do not match the installed torch (a CUDA wheel beside a
    CPU-only torch) fails at import while registering those operators; the model code does
    not need them, so the registration is skipped and the import retried.
    """
    try:
        import segmentation_models_pytorch as smp
    except (RuntimeError, OSError):
        stale = ("torchvision", "timm", "segmentation_models_pytorch")
        for name in [m for m in sys.modules if m.split(".")[0] in stale]:
            del sys.modules[name]
        sys.modules["torchvision._meta_registrations"] = types.ModuleType("skipped")
        import segmentation_models_pytorch as smp
    return smp


def make_net(kind: str, in_channels: int, out_channels: int) -> Any:
    """A peer network: ``basicunet``, ``unet`` (MONAI) or ``smp_resnet18``/``34``."""
    if kind == "basicunet":
        from monai.networks.nets import BasicUNet

        return BasicUNet(spatial_dims=2, in_channels=in_channels, out_channels=out_channels)
    if kind == "unet":
        from monai.networks.nets import UNet

        return UNet(spatial_dims=2, in_channels=in_channels, out_channels=out_channels,
                    channels=(16, 32, 64, 128, 256), strides=(2, 2, 2, 2),
                    num_res_units=2)  # fmt: skip
    smp = import_smp()
    encoder = kind.removeprefix("smp_")
    return smp.Unet(encoder, encoder_weights=None, in_channels=in_channels, classes=out_channels)


def use_peer_in_biounet(factory: Callable[[int, int], Any]) -> None:
    """Make biounet build (and load) :class:`PeerInBiounet` around ``factory(C_in, C_out)``.

    It replaces ``UNet.from_config``, which both training and :func:`biounet.load` build
    their network with, for the rest of the process.
    """
    from biounet.model.unet import UNet, UNetConfig

    class PeerInBiounet(UNet):
        """A peer network inside biounet's pipeline.

        The biounet network it derives from (same padding, depth 5, width 2: its tiles are
        multiples of 32 px, which both peers take) gives the pipeline its geometry; its own
        layers are unused. ``forward`` is the peer's: ``(B, C_in, Y, X)`` ->
        ``(B, num_classes, Y, X)`` logits.
        """

        def __init__(self, **options: Any) -> None:
            super().__init__(**options)
            self.peer = factory(options["in_channels"], options["num_classes"])

        def reset_parameters(self) -> None:  # the peer keeps its library's initialisation
            if not hasattr(self, "peer"):
                super().reset_parameters()

        def forward(self, x: Any) -> Any:
            return self.peer(x)

    def from_config(cls: type, config: Any) -> UNet:
        if isinstance(config, dict):
            config = UNetConfig.from_dict(config)
        return PeerInBiounet(**config.to_dict())

    UNet.from_config = classmethod(from_config)  # type: ignore[method-assign,assignment]


# --- the peers' recipes ------------------------------------------------------------------------


def membrane_data(folder: Path, names: tuple[str, ...] | None = None) -> list[tuple[Any, Any]]:
    """(image float32 (Y, X), membrane mask float32 (Y, X), 1 on membrane) pairs."""
    images, truths = read_images(folder), read_truths(folder)
    keep = names if names is not None else tuple(images)
    return [(images[n].astype(np.float32), (truths[n] == 0).astype(np.float32)) for n in keep]


def budget_loop(
    step: Callable[[float], float], validate: Callable[[], float], seconds: float, net: Any
) -> dict[str, Any]:
    """Train until ``seconds`` pass: ``step(progress)`` per iteration, ``validate()`` at tenths.

    The weights of the best validation score are put back at the end (as the recipes keep
    their best model). Returns iterations, wall time and the validation curve.
    """
    import copy

    t0 = time.monotonic()
    it, tenth, best, best_state, curve, losses = 0, 1, -1.0, None, [], []
    while (elapsed := time.monotonic() - t0) < seconds:
        losses.append(step(elapsed / seconds))
        it += 1
        if elapsed >= tenth * seconds / 10 or time.monotonic() - t0 >= seconds:
            tenth += 1
            score = validate()
            curve.append({"iteration": it, "seconds": time.monotonic() - t0, "val": score,
                          "loss": float(np.mean(losses[-50:]))})  # fmt: skip
            if score > best:
                best, best_state = score, copy.deepcopy(net.state_dict())
    if best_state is not None:
        net.load_state_dict(best_state)
    return {"iterations": it, "train_seconds": time.monotonic() - t0, "curve": curve,
            "best_val": best}  # fmt: skip


def optimiser_step(net: Any, opt: Any, loss_fn: Any, x: Any, y: Any) -> float:
    """One step of a peer's recipe: the loss of ``net(x)`` against ``y``, backward, update."""
    opt.zero_grad()
    loss = loss_fn(net(x), y)
    loss.backward()
    opt.step()
    return float(loss.item())


def monai_recipe(kind: str, train: list[Any], val: list[Any], seconds: float) -> dict[str, Any]:
    """MONAI's 2D tutorial recipe (see the module's docstring); a predictor for the slices."""
    import torch
    from monai.inferers import sliding_window_inference
    from monai.losses import DiceLoss
    from monai.transforms import Compose, RandCropByPosNegLabeld, RandRotate90d, ScaleIntensityd

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    net = make_net(kind, 1, 1)
    crops = Compose([
        ScaleIntensityd(keys="img"),
        RandCropByPosNegLabeld(keys=["img", "seg"], label_key="seg", spatial_size=[96, 96],
                               pos=1, neg=1, num_samples=4),
        RandRotate90d(keys=["img", "seg"], prob=0.5, spatial_axes=[0, 1]),
    ])  # fmt: skip
    crops.set_random_state(0)
    loss_fn = DiceLoss(sigmoid=True)
    opt = torch.optim.Adam(net.parameters(), 1e-3)

    def step(progress: float) -> float:
        net.train()
        batch = []
        for i in rng.choice(len(train), 2):
            image, mask = train[i]
            batch += crops({"img": image[None], "seg": mask[None]})
        x = torch.stack([torch.as_tensor(b["img"]) for b in batch])
        y = torch.stack([torch.as_tensor(b["seg"]) for b in batch])
        return optimiser_step(net, opt, loss_fn, x, y)

    def predict(image: np.ndarray) -> np.ndarray:
        net.eval()
        x = (image - image.min()) / max(float(image.max() - image.min()), 1e-8)
        with torch.inference_mode():
            logits = sliding_window_inference(torch.as_tensor(x)[None, None], (96, 96), 4, net,
                                              overlap=0.25)  # fmt: skip
        return torch.sigmoid(torch.as_tensor(logits))[0, 0].numpy()

    def validate() -> float:  # the tutorial's metric: Dice of the thresholded prediction
        inter = total = 0.0
        for image, mask in val:
            p = predict(image) > 0.5
            inter += float((p & (mask > 0)).sum())
            total += float(p.sum() + mask.sum())
        return 2 * inter / max(total, 1.0)

    out = budget_loop(step, validate, seconds, net)
    return {**out, "predict": predict, "net": net, "pixels_per_step": 8 * 96 * 96}


def smp_recipe(kind: str, train: list[Any], val: list[Any], seconds: float) -> dict[str, Any]:
    """segmentation_models_pytorch's example recipe (see the module's docstring)."""
    import torch

    smp = import_smp()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    net = make_net(kind, 1, 1)
    loss_fn = smp.losses.DiceLoss(smp.losses.BINARY_MODE, from_logits=True)
    opt = torch.optim.Adam(net.parameters(), 2e-4)
    standard = [((im - im.mean()) / im.std(), m) for im, m in train]

    def step(progress: float) -> float:
        for g in opt.param_groups:  # cosine annealing over the time budget
            g["lr"] = 2e-4 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        net.train()
        xs, ys = [], []
        for i in rng.choice(len(standard), 8):
            image, mask = standard[i]
            y0, x0 = rng.integers(0, np.array(image.shape) - 256 + 1)
            xs.append(image[y0 : y0 + 256, x0 : x0 + 256])
            ys.append(mask[y0 : y0 + 256, x0 : x0 + 256])
        x = torch.as_tensor(np.stack(xs))[:, None]
        y = torch.as_tensor(np.stack(ys))[:, None]
        return optimiser_step(net, opt, loss_fn, x, y)

    def predict(image: np.ndarray) -> np.ndarray:
        net.eval()
        x = (image - image.mean()) / image.std()
        with torch.inference_mode():  # whole image: 512 px is a multiple of 32
            return torch.sigmoid(net(torch.as_tensor(x)[None, None]))[0, 0].numpy()

    def validate() -> float:  # IoU of the thresholded predictions, pooled
        inter = union = 0.0
        for image, mask in val:
            p = predict(image) > 0.5
            inter += float((p & (mask > 0)).sum())
            union += float((p | (mask > 0)).sum())
        return inter / max(union, 1.0)

    out = budget_loop(step, validate, seconds, net)
    return {**out, "predict": predict, "net": net, "pixels_per_step": 8 * 256 * 256}


# --- the runs ----------------------------------------------------------------------------------


def biounet_config(train: Path, minutes: float, peer: str) -> Any:
    """The ``cpu`` preset on slices 00-24 with :data:`VAL` validating (a peer's net inside)."""
    from biounet.config import build_config

    over: list[dict[str, Any]] = [
        {"data": {"path": str(train), "annotation": "binary", "foreground": 255,
                  "val_names": list(VAL)},
         "max_minutes": minutes, "iterations": 10_000_000},
    ]  # fmt: skip
    if peer:  # the peer's tiles are multiples of 32 px: a same-padded depth-5 geometry
        over.append({"model": {"padding": "same", "depth": 5, "base_width": 2, "dropout": 0.0}})
    return build_config("cpu", None, over)


def work_biounet(out: Path, name: str, minutes: float) -> dict[str, Any]:
    """Biounet's pipeline, with its own network or (``biounet+PEER``) a peer's."""
    import biounet

    peer = name.partition("+")[2]
    if peer:
        kind = peer.removeprefix("monai_")
        use_peer_in_biounet(lambda c_in, c_out: make_net(kind, c_in, c_out))
    run = out / "runs" / name
    train, test = isbi_split(out, "")
    cfg = biounet_config(train, minutes, peer)
    trained = train_resumable(cfg, run / "train")
    train_peak = peak_rss_mib()
    model = biounet.load(run / "train")
    images, truths = read_images(test), read_truths(test)
    t0 = time.monotonic()
    probs = {n: np.asarray(biounet.predict(model, im)) for n, im in images.items()}
    seconds = time.monotonic() - t0
    out_tile = model.net.output_shape(model.tile)
    px = cfg.batch_size * int(np.prod(out_tile))
    np.save(run / "membrane.npy", probs[SHOWN][0].astype(np.float16))
    return {**trained, "scores": score_membranes(probs, truths),
            "train_px_per_s": px * trained["iterations"] / trained["train_seconds"],
            "predict_mpix_per_s": sum(im.size for im in images.values()) / 1e6 / seconds,
            "train_peak_mib": train_peak, "peak_mib": peak_rss_mib(),
            "parameters": sum(p.numel() for p in model.net.parameters()),
            "minutes": minutes, "config": config_dict(cfg)}  # fmt: skip


def work_peer(out: Path, name: str, minutes: float) -> dict[str, Any]:
    """A peer trained by its library's recipe, scored by biounet."""
    import torch

    train_dir, test = isbi_split(out, "")
    run = out / "runs" / name
    run.mkdir(parents=True, exist_ok=True)
    train = membrane_data(train_dir, tuple(n for n in common.ISBI_TRAIN if n not in VAL))
    val = membrane_data(train_dir, VAL)
    recipe = monai_recipe if name.startswith("monai_") else smp_recipe
    kind = name.removeprefix("monai_")
    r = recipe(kind, train, val, minutes * 60)
    train_peak = peak_rss_mib()
    images, truths = read_images(test), read_truths(test)
    t0 = time.monotonic()
    mem = {n: r["predict"](im.astype(np.float32)) for n, im in images.items()}
    seconds = time.monotonic() - t0
    probs = {n: np.stack([p, 1 - p]) for n, p in mem.items()}  # class 0: membrane
    np.save(run / "membrane.npy", mem[SHOWN].astype(np.float16))
    torch.save(r["net"].state_dict(), run / "weights.pt")
    (run / "curve.json").write_text(json.dumps(r["curve"], indent=1))
    return {"iterations": r["iterations"], "train_seconds": r["train_seconds"],
            "scores": score_membranes(probs, truths), "best_val": r["best_val"],
            "train_px_per_s": r["pixels_per_step"] * r["iterations"] / r["train_seconds"],
            "predict_mpix_per_s": sum(im.size for im in images.values()) / 1e6 / seconds,
            "train_peak_mib": train_peak, "peak_mib": peak_rss_mib(),
            "parameters": sum(p.numel() for p in r["net"].parameters()),
            "minutes": minutes, "recipe": recipe.__doc__}  # fmt: skip


def report(out: Path) -> None:
    """The study's table (quality and speed as ratios to biounet), JSON and figures."""
    results = {json.loads(p.read_text())["run"]: json.loads(p.read_text())
               for p in sorted((out / "runs").glob("*/result.json"))}  # fmt: skip
    if not results:
        return
    ref = results.get("biounet")
    rows = []
    for name in [n for n in RUNS if n in results]:
        r = results[name]
        row = {"run": name, "parameters": r["parameters"] / 1e6, "iterations": r["iterations"],
               **{k: r["scores"][k] for k in ISBI_SCORES}}  # fmt: skip
        for k, title in (("train_px_per_s", "train"), ("predict_mpix_per_s", "predict"),
                         ("peak_mib", "memory")):  # fmt: skip
            row[title] = r[k] / ref[k] if ref else None
        rows.append(row)
    cols = {"run": "run", "parameters": "parameters (M)", "iterations": "iterations",
            **ISBI_SCORES, "train": "training px/s ÷ biounet",
            "predict": "inference MP/s ÷ biounet", "memory": "peak memory ÷ biounet"}  # fmt: skip
    speed = {"run": "run", "train_px_per_s": "training px/s", "predict_mpix_per_s": "MP/s",
             "train_peak_mib": "training peak MiB", "peak_mib": "peak MiB"}  # fmt: skip
    minutes = next(iter(results.values()))["minutes"]
    lines = [f"# Peers on ISBI 2012 ({time.strftime('%Y-%m-%d')})", "",
             f"Each run {minutes:g} minutes on this machine, trained on 20 of slices 00-24 "
             f"(validation {', '.join(VAL)}), scored on 25-29 by `biounet.evaluate`.", "",
             markdown_table(rows, cols), "", "Absolute speed:", "",
             markdown_table(list(results.values()), speed), ""]  # fmt: skip
    folder = RESULTS / STUDY
    folder.mkdir(parents=True, exist_ok=True)
    import figures

    from biounet.data.io import read_image

    preds = {n: np.load(out / "runs" / n / "membrane.npy").astype(np.float32)
             for n in results if (out / "runs" / n / "membrane.npy").exists()}  # fmt: skip
    src = common.DATA_ROOT / "isbi2012"
    if preds:
        image = np.asarray(read_image(src / "images" / f"{SHOWN}.png"))
        truth = np.asarray(read_image(src / "labels" / f"{SHOWN}.png"))
        figures.membrane_errors(image, truth, preds, folder / "predictions.png")
        lines += [f"![slice {SHOWN}: each run's membranes and errors](predictions.png)", ""]
    data = {"study": STUDY, "machine": machine(), "runs": list(results.values())}
    write_results(STUDY, "\n".join(lines), data)


def main() -> None:
    """Run what is missing, each run in a fresh process, then write the results."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "runs" / STUDY)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--runs", nargs="+", choices=RUNS, default=list(RUNS))
    ap.add_argument("--data-root", type=Path, default=common.DATA_ROOT)
    ap.add_argument("--only", help=argparse.SUPPRESS)
    ap.add_argument("--report", action="store_true", help="only rewrite the results")
    args = ap.parse_args()
    common.DATA_ROOT = args.data_root
    if not (args.data_root / "isbi2012" / "images").is_dir():
        sys.exit(f"{args.data_root / 'isbi2012'}: no ISBI 2012 data (see --data-root)")
    if args.only:
        work = work_biounet if args.only.startswith("biounet") else work_peer
        run_once(args.out, args.only, lambda _: work(args.out, args.only, args.minutes))
        return
    if not args.report:
        extra = ["--minutes", str(args.minutes), "--data-root", str(args.data_root)]
        run_missing(__file__, args.out, args.runs, extra)
    report(args.out)


if __name__ == "__main__":
    main()
