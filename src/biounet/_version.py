"""The package version (single source of truth for ``pyproject.toml``)."""

__version__ = "0.1.0"
