"""The data of a run: samples found, split into training and validation, prepared once."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from biounet.config.schema import DataConfig
from biounet.data.annotations import AnnotationSpec
from biounet.data.layouts import Sample, find_dataset
from biounet.data.layouts.channels import COLOUR_CHANNELS, as_grey
from biounet.data.normalize import Normalizer
from biounet.data.tiles import TrainImage, prepare
from biounet.data.weightmap import WeightConfig

log = logging.getLogger(__name__)

__all__ = ["harmonise_channels", "load_samples", "prepare_split", "split"]


def load_samples(d: DataConfig) -> list[Sample]:
    """The samples of ``d.path`` (any layout :func:`~biounet.data.layouts.find_dataset` reads)."""
    if not d.path:
        raise ValueError("no training data: set data.path (or pass samples)")
    return find_dataset(d.path, ndim=d.ndim, channel_axis=d.channel_axis)


def split(samples: Sequence[Sample], d: DataConfig, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Training and validation samples: a given set, named samples, or a seeded random split.

    ``d.val_path``: all of ``samples`` train, the validation set is read from there.
    ``d.val_names``: those samples validate, the others train. Otherwise a random
    ``d.val_fraction`` of the samples (at least one if the fraction is above 0 and there are
    two or more), drawn with ``seed``: the same seed gives the same split. A single sample
    (one annotated stack, say) is cut in two instead: the last ``d.val_fraction`` of its
    longest axis validates, the rest trains (:func:`held_out_block`).

    Raises
    ------
    ValueError
        For ``val_path`` together with ``val_names``, or a name no sample has.
    """
    d.check_validation_source()
    if d.val_path:
        return list(samples), find_dataset(d.val_path, ndim=d.ndim, channel_axis=d.channel_axis)
    if d.val_names:
        names = set(d.val_names)
        have = {s.name for s in samples}
        unknown = names - have
        if unknown:
            raise ValueError(
                f"data.val_names: no samples named {sorted(unknown)}{_hint(unknown, have)}"
            )
        return [s for s in samples if s.name not in names], [s for s in samples if s.name in names]
    if len(samples) == 1 and d.val_fraction > 0:
        return held_out_block(samples[0], d.val_fraction)
    n_val = round(len(samples) * d.val_fraction)
    if d.val_fraction > 0 and n_val == 0 and len(samples) > 1:
        n_val = 1
    order = np.random.default_rng(seed).permutation(len(samples))
    val = {int(i) for i in order[:n_val]}
    return [s for i, s in enumerate(samples) if i not in val], [samples[i] for i in sorted(val)]


def held_out_block(sample: Sample, fraction: float) -> tuple[list[Sample], list[Sample]]:
    """One sample cut along its longest spatial axis: ``[rest]`` trains, ``[last block]`` validates.

    The block is the last ``fraction`` of the axis (at least 1 px, at most all but 1 px);
    both parts keep the sample's paths and spacing, and their names say where they lie
    (``"v01 [x 0:98]"``, ``"v01 [x 98:122]"``). Objects the cut crosses are in both parts.
    Too small to cut (1 px along every axis): the sample trains and nothing validates.

    >>> s = Sample("v", np.zeros((1, 4, 10, 6)), np.zeros((4, 10, 6), np.int32))
    >>> [(p.name, p.image.shape) for p in sum(held_out_block(s, 0.2), [])]
    [('v [y 0:8]', (1, 4, 8, 6)), ('v [y 8:10]', (1, 4, 2, 6))]
    """
    spatial = tuple(int(n) for n in sample.image.shape[1:])
    axis = int(np.argmax(spatial))
    n = spatial[axis]
    if n < 2:
        return [sample], []
    cut = n - min(n - 1, max(1, round(n * fraction)))
    letter = "zyx"[axis + 3 - len(spatial)] if len(spatial) <= 3 else str(axis)
    parts = []
    for lo, hi in ((0, cut), (cut, n)):
        window = tuple(slice(lo, hi) if a == axis else slice(None) for a in range(len(spatial)))
        ann = None if sample.annotation is None else np.asarray(sample.annotation)[window]
        image = sample.image[(slice(None),) + window]
        name = f"{sample.name} [{letter} {lo}:{hi}]"
        parts.append(dataclasses.replace(sample, name=name, image=image, annotation=ann))
    log.info(
        "one annotated image: %s trains, %s validates (data.val_fraction %g of its longest axis)",
        parts[0].name, parts[1].name, fraction,
    )  # fmt: skip
    return [parts[0]], [parts[1]]


def _hint(unknown: set[str], have: set[str]) -> str:
    """Why a number may name no sample: YAML reads ``01`` as 1."""
    padded = [
        n
        for n in sorted(unknown)
        if n.isdigit() and any(h.isdigit() and h.lstrip("0") == n.lstrip("0") for h in have)
    ]
    if not padded:
        return ""
    return (
        f"; the samples are named like {sorted(have)[0]!r}: quote names with leading zeros in "
        'YAML ("01"), which reads 01 as the number 1'
    )


def prepare_split(
    train: Sequence[Sample],
    val: Sequence[Sample],
    spec: AnnotationSpec,
    norm: Normalizer,
    weights: WeightConfig,
    cache: Path,
) -> tuple[list[TrainImage], list[TrainImage]]:
    """Training images (targets, weight maps cached in ``cache``) and validation images."""
    train_imgs = prepare(list(train), spec, norm, weights, cache_dir=cache)
    val_imgs = prepare(list(val), spec, norm, weights) if val else []
    return train_imgs, val_imgs


def harmonise_channels(
    train: Sequence[Sample], val: Sequence[Sample]
) -> tuple[list[Sample], list[Sample]]:
    """One channel count for all images: colour read as grey where grey images are mixed in.

    Real collections mix greyscale and RGB(A) images of the same kind of object. When the
    images of a training run (training and validation together) have 1 and 3 or 4 channels,
    the colour ones are read as grey by :func:`~biounet.data.layouts.channels.as_grey` (the
    mean of red, green and blue), the rule ``predict`` applies to a colour image given to a
    one-channel model; the network then has one input channel. Any other mixture is an
    error naming an image of each kind, before anything is written.
    """
    counts: dict[int, Sample] = {}
    for s in [*train, *val]:
        counts.setdefault(int(s.image.shape[0]), s)
    if len(counts) == 1:
        return list(train), list(val)
    if 1 not in counts or not set(counts) - {1} <= set(COLOUR_CHANNELS):
        listed = ", ".join(f"{s.image_path or s.name} has {c}" for c, s in sorted(counts.items()))
        raise ValueError(
            f"the images have different numbers of channels ({listed}); give images of one "
            "kind (greyscale images may be mixed with RGB ones, which are then read as grey)"
        )

    def grey(s: Sample) -> Sample:
        if s.image.shape[0] == 1:
            return s
        return dataclasses.replace(s, image=as_grey(s.image))

    n = sum(1 for s in [*train, *val] if s.image.shape[0] != 1)
    log.info("%d colour image(s) read as grey (the mean of red, green and blue)", n)
    return [grey(s) for s in train], [grey(s) for s in val]
