"""``tile_apply``: any tile-wise predictor over a whole image, tile by tile, assembled."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from biounet.core.checks import check_positive_int, tqdm_disable
from biounet.inference.tiling.checks import as_image_array, check_out
from biounet.inference.tiling.plans import Job, TileLayout
from biounet.inference.tiling.reading import read_batch
from biounet.inference.tiling.shards import Box, Shard
from biounet.inference.tiling.stitch import check_output_finite, image_region, write_tile
from biounet.inference.tiling.transforms import Transform, identity

__all__ = ["Predictor", "tile_apply"]

#: what ``tile_apply`` calls: input tiles ``(B, C, *in_tile)`` -> output tiles ``(B, K, *out_tile)``
Predictor = Callable[[torch.Tensor], torch.Tensor]

#: a batch of tiles to compute, with the boxes of each tile to write (None: its whole region)
Work = tuple[list[Job], list[list[Box] | None]]


def tile_apply(
    fn: Predictor,
    image: Any,
    *,
    tile_shape: Sequence[int],
    margin: int | Sequence[int] = 0,
    mode: str = "crop",
    stride: Sequence[int] | None = None,
    overlap: float = 0.5,
    align: int | Sequence[int] = 1,
    transforms: Sequence[Transform] | None = None,
    out: Any = None,
    channels: int | None = None,
    batch_size: int = 1,
    device: torch.device | str = "cpu",
    progress: bool | Callable[[int, int], object] | None = False,
    shard: Shard | None = None,
) -> Any:
    """Apply ``fn`` tile by tile to ``image`` and assemble the result.

    Parameters
    ----------
    fn : callable
        ``(B, C, *tile_shape)`` float32 tensor on ``device`` -> ``(B, K, *out_tile)`` tensor
        (a NumPy array is accepted too), with ``out_tile = tile_shape - 2 * margin``
        (``"crop"``) or ``tile_shape`` (``"blend"``). Under ``transforms`` the tiles of a
        transposed image are transposed too: each call gets tiles of one shape. If ``fn`` has
        a method ``plan(tiles, shapes)``, it is called once before the first tile with the
        number of tiles this call computes (this shard's, under ``shard``) and of distinct
        input tile shapes (:class:`~biounet.inference.backend.TileRunner` chooses its backend
        by them).
    image : array-like, shape ``(C, *S)``
        Any array supporting NumPy basic slicing (ndarray, memmap, Zarr); read tile by tile and
        converted to float32. Nested lists are converted with ``numpy.asarray``.
    tile_shape : sequence of int
        Input tile shape, px per spatial axis.
    margin : int or sequence of int
        ``"crop"``: context per side that ``fn`` consumes, px. Ignored by ``"blend"``.
    mode : {"crop", "blend"}
        See :mod:`biounet.inference.tiling`.
    stride : sequence of int, optional
        ``"crop"``: distance between tiles, px, at most the output tile (default: the output
        tile).
    overlap : float
        ``"blend"``: overlap of neighbouring tiles as a fraction of the tile.
    align : int or sequence of int
        ``"blend"``: tile starts are multiples of this many px, per axis or one for all (see
        :func:`~biounet.inference.tiling.plans.plan_blend`).
    transforms : sequence of Transform, optional
        Test-time augmentation: the result is the mean over the transforms.
    out : array-like, shape ``(K, *S)``, floating dtype, optional
        Where to write the result (e.g. a Zarr array on disk); overwritten. Its dtype and
        shape are checked before ``fn`` first runs, and it is not touched before ``K`` is
        known (from ``channels`` or from ``fn``'s first output). Default: a new float32
        ndarray.
    channels : int, optional
        ``K``, the number of channels ``fn`` returns; checked against ``out`` up front and
        against every output of ``fn``.
    batch_size : int
        Tiles per call of ``fn``.
    device : torch.device or str
        Where the input tiles are sent.
    progress : bool, None or callable
        Progress bar over tiles (this process's): True shows it, False hides it, None lets
        tqdm decide (shown when stderr is a terminal). A callable ``progress(done, total)``
        is called instead with the tiles done so far and in all (first with 0, then after
        each batch; e.g. a GUI's progress bar).
    shard : Shard, optional
        One process of several that tile this image into the same ``out`` (required), e.g.
        ``Shard.from_env(out)`` under ``torchrun``: only the pixels of the shard's output
        chunks are written (also the zeroing before blended tiles are summed), and only the
        tiles that reach them are computed. Each such pixel gets the value of a
        single-process run bit for bit: it sums the same tiles' outputs in the same order,
        and the predictor sees the same batches (a batch is computed whole if any of its
        tiles is needed, so kernels that depend on the batch's make-up cannot change a bit;
        the price: the other tiles of such a batch are computed in vain, none with
        ``batch_size=1``). See :mod:`biounet.inference.tiling.shards`.

    Returns
    -------
    array-like, shape ``(K, *S)``
        ``out`` (or the new float32 array).

    Raises
    ------
    ValueError
        For NaN or infinite image values or values beyond float32's range (naming the first
        such pixel), for NaN or infinite outputs of ``fn`` (naming the image region), for
        inconsistent shapes, and for a ``shard`` without ``out``.
    biounet.core.checks.InputTypeError
        (A TypeError) For a non-integer ``tile_shape``, ``margin``, ``stride`` or
        ``batch_size``, a complex image and an ``out`` that is not an array.
    TypeError
        For a predictor that returns no array (an error in the predictor's code).

    Examples
    --------
    A pointwise predictor gives the same result tiled as on the whole image:

    >>> image = np.arange(2 * 9 * 7, dtype=np.float32).reshape(2, 9, 7)
    >>> result = tile_apply(lambda x: 2 * x + 1, image, tile_shape=(4, 4))
    >>> bool((result == 2 * image + 1).all())
    True
    """
    image = as_image_array(image)
    spatial = tuple(int(n) for n in image.shape[1:])
    layout = TileLayout.checked(len(spatial), tile_shape, margin, mode, stride, overlap, align)
    batch_size = check_positive_int(batch_size, "batch_size")
    if min(spatial, default=0) < 1:
        raise ValueError(f"the image is empty: spatial shape {spatial}")
    if out is not None:
        check_out(out, channels, spatial)
    elif shard is not None:
        raise ValueError(
            "tile_apply: a shard writes its part into an array shared by all processes; pass "
            "out= (e.g. a Zarr array on a shared disk)"
        )
    transforms = list(transforms) if transforms else [identity(len(spatial))]
    work = _work(_batches(layout, transforms, spatial, batch_size), spatial, shard)
    # several transforms, or overlapping blended tiles: each pixel is a sum of weighted parts
    accumulate = layout.mode == "blend" or len(transforms) > 1
    scale = 1.0 / len(transforms)

    total = sum(len(batch) for batch, _ in work)
    plan = getattr(fn, "plan", None)
    if callable(plan):  # the predictor may choose how to run by the work (TileRunner)
        plan(total, len({batch[0][0].shape(layout.in_tile) for batch, _ in work}))
    bar = _progress_bar(total, progress)
    try:
        batches = [batch for batch, _ in work]
        with contextlib.closing(_read_ahead(image, batches, layout.in_tile)) as reads:
            for i, ((batch, x), (_, parts)) in enumerate(zip(reads, work)):
                y = _run(fn, x, device, batch[0][0].shape(layout.out_tile))
                channels = _channel_count(y, channels)
                check_output_finite(y, x, batch, spatial)
                if i == 0:  # K is known now
                    out = _result_array(out, channels, spatial, accumulate, shard)
                for (g, tiles), yi, part in zip(batch, y, parts):
                    write_tile(out, yi, g, tiles, spatial, accumulate, scale, part)
                bar.update(len(batch))
    finally:
        bar.close()
    return out


def _batches(
    layout: TileLayout, transforms: Sequence[Transform], spatial: Sequence[int], size: int
) -> list[list[Job]]:
    """All tiles to compute, in batches of at most ``size``, transform by transform.

    Batches never mix transforms: a transposition changes the tile's shape.
    """
    batches: list[list[Job]] = []
    for g in transforms:
        jobs = layout.jobs(g, spatial)
        batches.extend(jobs[i : i + size] for i in range(0, len(jobs), size))
    return batches


def _work(batches: list[list[Job]], spatial: tuple[int, ...], shard: Shard | None) -> list[Work]:
    """The batches this process computes, each with the boxes of each tile it writes.

    Without a shard: every batch, every tile whole. With one: the batches holding a tile that
    meets the shard's chunks, kept whole (the predictor sees the batches of a single-process
    run); a tile of another shard in such a batch gets no boxes.
    """
    if shard is None:
        return [(batch, [None] * len(batch)) for batch in batches]
    work: list[Work] = []
    for batch in batches:
        parts: list[list[Box] | None] = [
            shard.owned_parts(image_region(g, tiles, spatial), spatial) for g, tiles in batch
        ]
        if any(parts):
            work.append((batch, parts))
    return work


def _read_ahead(
    image: Any, batches: Sequence[Sequence[Job]], in_tile: Sequence[int]
) -> Generator[tuple[Sequence[Job], np.ndarray]]:
    """Each batch with its input tiles ``(B, C, *tile)``; the next one is read while fn runs."""
    if not batches:  # a shard that owns no chunk of a small image
        return
    with ThreadPoolExecutor(max_workers=1) as reader:
        future = reader.submit(read_batch, image, batches[0], in_tile)
        for i, batch in enumerate(batches):
            x = future.result()
            if i + 1 < len(batches):
                future = reader.submit(read_batch, image, batches[i + 1], in_tile)
            yield batch, x


def _run(
    fn: Predictor, x: np.ndarray, device: torch.device | str, out_tile: tuple[int, ...]
) -> np.ndarray:
    """``fn`` on the input tiles ``x`` ``(B, C, *tile)``, as float32 ``(B, K, *out_tile)``."""
    t = torch.from_numpy(x).to(device, non_blocking=True)
    y: Any = fn(t)
    if not isinstance(y, torch.Tensor):
        try:
            y = torch.as_tensor(np.asarray(y))
        except (TypeError, ValueError, RuntimeError) as e:
            raise TypeError(
                f"the predictor must return a tensor (or a NumPy array), got {type(y).__name__}"
            ) from e
    expected = (x.shape[0], *out_tile)
    if y.ndim != len(expected) + 1 or (y.shape[0], *y.shape[2:]) != expected:
        raise ValueError(
            f"the predictor returned a tensor of shape {tuple(y.shape)} for input tiles of shape "
            f"{tuple(x.shape)}; expected (B, K, {', '.join(map(str, out_tile))})"
        )
    result: np.ndarray = y.detach().float().cpu().numpy()
    return result


def _channel_count(y: np.ndarray, channels: int | None) -> int:
    """``K`` of the outputs ``y`` ``(B, K, ...)``: the first output sets it, later ones keep it."""
    if channels is None:
        return int(y.shape[1])
    if y.shape[1] != channels:
        raise ValueError(f"the predictor returned {y.shape[1]} channels, expected {channels}")
    return channels


def _result_array(
    out: Any, channels: int, spatial: tuple[int, ...], zero: bool, shard: Shard | None
) -> Any:
    """The ``(K, *S)`` array the tiles go into: ``out`` checked (zeroed to sum into), or new.

    With a ``shard``, only its own chunks of ``out`` are zeroed.
    """
    if out is None:
        return np.zeros((channels, *spatial), dtype=np.float32)
    check_out(out, channels, spatial)
    if zero:
        boxes = [(...,)] if shard is None else [(slice(None), *b) for b in shard.boxes(spatial)]
        for box in boxes:
            out[box] = 0
    return out


class _Callback:
    """The part of a tqdm bar that :func:`tile_apply` uses, reporting to ``fn(done, total)``."""

    def __init__(self, fn: Callable[[int, int], object], total: int) -> None:
        self.fn, self.total, self.done = fn, total, 0
        fn(0, total)

    def update(self, n: int) -> None:
        self.done += n
        self.fn(self.done, self.total)

    def close(self) -> None:
        """Nothing to close."""


def _progress_bar(total: int, enabled: bool | Callable[[int, int], object] | None) -> Any:
    """A tqdm bar over tiles: shown if ``enabled``, hidden if False, tqdm's choice if None.

    A callable ``enabled`` gets ``(done, total)`` instead of a bar.
    """
    from tqdm.auto import tqdm

    if callable(enabled):
        return _Callback(enabled, total)
    return tqdm(total=total, unit="tile", disable=tqdm_disable(enabled), leave=False, desc="tiles")
