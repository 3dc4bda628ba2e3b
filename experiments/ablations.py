"""Ablations of what the paper argues for, on ISBI 2012 and on synthetic touching cells.

Every variant changes one thing of the ``cpu`` preset, trains for ``--minutes`` on the same
split with each of ``--seeds``, and is scored on the same held-out images, so the table shows
the spread between seeds beside the change:

* ``base``: the ``cpu`` preset (valid padding, overlap-tile inference, border weights w0 = 10,
  elastic deformation and the other augmentations, dropout 0.1 at the bottom);
* ``no_border_weights``: w0 = 0 (the class-balance weights stay);
* ``no_elastic``: no elastic deformation (the other augmentations stay);
* ``no_augment``: no augmentation at all (tiles still come from random places);
* ``same_padding``: zero-padded convolutions, whose tiles are blended at inference;
* ``no_dropout``: dropout 0;
* cells only, the paper's two-class target (background, cell) with and without the border
  weights (``two_class``, ``two_class_no_border_weights``): the weights were the paper's way
  to separate touching cells, which the preset's three-class target (with a boundary class)
  also does.

Inference ablations, on every ``base`` run: the paper's averaging over the 8 rotations/flips
(``tta``), and, on ISBI, naive non-overlapping tiles (each tile zero-padded on its own, as a
tiler that ignores the valid network's context does) against overlap-tile; the seam figure
shows where they differ, by distance to the nearest tile border.

ISBI: trained on slices 00-24, scored on 25-29 (pixel error, V_Rand, V_Info, warping error,
adapted Rand error). Cells: 24 synthetic images of 256 px (the demo's generator), scored on 8
others by instances (AP@0.5, AP@0.5:0.95, SEG, F1, merges and splits).

Each run trains for 8 minutes on ISBI and 5 on the cells (the demo's budget), so a study of
two seeds takes about 100 minutes on 2 cores. Usage (resumable)::

    python experiments/ablations.py --data isbi
    python experiments/ablations.py --data cells
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import common
import numpy as np
from common import (
    RESULTS,
    biounet_membranes,
    config_dict,
    isbi_split,
    machine,
    markdown_table,
    mean_sd,
    read_images,
    read_truths,
    run_missing,
    run_once,
    score_membranes,
    train_resumable,
    write_results,
)

NO_AUGMENT = {
    "elastic_sigma": 0.0, "flip": False, "rotate": 0.0, "scale": [1.0, 1.0], "shift": 0.0,
    "brightness": 0.0, "contrast": [1.0, 1.0], "gamma": [1.0, 1.0], "noise": 0.0, "blur": 0.0,
    "blur_p": 0.0,
}  # fmt: skip
#: variant -> overrides over the dataset's ``cpu`` configuration, and the datasets it runs on
VARIANTS: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "base": ({}, ("isbi", "cells")),
    "no_border_weights": ({"weights": {"w0": 0.0}}, ("isbi", "cells")),
    "no_elastic": ({"augment": {"elastic_sigma": 0.0}}, ("isbi", "cells")),
    "no_augment": ({"augment": NO_AUGMENT}, ("isbi", "cells")),
    "same_padding": ({"model": {"padding": "same"}}, ("isbi", "cells")),
    "no_dropout": ({"model": {"dropout": 0.0}}, ("isbi", "cells")),
    "two_class": ({"data": {"instance_target": "two_class"}}, ("cells",)),
    "two_class_no_border_weights": (
        {"data": {"instance_target": "two_class"}, "weights": {"w0": 0.0}}, ("cells",)),
}  # fmt: skip
#: the held-out ISBI slice of the seam figure
SHOWN = "27"


def cells_split(out: Path) -> tuple[Path, Path]:
    """Synthetic touching cells: 24 training images and 8 held-out ones (other seeds)."""
    from biounet.data.synthetic import write_synthetic

    root = out / "data"
    train, test = root / "cells-train", root / "cells-test"
    for folder, n, seed in ((train, 24, 0), (test, 8, 10_000)):
        if not (folder / "masks").is_dir():
            part = folder.with_name(folder.name + ".part")
            write_synthetic(part, n, shape=(256, 256), seed=seed)
            part.rename(folder)
    return train, test


def config(data: str, variant: str, train: Path, minutes: float, seed: int) -> Any:
    """The configuration of one run."""
    from biounet.config import build_config

    if data == "isbi":
        d = {"path": str(train), "annotation": "binary", "foreground": 255}
    else:
        d = {"path": str(train), "annotation": "instances"}
    over = [{"data": d}, VARIANTS[variant][0],
            {"max_minutes": minutes, "iterations": 10_000_000, "seed": seed}]  # fmt: skip
    return build_config("cpu", None, over)


def naive_probs(model: Any, image: np.ndarray) -> np.ndarray:
    """Class probabilities ``(C, Y, X)`` from non-overlapping tiles, each seen on its own.

    The image is cut into tiles of the network's output size; each is zero-padded by the
    network's margin (in normalised units, so the padding is the image's mean) instead of
    getting its neighbours' pixels, and its outputs are pasted side by side. For a
    same-padded network (margin 0) these are plain non-overlapping tiles without blending.
    """
    import torch

    if model.scale != 1:
        raise ValueError("naive tiles are measured on images the model does not resample")
    net = model.net.eval()
    x = model.normalizer(image) if model.normalizer is not None else image.astype(np.float32)
    x = np.asarray(x, np.float32).reshape(image.shape[-2:])
    m = net.margin if net.config.padding == "valid" else 0  # same: no context given
    oy, ox = net.output_shape(model.tile)
    probs = np.zeros((model.num_classes, *x.shape), np.float32)
    with torch.inference_mode():
        for y0 in range(0, x.shape[0], oy):
            for x0 in range(0, x.shape[1], ox):
                block = x[y0 : y0 + oy, x0 : x0 + ox]
                h, w = block.shape
                tile = np.zeros((oy + 2 * m, ox + 2 * m), np.float32)
                tile[m : m + h, m : m + w] = block
                logits = net(torch.from_numpy(tile)[None, None])
                p = torch.softmax(logits, 1)[0, :, :h, :w].numpy()
                probs[:, y0 : y0 + h, x0 : x0 + w] = p
    return probs


def border_distance(n: int, tile: int) -> np.ndarray:
    """Distance (px) of each of ``n`` positions to the nearest border between tiles of ``tile``.

    >>> border_distance(8, 3).tolist()  # borders between 2|3 and 5|6
    [2, 1, 0, 0, 1, 0, 0, 1]
    """
    starts = np.arange(tile, n, tile)  # the first position after each border
    if starts.size == 0:
        return np.full(n, n)
    i = np.arange(n)[:, None]
    return np.minimum(np.abs(i - starts), np.abs(i - (starts - 1))).min(1)


def seam_profile(a: np.ndarray, b: np.ndarray, tile: tuple[int, int], far: int = 40) -> list[float]:
    """Mean ``|a - b|`` by distance (px, 0..far) to the nearest border between tiles."""
    d = np.minimum(border_distance(a.shape[0], tile[0])[:, None],
                   border_distance(a.shape[1], tile[1])[None, :])  # fmt: skip
    diff = np.abs(a.astype(np.float32) - b.astype(np.float32))
    return [float(diff[d == k].mean()) if (d == k).any() else float("nan") for k in range(far + 1)]


def score_isbi(model: Any, test: Path, run: Path, naive: bool) -> dict[str, Any]:
    """ISBI scores, plain and averaged, and (``naive``) with naive tiles, plus a seam profile."""
    images, truths = read_images(test), read_truths(test)
    out: dict[str, Any] = {}
    plain = biounet_membranes(model, images, tta=False)["probs"]
    out["plain"] = score_membranes(plain, truths)
    out["tta"] = score_membranes(biounet_membranes(model, images, tta=True)["probs"], truths)
    if naive:
        tiles = {n: naive_probs(model, im) for n, im in images.items()}
        out["naive"] = score_membranes(tiles, truths)
        size = model.net.output_shape(model.tile)
        out["naive_tile"] = list(size)
        out["seam_profile"] = seam_profile(tiles[SHOWN][0], plain[SHOWN][0], size)
        np.save(run / "naive.npy", tiles[SHOWN][0].astype(np.float16))
        np.save(run / "overlap.npy", plain[SHOWN][0].astype(np.float16))
    return out


def score_cells(model: Any, test: Path) -> dict[str, Any]:
    """Instance scores of the model's objects on the held-out cells, plain and averaged."""
    import biounet
    from biounet.data.io import read_image
    from biounet.inference.postprocess import instances_from_probabilities

    truths = {p.stem: np.asarray(read_image(p)) for p in sorted((test / "masks").glob("*.png"))}
    out: dict[str, Any] = {}
    for tag, tta in (("plain", False), ("tta", True)):
        pairs = []
        for name, truth in truths.items():
            image = np.asarray(read_image(test / "images" / f"{name}.png"))
            probs = biounet.predict(model, image, tta=tta)
            labels = instances_from_probabilities(probs, kind="cells", rule=model.instance_rule)
            pairs.append((name, np.asarray(labels), truth))
        _, summary = biounet.evaluate(pairs, biounet.EvalOptions("cells"))
        out[tag] = {k: summary[k] for k in CELL_SCORES}
    return out


