"""Collection of the whole repository: the napari plugin's modules need napari and Qt.

``--doctest-modules`` imports every module under ``src/biounet``; the plugin's widget imports
Qt, which is only there with the ``napari`` extra.
"""

from __future__ import annotations

try:
    import qtpy.QtWidgets  # noqa: F401
except Exception:  # no Qt binding (qtpy raises its own error types)
    collect_ignore = ["src/biounet/napari/widget.py"]
