"""The HTML report of a run: self-contained, complete, and really rendered by a browser."""

import base64
import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import biounet
from biounet.config import build_config
from biounet.data.io import write_image
from biounet.data.maps import write_labels
from biounet.data.synthetic import make_dataset
from biounet.reporting.page import write_report
from biounet.reporting.tables import write_reports

TINY = {
    "model": {"depth": 2, "base_width": 4},
    "tile": 44,
    "batch_size": 2,
    "iterations": 4,
    "val_every": 2,
    "log_every": 2,
    "optim": {"warmup": 0},
}
PANELS = ("input", "truth", "prediction", "weights")
SRC = re.compile(r"""\b(src|href)\s*=\s*["']([^"']*)["']""")


def write_data(root: Path, shape: tuple[int, ...]) -> Path:
    """4 synthetic cell images with instance labels as images/ + masks/."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    ext = ".png" if len(shape) == 2 else ".tif"
    for i, (img, lab) in enumerate(make_dataset("cells", n=4, shape=shape, seed=0)):
        write_image(root / "images" / f"c{i}{ext}", (img * 255).round().astype(np.uint8))
        write_labels(root / "masks" / f"c{i}{ext}", lab)
    return root


def train(root: Path, shape: tuple[int, ...]) -> Path:
    data = write_data(root / "data", shape)
    settings = {"path": str(data), "annotation": "instances", "val_fraction": 0.5}
    cfg = build_config("cpu", overrides=[TINY, {"data": {**settings, "ndim": len(shape)}}])
    biounet.fit(cfg, root / "run", progress=False)
    return root / "run"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny 2D run (2 training, 2 validation images of 64 x 64 px)."""
    return train(tmp_path_factory.mktemp("report"), (64, 64))


def copy_run(run: Path, dest: Path) -> Path:
    return Path(shutil.copytree(run, dest / "run"))


def images_of(page: str, cls: str) -> dict[str, Image.Image]:
    """The decoded PNG of every <img> of CSS class ``cls``, by id."""
    out = {}
    for tag in re.findall(r"<img[^>]*>", page):
        if f'class="{cls}' not in tag:
            continue
        ident = re.search(r'id="([^"]+)"', tag)
        src = re.search(r'src="data:image/png;base64,([^"]+)"', tag)
        assert ident and src and re.search(r'alt="[^"]+"', tag), tag[:200]
        im = Image.open(io.BytesIO(base64.b64decode(src.group(1))))
        im.load()
        assert im.format == "PNG"
        out[ident.group(1)] = im
    return out


def test_page_is_self_contained_with_all_sections(run: Path, tmp_path: Path) -> None:
    path = write_report(run, tmp_path / "page.html")
    assert path == tmp_path / "page.html" and sorted(p.name for p in tmp_path.iterdir()) == [
        "page.html"
    ]
    page = path.read_text(encoding="utf-8")
    # self-contained: every src is embedded, every link stays in the page
    refs = SRC.findall(page)
    assert refs and "http://" not in page and "https://" not in page
    for attr, value in refs:
        assert value.startswith("data:image/png;base64," if attr == "src" else "#"), value[:60]
    assert "<link" not in page and "@import" not in page and "<script src" not in page
    # header and configuration
    assert "<h1>run</h1>" in page and "narrow U-Net (depth 2, width 4" in page
    for key, value in [("model.base_width", "4"), ("data.annotation", "instances"),
                       ("optim.name", "adamw"), ("tile", "44"), ("iterations", "4")]:  # fmt: skip
        assert f"<td>{key}</td><td>{value}</td>" in page
    # validation history from metrics.jsonl: iterations 2 and 4, one marked best, one last
    table = page.split("Validation during training")[1].split("</table>")[0]
    assert re.search(r"<td>2</td>(<td>[0-9.]+</td>){4}", table)
    assert re.search(r"<td>4</td>(<td>[0-9.]+</td>){4}", table)
    assert table.count('class="best"') == 1 and "last</td>" in table
    # instance annotations: best.pt is chosen by AP@0.5
    assert "best validation ap_50" in page and "final training loss" in page
    # learning curves and the gallery: 2 validation images x 4 panels of the 64 x 64 crops
    curves = images_of(page, "plot")
    assert list(curves) == ["learning-curves"] and curves["learning-curves"].width >= 600
    panels = images_of(page, "panel")
    assert sorted(panels) == sorted(f"g{i}-{k}" for i in range(2) for k in PANELS)
    assert all(im.size == (64, 64) for im in panels.values())
    assert {panels["g0-truth"].mode, panels["g0-weights"].mode} == {"RGB"}
    assert panels["g0-input"].mode == "L" and np.asarray(panels["g0-input"]).std() > 10
    assert "each instance outlined" in page and "objects:" in page
    assert len(images_of(page, "colorbar")) == 1
    assert 'data-images-loaded="pending"' in page and "imagesLoaded" in page


