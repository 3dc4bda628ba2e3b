"""biounet in napari: a dock widget that segments an image layer, sample data, a reader.

Install with ``pip install "biounet[napari]"``; napari finds the plugin by its manifest
(``napari.yaml``, the ``napari.manifest`` entry point). Plugins > biounet > Segment opens the
widget; File > Open Sample > biounet > Synthetic cells gives something to try it on; biounet's
prediction outputs (``*_mask.png``, ``*_labels.tif``, ``*_probs.tif``, ``*.ome.zarr``) open as
layers at their pixel size.
"""