CELL_SCORES = {"ap_50": "AP@0.5", "mean_ap": "AP@0.5:0.95", "seg": "SEG", "f1": "F1",
               "merges": "merges", "splits": "splits"}  # fmt: skip
ISBI_KEYS = {
    "pooled_pixel_error": "pixel error", "v_rand": "V_Rand", "v_info": "V_Info",
    "pooled_warping_error": "warping error", "mean_rand_error": "adapted Rand",
}  # fmt: skip


def work(out: Path, data: str, name: str, minutes: float) -> dict[str, Any]:
    """Train and score one run ``VARIANT-sSEED``."""
    import biounet

    variant, _, seed = name.rpartition("-s")
    run = out / "runs" / name
    train, test = isbi_split(out, "") if data == "isbi" else cells_split(out)
    cfg = config(data, variant, train, minutes, int(seed))
    trained = train_resumable(cfg, run / "train")
    model = biounet.load(run / "train")
    t0 = time.monotonic()
    if data == "isbi":
        naive = variant in ("base", "same_padding")
        scores = score_isbi(model, test, run, naive)
    else:
        scores = score_cells(model, test)
    return {**trained, **scores, "score_seconds": time.monotonic() - t0, "variant": variant,
            "seed": int(seed), "minutes": minutes, "config": config_dict(cfg)}  # fmt: skip


