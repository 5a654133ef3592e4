"""Typed configuration: dataclasses whose fields are constructor arguments (docs/architecture.md, principle 5).

One path serves every config of the package (:class:`TrainConfig` here, ``TransferConfig`` in
:mod:`disentkit.transfers`, ``EvalSettings`` in :mod:`disentkit.evaluate`, the study schema in
:mod:`disentkit.experiment`):

* :func:`from_dict` parses a mapping (a JSON/YAML file, a ``--config`` file, a study section) and
  *coerces* each value to its field's annotation (``int`` -> ``float``, lists -> tuples, unions
  such as ``float | None``, nested dataclasses), refusing unknown keys, wrong types and
  non-finite numbers with a message that names the field, the expected type and the value found;
* :func:`apply_overrides` applies dotted overrides (``--set optim.lr=5e-4``) through the same
  coercion;
* :func:`validate` re-checks the types of a config built in code and runs its range checks (each
  config's ``check()`` yields ``(field, ok, expected, found)`` rows);
* each top-level config has one ``smoke()``: the seconds-long sizes the tests run
  (docs/architecture.md, principle 12).

No gin, no exec: override values are parsed as JSON where possible, else kept as text.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, TypeVar

from disentkit.errors import DisentkitError
from disentkit.io import read_json, write_json

T = TypeVar("T")

PRECISIONS = ("auto", "fp32", "bf16")
DEVICES = ("auto", "cpu", "cuda")
TRAINABLE = ("all", "encoder", "decoder")
LOGGERS = ("jsonl", "tensorboard")

#: the seconds-long sizes of every config's ``smoke()`` (docs/architecture.md, principle 12), in
#: one place: a training run, a transfer (fine-tuning) and an evaluation
TRAIN_SMOKE = {"run.steps": 8, "optim.batch_size": 8, "method.warmup_steps": 0,
               "run.log_every": 2, "run.checkpoint_every": 4, "run.precision": "fp32"}
TRANSFER_SMOKE = {"steps": 4, "batch_size": 8, "log_every": 2, "precision": "fp32"}
EVAL_SMOKE = {"n": 160, "metrics": ("omes", "dci", "mig", "downstream"),
              "downstream_models": ("gbt", "gbt_pruned"), "backend": "fast", "batch_size": 160,
              "smoke_sizes": True}


class ConfigError(DisentkitError, ValueError):
    """A config value has the wrong type, is out of range, or names no field."""


# ---------------------------------------------------------------------------- the one path
def to_dict(cfg: Any) -> Any:
    """Recursively convert dataclasses (and tuples, paths) into JSON-ready dicts and lists."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, Path):
        return str(cfg)
    return cfg


def from_dict(cls: type[T], data: Any, where: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, coercing every value to its field's annotation.

    ``where`` prefixes field names in error messages (``optim`` -> ``optim.lr``). Unknown keys
    raise :class:`ConfigError` naming the valid ones: a typo must not be silently ignored.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"config {where or cls.__name__} must be a mapping, "
                          f"found {data!r} ({type(data).__name__})")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"config {where or cls.__name__}: unknown key(s) {unknown}; "
                          f"valid keys: {sorted(names)}")
    kwargs = {k: coerce(hints.get(k), v, f"{where}.{k}" if where else k) for k, v in data.items()}
    return cls(**kwargs)


def _type_name(hint: Any) -> str:
    if hint is type(None):
        return "null"
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    if origin in (tuple, list):
        return f"list of {_type_name(typing.get_args(hint)[0])}" if typing.get_args(hint) else "list"
    if origin is dict:
        return "mapping"
    return getattr(hint, "__name__", str(hint))


def _fail(path: str, hint: Any, value: Any) -> ConfigError:
    return ConfigError(f"config {path} must be {_type_name(hint)}, "
                       f"found {value!r} ({type(value).__name__})")


