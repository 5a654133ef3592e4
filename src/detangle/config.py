"""Typed configuration: dataclasses whose fields are constructor arguments (DESIGN.md §4.5).

This module holds the generic machinery (dict round-trip, JSON load/save, dotted overrides
such as ``--set train.lr=5e-4``); the component dataclasses live beside it or in the modules
that own them. No gin, no exec: values are parsed as JSON where possible, else kept as text.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any, TypeVar

from detangle.io import read_json, write_json

T = TypeVar("T")


def to_dict(cfg: Any) -> Any:
    """Recursively convert dataclasses (and tuples) into JSON-ready dicts and lists."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, Path):
        return str(cfg)
    return cfg


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build dataclass ``cls`` from a dict, recursing into nested dataclass fields.

    Unknown keys raise ``ValueError`` naming the valid ones: a typo in a config file must not
    be silently ignored.
    """
    if not isinstance(data, dict):
        raise ValueError(f"expected a mapping for {cls.__name__}, found {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise ValueError(
            f"unknown key(s) {sorted(unknown)} for {cls.__name__}; valid keys: {sorted(fields)}"
        )
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints.get(name), value)
    return cls(**kwargs)


def _coerce(hint: Any, value: Any) -> Any:
    if hint is None:
        return value
    origin = typing.get_origin(hint)
    if origin is typing.Union or str(origin) == "types.UnionType":
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        if len(args) == 1:
            return _coerce(args[0], value)
        return value
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return from_dict(hint, value)
    if origin is tuple and isinstance(value, (list, tuple)):
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v) for v in value)
        return tuple(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def load(cls: type[T], path: str | Path) -> T:
    """Load dataclass ``cls`` from a JSON file."""
    return from_dict(cls, read_json(path))


def save(cfg: Any, path: str | Path) -> None:
    """Save a config as pretty JSON, atomically."""
    write_json(path, to_dict(cfg))


def parse_value(text: str) -> Any:
    """Parse a CLI override value: JSON if it parses (numbers, booleans, lists), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(cfg: T, overrides: list[str] | tuple[str, ...]) -> T:
    """Return a copy of ``cfg`` with dotted overrides applied, e.g. ``["train.lr=5e-4"]``.

    Each path must name an existing field; the error lists the valid ones.
    """
    data = to_dict(cfg)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like section.key=value")
        key, text = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            if not isinstance(node, dict) or part not in node:
                raise ValueError(f"override {item!r}: no section {part!r}")
            node = node[part]
        if not isinstance(node, dict) or parts[-1] not in node:
            valid = sorted(node) if isinstance(node, dict) else []
            raise ValueError(f"override {item!r}: no key {parts[-1]!r}; valid keys: {valid}")
        node[parts[-1]] = parse_value(text)
    return from_dict(type(cfg), data)
