"""Safe file writing (biounet.core.files): atomic writes, output folders, stale parts."""

import os
import time

import numpy as np
import pytest

from biounet.core.files import atomic_path, clean_stale_parts, ensure_folder, output_folder
from biounet.data import write_image


def test_atomic_writes_are_flushed_before_the_rename(tmp_path, monkeypatch) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync")
        real_fsync(fd)

    def replace(src, dst) -> None:
        events.append(f"replace {os.path.basename(dst)}")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_image(tmp_path / "a.tif", np.ones((3, 3), np.uint8))
    assert events.index("fsync") < events.index("replace a.tif")


def test_clean_stale_parts(tmp_path) -> None:
    write_image(tmp_path / "keep.tif", np.ones((2, 2), np.uint8))
    (tmp_path / ".best.pt.abc123.part").write_bytes(b"half")  # a killed writer's file
    (tmp_path / ".p.zarr.xyz.part").mkdir()  # and a Zarr writer's folder
    (tmp_path / ".p.zarr.xyz.part" / "c").write_bytes(b"x")
    (tmp_path / "report.part").write_text("not ours: no leading dot")
    (tmp_path / ".fresh.tif.q.part").write_bytes(b"still being written")
    old = time.time() - 3600
    for name in (".best.pt.abc123.part", ".p.zarr.xyz.part"):
        os.utime(tmp_path / name, (old, old))
    removed = clean_stale_parts(tmp_path, min_age=60)
    assert [p.name for p in removed] == [".best.pt.abc123.part", ".p.zarr.xyz.part"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".fresh.tif.q.part",
        "keep.tif",
        "report.part",
    ]
    assert [p.name for p in clean_stale_parts(tmp_path)] == [".fresh.tif.q.part"]
    assert clean_stale_parts(tmp_path / "missing") == []


def test_a_failed_write_leaves_the_old_file_and_no_part(tmp_path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        tmp.write_text("half of the new")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"


def test_atomic_path_replaces_a_folder_whole(tmp_path) -> None:
    target = tmp_path / "store.zarr"
    target.mkdir()
    (target / "old-chunk").write_text("old")
    with atomic_path(target) as tmp:
        tmp.unlink()
        tmp.mkdir()
        (tmp / "new-chunk").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new-chunk"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.zarr"]


def test_atomic_path_needs_an_existing_folder(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="the folder .*missing does not exist"):
        with atomic_path(tmp_path / "missing" / "a.txt"):
            pass


def test_ensure_folder_refuses_a_file_in_the_way(tmp_path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(FileExistsError, match=r"f is a file\. Give a folder path"):
        ensure_folder(tmp_path / "f" / "sub", "run folder")
    assert ensure_folder(tmp_path / "a" / "b").is_dir()


def test_output_folder_removes_only_what_it_created_and_left_empty(tmp_path) -> None:
    (tmp_path / "kept").mkdir()
    with pytest.raises(ValueError, match="early"), output_folder(tmp_path / "kept" / "x" / "y"):
        raise ValueError("early")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]
    assert not any((tmp_path / "kept").iterdir())
    with pytest.raises(ValueError, match="late"), output_folder(tmp_path / "out") as out:
        (out / "result.txt").write_text("work done")
        raise ValueError("late")
    assert (tmp_path / "out" / "result.txt").exists()  # holds files: stays
