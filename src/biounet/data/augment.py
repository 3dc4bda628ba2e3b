"""Data augmentation, the paper's first: elastic deformation, plus geometry and grey values.

Ronneberger et al. (2015): "smooth deformations using random displacement vectors on a coarse
3 by 3 grid. The displacements are sampled from a Gaussian distribution with 10 pixels standard
deviation. Per-pixel displacements are then computed using bicubic interpolation."

The design splits the random draw from its application: :func:`draw` makes a
:class:`Params` (one draw, from a NumPy generator), :func:`sampling_grid` turns it into source
coordinates for every pixel of a tile, and :func:`warp` resamples any array at those
coordinates with the interpolation that suits it (cubic or linear for images, nearest for
labels and masks, linear for weight maps). The same draw is thus applied identically to the
image, labels, weights and ignore mask. Resampling uses ``torch.nn.functional.grid_sample``, and
:func:`warp` and :func:`intensity` create every tensor they need (coordinates, sizes, blur
kernels, noise) on the input's device, so they run on a data-loader worker's CPU or on the
training device (noise is drawn on the CPU from the draw's seed and moved, so it is the same
on every device). 2D and 3D.

Coordinates are in pixels, axis order as the arrays (``(y, x)`` in 2D, ``(z, y, x)`` in 3D).
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from biounet.core.checks import look_up

__all__ = [
    "AugmentConfig",
    "Params",
    "draw",
    "elastic_field",
    "intensity",
    "resample",
    "sampling_grid",
    "to_grid",
    "warp",
]


@dataclass(frozen=True)
class AugmentConfig:
    """What to randomise, and how much. Zero / False / (1, 1) switches a part off.

    Attributes
    ----------
    elastic_sigma : float
        Standard deviation (px) of the coarse-grid displacements (the paper: 10).
    elastic_grid : int
        Grid points per axis spanning the tile (the paper: 3).
    flip : bool
        Random flips of every axis and, in 2D, transposition (with flips: the 8 rotations/flips).
    rotate : float
        Maximum in-plane rotation, degrees (uniform in ``[-rotate, rotate]``).
    scale : tuple of float
        Range of isotropic scaling (log-uniform).
    shift : float
        Maximum sub-tile shift, px (uniform per axis; tile positions are random anyway).
    brightness : float
        Maximum additive change, in normalised intensity units.
    contrast : tuple of float
        Range of the multiplicative contrast change around the tile mean.
    gamma : tuple of float
        Range of the gamma exponent (applied to the tile's min-max range).
    noise : float
        Maximum standard deviation of additive Gaussian noise (drawn uniformly up to it).
    blur : float
        Maximum Gaussian blur sigma, px (drawn uniformly; with probability ``blur_p``).
    blur_p : float
        Probability of blurring.
    image_interp : {"cubic", "linear"}
        Image resampling (cubic in 2D; 3D falls back to linear, which torch offers).
    spacing : tuple of float, optional
        Voxel size per axis relative to the finest (e.g. ``(2.2, 1, 1)``). Elastic
        displacements and shifts along an axis are divided by it (``elastic_sigma`` and
        ``shift`` are px of the finest axis, the same length along every axis), and the y-x
        plane is neither rotated nor transposed when its two axes differ by 1.5x or more.
        None: isotropic.
    """

    elastic_sigma: float = 10.0
    elastic_grid: int = 3
    flip: bool = True
    rotate: float = 180.0
    scale: tuple[float, float] = (0.9, 1.1)
    shift: float = 0.0
    brightness: float = 0.1
    contrast: tuple[float, float] = (0.8, 1.25)
    gamma: tuple[float, float] = (0.8, 1.25)
    noise: float = 0.03
    blur: float = 1.0
    blur_p: float = 0.2
    image_interp: str = "cubic"
    spacing: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        look_up(self.image_interp, ("cubic", "linear"), "image interpolation")
        if self.spacing is not None:
            spacing = tuple(float(s) for s in self.spacing)
            if not spacing or not all(math.isfinite(s) and s > 0 for s in spacing):
                raise ValueError(f"augment.spacing must be positive numbers, got {self.spacing}")
            object.__setattr__(self, "spacing", spacing)
        if self.elastic_grid < 2:
            raise ValueError(
                f"elastic_grid needs at least 2 points per axis, got {self.elastic_grid}"
            )
        for name in ("scale", "contrast", "gamma"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"{name} must be a range 0 < low <= high, got {(lo, hi)}")

    @classmethod
    def off(cls) -> AugmentConfig:
        """No augmentation at all (the identity)."""
        return cls(0.0, 3, False, 0.0, (1.0, 1.0), 0.0, 0.0, (1.0, 1.0), (1.0, 1.0), 0.0, 0.0, 0.0)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (for YAML)."""
        return asdict(self)


@dataclass
class Params:
    """One random draw: a linear map, a shift, a coarse displacement grid, grey-value changes."""

    matrix: np.ndarray  # (ndim, ndim): output offset from the centre -> source offset
    shift: np.ndarray  # (ndim,), px
    coarse: np.ndarray  # (ndim, g, g[, g]) displacement, px
    brightness: float = 0.0
    contrast: float = 1.0
    gamma: float = 1.0
    noise: float = 0.0
    blur: float = 0.0
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def draw(cfg: AugmentConfig, ndim: int, rng: np.random.Generator) -> Params:
    """Draw one set of augmentation parameters for an ``ndim``-D tile."""
    m = np.eye(ndim)
    step = np.ones(ndim) if cfg.spacing is None else np.asarray(cfg.spacing[-ndim:], np.float64)
    if len(step) != ndim:
        raise ValueError(f"augment.spacing {cfg.spacing} has no value per axis of a {ndim}D tile")
    square = max(step[-2:]) < 1.5 * min(step[-2:])  # the y-x plane may turn
    if cfg.flip:
        if ndim == 2 and square and rng.random() < 0.5:
            m = m[::-1].copy()  # transpose: with the flips below, the 8 symmetries of the square
        m = m * rng.choice([-1.0, 1.0], size=(ndim, 1))
    if cfg.rotate and square:
        a = math.radians(rng.uniform(-cfg.rotate, cfg.rotate))
        r = np.eye(ndim)
        r[-2:, -2:] = [[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]  # in the y-x plane
        m = r @ m
    lo, hi = cfg.scale
    m = m * math.exp(rng.uniform(math.log(lo), math.log(hi)))
    shift = rng.uniform(-cfg.shift, cfg.shift, size=ndim) if cfg.shift else np.zeros(ndim)
    coarse = rng.normal(0.0, cfg.elastic_sigma, size=(ndim, *(cfg.elastic_grid,) * ndim))
    if not cfg.elastic_sigma:
        coarse = np.zeros_like(coarse)
    # the same physical length along every axis: fewer voxels along a coarse one
    shift, coarse = shift / step, coarse / step.reshape((ndim,) + (1,) * ndim)
    return Params(
        matrix=m,
        shift=shift,
        coarse=coarse,
        brightness=rng.uniform(-cfg.brightness, cfg.brightness) if cfg.brightness else 0.0,
        contrast=_loguniform(rng, cfg.contrast),
        gamma=_loguniform(rng, cfg.gamma),
        noise=rng.uniform(0.0, cfg.noise) if cfg.noise else 0.0,
        blur=rng.uniform(0.0, cfg.blur) if cfg.blur and rng.random() < cfg.blur_p else 0.0,
        seed=int(rng.integers(2**31)),
    )


def _loguniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    lo, hi = bounds
    return 1.0 if lo == hi else math.exp(rng.uniform(math.log(lo), math.log(hi)))


@functools.lru_cache(maxsize=64)
def _cubic_matrix(n_coarse: int, n_fine: int) -> np.ndarray:
    """``(n_fine, n_coarse)`` cubic-convolution (Keys, a=-0.5) interpolation weights.

    The coarse points span the fine axis end to end (first and last pixels); values beyond the
    ends are extrapolated linearly, which keeps a constant or linear field exact. Cached (the
    tile shape rarely changes) and read-only.
    """
    t = np.linspace(0.0, n_coarse - 1, n_fine) if n_fine > 1 else np.zeros(1)

    def kernel(x: np.ndarray) -> np.ndarray:
        x = np.abs(x)
        return np.where(
            x <= 1,
            1.5 * x**3 - 2.5 * x**2 + 1,
            np.where(x < 2, -0.5 * x**3 + 2.5 * x**2 - 4 * x + 2, 0.0),
        )

    w = np.zeros((n_fine, n_coarse))
    base = np.floor(t).astype(int)
    for off in (-1, 0, 1, 2):
        k = base + off
        wk = kernel(t - k)
        # points outside 0..n-1: linear extrapolation p[-1] = 2 p[0] - p[1], likewise at the end
        for j, kj in enumerate(k):
            if kj < 0:
                w[j, 0] += 2 * wk[j]
                w[j, 1] -= wk[j]
            elif kj >= n_coarse:
                w[j, n_coarse - 1] += 2 * wk[j]
                w[j, n_coarse - 2] -= wk[j]
            else:
                w[j, kj] += wk[j]
    w.setflags(write=False)
    return w


def elastic_field(coarse: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Smooth per-pixel displacements ``(ndim, *shape)`` from a coarse grid by cubic interpolation.

    ``coarse`` has shape ``(ndim, g, ..., g)``; its points span the tile corner to corner.
    """
    field_ = coarse
    for axis, n in enumerate(shape):
        w = _cubic_matrix(coarse.shape[axis + 1], n)
        # einsum, not tensordot: numpy's BLAS threads would spin on and slow the training
        # step that follows on a small CPU (measured: +35% for the cpu preset on 2 cores)
        field_ = np.moveaxis(
            np.einsum("ng,g...->n...", w, np.moveaxis(field_, axis + 1, 0)), 0, axis + 1
        )
    return field_


def sampling_grid(params: Params, shape: tuple[int, ...], centre: np.ndarray) -> np.ndarray:
    """Source coordinates ``(ndim, *shape)`` (px, image axes) for every pixel of a tile.

    Pixel ``p`` of the tile, at offset ``q = p - (shape - 1) / 2`` from its centre, reads the
    source at ``centre + matrix @ q + shift + displacement(p)``. With no draw (identity matrix,
    zero shift and displacement) and a centre on the pixel grid, this is an exact crop.
    """
    ndim = len(shape)
    q = _centred_offsets(tuple(int(n) for n in shape))  # (ndim, *shape)
    coords: np.ndarray = np.einsum("ij,j...->i...", params.matrix, q)  # no BLAS (elastic_field)
    coords += (np.asarray(centre, np.float64) + params.shift).reshape((ndim,) + (1,) * ndim)
    if params.coarse.any():
        coords += elastic_field(params.coarse, shape)
    return coords


@functools.lru_cache(maxsize=8)
def _centred_offsets(shape: tuple[int, ...]) -> np.ndarray:
    """``(ndim, *shape)`` float64 offsets of each pixel from the tile centre (cached, read-only)."""
    axes = [np.arange(n, dtype=np.float64) - (n - 1) / 2 for n in shape]
    q = np.stack(np.meshgrid(*axes, indexing="ij"))
    q.setflags(write=False)
    return q


def warp(array: torch.Tensor, coords: np.ndarray | torch.Tensor, mode: str) -> torch.Tensor:
    """Resample ``array (C, *S)`` at ``coords (ndim, *T)`` (px in ``array``'s frame).

    ``mode``: ``"cubic"`` (2D only; 3D uses linear), ``"linear"`` or ``"nearest"``. Coordinates
    outside the array are mirrored at its borders. Returns ``(C, *T)`` in ``array``'s dtype
    (labels come back exactly: nearest-neighbour on integers stored as float).
    ``warp(a, c, m) == resample(a, to_grid(c, a.shape[1:], a.device), m)``; arrays of one shape
    resampled at the same coordinates can share one :func:`to_grid`.
    """
    return resample(array, to_grid(coords, tuple(array.shape[1:]), array.device), mode)


def to_grid(
    coords: np.ndarray | torch.Tensor, sizes: tuple[int, ...], device: torch.device | str
) -> torch.Tensor:
    """``grid_sample``'s grid ``(1, *T, ndim)`` (x first, in [-1, 1]) for px ``coords (ndim, *T)``.

    ``sizes``: the spatial shape of the arrays to resample. The grid is float64 (float32 on
    MPS), so nearest-neighbour resampling of labels is exact; a crop of the grid
    (``grid[:, y0:y1, x0:x1]``) resamples at the cropped coordinates.
    """
    dev = torch.device(device)
    ndim = len(sizes)
    wide = _wide_float(dev)
    c = torch.as_tensor(coords, dtype=wide, device=dev)
    n = torch.tensor(sizes, dtype=wide, device=dev).reshape((ndim,) + (1,) * ndim)
    norm = torch.where(n > 1, 2 * c / (n - 1).clamp(min=1) - 1, torch.zeros_like(c))
    return norm.flip(0).permute(*range(1, ndim + 1), 0)[None]  # grid_sample wants (x, y[, z])


def resample(array: torch.Tensor, grid: torch.Tensor, mode: str) -> torch.Tensor:
    """Resample ``array (C, *S)`` on a :func:`to_grid` grid ``(1, *T, ndim)``; see :func:`warp`."""
    ndim = array.ndim - 1
    torch_mode = {"cubic": "bicubic" if ndim == 2 else "bilinear", "linear": "bilinear"}.get(
        mode, mode
    )
    wide = grid.dtype
    x = array[None].to(wide if mode == "nearest" else torch.float32)
    out = F.grid_sample(
        x, grid.to(x.dtype), mode=torch_mode, padding_mode="reflection", align_corners=True
    )
    return out[0].to(array.dtype)


def _wide_float(device: torch.device) -> torch.dtype:
    """float64 for coordinates (exact nearest-neighbour labels), where the device has it."""
    return torch.float32 if device.type == "mps" else torch.float64


def intensity(image: torch.Tensor, params: Params) -> torch.Tensor:
    """Grey-value changes on ``image (C, *S)`` float: gamma, contrast, brightness, blur, noise.

    Runs on ``image``'s device; the noise is drawn on the CPU from ``params.seed`` and moved
    there, so a draw gives the same noise on every device.
    """
    x = image
    if params.gamma != 1.0:
        lo, hi = x.amin(), x.amax()
        span = (hi - lo).clamp(min=1e-6)
        x = ((x - lo) / span).clamp(min=0) ** params.gamma * span + lo
    if params.contrast != 1.0:
        mean = x.mean(dim=tuple(range(1, x.ndim)), keepdim=True)
        x = (x - mean) * params.contrast + mean
    if params.brightness:
        x = x + params.brightness
    if params.blur > 0:
        x = _gaussian_blur(x, params.blur)
    if params.noise > 0:
        g = torch.Generator().manual_seed(params.seed)
        noise = torch.randn(x.shape, generator=g, dtype=x.dtype)
        x = x + params.noise * noise.to(x.device)
    return x


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    ndim = x.ndim - 1
    y = x[None]  # (1, C, *S): blur each channel separately along each axis
    conv = {2: F.conv2d, 3: F.conv3d}[ndim]
    c = x.shape[0]
    for axis in range(ndim):
        shape = [1] * ndim
        shape[axis] = 2 * radius + 1
        pad = [0, 0] * ndim
        pad[2 * (ndim - 1 - axis)] = pad[2 * (ndim - 1 - axis) + 1] = radius
        mode = "reflect" if min(y.shape[2:]) > radius else "replicate"
        y = conv(
            F.pad(y, pad, mode=mode), k.reshape(1, 1, *shape).repeat(c, 1, *[1] * ndim), groups=c
        )
    return y[0]
