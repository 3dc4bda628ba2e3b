"""Evaluation: predictions paired with ground truth, read as each task needs, and scored.

:func:`evaluate` scores arrays, :func:`evaluate_files` files (:mod:`.pairing` pairs them);
:class:`EvalOptions` says what to compute (:mod:`.options`); one scorer per task
(:mod:`.semantic`, :mod:`.cells`, :mod:`.membranes`) reads its inputs (:mod:`.reading`) and
scores them, and :mod:`.summary` lays out the set-level scores.

The options are imported at once and load no numpy, so that the command line can build them
cheaply; the rest is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from biounet.core.lazy import lazy_exports
from biounet.evaluation.options import TASKS, EvalOptions, metric_keys

if TYPE_CHECKING:
    from biounet.evaluation.pairing import PREFERRED, pair_files
    from biounet.evaluation.scoring import evaluate, evaluate_files

#: the names imported on first use, and their modules
_LAZY = {
    "PREFERRED": "biounet.evaluation.pairing",
    "pair_files": "biounet.evaluation.pairing",
    "evaluate": "biounet.evaluation.scoring",
    "evaluate_files": "biounet.evaluation.scoring",
}

__all__ = [
    "PREFERRED",
    "TASKS",
    "EvalOptions",
    "evaluate",
    "evaluate_files",
    "metric_keys",
    "pair_files",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