def summary_rows(results: list[dict[str, Any]], keys: dict[str, str]) -> list[dict[str, Any]]:
    """One row per variant (and inference variant): mean ± sd over the seeds."""
    by: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by.setdefault(r["variant"], []).append(r)
    rows = []
    for variant in VARIANTS:
        rs = by.get(variant)
        if not rs:
            continue
        tags = [("plain", variant)]
        if variant in ("base", "same_padding"):
            tags += [("tta", f"{variant} + test-time averaging")]
            tags += [("naive", f"{variant}, naive tiles")] if "naive" in rs[0] else []
        for tag, label in tags:
            its = mean_sd([r["iterations"] for r in rs])
            row: dict[str, Any] = {"variant": label, "seeds": len(rs), "iterations": its}
            for k in keys:
                row[k] = mean_sd([float(r[tag][k]) for r in rs])
            rows.append(row)
    return rows


def seam_figure(out: Path, results: list[dict[str, Any]], path: Path) -> bool:
    """Naive tiles against overlap-tile on the shown slice: the difference and its profile."""
    import figures

    base = next((r for r in results if r["variant"] == "base" and "seam_profile" in r), None)
    if base is None:
        return False
    run = out / "runs" / base["run"]
    naive, overlap = np.load(run / "naive.npy"), np.load(run / "overlap.npy")
    plt = figures._plt()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    axes[0].imshow(naive.astype(np.float32), cmap="gray_r", vmin=0, vmax=1)
    axes[0].set_title("naive tiles: membrane probability", fontsize=9)
    diff = np.abs(naive.astype(np.float32) - overlap.astype(np.float32))
    im = axes[1].imshow(diff, cmap="magma", vmin=0, vmax=1)
    ty, tx = base["naive_tile"]
    for y in range(ty, diff.shape[0], ty):
        axes[1].axhline(y - 0.5, color="c", lw=0.5, ls=":")
    for x in range(tx, diff.shape[1], tx):
        axes[1].axvline(x - 0.5, color="c", lw=0.5, ls=":")
    axes[1].set_title("|naive - overlap-tile| (tile borders dotted)", fontsize=9)
    fig.colorbar(im, ax=axes[1], fraction=0.046)
    for r in results:
        if "seam_profile" in r:
            axes[2].plot(r["seam_profile"], label=f"{r['variant']} s{r['seed']}", lw=1)
    axes[2].set(xlabel="distance to the nearest tile border, px",
                ylabel="mean |difference|", yscale="log")  # fmt: skip
    axes[2].grid(alpha=0.3)
    axes[2].legend(fontsize=8)
    for a in axes[:2]:
        a.set_xticks([])
        a.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def report(out: Path, data: str) -> None:
    """The study's tables, JSON and figures under ``experiments/results/ablations-DATA``."""
    results = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*/result.json"))]
    if not results:
        return
    study = f"ablations-{data}"
    keys = ISBI_KEYS if data == "isbi" else CELL_SCORES
    rows = summary_rows(results, keys)
    title = "ISBI 2012 (train 00-24, test 25-29)" if data == "isbi" else "synthetic touching cells"
    lines = [f"# Ablations on {title} ({time.strftime('%Y-%m-%d')})", "",
             f"Each run: the `cpu` preset with one change, {results[0]['minutes']:g} minutes on "
             "this machine; mean ± sd over the seeds.", "",
             markdown_table(rows, {"variant": "variant", "seeds": "seeds",
                                   "iterations": "iterations", **keys}), ""]  # fmt: skip
    folder = RESULTS / study
    folder.mkdir(parents=True, exist_ok=True)
    if data == "isbi" and seam_figure(out, results, folder / "seams.png"):
        lines += ["![naive tiles against overlap-tile](seams.png)", ""]
    import figures

    runs = {r["run"]: out / "runs" / r["run"] / "train" for r in results if r["seed"] == 0}
    figures.learning_curves(runs, folder / "learning_curves.png")
    lines += ["![learning curves, seed 0](learning_curves.png)", ""]
    data_ = {"study": study, "machine": machine(), "summary": rows, "runs": results}
    write_results(study, "\n".join(lines), data_)


