"""Names a package exports but imports on first use, so that importing the package stays cheap.

``import biounet`` and the ``biounet`` command must start without loading torch; a package
lists its heavy names with the module each comes from and gets a module ``__getattr__`` (PEP
562) that imports the module when the name is first used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, lazy: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's ``__getattr__`` and ``__dir__`` for names imported on first use.

    Parameters
    ----------
    package : str
        The package's name (``__name__``), for the error of an unknown name.
    lazy : mapping of str to str
        Each lazily imported name and the module that defines it.
    namespace : dict
        The package's ``globals()``: a name, once imported, is stored there, and ``__dir__``
        lists it with ``__all__``.

    Examples
    --------
    In a package's ``__init__.py``::

        __getattr__, __dir__ = lazy_exports(__name__, {"fit": "biounet.train"}, globals())
    """

    def __getattr__(name: str) -> Any:
        if name in lazy:
            value = getattr(importlib.import_module(lazy[name]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(namespace.get("__all__", ())))

    return __getattr__, __dir__
