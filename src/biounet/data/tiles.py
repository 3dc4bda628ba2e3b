"""Training tiles from whole images: targets, weight maps, random augmented tiles.

:func:`prepare` turns :class:`~biounet.data.layouts.Sample` objects into
:class:`TrainImage` objects (normalised image, class target with ignored pixels, the paper's
weight map; computed once per image and optionally cached on disk). :class:`TileDataset`
then yields random training tiles: an input tile with the valid network's margin of context
around its output tile, mirrored at the image borders, augmented with one draw applied
identically to image, target and weights. It is a ``torch.utils.data.Dataset`` whose items
depend only on ``(seed, index)``, so they are reproducible with any number of
data-loader workers.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from biounet.data.annotations import IGNORE_INDEX, AnnotationSpec, to_target
from biounet.data.augment import (
    AugmentConfig,
    Params,
    draw,
    intensity,
    resample,
    sampling_grid,
    to_grid,
)
from biounet.data.layouts import Sample
from biounet.data.normalize import Normalizer
from biounet.data.weightmap import (
    WeightConfig,
    balanced_class_weights,
    weight_map,
    with_separation,
)

__all__ = ["TileDataset", "TrainImage", "class_weights_of", "prepare"]


@dataclass
class TrainImage:
    """One prepared training image (arrays share the spatial shape ``S``).

    ``image`` float32 ``(C, *S)``, normalised; ``classes`` int64 ``(*S)`` with
    ``IGNORE_INDEX`` (-1) where unannotated; ``weights`` float32 ``(*S)``;
    ``focus`` flat indices of object and border pixels, for oversampling; ``instances`` int32
    ``(*S)`` the objects of instance annotations (0 background), else None: validation scores
    the objects that prediction makes against them.
    """

    name: str
    image: np.ndarray
    classes: np.ndarray
    weights: np.ndarray
    focus: np.ndarray
    instances: np.ndarray | None = None


def class_weights_of(classes: Sequence[np.ndarray], num_classes: int) -> np.ndarray:
    """Inverse class frequencies over ``classes`` (ignored pixels excluded), max class -> 1.

    >>> class_weights_of([np.array([0, 0, 0, 1])], 2).tolist()
    [1.0, 3.0]
    """
    counts = np.zeros(num_classes, np.float64)
    for c in classes:
        counts += np.bincount(c[c >= 0].ravel(), minlength=num_classes)[:num_classes]
    # a class without pixels counts as one pixel: the largest weight, not a division by 0
    weights: np.ndarray = balanced_class_weights(np.maximum(counts, 1.0)).astype(np.float32)
    return weights


def prepare(
    samples: Sequence[Sample],
    spec: AnnotationSpec,
    normalizer: Normalizer,
    weights: WeightConfig | None = None,
    *,
    cache_dir: str | Path | None = None,
) -> list[TrainImage]:
    """Targets and weight maps for annotated samples (weight maps cached in ``cache_dir``).

    Parameters
    ----------
    samples : sequence of Sample
        Annotated images.
    spec : AnnotationSpec
        How to read the annotations.
    normalizer : Normalizer
        Intensity normalisation of the images.
    weights : WeightConfig, optional
        The loss weights (default: the paper's, ``WeightConfig()``).
    cache_dir : path, optional
        Where the border terms of the weight maps are cached (keyed by labels and settings).

    Returns
    -------
    list of TrainImage
    """
    weights = weights or WeightConfig()
    if weights.separation > 0 and spec.kind != "instances":
        raise ValueError(
            f"weights.separation={weights.separation} needs instance annotations "
            f"(data.annotation: instances), got {spec.kind!r}: in a {spec.kind} mask touching "
            "objects are one connected region, so there is no border between them to insert. "
            "Annotate each object with its own label, or set weights.separation to 0"
        )
    spacing = weights.spacing
    targets = []
    for s in samples:
        if s.annotation is None:
            raise ValueError(f"{s.name}: no annotation, so it cannot be used for training")
        if spacing is not None and len(spacing) not in (1, s.annotation.ndim):
            raise ValueError(
                f"weights.spacing {list(spacing)} has {len(spacing)} values, but {s.name} is "
                f"{s.annotation.ndim}D; give one pixel size per spatial axis"
            )
        t = to_target(s.annotation, spec, name=str(s.annotation_path or s.name))
        if weights.separation > 0:
            separated = with_separation(t.instances, width=weights.separation, spacing=spacing)
            t.classes[(separated == 0) & (t.instances > 0)] = 0
            t.instances = separated
        targets.append(t)
    if weights.balance == "dataset":
        global_wc = class_weights_of([t.classes for t in targets], spec.num_classes)
    prepared = []
    for s, t in zip(samples, targets):
        if weights.balance == "image":
            wc = class_weights_of([t.classes], spec.num_classes)
        elif weights.balance == "dataset":
            wc = global_wc
        else:
            wc = np.ones(spec.num_classes, np.float32)
        if weights.max_class_weight:
            wc = np.minimum(wc, np.float32(weights.max_class_weight))
        border = _cached(
            cache_dir,
            s,
            t.instances,
            weights,
            lambda inst: (
                weight_map(
                    inst,
                    w0=weights.w0,
                    sigma=weights.sigma,
                    class_weights=None,
                    spacing=spacing,
                    border_on=weights.border_on,
                )
                - 1.0
            ),
        )
        w = (wc[np.clip(t.classes, 0, None)] + border).astype(np.float32)
        w[t.ignore] = 0.0
        focus = np.flatnonzero((t.classes > 0) | (border > 1.0))
        image = normalizer(np.asarray(s.image)).astype(np.float32)
        if not np.isfinite(image).all():
            raise ValueError(f"{s.image_path or s.name}: the image holds NaN or infinite values")
        objects = t.instances if spec.kind == "instances" else None
        prepared.append(TrainImage(s.name, image, t.classes, w, focus, objects))
    return prepared


def _cached(
    cache_dir: str | Path | None,
    sample: Sample,
    instances: np.ndarray,
    cfg: WeightConfig,
    compute: Any,
) -> np.ndarray:
    """``compute(instances)``, cached in ``cache_dir`` (None: not cached).

    The key is a hash of the labels and the weight settings.
    """
    if cache_dir is None:
        result: np.ndarray = compute(instances)
        return result
    key = hashlib.sha1(
        instances.tobytes()
        + str(instances.shape).encode()
        + repr(sorted(cfg.to_dict().items())).encode()
    ).hexdigest()[:16]
    path = Path(cache_dir) / f"border-{key}.npy"
    if path.exists():
        cached: np.ndarray = np.load(path)
        return cached
    border: np.ndarray = compute(instances)
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    from biounet.data.io import write_image

    write_image(path, border.astype(np.float32))
    return border


class TileDataset(torch.utils.data.Dataset):
    """Random (augmented) training tiles from whole images.

    Parameters
    ----------
    images : sequence of TrainImage
    in_tile, out_tile : tuple of int
        The network's input and output tile (``in_tile - out_tile = 2 * margin`` for a valid
        network, equal for a same-padded one).
    augment : AugmentConfig, optional
        None: plain crops.
    length : int
        Number of tiles (items).
    seed : int
        Items depend only on ``(seed, index)``.
    oversample : float
        Probability of centring a tile on an object or border pixel rather than anywhere.

    Items are dicts: ``image`` float32 ``(C, *in_tile)``, ``target`` int64 ``(*out_tile)``
    (-1 = ignore), ``weight`` float32 ``(*out_tile)``.
    """

    def __init__(
        self,
        images: Sequence[TrainImage],
        *,
        in_tile: Sequence[int],
        out_tile: Sequence[int],
        augment: AugmentConfig | None = None,
        length: int = 1000,
        seed: int = 0,
        oversample: float = 0.0,
    ) -> None:
        if not images:
            raise ValueError("no training images")
        self.images = list(images)
        self.ndim = self.images[0].classes.ndim
        self.in_tile = tuple(int(n) for n in in_tile)
        self.out_tile = tuple(int(n) for n in out_tile)
        if len(self.in_tile) != self.ndim or len(self.out_tile) != self.ndim:
            raise ValueError(f"tiles {self.in_tile}, {self.out_tile} are not {self.ndim}D")
        if any((i - o) % 2 or o > i for i, o in zip(self.in_tile, self.out_tile)):
            raise ValueError(f"out_tile {self.out_tile} must be centred in in_tile {self.in_tile}")
        self.augment = augment
        self.length = int(length)
        self.seed = int(seed)
        self.oversample = float(oversample)
        sizes = np.array([math.prod(t.classes.shape) for t in self.images], np.float64)
        self._p = sizes / sizes.sum()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        # the 0 stood for an epoch that nothing changed: kept, so a seed draws the tiles it drew
        rng = np.random.default_rng([self.seed, 0, int(index)])
        t = self.images[int(rng.choice(len(self.images), p=self._p))]
        shape = t.classes.shape
        if self.oversample and len(t.focus) and rng.random() < self.oversample:
            centre_px = np.unravel_index(int(t.focus[rng.integers(len(t.focus))]), shape)
        else:
            centre_px = tuple(np.intp(rng.integers(n)) for n in shape)
        # the tile's centre, on the pixel grid for any tile size
        centre = np.array([c - (n - 1) // 2 + (n - 1) / 2 for c, n in zip(centre_px, self.in_tile)])
        params = draw(self.augment, self.ndim, rng) if self.augment else _identity(self.ndim)
        return self.tile(t, centre, params)

    def tile(self, t: TrainImage, centre: np.ndarray, params: Params) -> dict[str, torch.Tensor]:
        """The tile of ``t`` centred at ``centre`` (px) under the draw ``params``."""
        coords = sampling_grid(params, self.in_tile, centre)  # (ndim, *in_tile), source px
        # the box of source pixels the tile reads (with the cubic kernel's reach), clipped to
        # the image: grid_sample's reflection about the border pixels (align_corners=True)
        # then mirrors exactly as the overlap-tile inference does, without copying pixels
        shape = np.array(t.classes.shape)
        lo = np.floor(coords.reshape(self.ndim, -1).min(1)).astype(int) - 2
        hi = np.ceil(coords.reshape(self.ndim, -1).max(1)).astype(int) + 3
        lo, hi = np.clip(lo, 0, shape - 1), np.clip(hi, 1, shape)  # hi > lo still (hi >= lo+5)
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        local = coords - lo.reshape((self.ndim,) + (1,) * self.ndim)
        crop = tuple(
            slice((i - o) // 2, (i - o) // 2 + o) for i, o in zip(self.in_tile, self.out_tile)
        )
        img = torch.from_numpy(np.ascontiguousarray(t.image[(slice(None),) + box]))
        cls = torch.from_numpy(np.ascontiguousarray(t.classes[box][None]))
        wgt = torch.from_numpy(np.ascontiguousarray(t.weights[box][None]))
        # one grid for the three arrays (read over the same box); the output tile's is a crop
        grid = to_grid(local, tuple(int(n) for n in hi - lo), img.device)  # (1, *in_tile, ndim)
        out_grid = grid[(slice(None),) + crop]
        # without augmentation the tile lies on the pixel grid: nearest is an exact crop
        interp = self.augment.image_interp if self.augment else "nearest"
        image = intensity(resample(img, grid, interp), params)
        target = resample(cls, out_grid, "nearest")[0]
        weight = resample(wgt, out_grid, "linear")[0]
        weight = torch.where(target == IGNORE_INDEX, torch.zeros_like(weight), weight)
        return {"image": image.float(), "target": target.long(), "weight": weight.float()}


def _identity(ndim: int) -> Params:
    """The draw that changes nothing: a plain crop."""
    return Params(np.eye(ndim), np.zeros(ndim), np.zeros((ndim,) + (3,) * ndim))
