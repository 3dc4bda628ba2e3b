"""Training a compiled network: from the start, never, or when the planned run pays for it."""

from __future__ import annotations

import logging

import pytest
import torch

import biounet
import biounet.train.compiling as compiling
from biounet.checkpoint import load_checkpoint
from biounet.config import build_config
from biounet.train.distributed import Ranks

from .conftest import TINY, cells

CPU = torch.device("cpu")


def test_auto_compiles_when_the_planned_iterations_pay_for_it(caplog) -> None:
    caplog.set_level(logging.INFO, "biounet.train.compiling")
    cfg = build_config("cpu")
    assert cfg.compile == "auto"
    # 0.3 s per iteration, 1.15x faster compiled: 45 s of compiling pays after ~1,150
    seconds = [2.0] + [0.3] * 7  # the first, slow iteration is left out of the speed
    assert not compiling.worth_compiling(cfg, seconds, 1000, Ranks(), CPU)
    assert "compile auto: eager (1000 iterations left at 0.30 s" in caplog.text
    assert compiling.worth_compiling(cfg, seconds, 1300, Ranks(), CPU)


def test_a_bad_compile_setting_is_named() -> None:
    with pytest.raises(ValueError, match="compile must be true, false or auto, got 'yes'"):
        build_config("cpu", compile="yes")


def _fit(tmp_path, **overrides):
    cfg = build_config("cpu", overrides=[TINY, {"iterations": 12, **overrides}])
    return cfg, biounet.fit(cfg, tmp_path / "run", samples=cells(3), progress=False)


def test_auto_compiles_mid_run_and_checkpoints_stay_plain(tmp_path, monkeypatch, caplog) -> None:
    caplog.set_level(logging.INFO, "biounet.train.compiling")
    monkeypatch.setitem(compiling.EXPECTED_COMPILE_S, "cpu", 0.0)  # always worth it
    compiled: list[torch.nn.Module] = []
    real = torch.compile

    def trace(net, backend=None):
        compiled.append(net)
        return real(net, backend="eager")

    monkeypatch.setattr(compiling.torch, "compile", trace)
    _, result = _fit(tmp_path)
    assert "compile auto: compiling (4 iterations left" in caplog.text and len(compiled) == 1
    ck = load_checkpoint(result.run / "last.pt")
    assert ck["iteration"] == 12 and not any("_orig_mod" in k for k in ck["state_dict"])


def test_a_compiled_network_that_fails_trains_eagerly(tmp_path, monkeypatch, caplog) -> None:
    class Broken(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("inductor: no C++ compiler\ndetails")

    monkeypatch.setattr(compiling.torch, "compile", lambda net, backend=None: Broken())
    _, result = _fit(tmp_path, compile=True)
    assert "the compiled network failed (inductor: no C++ compiler); training eagerly" in (
        caplog.text
    )
    assert load_checkpoint(result.run / "last.pt")["iteration"] == 12


def test_auto_goes_back_to_eager_when_compiled_steps_are_not_faster(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, "biounet.train.compiling")
    cfg = build_config("cpu", overrides=[TINY])
    real = torch.compile
    monkeypatch.setattr(
        compiling.torch, "compile", lambda net, backend=None: real(net, backend="eager")
    )
    monkeypatch.setattr(compiling, "worth_compiling", lambda *a: True)
    net = torch.nn.Linear(2, 2)
    c = compiling.Compiler(net, cfg, Ranks(), CPU)
    for _ in range(compiling.MEASURED):
        c.measured(0.30, 1000)
    assert c.net is not net  # compiled
    for s in [5.0] + [0.31] * compiling.MEASURED:  # the compile, then no faster
        c.measured(s, 900)
    assert (
        c.net is net
        and "compiled 0.310 s against eager 0.300 s per iteration: back to eager" in caplog.text
    )
    c = compiling.Compiler(net, cfg, Ranks(), CPU)
    for s in [0.3] * compiling.MEASURED + [5.0] + [0.2] * compiling.MEASURED:
        c.measured(s, 900)
    assert c.net is not net and "keeping it" in caplog.text
