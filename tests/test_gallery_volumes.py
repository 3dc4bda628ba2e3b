"""3D images in the report's gallery: orthogonal views through the densest true foreground."""

from __future__ import annotations

import base64
import dataclasses
import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import biounet
from biounet.config import build_config
from biounet.data.io import read_image, write_image
from biounet.data.maps import write_labels
from biounet.data.synthetic import make_nuclei
from biounet.reporting.page import write_report
from biounet.reporting.pictures import (
    GAP,
    GUIDE,
    densest_point,
    ortho_compose,
    ortho_planes,
    orthoview,
    overlay,
    z_stretch,
)

PANELS = ("input", "truth", "prediction", "weights")


def coordinates(shape: tuple[int, int, int]) -> np.ndarray:
    """A volume whose voxel ``(z, y, x)`` holds ``1 + 10000 z + 100 y + x`` (never 0)."""
    z, y, x = np.indices(shape)
    return 1 + 10000 * z + 100 * y + x


# --- the composition ------------------------------------------------------------------------
@pytest.mark.parametrize("stretch", [1, 3])
def test_orthoview_shape_grey_and_rgb(stretch: int) -> None:
    grey = np.zeros((5, 20, 30), np.uint8)
    side = 5 * stretch
    assert orthoview(grey, (2, 10, 15), stretch=stretch).shape == (20 + GAP + side, 30 + GAP + side)
    rgb = np.zeros((5, 20, 30, 3), np.uint8)
    out = orthoview(rgb, (2, 10, 15), stretch=stretch, gap=3)
    assert out.shape == (20 + 3 + side, 30 + 3 + side, 3) and out.dtype == np.uint8


