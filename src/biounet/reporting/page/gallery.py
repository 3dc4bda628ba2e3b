"""The report's gallery: a few images with four panels each (input, truth, prediction, weights).

Each image is segmented on a central crop (at most :data:`CROP` px per axis), normalised with
the whole image's statistics. For instance annotations the truth and the prediction are drawn
as instance outlines.

A 3D crop is shown as orthogonal views (:func:`~biounet.reporting.pictures.orthoview`): in
each panel its YX plane with the ZX plane below and the ZY plane to the right, cut through
the voxel of densest true foreground (the centre when there is none), z stretched by the
voxel spacing's anisotropy (the model's, else ``data.spacing``) so that objects look round.
Tints and outlines are drawn per plane; the scores are those of the whole 3D crop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from biounet.config import DataConfig, TrainConfig
from biounet.core.checks import tqdm_disable
from biounet.data.layouts import Sample, find_dataset
from biounet.data.normalize import Normalizer, apply_normalization
from biounet.data.tiles import TrainImage, prepare
from biounet.inference import predictor
from biounet.inference.postprocess import instances
from biounet.inference.trained import TrainedModel
from biounet.metrics import ConfusionMatrix
from biounet.reporting.page.markup import esc, img_tag, png_uri
from biounet.reporting.pictures import (
    densest_point,
    display_scale,
    ortho_compose,
    ortho_planes,
    overlay,
    z_stretch,
)
from biounet.train import split

__all__ = ["CROP", "gallery_section"]

#: largest crop per spatial axis (px) that the gallery segments: 2D, 3D
CROP = {2: 512, 3: 128}


@dataclasses.dataclass
class _Shown:
    """One gallery image as segmented: arrays ``(C, *S)`` / ``(*S)``, its caption and scores.

    ``objects`` are the true and predicted object counts (for instance annotations).
    """

    name: str
    note: str
    image: np.ndarray
    truth: np.ndarray
    pred: np.ndarray
    weights: np.ndarray
    iou: float
    objects: tuple[int, int]


def gallery_section(
    run: Path,
    cfg: TrainConfig,
    model: TrainedModel,
    n: int,
    device: torch.device,
    progress: bool | None,
) -> str:
    """The gallery section's HTML: ``n`` images with four panels each, or a note why not.

    Validation images are shown (training images when there are none), read from the run's
    ``data.path`` and split as in training. Predictions run on ``device``; ``progress``
    shows bars over the images and their tiles (None: tqdm decides by the terminal).
    """
    import matplotlib
    from tqdm.auto import tqdm

    d = cfg.data
    if n < 1:
        return '<p class="note">No gallery (n_gallery = 0).</p>'
    if not d.path:
        return '<p class="note">No gallery: trained on in-memory samples (no data.path).</p>'
    data = dataclasses.replace(d, path=_resolve(d.path, run), val_path=_resolve(d.val_path, run))
    try:
        samples = find_dataset(data.path, ndim=d.ndim, channel_axis=d.channel_axis)
        train_s, val_s = split(samples, data, cfg.seed)
    except (FileNotFoundError, ValueError) as e:
        return f'<p class="note">No gallery: the training data is not readable ({esc(e)}).</p>'
    chosen, which = (val_s, "validation") if val_s else (train_s, "training")
    norm = model.normalizer or Normalizer.from_dict(d.normalize)
    crops = [_crop(s, norm, d.ndim) for s in chosen[:n]]
    if not crops:
        return f'<p class="note">No gallery: no images in {esc(data.path)}.</p>'
    prepared = prepare(
        [c for c, _ in crops], d.annotation_spec(), Normalizer(mode="none"), cfg.weights
    )
    vmax = max(float(t.weights.max()) for t in prepared)
    cmap = matplotlib.colormaps["viridis"]

    def colour(w: np.ndarray) -> np.ndarray:
        """Weights ``(Y, X)`` as uint8 RGB ``(Y, X, 3)``, 0 to ``vmax`` over the colour map."""
        rgb = (cmap(np.clip(w / max(vmax, 1e-6), 0, 1))[..., :3] * 255).round()
        return np.asarray(rgb.astype(np.uint8))

    kw: dict[str, Any] = {"device": device, "progress": progress}  # None: tqdm decides
    shown = [
        _segment(model, s, note, t, d, kw)
        for (s, note), t in tqdm(
            list(zip(crops, prepared)), desc="report", unit="img", disable=tqdm_disable(progress)
        )
    ]
    is_inst = d.annotation == "instances"
    stretch = z_stretch(model.spacing if model.spacing is not None else d.spacing)
    rows = [_sample_html(i, item, is_inst, colour, stretch) for i, item in enumerate(shown)]
    bar = (cmap(np.linspace(0, 1, 256))[None, :, :3] * 255).round().astype(np.uint8)
    ortho = (
        " 3D: orthogonal views, YX plane at the top left, ZX below it, ZY (z to the right) "
        "beside it; thin magenta lines mark where the other planes cut"
        + (f", z drawn {stretch}× for the voxel spacing." if stretch > 1 else ".")
        if d.ndim == 3
        else ""
    )
    legend = (
        f"<p>{len(rows)} {which} image(s); overlays: objects tinted, "
        f"{'each instance outlined' if is_inst else 'outlines'} in yellow.{ortho} Weight map: "
        f"0 {img_tag(png_uri(bar), 'weight colour scale', 'colorbar', 'colorbar')} "
        f"{vmax:.3g}</p>"
    )
    return legend + "".join(rows)


def _resolve(path: str, run: Path) -> str:
    """A data path as written in ``config.yaml``: as given, else relative to the run folder."""
    if not path:
        return path
    p = Path(path)
    candidates = [p, run / p, run.parent / p]
    if run.name in p.parts:  # e.g. "demo/data/train" seen from another working directory
        candidates.append(run.joinpath(*p.parts[p.parts.index(run.name) + 1 :]))
    return str(next((c for c in candidates if c.exists()), p))


def _crop(s: Sample, normalizer: Normalizer, ndim: int) -> tuple[Sample, str]:
    """A central crop of ``s``, normalised with the whole image's statistics; and a caption."""
    spatial = tuple(int(n) for n in s.image.shape[1:])
    sizes = [min(n, CROP[ndim]) for n in spatial]
    window = tuple(slice((n - m) // 2, (n - m) // 2 + m) for n, m in zip(spatial, sizes))
    # statistics of the whole image, as prediction on it would use; applied to the crop only
    x = apply_normalization(s.image[(slice(None),) + window], *normalizer.stats(s.image))
    ann = None if s.annotation is None else np.asarray(s.annotation)[window]
    note = "×".join(map(str, spatial))
    if tuple(sizes) != spatial:
        note = f"central {'×'.join(map(str, sizes))} crop of {note}"
    return Sample(s.name, x, ann, s.image_path, s.annotation_path), note


def _segment(
    model: TrainedModel,
    crop: Sample,
    note: str,
    t: TrainImage,
    d: DataConfig,
    predict_kw: dict[str, Any],
) -> _Shown:
    """Predict one prepared crop ``t`` and score it (the whole crop, 2D or 3D)."""
    probs = predictor.predict(model, t.image, normalize=False, **predict_kw)  # (K, *S)
    pred = probs.argmax(0)
    cm = ConfusionMatrix(d.num_classes)
    cm.update(t.classes, pred)
    truth = np.clip(t.classes, 0, None)
    if d.annotation == "instances" and crop.annotation is not None:
        truth = np.where(t.classes < 0, 0, crop.annotation).astype(np.int64)
        pred = instances(probs)
    if d.ndim == 3:  # the distinct labels of the whole crop
        objects = (len(np.unique(truth[truth > 0])), len(np.unique(pred[pred > 0])))
    else:
        objects = (int(truth.max()), int(pred.max()))
    iou = float(cm.scores()["iou"])
    return _Shown(crop.name, note, t.image, truth, pred, t.weights, iou, objects)


def _sample_html(
    i: int,
    item: _Shown,
    is_inst: bool,
    colour: Callable[[np.ndarray], np.ndarray],
    stretch: int,
) -> str:
    """The ``i``-th gallery entry: the name, four panels and a caption with the scores.

    A 3D item is drawn as orthogonal views, its z stretched ``stretch`` times.
    """
    note = item.note
    if item.truth.ndim == 3:
        panels, at = _ortho_panels(item, is_inst, colour, stretch)
        note += ", orthogonal views at z = {}, y = {}, x = {}".format(*at)
    else:
        panels = [
            ("input", "input", _grey(item.image)),
            ("truth", "ground truth", overlay(item.image, item.truth, instances=is_inst)),
            ("prediction", "prediction", overlay(item.image, item.pred, instances=is_inst)),
            ("weights", "weight map", colour(item.weights)),
        ]
    counts = f"; objects: {item.objects[0]} true, {item.objects[1]} predicted" if is_inst else ""
    figs = "".join(
        f"<figure>{img_tag(png_uri(a), f'{item.name}: {text}', f'panel panel-{k}', f'g{i}-{k}')}"
        f"<figcaption>{text}</figcaption></figure>"
        for k, text, a in panels
    )
    return (
        f'<div class="sample"><h3>{esc(item.name)}</h3><div class="panels">{figs}</div>'
        f'<p class="cap">{esc(note)}; pixel IoU {item.iou:.3f}{counts}</p></div>'
    )


def _ortho_panels(
    item: _Shown, is_inst: bool, colour: Callable[[np.ndarray], np.ndarray], stretch: int
) -> tuple[list[tuple[str, str, np.ndarray]], tuple[int, ...]]:
    """The four panels of a 3D item as orthogonal views, and the voxel ``(z, y, x)`` they cut.

    The planes cut where the true foreground is densest (smoothed over about 4 px, fewer
    planes along a coarse z). The input is scaled for viewing as a whole volume; tints and
    outlines are drawn on each plane, then the planes are stretched and put together.
    """
    at = densest_point(item.truth, sigma=(max(4.0 / stretch, 1.0), 4.0, 4.0))
    volume = display_scale(item.image[0])  # (Z, Y, X) in [0, 1]
    grey = _grey(item.image)
    rgb = np.repeat(grey[..., None], 3, axis=-1) if grey.ndim == 3 else grey  # coloured guides

    def view(planes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
        return ortho_compose(planes, at, stretch=stretch)

    def drawn(labels: np.ndarray) -> np.ndarray:
        pairs = zip(ortho_planes(volume, at), ortho_planes(labels, at))
        a, b, c = (overlay(im, lab, instances=is_inst, scaled=True) for im, lab in pairs)
        return view((a, b, c))

    panels = [
        ("input", "input", view(ortho_planes(rgb, at))),
        ("truth", "ground truth", drawn(item.truth)),
        ("prediction", "prediction", drawn(item.pred)),
        ("weights", "weight map", view(ortho_planes(colour(item.weights), at))),
    ]
    return panels, at


def _grey(x: np.ndarray) -> np.ndarray:
    """``(C, *S)`` float image as uint8 ``(*S)`` grey (channel 0) or ``(*S, 3)`` RGB."""
    a = np.moveaxis(x[:3], 0, -1) if x.shape[0] == 3 else x[0]
    out: np.ndarray = (display_scale(a) * 255).round().astype(np.uint8)
    return out
