"""Objects from a network's class probabilities, by kind: cells, or regions between membranes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from biounet.core.checks import is_whole, look_up
from biounet.inference.postprocess.arguments import check_probs
from biounet.inference.postprocess.cells import instances
from biounet.inference.postprocess.membranes import membrane_regions

if TYPE_CHECKING:
    from biounet.inference.postprocess.rule import InstanceRule

__all__ = ["INSTANCE_KINDS", "instances_from_probabilities"]

#: what :func:`instances_from_probabilities` makes objects of
INSTANCE_KINDS = ("cells", "membranes")


def instances_from_probabilities(
    probs: np.ndarray,
    *,
    kind: str = "cells",
    membrane_class: int | None = None,
    rule: InstanceRule | None = None,
    **options: Any,
) -> np.ndarray:
    """Instance labels from a network's class probabilities: cells, or regions between membranes.

    Parameters
    ----------
    probs : (C, Y, X) or (C, Z, Y, X) array of float
        Per-class probabilities in [0, 1], ``C >= 2`` (``biounet predict``'s ``_probs``).
    kind : {"cells", "membranes"}, default "cells"
        "cells": :func:`~biounet.inference.postprocess.instances` of ``probs`` (objects of
        the foreground class, touching cells separated by a seeded watershed). "membranes"
        (EM): :func:`~biounet.inference.postprocess.membrane_regions` of
        ``probs[membrane_class]``, the regions the membranes enclose.
    membrane_class : int, optional
        "membranes" only: the class that is membrane; default 0, as for a 2-class net trained
        on ISBI 2012 labels (membrane 0 = class 0, cells 255 = class 1).
    rule : InstanceRule, optional
        "cells" only: the model's :class:`~biounet.inference.postprocess.InstanceRule` (its
        target, ``h``, ``min_size``, hole filling); ``options`` override its values. None:
        the defaults of :func:`~biounet.inference.postprocess.instances`.
    **options
        Keywords of :func:`~biounet.inference.postprocess.instances` ("cells":
        ``foreground_class``, ``threshold``, ``h``, ``min_size``, ...) or of
        :func:`~biounet.inference.postprocess.membrane_regions` ("membranes": ``threshold``,
        ``min_size``, ``thin``, ``connectivity``).

    Returns
    -------
    (Y, X) or (Z, Y, X) array of int32
        0 background (cells) or membrane (membranes), objects ``1..n``.

    Examples
    --------
    >>> m = np.zeros((5, 5))
    >>> m[2, :] = m[:, 2] = 1.0  # class 0: membrane
    >>> labels = instances_from_probabilities(np.stack([m, 1 - m]), kind="membranes")
    >>> int(labels.max()), int(labels[2, 2])
    (4, 0)
    """
    what = look_up(kind, INSTANCE_KINDS, "kind")
    p = check_probs(probs, "probs")
    if what == "cells":
        if membrane_class is not None:
            raise ValueError(
                f"membrane_class={membrane_class} applies to kind='membranes', not 'cells'; "
                "cells take foreground_class"
            )
        return instances(p, **options) if rule is None else rule(p, **options)
    if rule is not None:
        raise ValueError(
            f"an instance rule ({rule.target}) applies to kind='cells', not {what!r}; "
            "membrane regions take threshold, min_size and thin"
        )
    k = 0 if membrane_class is None else membrane_class
    if not is_whole(k) or not 0 <= k < p.shape[0]:
        raise ValueError(
            f"membrane_class {membrane_class!r} is not a class of probs {p.shape} "
            f"(classes 0..{p.shape[0] - 1})"
        )
    return membrane_regions(p[int(k)], **options)