def test_orthoview_puts_the_planes_source_voxels_in_place() -> None:
    nz, ny, nx, k, g = 4, 7, 9, 2, 2
    v = coordinates((nz, ny, nx))
    z, y, x = 1, 5, 3
    out = orthoview(v, (z, y, x), stretch=k, gap=g, guide=None)
    assert out.shape == (ny + g + nz * k, nx + g + nz * k)
    np.testing.assert_array_equal(out[:ny, :nx], v[z])  # YX at z, top left
    for r in range(nz * k):  # ZX at y below it, each z plane repeated k times
        np.testing.assert_array_equal(out[ny + g + r, :nx], v[r // k, y, :])
    for c in range(nz * k):  # ZY at x to the right, z running horizontally
        np.testing.assert_array_equal(out[:ny, nx + g + c], v[c // k, :, x])
    # spot checks against the encoded coordinates
    assert out[2, 6] == 1 + 10000 * z + 100 * 2 + 6
    assert out[ny + g + 5, 8] == 1 + 10000 * (5 // k) + 100 * y + 8
    assert out[4, nx + g + 7] == 1 + 10000 * (7 // k) + 100 * 4 + x
    # the gaps and the bottom-right corner stay dark
    assert not out[ny : ny + g].any() and not out[:, nx : nx + g].any()
    assert not out[ny + g :, nx + g :].any()


def test_ortho_planes_of_an_rgb_volume_and_bad_input() -> None:
    v = np.stack([coordinates((3, 4, 5))] * 3, axis=-1)
    yx, zx, zy = ortho_planes(v, (2, 1, 4))
    assert (yx.shape, zx.shape, zy.shape) == ((4, 5, 3), (3, 5, 3), (4, 3, 3))
    np.testing.assert_array_equal(zy[:, :, 0], v[:, :, 4, 0].T)
    with pytest.raises(ValueError, match=r"outside the volume"):
        ortho_planes(v, (3, 0, 0))
    with pytest.raises(ValueError, match=r"\(Z, Y, X\) or \(Z, Y, X, 3\)"):
        ortho_planes(np.zeros((4, 5)), (0, 0, 0))
    with pytest.raises(ValueError, match=r"stretch must be >= 1"):
        orthoview(np.zeros((3, 4, 5)), (0, 0, 0), stretch=0)


def test_guide_lines_mark_where_the_other_planes_cut() -> None:
    nz, ny, nx, k, g = 4, 10, 12, 3, 2
    z, y, x = 2, 6, 4
    v = np.full((nz, ny, nx, 3), 30, np.uint8)
    out = orthoview(v, (z, y, x), stretch=k, gap=g)
    guide = np.all(out == GUIDE, axis=-1)
    zrow, zcol = ny + g + z * k + k // 2, nx + g + z * k + k // 2  # the middle of plane z
    expected = np.zeros(out.shape[:2], bool)
    expected[y, :] = True  # the ZX plane's cut: row y across YX, the gap and ZY
    expected[:, x] = True  # the ZY plane's cut: column x down YX, the gap and ZX
    expected[zrow, :nx] = True  # the YX plane's cut in ZX ...
    expected[:ny, zcol] = True  # ... and in ZY
    np.testing.assert_array_equal(guide, expected)
    corner = out[ny + g :, nx + g :]
    assert not corner.any()  # the bottom-right corner stays dark
    assert (out[ny : ny + g, nx + 1 :] == 0).all()  # the gap is dark but for the x line
    # grey volumes get the guide's mean; guide=None draws none
    grey = orthoview(np.full((nz, ny, nx), 30.0), (z, y, x), stretch=k, gap=g)
    assert grey[y, 0] == pytest.approx(np.mean(GUIDE)) and grey[y + 1, 0] == 30.0
    assert not (orthoview(v, (z, y, x), guide=None) == GUIDE).all(axis=-1).any()


def test_overlay_per_plane_keeps_colours_across_planes() -> None:
    labels = np.zeros((6, 20, 20), np.int32)
    labels[1:5, 3:9, 3:9] = 1
    labels[2:4, 12:18, 10:16] = 7
    grey = np.full(labels.shape, 0.5, np.float32)
    at = (3, 5, 12)
    pairs = zip(ortho_planes(grey, at), ortho_planes(labels, at))
    planes = tuple(overlay(im, lab, instances=True, scaled=True) for im, lab in pairs)
    out = ortho_compose(planes, at, stretch=2)  # type: ignore[arg-type]
    assert out.shape == (20 + GAP + 12, 20 + GAP + 12, 3)
    # background stays the grey it was given (scaled=True), outlines are yellow
    assert tuple(planes[0][0, 0]) == (128, 128, 128)
    assert (np.all(planes[1] == (255, 255, 0), axis=-1)).any()
    # object 1's interior has the same tint in the YX and ZX planes
    assert tuple(planes[0][5, 5]) == tuple(planes[1][2, 5])


# --- where the planes cut -------------------------------------------------------------------
def test_the_cut_point_is_in_the_dense_foreground() -> None:
    mask = np.zeros((10, 60, 60), np.int32)
    mask[2, 5, 50] = 1  # a lone voxel
    for i, (cy, cx) in enumerate([(40, 10), (40, 18), (48, 14)]):  # a cluster of three nuclei
        mask[4:8, cy - 3 : cy + 3, cx - 3 : cx + 3] = i + 2
    z, y, x = densest_point(mask, sigma=(1.0, 4.0, 4.0))
    assert mask[z, y, x] > 0 and 4 <= z < 8 and 37 <= y < 51 and 7 <= x < 21
    assert densest_point(np.zeros((5, 8, 9))) == (2, 4, 4)  # no foreground: the centre


def test_z_stretch_from_the_spacing() -> None:
    assert z_stretch((2.2, 1.0, 1.0)) == 2 and z_stretch([5, 1, 1]) == 5
    assert z_stretch([3.0, 1.5, 1.5]) == 2  # only the ratio counts
    assert z_stretch([1.4, 1, 1]) == 1 and z_stretch([0.5, 1, 1]) == 1
    assert z_stretch(None) == 1 and z_stretch([]) == 1 and z_stretch([1, 1]) == 1


# --- in the report --------------------------------------------------------------------------
TINY = {
    "model": {"depth": 2, "base_width": 4},
    "tile": 44,
    "batch_size": 2,
    "iterations": 2,
    "val_every": 2,
    "log_every": 2,
    "optim": {"warmup": 0},
}
SHAPE = (12, 40, 40)


@pytest.fixture(scope="module")
def run3d(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    """A tiny 3D run on sparse nuclei, with ``data.spacing`` [2.2, 1, 1]; and the labels."""
    root = tmp_path_factory.mktemp("ortho")
    (root / "data" / "images").mkdir(parents=True)
    (root / "data" / "masks").mkdir()
    labels = {}
    for i in range(4):
        img, lab = make_nuclei(SHAPE, seed=i)
        write_image(root / "data" / "images" / f"n{i}.tif", (img * 255).round().astype(np.uint8))
        write_labels(root / "data" / "masks" / f"n{i}.tif", lab)
        labels[f"n{i}"] = lab
    data = {"path": str(root / "data"), "annotation": "instances", "val_fraction": 0.5,
            "ndim": 3, "spacing": [2.2, 1.0, 1.0]}  # fmt: skip
    biounet.fit(build_config("cpu", overrides=[TINY, {"data": data}]), root / "run", progress=False)
    return root / "run", labels


def panels_of(page: str) -> dict[str, np.ndarray]:
    """The gallery's panels as RGB arrays, by id (``g0-input``, ...)."""
    out = {}
    for tag in re.findall(r'<img[^>]*class="panel[^>]*>', page):
        ident = re.search(r'id="([^"]+)"', tag)
        src = re.search(r'src="data:image/png;base64,([^"]+)"', tag)
        assert ident and src
        im = Image.open(io.BytesIO(base64.b64decode(src.group(1))))
        out[ident.group(1)] = np.asarray(im.convert("RGB"))
    return out


def test_report_shows_3d_images_as_orthogonal_views(
    run3d: tuple[Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    run, labels = run3d
    page = write_report(run, tmp_path / "r.html", n_gallery=1).read_text()
    panels = panels_of(page)
    assert sorted(panels) == [f"g0-{k}" for k in sorted(PANELS)]
    nz, ny, nx = SHAPE
    k = 2  # round(2.2)
    size = (ny + GAP + nz * k, nx + GAP + nz * k, 3)
    assert all(a.shape == size for a in panels.values()), {i: a.shape for i, a in panels.items()}
    assert "slice z =" not in page and "orthogonal views" in page and "z drawn 2×" in page
    name = re.search(r'<div class="sample"><h3>([^<]+)</h3>', page)
    cap = re.search(r"orthogonal views at z = (\d+), y = (\d+), x = (\d+); pixel IoU [0-9.]+", page)
    assert name and cap, page[-2000:]
    z, y, x = (int(v) for v in cap.groups())
    truth = labels[name.group(1)]
    assert truth[z, y, x] > 0  # the planes cut through a nucleus, not empty background
    count = re.search(r"objects: (\d+) true", page)
    assert count and int(count.group(1)) == len(np.unique(truth[truth > 0]))  # the whole crop
    for key, a in panels.items():
        assert not a[ny + GAP :, nx + GAP :].any(), key  # the dark corner
        guide = np.all(a == GUIDE, axis=-1)
        assert guide[y, :].all() and guide[:, x].all(), key  # the cut lines, through the gap
        assert (
            guide[ny + GAP + z * k + k // 2, :nx].all()
            and guide[:ny, nx + GAP + z * k + k // 2].all()
        )
    # the input's YX plane is the volume's plane z (away from the guide lines)
    img = np.asarray(read_image(run.parent / "data" / "images" / f"{name.group(1)}.tif"))
    assert img.shape[-3:] == SHAPE
    yx = panels["g0-input"][:ny, :nx, 0].astype(int)
    off = np.ones((ny, nx), bool)
    off[y, :], off[:, x] = False, False
    corr = np.corrcoef(yx[off], img.reshape(SHAPE)[z][off])[0, 1]
    assert corr > 0.95, corr
    # the truth's outlines are drawn on every plane: yellow in YX, ZX and ZY
    yellow = np.all(panels["g0-truth"] == (255, 255, 0), axis=-1)
    assert yellow[:ny, :nx].any() and yellow[ny + GAP :, :nx].any()
    assert yellow[:ny, nx + GAP :].any()


def test_the_models_spacing_comes_first(
    run3d: tuple[Path, dict[str, np.ndarray]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import biounet.reporting.page.document as document

    real = document.load
    monkeypatch.setattr(
        document, "load", lambda *a, **kw: dataclasses.replace(real(*a, **kw), spacing=(3.0, 1, 1))
    )
    page = write_report(run3d[0], tmp_path / "r.html", n_gallery=1).read_text()
    nz, ny, nx = SHAPE
    sizes = {a.shape for a in panels_of(page).values()}
    assert sizes == {(ny + GAP + 3 * nz, nx + GAP + 3 * nz, 3)} and "z drawn 3×" in page