def test_evaluation_json_and_default_output(run: Path, tmp_path: Path) -> None:
    copy = copy_run(run, tmp_path)
    rows = [{"image": "held-out-7", "precision": 0.75, "recall": 0.5, "f1": 0.6, "objects": 12}]
    summary = {"images": 1, "f1": 0.123456, "mean_ap": float("nan"), "pooled_iou": 0.5}
    write_reports(rows, summary, json_path=copy / "evaluation.json")
    path = write_report(copy, n_gallery=1)
    assert path == copy / "report.html"
    assert not list(copy.glob(".report.html.*"))  # the atomic write left no temporary file
    page = path.read_text(encoding="utf-8")
    evaluation = page.split("Evaluation (evaluation.json)")[1].split("Validation during")[0]
    assert "<td>held-out-7</td><td>0.75</td><td>0.5</td><td>0.6</td><td>12</td>" in evaluation
    assert "<td>f1</td><td>0.1235</td>" in evaluation and "<td>mean_ap</td><td>–</td>" in page
    assert "test f1" in page and "test pooled_iou" in page
    assert len(images_of(page, "panel")) == 4  # n_gallery=1


def test_gallery_notes_instead_of_images(run: Path, tmp_path: Path) -> None:
    page = write_report(run, tmp_path / "none.html", n_gallery=0).read_text()
    assert "No gallery (n_gallery = 0)" in page and not images_of(page, "panel")
    copy = copy_run(run, tmp_path)
    cfg = yaml.safe_load((copy / "config.yaml").read_text())
    cfg["data"]["path"] = str(tmp_path / "gone")
    (copy / "config.yaml").write_text(yaml.safe_dump(cfg))
    page = write_report(copy).read_text()
    assert (
        "No gallery: the training data is not readable" in page and str(tmp_path / "gone") in page
    )
    assert not images_of(page, "panel") and images_of(page, "plot")


def test_data_path_relative_to_the_run(tmp_path: Path, run: Path) -> None:
    copy = copy_run(run, tmp_path)
    shutil.copytree(Path(yaml.safe_load((run / "config.yaml").read_text())["data"]["path"]),
                    copy / "data")  # fmt: skip
    cfg = yaml.safe_load((copy / "config.yaml").read_text())
    cfg["data"]["path"] = "data"  # written relative to the run, read from another directory
    (copy / "config.yaml").write_text(yaml.safe_dump(cfg))
    page = write_report(copy, n_gallery=1).read_text()
    assert len(images_of(page, "panel")) == 4


def test_3d_run_shows_orthogonal_views(tmp_path: Path) -> None:
    run3 = train(tmp_path, (12, 40, 40))
    page = write_report(run3, n_gallery=1).read_text()
    panels = images_of(page, "panel")
    # YX plane 40 x 40, a 2 px gap, then the ZY / ZX planes 12 px (no spacing: no stretch)
    assert len(panels) == 4 and all(im.size == (54, 54) for im in panels.values())
    assert "orthogonal views at z = " in page


def test_not_a_run_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nowhere: no such run folder"):
        write_report(tmp_path / "nowhere")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ValueError, match=r"file.txt: a file; expected a run folder"):
        write_report(tmp_path / "file.txt")
    with pytest.raises(FileNotFoundError, match=r"not a biounet run folder \(no config.yaml\)"):
        write_report(tmp_path)
    (tmp_path / "config.yaml").write_text("iterations: 4\n")
    with pytest.raises(FileNotFoundError, match=r"no checkpoint \(best.pt or last.pt\)"):
        write_report(tmp_path)


