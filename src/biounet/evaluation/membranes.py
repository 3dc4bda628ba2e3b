"""The membranes task: ISBI 2012 scores per slice and of the stack, warping and pixel errors."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from biounet.evaluation.options import ISBI_KEYS, EvalOptions
from biounet.evaluation.reading import membrane_prob, truth_membrane
from biounet.evaluation.summary import pooled_scores, summarize
from biounet.metrics import ISBI_THRESHOLDS, ConfusionMatrix, adapted_rand_error, topology_errors
from biounet.metrics.isbi import best_scores, join_tables, threshold_tables
from biounet.metrics.membranes import label_regions, thin_borders
from biounet.metrics.rand_info import Table

log = logging.getLogger(__name__)

__all__ = ["MembraneScorer"]


class MembraneScorer:
    """Scores EM membranes against a truth membrane mask, slice by slice and as a stack.

    Per slice: V_Rand and V_Info at their best thresholds
    (:func:`biounet.metrics.isbi_scores`), and at ``options.threshold`` the warping error,
    the adapted Rand error of the thinned regions and the pixel error. The summary adds the
    challenge's stack figure (one threshold for all slices, counts pooled) from the tables
    each slice kept, so no slice is scored twice.

    Parameters
    ----------
    options : EvalOptions
        ``truth_foreground`` (the membrane value of the truth, default 0),
        ``membrane_class`` and ``threshold``.
    num_classes : int
        The classes of the pooled confusion matrix (``options.num_classes`` or 2).
    """

    def __init__(self, options: EvalOptions, num_classes: int) -> None:
        value = options.truth_foreground
        self.membrane_value = 0 if value is None else int(value)
        self.membrane_class = options.membrane_class
        self.threshold = options.threshold
        log.info(
            "membranes: truth pixels of value %d are membrane (%s); prediction class %d is "
            "membrane",
            self.membrane_value,
            "the ISBI convention" if value is None else "truth_foreground",
            options.membrane_class,
        )
        # the adapted Rand error's regions are those the threshold tables thin at threshold,
        # when it is one of theirs and compares alike in float32 (prob) and float64 (tables)
        th = options.threshold
        self.shared_th = th in ISBI_THRESHOLDS and float(np.float32(th)) == th
        self.total = ConfusionMatrix(num_classes)  # membrane or not, of all pixels
        self.slice_tables: list[list[Table]] = []  # each slice's counts per ISBI threshold
        self.planes: set[tuple[int, ...]] = set()  # the slice sizes seen
        self.warp_pixels = 0  # warping error pixels of all slices
        self.n_pixels = 0

    def score(self, name: str, pred: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
        """The row of one slice: a prediction ``(C, *S)`` or ``(*S)``, a truth ``(*S)``."""
        t_mem = truth_membrane(name, truth, self.membrane_value)
        prob = membrane_prob(name, pred, truth.ndim, self.membrane_class)
        tables, regions_t, regions_p = threshold_tables(
            prob.astype(np.float64),  # as isbi_scores compares
            t_mem,
            ISBI_THRESHOLDS,
            regions_at=self.threshold if self.shared_th else None,
        )
        best = best_scores(tables, ISBI_THRESHOLDS)
        self.slice_tables.append(tables)
        self.planes.add(t_mem.shape[-2:])
        p_mem = prob > self.threshold
        topo = topology_errors(t_mem, p_mem)
        self.warp_pixels += int(topo["error_pixels"])
        self.n_pixels += t_mem.size
        if regions_p is None:
            regions_p = thin_borders(label_regions(~p_mem))
        cm = ConfusionMatrix(2)
        cm.update(t_mem, p_mem)
        self.total.update(t_mem, p_mem)
        return {
            **{key: best[key] for key in ISBI_KEYS},
            "warping_error": topo["warping_error"],
            "rand_error": adapted_rand_error(regions_t, regions_p)["error"],
            "pixel_error": cm.scores()["pixel_error"],
        }

    def stack_figure(self) -> dict[str, float]:
        """The ISBI scores of all slices as one stack, and ``one_minus_v_rand``.

        The slices' tables joined (their regions never cross) at each threshold, the best
        threshold taken for all: ``isbi_scores`` of the stacked slices. Empty without slices
        or when they differ in size.
        """
        if not self.slice_tables:
            return {}
        if len(self.planes) != 1:
            log.info("membranes: slices of different sizes; no stack figure, only the means")
            return {}
        stack = [join_tables(per_slice) for per_slice in zip(*self.slice_tables)]
        whole = best_scores(stack, ISBI_THRESHOLDS)
        return {**{key: whole[key] for key in ISBI_KEYS}, "one_minus_v_rand": 1.0 - whole["v_rand"]}

    def summary(self, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """The stack figure, the means of ``rows``, the pooled warping and pixel scores."""
        warping = self.warp_pixels / self.n_pixels if self.n_pixels else 0.0
        last = {"pooled_warping_error": warping, **pooled_scores(self.total)}
        return summarize(rows, first=self.stack_figure(), last=last)
