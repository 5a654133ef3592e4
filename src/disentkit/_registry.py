"""The one lookup behind every registry (datasets, networks, methods): docs/architecture.md, principle 7.

Entries are ``"module:Class"`` strings imported on first use, so optional dependencies load lazily;
an unknown name raises :class:`~disentkit.errors.UnknownNameError` listing the valid ones. A name
that is itself a ``"module:Class"`` path (how the Python API records a user's own dataset or
network class in ``config.json``) is imported as given: plugging in needs no registration.

An import that fails is *not* swallowed: a registered entry whose optional dependency is missing
raises its ``ImportError`` (with the entry named) when that entry is used, never silently vanishes.
"""

from __future__ import annotations

import importlib

from disentkit.errors import UnknownNameError


def class_path(obj) -> str:
    """``"module:QualName"`` of a class (or of an instance's class): how configs record it."""
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}:{cls.__qualname__}"


def is_class_path(name: str) -> bool:
    module, _, attr = name.partition(":")
    return bool(module) and bool(attr) and all(p.isidentifier() for p in module.split("."))


def lookup(kind: str, name: str, table: dict[str, str]):
    """Import and return the object registered as ``name`` in ``table`` (or at path ``name``)."""
    if name in table:
        target = table[name]
    elif is_class_path(name):
        target = name
    else:
        raise UnknownNameError(kind, name, table)
    module_name, attr = target.split(":")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(f"{kind} {name!r} needs {exc.name or module_name!r}, which cannot be "
                          f"imported: {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UnknownNameError(kind, name, table) from None
    return obj
