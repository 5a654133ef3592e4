"""The one lookup behind every registry (datasets, networks, methods): docs/architecture.md, principle 7.

Entries are ``"module:Class"`` strings imported on first use, so optional dependencies load lazily;
an unknown name raises :class:`~disentkit.errors.UnknownNameError` listing the valid ones.
"""

from __future__ import annotations

import importlib

from disentkit.errors import UnknownNameError


def lookup(kind: str, name: str, table: dict[str, str]):
    """Import and return the object registered as ``name`` in ``table``."""
    if name not in table:
        raise UnknownNameError(kind, name, table)
    module_name, attr = table[name].split(":")
    return getattr(importlib.import_module(module_name), attr)