def test_negative_gallery_size(run: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"n_gallery must be >= 0, got -1"):
        write_report(run, tmp_path / "x.html", n_gallery=-1)


@pytest.mark.parametrize("name", ["r.pdf", "r.png", "report"])
def test_report_file_must_be_html(run: Path, tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match=rf"{name}: the report is an HTML page; .* \.html"):
        write_report(run, tmp_path / name)
    assert list(tmp_path.iterdir()) == []
    assert write_report(run, tmp_path / "R.HTM", n_gallery=0).exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_not_a_corrupt_checkpoint(run: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'cuda' is not available") as info:
        write_report(run, tmp_path / "x.html", device="cuda")
    assert "corrupt" not in str(info.value) and not (tmp_path / "x.html").exists()


def test_gallery_predicts_on_the_device_with_progress_unchanged(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import biounet.inference.predictor

    calls: list[tuple[object, object]] = []
    real = biounet.inference.predictor.predict

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append((kwargs.get("device"), kwargs.get("progress")))
        return real(*args, **kwargs)

    monkeypatch.setattr(biounet.inference.predictor, "predict", spy)
    write_report(run, tmp_path / "a.html", n_gallery=1, progress=None)
    write_report(run, tmp_path / "b.html", n_gallery=1, device="auto", progress=False)
    assert [p for _, p in calls] == [None, False]  # None: tqdm decides by the terminal
    assert {str(d) for d, _ in calls} <= {"cpu", "cuda"}


@pytest.mark.parametrize("ext", ["png", "pdf", "svg"])
def test_plot_writes_the_format_its_extension_names(run: Path, tmp_path: Path, ext: str) -> None:
    from biounet.reporting.plots import plot_run

    path = plot_run(run, tmp_path / f"curves.{ext}")
    head = path.read_bytes()[:200]
    magic = {"png": b"\x89PNG", "pdf": b"%PDF", "svg": b"<?xml"}[ext]
    assert head.startswith(magic) and (ext != "svg" or b"<svg" in path.read_bytes()[:2000])


def test_plot_refuses_an_extension_matplotlib_cannot_write(run: Path, tmp_path: Path) -> None:
    from biounet.reporting.plots import plot_run

    with pytest.raises(
        ValueError, match=r"c.xyz: cannot write a plot as '.xyz'; use one of .*\.png"
    ):
        plot_run(run, tmp_path / "c.xyz")
    with pytest.raises(ValueError, match=r"curves: cannot write a plot as a file without an ext"):
        plot_run(run, tmp_path / "curves")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------ in a browser
def chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        if found := shutil.which(name):
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def headless(page: Path, profile: Path, *options: str) -> subprocess.CompletedProcess[str]:
    exe = chromium()
    assert exe is not None
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", f"--user-data-dir={profile}"]  # fmt: skip
    return subprocess.run(
        [exe, *flags, *options, page.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


@pytest.mark.skipif(chromium() is None, reason="needs Chromium (CI installs Debian's chromium)")
def test_page_renders_in_chromium(run: Path, tmp_path: Path) -> None:
    copy = copy_run(run, tmp_path)
    write_reports([{"image": "x", "f1": 0.5}], {"f1": 0.5}, json_path=copy / "evaluation.json")
    page = write_report(copy)
    n = page.read_text().count("<img ")
    assert n == 1 + 1 + 8  # curves, colour bar, 2 images x 4 panels
    dom = headless(page, tmp_path / "profile", "--dump-dom").stdout
    assert f'data-images-loaded="{n}/{n}"' in dom, re.findall(r"data-images-loaded=\S+", dom)
    shot = tmp_path / "shot.png"
    headless(page, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,2000")
    rgb = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert rgb.shape[:2] == (2000, 1280) and rgb.std() > 20
    # the learning curves were drawn: matplotlib's blue loss and orange learning-rate lines
    for colour in ((31, 119, 180), (255, 127, 14)):
        near = (np.abs(rgb - np.array(colour)).max(axis=2) < 30).sum()
        assert near > 100, (colour, near)
