"""Checkpoints: written unwrapped, read back with their normalisation, damage detected."""

from pathlib import Path

import pytest
import torch

import biounet
from biounet.checkpoint import load_checkpoint, save_checkpoint


def test_corrupt_and_foreign_checkpoints(tmp_path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(
        ValueError, match=r"junk\.pt: not a readable checkpoint .*corrupt, truncated"
    ):
        biounet.load(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match=r"foreign\.pt: not a biounet checkpoint"):
        biounet.load(tmp_path / "foreign.pt")
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        biounet.load(tmp_path / "missing.pt")
    good = save_checkpoint(tmp_path / "good.pt", biounet.UNet(depth=1, base_width=2))
    good.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ValueError, match="corrupt, truncated"):
        biounet.load(good)


def _flip_a_bit_inside_the_largest_record(path: Path) -> None:
    import struct
    import zipfile

    with zipfile.ZipFile(path) as z:
        info = max(z.infolist(), key=lambda i: i.file_size)
    raw = bytearray(path.read_bytes())
    # the record's data follow its 30-byte local header, file name and extra field
    name, extra = struct.unpack("<HH", raw[info.header_offset + 26 : info.header_offset + 30])
    raw[info.header_offset + 30 + name + extra + info.file_size // 2] ^= 0x10
    path.write_bytes(bytes(raw))


def test_a_flipped_bit_is_detected(tmp_path) -> None:
    good = save_checkpoint(tmp_path / "good.pt", biounet.UNet(depth=2, base_width=8))
    _flip_a_bit_inside_the_largest_record(good)
    torch.load(good, weights_only=True)  # torch alone reads it, with one weight changed
    with pytest.raises(
        ValueError, match=r"good\.pt: corrupt checkpoint \(record '.+' fails its CRC check\)"
    ):
        load_checkpoint(good)
    with pytest.raises(ValueError, match="fails its CRC check"):
        biounet.load(good)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_missing_device_is_not_called_a_corrupt_file(tmp_path) -> None:
    good = save_checkpoint(tmp_path / "good.pt", biounet.UNet(depth=1, base_width=2))
    for call in (
        lambda: load_checkpoint(good, map_location="cuda"),
        lambda: biounet.load(good, device="cuda:1"),
    ):
        with pytest.raises(ValueError, match=r"device 'cuda(:1)?' is not available: no CUDA") as e:
            call()
        assert "corrupt" not in str(e.value)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_checkpoints_load_onto_cuda(tmp_path) -> None:
    net = biounet.UNet(depth=1, base_width=2)
    good = save_checkpoint(tmp_path / "good.pt", net, rng={"torch": torch.get_rng_state()})
    ck = load_checkpoint(good, map_location="cuda")
    assert all(v.is_cuda for v in ck["state_dict"].values())
    assert ck["rng"]["torch"].device.type == "cpu"  # resume state stays on the CPU
    assert next(biounet.load(good, device="cuda").net.parameters()).is_cuda