def main() -> None:
    """Run what is missing, each run in a fresh process, then write the results."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", choices=("isbi", "cells"), required=True)
    ap.add_argument("--out", type=Path, help="default: experiments/runs/ablations-DATA")
    ap.add_argument("--minutes", type=float, help="per run; default 8 on isbi, 5 on cells")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    ap.add_argument("--data-root", type=Path, default=common.DATA_ROOT)
    ap.add_argument("--only", help=argparse.SUPPRESS)
    ap.add_argument("--report", action="store_true", help="only rewrite the results")
    args = ap.parse_args()
    common.DATA_ROOT = args.data_root
    args.minutes = args.minutes or (8.0 if args.data == "isbi" else 5.0)
    out = args.out or Path(__file__).parent / "runs" / f"ablations-{args.data}"
    if args.data == "isbi" and not (args.data_root / "isbi2012" / "images").is_dir():
        sys.exit(f"{args.data_root / 'isbi2012'}: no ISBI 2012 data (see --data-root)")
    if args.only:
        run_once(out, args.only, lambda _: work(out, args.data, args.only, args.minutes))
        return
    names = [f"{v}-s{s}" for v in args.variants if args.data in VARIANTS[v][1] for s in args.seeds]
    if not args.report:
        extra = ["--data", args.data, "--minutes", str(args.minutes),
                 "--data-root", str(args.data_root)]  # fmt: skip
        run_missing(__file__, out, names, extra)
    report(out, args.data)


if __name__ == "__main__":
    main()
