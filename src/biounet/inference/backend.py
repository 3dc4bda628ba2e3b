"""How ``predict`` runs the network: eagerly, or compiled by ``torch.compile`` where that pays.

Compiling (inductor, with ``freezing``: weights folded into the compiled code) makes each tile
faster but costs time up front: on the 2-core CPU of ``benchmarks/compile.py`` 7-25 s (warm or
cold inductor cache) for 1.07-1.2x faster tiles, so it pays only for images of a few hundred
tiles. ``backend="auto"`` decides per call from the work to do:

1. the first batch runs eagerly and is timed;
2. the remaining tiles' eager time is estimated from it, and compiling is chosen when the time
   it saves (at the speed-up expected on this device) exceeds the compile time expected (the
   last compile measured in this process, else a stated default) for every tile shape;
3. a compiled network is checked on that first batch against the eager output: probabilities
   that differ by more than :data:`TOLERANCE` fall back to eager with a warning.

A compiled network is kept (a few, most recent first) for later calls with the same network,
weights, tile shape, batch size, device, dtype and memory format, and is then always used: its
cost is paid. The choice and the compile time are logged.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import torch

from biounet.core.runtime import share_cores

__all__ = ["BACKENDS", "TOLERANCE", "TileRunner"]

log = logging.getLogger(__name__)

#: the choices of ``predict(backend=...)`` and ``biounet predict --backend``
BACKENDS = ("auto", "eager", "compile")
#: the largest difference of a compiled network's probabilities from eager ones that is accepted
TOLERANCE = 1e-4
#: the speed-up of compiled over eager tiles expected before one is measured (by device type;
#: measured on a 2-core CPU: narrow 1.17x, the paper's net 1.07x, channels-last eager)
EXPECTED_SPEEDUP = {"cpu": 1.1, "cuda": 1.2}
#: the compile time expected before one is measured in this process, s (by device type)
EXPECTED_COMPILE_S = {"cpu": 20.0, "cuda": 60.0}
#: compiled networks kept for later calls
KEEP = 4

Tiles = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class _Compiled:
    """A compiled tile function and the network it was made from (weakly)."""

    net: weakref.ref[torch.nn.Module]
    fn: Tiles


_cache: OrderedDict[Hashable, _Compiled] = OrderedDict()
_measured: dict[str, float] = {}  #: the last compile time measured, s, by device type


def _weights_key(net: torch.nn.Module) -> tuple[tuple[int, int], ...]:
    """Identifies the network's current weights.

    A weight changed in place (an optimiser step, ``load_state_dict``, batch-norm statistics
    updated) bumps its tensor's version; moving the network between devices or memory formats
    does not change it (the values stay).
    """
    tensors = [*net.parameters(), *net.buffers()]
    return tuple((id(t), t._version) for t in tensors)


class TileRunner:
    """The tile function of one ``predict`` call: eager, compiled, or chosen by the work.

    Parameters
    ----------
    net : torch.nn.Module
        The network, in eval mode on its device, in its memory format.
    forward : callable
        The eager tile function: input tiles ``(B, C, *tile)`` -> probabilities
        ``(B, K, *out_tile)`` float32 (the network's forward and a softmax).
    backend : {"auto", "eager", "compile"}
        How to run it; see the module docstring.
    device : torch.device
    batch_size : int
        Tiles per call; a smaller last batch is padded to it, so one compiled graph serves.
    """

    def __init__(
        self,
        net: torch.nn.Module,
        forward: Tiles,
        backend: str,
        device: torch.device,
        batch_size: int,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        self.net, self.forward, self.backend = net, forward, backend
        self.device, self.batch = device, batch_size
        self.tiles, self.shapes = 0, 1  #: the work, as the tiler plans it (:meth:`plan`)
        self.done = 0
        self.compiled: dict[tuple[int, ...], Tiles | None] = {}
        self.chosen = "eager" if backend == "eager" else None

    def plan(self, tiles: int, shapes: int) -> None:
        """The work, told by the tiler before the first tile.

        ``tiles`` to compute (this process's, test-time transforms included), in ``shapes``
        different input tile shapes.
        """
        self.tiles, self.shapes = tiles, shapes

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities ``(B, K, *out_tile)`` float32 for input tiles ``x`` ``(B, C, *tile)``."""
        n = x.shape[0]
        self.done += n
        if self.device.type == "cpu":
            share_cores()  # fewer threads while other processes take cores
        if self.chosen == "eager":
            return self.forward(x)
        shape = tuple(x.shape[1:])
        if shape in self.compiled:
            fn = self.compiled[shape]
            return self.forward(x) if fn is None else _padded(fn, x, self.batch)
        # the first batch of this shape: eager, timed; then decide and compile
        began = time.perf_counter()
        y = self.forward(x)
        eager_s = (time.perf_counter() - began) / n
        if self.chosen is None:
            self.chosen = self._choose(eager_s, shape)
            if self.chosen == "eager":
                return y
        self.compiled[shape] = self._compile(x, y)
        return y

    def _choose(self, tile_s: float, shape: tuple[int, ...]) -> str:
        """``"compile"`` if compiling saves more time than it costs, else ``"eager"``."""
        if self.backend == "compile" or self._kept(self._key(shape)) is not None:
            return "compile"
        kind = self.device.type
        speedup = EXPECTED_SPEEDUP.get(kind, 1.0)
        cost = _measured.get(kind, EXPECTED_COMPILE_S.get(kind, float("inf"))) * self.shapes
        saved = (self.tiles - self.done) * tile_s * (1.0 - 1.0 / speedup)
        choice = "compile" if saved > cost else "eager"
        # compiling is news; eager for a small image (every validation image) is not
        log.log(
            logging.INFO if choice == "compile" else logging.DEBUG,
            "backend auto: %s (%d tiles at %.3f s each; compiling would save ~%.0f s and cost "
            "~%.0f s)", choice, self.tiles, tile_s, saved, cost,
        )  # fmt: skip
        return choice

    def _key(self, shape: tuple[int, ...]) -> Hashable:
        """What a compiled network is kept under: network, weights, shapes, device, dtype."""
        first = next(self.net.parameters())
        fmt = "channels_last" if first.dim() == 4 and first.is_contiguous(
            memory_format=torch.channels_last
        ) else "contiguous"  # fmt: skip
        return (id(self.net), _weights_key(self.net), self.batch, shape, str(self.device),
                first.dtype, fmt)  # fmt: skip

    def _kept(self, key: Hashable) -> Tiles | None:
        """The compiled tile function kept under ``key`` for this network (the latest now)."""
        kept = _cache.get(key)
        if kept is None or kept.net() is not self.net:
            return None
        _cache.move_to_end(key)
        return kept.fn

    def _compile(self, x: torch.Tensor, eager: torch.Tensor) -> Tiles | None:
        """The compiled tile function for ``x``'s shape, checked against ``eager``; None: eager."""
        key = self._key(tuple(x.shape[1:]))
        kept = self._kept(key)
        if kept is not None:
            return kept
        began = time.perf_counter()
        try:
            import torch._inductor.config as inductor

            with inductor.patch(freezing=True):
                fn: Tiles = torch.compile(self.forward, dynamic=False)
                y = _padded(fn, x, self.batch)
        except Exception as e:  # no C++ compiler, an unsupported operation, ...
            if self.backend == "compile":
                raise RuntimeError(f"torch.compile failed ({e}); use backend='eager'") from e
            log.warning("torch.compile failed (%s); predicting eagerly", str(e).splitlines()[0])
            return None
        seconds = time.perf_counter() - began
        _measured[self.device.type] = seconds
        diff = float((y - eager).abs().max())
        if not diff <= TOLERANCE:
            log.warning("the compiled network differs from the eager one by %.2g (more than "
                        "%.0e); predicting eagerly", diff, TOLERANCE)  # fmt: skip
            return None
        log.info("compiled the network for tiles %s in %.1f s (max. difference %.1e)",
                 tuple(x.shape[1:]), seconds, diff)  # fmt: skip
        _cache[key] = _Compiled(weakref.ref(self.net), fn)
        while len(_cache) > KEEP:
            _cache.popitem(last=False)
        return fn


def _padded(fn: Tiles, x: torch.Tensor, batch: int) -> torch.Tensor:
    """``fn(x)`` for a batch ``x`` of up to ``batch`` tiles, padded with zeros to ``batch``."""
    n = x.shape[0]
    if n == batch:
        return fn(x)
    return fn(torch.cat([x, x.new_zeros((batch - n, *x.shape[1:]))]))[:n]
