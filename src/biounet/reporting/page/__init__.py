"""``biounet report RUN``: one self-contained HTML page about a training run.

The page (``RUN/report.html`` by default) shows the run at a glance: headline numbers, the
learning curves, the validation history and (when ``RUN/evaluation.json`` exists) the test
scores, the resolved configuration (:mod:`~biounet.reporting.page.sections`), and a gallery of
a few validation images with four panels each: the input, the ground truth and the prediction
drawn over it (instance outlines for instance annotations), and the loss weight map
(:mod:`~biounet.reporting.page.gallery`). Every picture is an embedded PNG (a base64 ``data:``
URI) and the style sheet is inline (:mod:`~biounet.reporting.page.markup`), so the file opens
anywhere without a network or the run folder. A short inline script records in
``<body data-images-loaded="k/n">`` how many of the ``n`` pictures the browser decoded, which
the browser test reads. :func:`write_report` (:mod:`~biounet.reporting.page.document`) puts
the sections together.
"""

from __future__ import annotations

from biounet.reporting.page.document import write_report

__all__ = ["write_report"]
