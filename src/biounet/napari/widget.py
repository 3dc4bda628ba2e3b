"""The napari dock widget: pick a trained model, segment an image layer in a worker thread.

The widget does the Qt part only: choosing, a progress bar, adding layers. The segmentation
itself is :func:`biounet.napari.layers.segment_image`, run by napari's ``thread_worker`` so the
viewer stays responsive; its tile count reaches the progress bar through a Qt signal.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from biounet.napari.layers import LayerData, segment_image

if TYPE_CHECKING:
    import napari

__all__ = ["SegmentWidget"]


class _Progress(QObject):
    """Carries ``(done, total)`` from the worker thread to the progress bar (queued)."""

    changed = Signal(int, int)


class SegmentWidget(QWidget):
    """Segment the chosen image layer with a biounet model; adds probabilities, classes, objects.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer (napari passes it; a ``ViewerModel`` works too, for tests).
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        from biounet.zoo import shipped

        self.viewer = napari_viewer
        self._models: dict[str, Any] = {}  # loaded models by what was typed
        self.worker: Any = None
        self.model = QComboBox()
        self.model.setEditable(True)
        self.model.addItems(list(shipped()))
        self.model.setToolTip("a shipped model's name, a checkpoint (.pt) or a run folder")
        pick_file, pick_folder = QPushButton("Checkpoint…"), QPushButton("Run folder…")
        pick_file.clicked.connect(self._pick_file)
        pick_folder.clicked.connect(self._pick_folder)
        self.layer = QComboBox()
        self.tta = QCheckBox("average over flips and rotations (8x slower)")
        self.instances = QCheckBox("objects")
        self.instances.setChecked(True)
        self.kind = QComboBox()
        self.kind.addItems(["cells", "membranes"])
        self.kind.setToolTip("cells: touching cells split; membranes: regions between EM membranes")
        self.run_button = QPushButton("Segment")
        self.run_button.clicked.connect(self.run)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self._signal = _Progress()
        self._signal.changed.connect(self._show_progress)

        buttons = QHBoxLayout()
        buttons.addWidget(pick_file)
        buttons.addWidget(pick_folder)
        form = QFormLayout()
        form.addRow("model", self.model)
        form.addRow("", buttons)
        form.addRow("image", self.layer)
        form.addRow("", self.tta)
        objects = QHBoxLayout()
        objects.addWidget(self.instances)
        objects.addWidget(self.kind)
        form.addRow("", objects)
        box = QVBoxLayout(self)
        box.addLayout(form)
        box.addWidget(self.run_button)
        box.addWidget(self.progress)
        box.addWidget(self.status)
        box.addStretch()
        for event in (napari_viewer.layers.events.inserted, napari_viewer.layers.events.removed):
            event.connect(self._refresh_layers)
        self._refresh_layers()

    # --- choosing ---------------------------------------------------------------------------
    def _pick_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "biounet checkpoint", "", "Checkpoints (*.pt)")
        if path:
            self.model.setCurrentText(path)

    def _pick_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "biounet run folder")
        if path:
            self.model.setCurrentText(path)

    def _image_layers(self) -> list[Any]:
        from napari.layers import Image

        return [layer for layer in self.viewer.layers if isinstance(layer, Image)]

    def _refresh_layers(self, *_: Any) -> None:
        current = self.layer.currentText()
        self.layer.clear()
        self.layer.addItems([layer.name for layer in self._image_layers()])
        if current:
            self.layer.setCurrentText(current)

    def _load(self) -> Any:
        import biounet

        key = self.model.currentText().strip()
        if not key:
            raise ValueError("choose a model: a shipped model, a checkpoint or a run folder")
        if key not in self._models:
            self._models[key] = biounet.load(key)
        return self._models[key]

    # --- running ----------------------------------------------------------------------------
    def run(self) -> Any:
        """Start segmenting the chosen layer in a worker thread; returns the worker (or None).

        A missing model or layer is shown in the widget, not raised.
        """
        from napari.qt.threading import create_worker

        layers = {layer.name: layer for layer in self._image_layers()}
        layer = layers.get(self.layer.currentText())
        try:
            if layer is None:
                raise ValueError("no image layer to segment: open an image first")
            model = self._load()
        except (OSError, ValueError) as e:
            self.status.setText(f"error: {e}")
            return None
        options = {
            "name": layer.name,
            "rgb": bool(layer.rgb),
            "tta": self.tta.isChecked(),
            "instances": self.instances.isChecked(),
            "instance_kind": self.kind.currentText(),
            "placement": {"scale": tuple(layer.scale), "translate": tuple(layer.translate)},
            "progress": self._signal.changed.emit,
        }
        self.worker = create_worker(segment_image, model, layer.data, **options)
        self.worker.returned.connect(self._add_layers)
        self.worker.errored.connect(lambda e: self.status.setText(f"error: {e}"))
        self.worker.finished.connect(lambda: self.run_button.setEnabled(True))
        self.run_button.setEnabled(False)
        self.status.setText(f"segmenting {layer.name}…")
        self.worker.start()
        return self.worker

    def _show_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def _add_layers(self, layers: list[LayerData]) -> None:
        for data, kwargs, kind in layers:
            getattr(self.viewer, f"add_{kind}")(data, **kwargs)
        source = Path(self.model.currentText()).name
        self.status.setText(f"done: {len(layers)} layers from {source}")
