"""Typed configuration: dataclasses whose fields are constructor arguments (docs/architecture.md, principle 5).

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

from disentkit.io import read_json, write_json

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


# ---------------------------------------------------------------------------------------------
# Training configuration (issue 4). Field names are the CLI's ``--set section.key=value`` paths.
# Defaults follow the paper (Dapueto et al. 2024 §4.1): Adam, lr 1e-4, batch 64, β 1, 10 latents.

from dataclasses import dataclass, field  # noqa: E402

PRECISIONS = ("auto", "fp32", "bf16")
DEVICES = ("auto", "cpu", "cuda")
TRAINABLE = ("all", "encoder", "decoder")
LOGGERS = ("jsonl", "tensorboard")


@dataclass
class DataConfig:
    dataset: str = "dsprites"
    #: folder of a real dataset (or of the original files of a synthetic one)
    root: str | None = None
    #: factors changed per weak-supervision pair (Locatello et al. 2020 use k = 1)
    k: int = 1
    #: further keyword arguments for ``get_dataset`` (e.g. ``cache_dir``)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelConfig:
    arch: str = "locatello"
    latent_dim: int = 10
    #: run folder whose weights initialise the model (fine-tuning in transfer); optimiser is fresh
    init_from: str | None = None


@dataclass
class MethodConfig:
    name: str = "ada-gvae"
    beta: float = 1.0
    #: linear β warm-up from 0 over this many steps (paper: 50,000 of 400,000)
    warmup_steps: int = 0
    #: method-specific constructor options, e.g. ``{"divergence": "forward"}``
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    lr: float = 1e-4
    #: images for single-image methods, *pairs* for the weakly-supervised ones (as in the paper)
    batch_size: int = 64
    #: clip gradients to this global L2 norm (the paper's code uses 1.0); ``None`` disables
    grad_clip: float | None = 1.0
    #: which part is optimised: "all", "encoder" (incl. heads) or "decoder"
    trainable: str = "all"


@dataclass
class RunConfig:
    steps: int = 1000
    seed: int = 0
    device: str = "auto"
    #: "auto" picks the fastest safe precision for the device (see disentkit.train.loop)
    precision: str = "auto"
    threads: int | None = None
    log_every: int = 100
    checkpoint_every: int = 1000
    #: render the next batch in a background thread while the network trains (same batches)
    prefetch: bool = True
    #: "jsonl" (log.jsonl only) or "tensorboard" (also TensorBoard events in RUN/tensorboard/)
    logger: str = "jsonl"


@dataclass
class TrainConfig:
    """One training run (``disentkit train``; saved as the run folder's ``config.json``).

    Sections: ``data`` (dataset, root, pair k), ``model`` (arch, latent_dim, init_from),
    ``method`` (name, beta, warmup_steps), ``optim`` (lr, batch_size, grad_clip, trainable) and
    ``run`` (steps, seed, device, precision, threads, logging and checkpoint cadence, prefetch).
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def validate(self) -> "TrainConfig":
        """Raise ``ValueError`` naming the first mistyped or out-of-range field; return self."""
        for section in dataclasses.fields(self):
            _check_types(getattr(self, section.name), section.name)
        checks = [
            ("data.k", self.data.k >= 1, ">= 1", self.data.k),
            ("model.latent_dim", self.model.latent_dim >= 1, ">= 1", self.model.latent_dim),
            ("method.beta", self.method.beta >= 0, ">= 0", self.method.beta),
            ("method.warmup_steps", self.method.warmup_steps >= 0, ">= 0", self.method.warmup_steps),
            ("optim.lr", self.optim.lr > 0, "> 0", self.optim.lr),
            ("optim.batch_size", self.optim.batch_size >= 1, ">= 1", self.optim.batch_size),
            ("optim.grad_clip", self.optim.grad_clip is None or self.optim.grad_clip > 0,
             "> 0 or null", self.optim.grad_clip),
            ("optim.trainable", self.optim.trainable in TRAINABLE, f"one of {TRAINABLE}",
             self.optim.trainable),
            ("run.steps", self.run.steps >= 0, ">= 0", self.run.steps),
            ("run.device", self.run.device in DEVICES or self.run.device.startswith("cuda:"),
             f"one of {DEVICES} or cuda:N", self.run.device),
            ("run.precision", self.run.precision in PRECISIONS, f"one of {PRECISIONS}",
             self.run.precision),
            ("run.threads", self.run.threads is None or self.run.threads >= 1, ">= 1 or null",
             self.run.threads),
            ("run.logger", self.run.logger in LOGGERS, f"one of {LOGGERS}", self.run.logger),
            ("run.log_every", self.run.log_every >= 1, ">= 1", self.run.log_every),
            ("run.checkpoint_every", self.run.checkpoint_every >= 1, ">= 1",
             self.run.checkpoint_every),
        ]
        for name, ok, expected, found in checks:
            if not ok:
                raise ValueError(f"config {name} must be {expected}, found {found!r}")
        return self


def _check_types(cfg: Any, prefix: str) -> None:
    """Check each scalar field against its annotation (``--set`` parses values as JSON)."""
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value, hint = getattr(cfg, f.name), hints[f.name]
        origin = typing.get_origin(hint)
        union = origin is typing.Union or str(origin) == "<class 'types.UnionType'>"
        members = typing.get_args(hint) if union else (hint,)
        allowed = [typing.get_origin(a) or a for a in members]
        allowed = [a for a in allowed if isinstance(a, type)]
        if float in allowed:
            allowed.append(int)
        ok = any(isinstance(value, a) for a in allowed) and not (
            isinstance(value, bool) and bool not in allowed
        )
        if allowed and not ok:
            names = " or ".join(sorted({a.__name__ for a in allowed}))
            raise ValueError(
                f"config {prefix}.{f.name} must be {names}, found {value!r} ({type(value).__name__})"
            )
