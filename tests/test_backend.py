"""How predict runs the network: eager, compiled, or chosen by the work; compiled networks kept."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

import biounet
import biounet.inference.backend as backend
from biounet.segment import PredictOptions, check_options


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    """An empty cache of compiled networks, no compile time measured, a cheap 'compiler'."""
    monkeypatch.setattr(backend, "_cache", type(backend._cache)())
    monkeypatch.setattr(backend, "_measured", {})
    compiled: list[tuple[int, ...]] = []
    real = torch.compile

    def trace(fn, dynamic=None):
        """torch.compile's tracer without code generation; records the shapes it runs."""
        traced = real(fn, backend="eager", dynamic=dynamic)

        def run(x):
            compiled.append(tuple(x.shape))
            return traced(x)

        return run

    monkeypatch.setattr(backend.torch, "compile", trace)
    return compiled


def _net() -> biounet.UNet:
    torch.manual_seed(0)
    return biounet.UNet(depth=2, base_width=4)


IMAGE = np.random.default_rng(0).random((150, 130)).astype(np.float32)


def test_compiled_equals_eager_and_pads_the_last_batch(_fresh) -> None:
    net = _net()
    eager = biounet.predict(net, IMAGE, tile_shape=92, backend="eager")
    assert not _fresh  # eager never compiles
    compiled = biounet.predict(net, IMAGE, tile_shape=92, batch_size=3, backend="compile")
    np.testing.assert_allclose(compiled, eager, atol=1e-6)
    # 3 x 3 tiles of 52 px in batches of 3: the first batch eagerly, then one compiled shape
    assert set(_fresh) == {(3, 1, 92, 92)}


def test_auto_compiles_only_when_it_pays(_fresh, monkeypatch, caplog) -> None:
    net = _net()
    caplog.set_level(logging.DEBUG, "biounet.inference.backend")
    biounet.predict(net, IMAGE, tile_shape=92, backend="auto")
    assert not _fresh and "backend auto: eager (9 tiles" in caplog.text
    monkeypatch.setitem(backend.EXPECTED_COMPILE_S, "cpu", 0.0)  # compiling costs nothing
    result = biounet.predict(net, IMAGE, tile_shape=92, backend="auto")
    assert (
        _fresh and "backend auto: compile" in caplog.text and "compiled the network" in caplog.text
    )
    np.testing.assert_allclose(result, biounet.predict(net, IMAGE, tile_shape=92), atol=1e-6)


def test_a_compiled_network_is_kept_until_its_weights_change(_fresh, monkeypatch) -> None:
    net = _net()
    biounet.predict(net, IMAGE, tile_shape=92, backend="compile")
    monkeypatch.setitem(backend.EXPECTED_COMPILE_S, "cpu", float("inf"))  # never worth it anew
    calls = len(_fresh)
    biounet.predict(net, IMAGE, tile_shape=92, backend="auto")  # already paid for: used
    assert len(_fresh) > calls and len(backend._cache) == 1
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(1.5)
    calls = len(_fresh)
    changed = biounet.predict(net, IMAGE, tile_shape=92, backend="auto")
    assert len(_fresh) == calls  # the kept network holds the old weights: not used
    np.testing.assert_allclose(
        changed, biounet.predict(net, IMAGE, tile_shape=92, backend="eager"), atol=1e-6
    )


def test_a_compiled_network_that_disagrees_falls_back_to_eager(monkeypatch, caplog) -> None:
    monkeypatch.setattr(backend.torch, "compile", lambda fn, dynamic=None: lambda x: fn(x) + 0.01)
    net = _net()
    result = biounet.predict(net, IMAGE, tile_shape=92, backend="compile")
    assert "differs from the eager one by 0.01" in caplog.text
    np.testing.assert_array_equal(result, biounet.predict(net, IMAGE, tile_shape=92))


def test_a_failing_compiler(monkeypatch, caplog) -> None:
    def broken(fn, dynamic=None):
        raise RuntimeError("no C++ compiler found\nmore details")

    monkeypatch.setattr(backend.torch, "compile", broken)
    monkeypatch.setitem(backend.EXPECTED_COMPILE_S, "cpu", 0.0)
    net = _net()
    with pytest.raises(RuntimeError, match="torch.compile failed .no C.. compiler found"):
        biounet.predict(net, IMAGE, tile_shape=92, backend="compile")
    result = biounet.predict(net, IMAGE, tile_shape=92, backend="auto")  # auto: falls back
    assert "torch.compile failed (no C++ compiler found); predicting eagerly" in caplog.text
    np.testing.assert_array_equal(result, biounet.predict(net, IMAGE, tile_shape=92))


def test_transposed_tiles_get_their_own_compiled_shape(_fresh) -> None:
    net = _net()
    image = IMAGE[:100]  # tiles fitted to 100 x 130 px are not square
    eager = biounet.predict(net, image, tta=True, backend="eager")
    compiled = biounet.predict(net, image, tta=True, backend="compile")
    np.testing.assert_allclose(compiled, eager, atol=1e-6)
    shapes = {s[2:] for s in _fresh}
    assert len(shapes) == 2 and {tuple(reversed(s)) for s in shapes} == shapes


def test_a_wrong_backend_is_named() -> None:
    with pytest.raises(ValueError, match="backend must be one of auto, eager, compile, got 'jit'"):
        biounet.predict(_net(), IMAGE, backend="jit")
    with pytest.raises(ValueError, match="backend"):
        check_options(_net(), PredictOptions(backend="jit"))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # inductor's own, under -W error
@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_inductor_with_freezing_matches_eager(monkeypatch) -> None:
    monkeypatch.undo()  # the real compiler
    backend._cache.clear()
    net = _net()
    eager = biounet.predict(net, IMAGE, tile_shape=92, backend="eager")
    try:
        compiled = biounet.predict(net, IMAGE, tile_shape=92, backend="compile")
    except RuntimeError as e:  # no C++ toolchain on this machine
        pytest.skip(str(e))
    np.testing.assert_allclose(compiled, eager, atol=backend.TOLERANCE)
    backend._cache.clear()