def coerce(hint: Any, value: Any, path: str) -> Any:
    """``value`` as annotation ``hint`` requires, or :class:`ConfigError` naming ``path``."""
    if hint is None or hint is Any:
        return value
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        members = typing.get_args(hint)
        if value is None:
            if type(None) in members:
                return None
            raise _fail(path, hint, value)
        for member in (m for m in members if m is not type(None)):
            try:
                return coerce(member, value, path)
            except ConfigError:
                continue
        raise _fail(path, hint, value)
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            value = to_dict(value)
        return from_dict(hint, value, path)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise _fail(path, hint, value)
        args = typing.get_args(hint)
        item = args[0] if args else Any
        items = [coerce(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise _fail(path, hint, value)
        return dict(value)
    return _scalar(hint, value, path)


def _scalar(hint: Any, value: Any, path: str) -> Any:
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():  # YAML writes 4e5 as a float
            return int(value)
    elif hint is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as text
            try:
                value = float(value)
            except ValueError:
                raise _fail(path, hint, value) from None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"config {path} must be a finite number, found {value!r}")
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif isinstance(hint, type):
        if isinstance(value, hint):
            return value
    else:
        return value
    raise _fail(path, hint, value)


def require(checks: Iterable[tuple[str, bool, str, Any]], where: str = "") -> None:
    """Raise :class:`ConfigError` for the first ``(field, ok, expected, found)`` that fails."""
    for name, ok, expected, found in checks:
        if not ok:
            name = f"{where}.{name}" if where else name
            raise ConfigError(f"config {name} must be {expected}, found {found!r}")


def validate(cfg: T, where: str = "") -> T:
    """Re-check every field's type (a config may be built or edited in code) and run the
    config's own range checks (its ``check()`` rows); return ``cfg``."""
    from_dict(type(cfg), to_dict(cfg), where)
    check = getattr(cfg, "check", None)
    if check is not None:
        require(check(), where)
    return cfg


def load(cls: type[T], path: str | Path) -> T:
    """Load dataclass ``cls`` from a JSON file; errors name the file."""
    try:
        return from_dict(cls, read_json(path))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def save(cfg: Any, path: str | Path) -> None:
    """Save a config as pretty JSON, atomically."""
    write_json(path, to_dict(cfg))


def parse_value(text: str) -> Any:
    """Parse a CLI override value: JSON if it parses (numbers, booleans, null, lists), else the
    text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(cfg: T, overrides: Iterable[str] | dict[str, Any], where: str = "") -> T:
    """A copy of ``cfg`` with dotted overrides applied, e.g. ``["optim.lr=5e-4"]`` or
    ``{"optim.lr": 5e-4}``; values pass the same coercion as a config file.

    Each path must name an existing field; the error lists the valid ones. A field whose value
    is a free mapping (e.g. ``data.options``) accepts new keys.
    """
    data = to_dict(cfg)
    pairs = overrides.items() if isinstance(overrides, dict) else [_split(o) for o in overrides]
    for key, value in pairs:
        node, parts = data, str(key).strip().split(".")
        hints: Any = type(cfg)
        for part in parts[:-1]:
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(f"override {key!r}: no section {part!r}"
                                  + (f"; valid: {sorted(node)}" if isinstance(node, dict) else ""))
            node = node[part]
            hints = _field_hint(hints, part)
        free = hints is dict or typing.get_origin(hints) is dict
        if not isinstance(node, dict) or (parts[-1] not in node and not free):
            valid = sorted(node) if isinstance(node, dict) else []
            raise ConfigError(f"override {key!r}: no key {parts[-1]!r}; valid keys: {valid}")
        node[parts[-1]] = value
    return from_dict(type(cfg), data, where)


def flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (the dotted paths of :func:`apply_overrides`); an
    empty mapping has no paths."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def differences(saved: Any, given: Any, ignore: Iterable[str] = ()) -> list[str]:
    """``"path (saved X, given Y)"`` for every dotted field that differs between two configs
    (dataclasses or dicts), except those in ``ignore``; a field missing on one side counts as null.
    Used to refuse mixing two different runs in one folder."""
    a, b = flatten(to_dict(saved)), flatten(to_dict(given))
    skip = set(ignore)
    return [f"{k} (saved {a.get(k)!r}, given {b.get(k)!r})" for k in sorted(set(a) | set(b))
            if k not in skip and a.get(k) != b.get(k)]


def split_assignment(item: str, expected: str) -> tuple[str, Any]:
    """``"key=value"`` as ``(key, parsed value)`` (:func:`parse_value`); anything else raises
    :class:`ConfigError` with ``expected``. Parses ``--set`` overrides and ``--target-option``."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(expected)
    return key.strip(), parse_value(text)


def _split(item: str) -> tuple[str, Any]:
    return split_assignment(item, f"override {item!r} must look like section.key=value")


def _field_hint(hint: Any, name: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return typing.get_type_hints(hint).get(name)
    return None


# ---------------------------------------------------------------------------------------------
# Training configuration. Field names are the CLI's ``--set section.key=value`` paths.
# Defaults follow the paper (Dapueto et al. 2024 §4.1): Adam, lr 1e-4, batch 64, β 1, 10 latents.

@dataclass
class DataConfig:
    #: a registered dataset name, or (Python API) the ``module:Class`` path of a dataset class
    dataset: str = "dsprites"
    #: folder of a real dataset (or of the original files of a synthetic one)
    root: str | None = None
    #: factors changed per weak-supervision pair (Locatello et al. 2020 use k = 1)
    k: int = 1
    #: further keyword arguments for ``get_dataset`` (e.g. ``cache_dir``)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelConfig:
    #: a registered network name, or (Python API) the ``module:Class`` path of a network class
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
    #: clip gradients to this global L2 norm; ``None`` disables
    grad_clip: float | None = 1.0
    #: which part is optimised: "all", "encoder" (incl. heads) or "decoder"
    trainable: str = "all"


@dataclass
class RunConfig:
    steps: int = 1000
    seed: int = 0
    device: str = "auto"
    #: "auto" picks the fastest safe precision for the device (see disentkit.training.prepare)
    precision: str = "auto"
    threads: int | None = None
    log_every: int = 100
    checkpoint_every: int = 1000
    #: render the next batch in a background thread while the network trains (same batches)
    prefetch: bool = True
    #: threads rendering batches in parallel, for datasets whose images are a pure function of
    #: their factors (the real ones: ``thread_safe_images``); the batches are the same as with 1
    data_workers: int = 1
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

    def check(self):
        """Range checks, as ``(field, ok, expected, found)`` rows (see :func:`require`)."""
        d, m, me, o, r = self.data, self.model, self.method, self.optim, self.run
        return [
            ("data.k", d.k >= 1, ">= 1", d.k),
            ("model.latent_dim", m.latent_dim >= 1, ">= 1", m.latent_dim),
            ("method.beta", me.beta >= 0, ">= 0", me.beta),
            ("method.warmup_steps", me.warmup_steps >= 0, ">= 0", me.warmup_steps),
            ("optim.lr", o.lr > 0, "> 0", o.lr),
            ("optim.batch_size", o.batch_size >= 1, ">= 1", o.batch_size),
            ("optim.grad_clip", o.grad_clip is None or o.grad_clip > 0, "> 0 or null", o.grad_clip),
            ("optim.trainable", o.trainable in TRAINABLE, f"one of {TRAINABLE}", o.trainable),
            ("run.steps", r.steps >= 0, ">= 0", r.steps),
            ("run.device", r.device in DEVICES or r.device.startswith("cuda:"),
             f"one of {DEVICES} or cuda:N", r.device),
            ("run.precision", r.precision in PRECISIONS, f"one of {PRECISIONS}", r.precision),
            ("run.threads", r.threads is None or r.threads >= 1, ">= 1 or null", r.threads),
            ("run.logger", r.logger in LOGGERS, f"one of {LOGGERS}", r.logger),
            ("run.log_every", r.log_every >= 1, ">= 1", r.log_every),
            ("run.checkpoint_every", r.checkpoint_every >= 1, ">= 1", r.checkpoint_every),
            ("run.data_workers", r.data_workers >= 1, ">= 1", r.data_workers),
        ]

    def validate(self) -> "TrainConfig":
        """Raise :class:`ConfigError` naming the first mistyped or out-of-range field; return self."""
        return validate(self)

    def smoke(self) -> "TrainConfig":
        """Seconds-long sizes (:data:`TRAIN_SMOKE`): 8 steps of 8, no warm-up, fp32."""
        return apply_overrides(self, TRAIN_SMOKE)
