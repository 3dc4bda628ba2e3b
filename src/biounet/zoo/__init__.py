"""Models shipped with biounet: trained networks anyone can use by name, with their cards.

Each shipped model is two files in this package: ``NAME.pt`` (a biounet checkpoint, its
weights in half precision to keep the wheel small; :func:`biounet.load` reads them back as
float32) and ``NAME.json``, its card: what it was trained on and how (the script that made
it), its licence and its scores on images held out from a separate training of the same
recipe. A name works wherever a checkpoint path does: ``biounet predict em-membranes IMAGE``,
``biounet.load("em-membranes")``, ``biounet train DATA --init em-membranes``.

This module imports nothing of biounet, so the command line lists the models without torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["ShippedModel", "card_text", "models_table", "resolve", "shipped"]


@dataclass(frozen=True)
class ShippedModel:
    """A shipped model's card (``NAME.json``) and where its checkpoint is.

    Attributes
    ----------
    name : str
        What users type (``em-membranes``).
    path : Path
        The checkpoint, inside the installed package.
    card : dict
        The card: ``title``, ``task``, ``description``, ``training_data``, ``licence``,
        ``recipe``, ``held_out`` scores and the training's provenance.
    """

    name: str
    path: Path
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        """One line saying what the model segments."""
        return str(self.card.get("title", self.name))


def _folder() -> Path:
    return Path(str(resources.files(__name__)))


def shipped() -> dict[str, ShippedModel]:
    """The models shipped with this installation, by name (those whose checkpoint is present)."""
    out = {}
    for card in sorted(_folder().glob("*.json")):
        weights = card.with_suffix(".pt")
        if weights.exists():
            out[card.stem] = ShippedModel(card.stem, weights, json.loads(card.read_text()))
    return out


def resolve(model: str | os.PathLike[str]) -> Path:
    """The checkpoint a user means: ``model`` itself if it exists, else a shipped model's.

    A path that exists always wins over a name (a folder called ``em-membranes`` is that
    folder). Anything else is returned unchanged, for the loader to report as missing.

    >>> resolve("no/such/file.pt")
    PosixPath('no/such/file.pt')
    """
    p = Path(model)
    if p.exists():
        return p
    found = shipped().get(os.fspath(model))
    return found.path if found is not None else p


def _scores(card: dict[str, Any]) -> str:
    held = card.get("held_out", {})
    scores = held.get("scores", {})
    shown = [f"{k} {v:.4g}" for k, v in scores.items() if isinstance(v, (int, float))][:3]
    return ", ".join(shown) or "not measured"


def models_table() -> str:
    """The shipped models, one per line: name, task, training data, licence, held-out scores."""
    models = shipped()
    if not models:
        return "no models are shipped with this installation"
    lines = []
    for m in models.values():
        c = m.card
        data = c.get("training_data", {}).get("name", "?")
        lines.append(
            f"{m.name}: {m.title}\n  task: {c.get('task', '?')}; trained on: {data}\n"
            f"  licence: {c.get('licence', '?')}\n  held-out scores: {_scores(c)}"
        )
    lines.append("details: biounet models NAME; use: biounet predict NAME IMAGE --out DIR")
    return "\n".join(lines)


def card_text(name: str) -> str:
    """A shipped model's whole card, as readable text (ValueError for an unknown name)."""
    models = shipped()
    if name not in models:
        known = ", ".join(models) or "none"
        raise ValueError(f"no shipped model {name!r} (shipped: {known})")
    import yaml

    card = {"name": name, "checkpoint": str(models[name].path), **models[name].card}
    return str(yaml.safe_dump(card, sort_keys=False, allow_unicode=True, width=96))
