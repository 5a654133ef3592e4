"""The one experiment schema: a study (YAML or JSON) and its expansion into runs.

The paper's evidence (Dapueto et al. 2024, §4 and appendix tables) is a grid: weakly-supervised
source experiments × β × seeds, and source -> target transfers of each of those models, each
fine-tuned and evaluated before and after. A :class:`Study` describes such a grid as data, in five
sections, every field typed and validated by :mod:`disentkit.config`::

    name: quick
    description: ...
    sources:                        # one entry per source experiment (a grid over betas x seeds)
      - {name: color-dsprites, dataset: color-dsprites, method: gvae-labels, arch: locatello,
         latent_dim: 10, betas: [1], seeds: [0], steps: 3000, warmup_steps: 0, lr: 1.0e-3,
         batch_size: 64, grad_clip: 1.0, overrides: {}}     # overrides: dotted TrainConfig paths
    transfers:
      - {source: color-dsprites, targets: [shapes3d], optional_targets: [rgbd-objects],
         finetune: all, steps: 500, beta: 1.0, lr: 5.0e-4, batch_size: 64, grad_clip: null,
         heldout_fraction: 0.25, overrides: {}}            # overrides: TransferConfig fields
    evaluation: {n: 15008, backend: fast, sampling: lines, floor: true, ...}   # EvalSettings + 2
    execution: {device: auto, precision: fp32, log_every: 100, ensemble: 1}
    defaults: {arch: paper}         # optional: merged into every source entry (its keys win)

A *preset* is a packaged study (``src/disentkit/studies/<name>.yaml``): ``run --preset quick``
and ``sweep plan quick`` resolve the same file; a path works too. ``optional_targets`` join when
``--data-root`` holds them (else skipped with the reason); plain ``targets`` must be available.

:func:`plan` turns a study into :class:`RunSpec` objects, each with a *resolved* config (every
value its results depend on), a stable id (the first 12 hex digits of the SHA-256 of that config
as canonical JSON: the same study always yields the same ids, and a changed setting gives a new id
and a new folder), a folder ``sources/<name>.b<β>.s<seed>.<id8>`` or
``transfers/<source>--<target>.b<β>.s<seed>.<id8>``, and its dependencies (a transfer embeds its
source's id, so a changed source changes every transfer downstream). ``execution.ensemble: M``
(``--ensemble M``) trains up to M compatible runs as one network; it groups the runs
(:func:`disentkit.experiment.runs.group_runs`) but is part of no id: the results are the same runs.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from disentkit._registry import is_class_path
from disentkit.config import (PRECISIONS, ConfigError, TrainConfig, apply_overrides, from_dict,
                              require, to_dict, validate)
from disentkit.data.registry import DATASETS
from disentkit.evaluate import EvalSettings
# RunSpec, Plan and config_id live in experiment.runs; importers may keep naming this module
from disentkit.experiment.runs import Plan, RunSpec, config_id, group_runs
from disentkit.methods import METHODS
from disentkit.models import ARCHITECTURES
from disentkit.transfers import FINETUNE_MODES, TransferConfig

#: studies packaged with the library (``src/disentkit/studies/<name>.yaml``)
PACKAGED = ("quick", "paper")


@dataclass
class SourceSpec:
    """One source experiment: a training config repeated over ``betas`` x ``seeds``.
    Defaults are the paper's (§4.1): the known-factor GVAE, 400k steps of 64 pairs, Adam 1e-4."""

    name: str = ""
    dataset: str = ""
    method: str = "gvae-labels"
    arch: str = "locatello"
    latent_dim: int = 10
    betas: tuple[float, ...] = (1.0,)
    seeds: tuple[int, ...] = (0,)
    steps: int = 400_000
    #: linear β warm-up steps (the paper's dSprites configs: 50,000; its Shapes3D config: none)
    warmup_steps: int = 0
    lr: float = 1e-4
    batch_size: int = 64
    grad_clip: float | None = 1.0
    #: further dotted TrainConfig overrides, e.g. ``{"method.options": {"divergence": "forward"}}``
    overrides: dict[str, Any] = field(default_factory=dict)

    def check(self):
        return [
            ("name", _plain_name(self.name), "a plain name (no '/', '..', spaces)", self.name),
            ("dataset", bool(self.dataset), "a dataset name", self.dataset),
            ("betas", bool(self.betas) and all(b >= 0 for b in self.betas),
             "a non-empty list of numbers >= 0", self.betas),
            ("seeds", bool(self.seeds) and len(set(self.seeds)) == len(self.seeds),
             "a non-empty list of distinct ints", self.seeds),
        ]

    def train_config(self, beta: float, seed: int, execution: "Execution") -> TrainConfig:
        """The resolved :class:`TrainConfig` of one (β, seed) of this experiment."""
        cfg = apply_overrides(TrainConfig(), {
            "data.dataset": self.dataset, "model.arch": self.arch,
            "model.latent_dim": self.latent_dim, "method.name": self.method,
            "method.beta": beta, "method.warmup_steps": self.warmup_steps, "optim.lr": self.lr,
            "optim.batch_size": self.batch_size, "optim.grad_clip": self.grad_clip,
            "run.steps": self.steps, "run.seed": seed, "run.device": execution.device,
            "run.precision": execution.precision, "run.log_every": execution.log_every,
            "run.checkpoint_every": max(self.steps // 10, 1)})
        return apply_overrides(cfg, self.overrides, f"sources[{self.name}].overrides").validate()


@dataclass
class TransferSpec:
    """Transfers of every model of source experiment ``source`` to each target. Defaults are
    the paper's fine-tuning (§4.2 and its code): all weights, 50k steps, batch 64, Adam 1e-4,
    β = 1, no gradient clipping, evaluation on held-out combinations."""

    source: str = ""
    targets: tuple[str, ...] = ()
    #: datasets read from files: run when ``--data-root`` holds them, else skipped with the reason
    optional_targets: tuple[str, ...] = ()
    finetune: str = "all"
    steps: int = 50_000
    beta: float = 1.0
    lr: float = 1e-4
    batch_size: int = 64
    grad_clip: float | None = None
    heldout_fraction: float = 0.25
    #: further TransferConfig fields, e.g. ``{"split_seed": 1}``
    overrides: dict[str, Any] = field(default_factory=dict)

    def check(self):
        names = self.targets + self.optional_targets
        return [
            ("targets", bool(names), "at least one target (targets or optional_targets)", names),
            ("targets", all(_plain_name(t) for t in names), "plain dataset names", names),
            ("finetune", self.finetune in FINETUNE_MODES, f"one of {FINETUNE_MODES}", self.finetune),
        ]


@dataclass
class Evaluation(EvalSettings):
    """How every model is evaluated: the :class:`~disentkit.evaluate.EvalSettings` fields, plus
    ``floor`` (also evaluate each source's untrained network, the table's floor) and
    ``transfer_downstream_models`` (the transfers' classifiers when they differ: the paper's
    transfer tables read GBT only; None: as ``downstream_models``)."""

    floor: bool = True
    transfer_downstream_models: tuple[str, ...] | None = None

    def settings(self, transfer: bool = False) -> EvalSettings:
        """The plain :class:`EvalSettings` of a source (or, with ``transfer``, a transfer) evaluation."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(EvalSettings)}
        if transfer and self.transfer_downstream_models is not None:
            values["downstream_models"] = self.transfer_downstream_models
        return EvalSettings(**values)

    def smoke(self) -> "Evaluation":
        """:meth:`EvalSettings.smoke` sizes; the transfers use the same classifiers."""
        return dataclasses.replace(EvalSettings.smoke(self), transfer_downstream_models=None)


@dataclass
class Execution:
    """Where and how the runs compute. ``precision`` is part of each run's id (bf16 changes
    numbers; the paper trained in fp32, so fp32 is the default and bf16 an opt-in). ``ensemble``
    is not: up to that many compatible runs train as one vmapped network, each still its own run
    with the same results (:mod:`disentkit.experiment.runs`); 1 trains every run alone."""

    device: str = "auto"
    precision: str = "fp32"
    log_every: int = 100
    ensemble: int = 1

    def check(self):
        return [("precision", self.precision in PRECISIONS, f"one of {PRECISIONS}", self.precision),
                ("log_every", self.log_every >= 1, ">= 1", self.log_every),
                ("ensemble", self.ensemble >= 1, ">= 1 (1: every run alone)", self.ensemble)]


@dataclass
class Study:
    """A whole experiment: sources, transfers, evaluation and execution (see the module doc)."""

    name: str = ""
    description: str = ""
    sources: tuple[SourceSpec, ...] = ()
    transfers: tuple[TransferSpec, ...] = ()
    evaluation: Evaluation = field(default_factory=Evaluation)
    execution: Execution = field(default_factory=Execution)

    def check(self):
        names = [s.name for s in self.sources]
        rows = [("name", _plain_name(self.name), "a plain name (no '/', '..', spaces)", self.name),
                ("sources", bool(self.sources), "a non-empty list of source experiments", names),
                ("sources", len(set(names)) == len(names), "distinct names", names)]
        for i, s in enumerate(self.sources):
            rows += [(f"sources[{i}].{n}", ok, e, f) for n, ok, e, f in s.check()]
        for i, t in enumerate(self.transfers):
            rows.append((f"transfers[{i}].source", t.source in names,
                         f"one of the study's sources {names}", t.source))
            rows += [(f"transfers[{i}].{n}", ok, e, f) for n, ok, e, f in t.check()]
        rows += [(f"evaluation.{n}", ok, e, f) for n, ok, e, f in self.evaluation.check()]
        rows += [(f"execution.{n}", ok, e, f) for n, ok, e, f in self.execution.check()]
        return rows

    def validate(self) -> "Study":
        """Types, ranges, names and every resolved run config (so that ``sweep plan`` rejects what
        ``sweep run`` would); raise :class:`ConfigError` naming the field."""
        validate(self)
        require(self._names())
        for spec in plan(self).runs:
            _resolved_config(spec)
        return self

    def _names(self):
        """Every dataset, method and network name is registered (or a ``module:Class`` path)."""
        rows = []
        for i, s in enumerate(self.sources):
            rows += [(f"sources[{i}].dataset", _known(s.dataset, DATASETS), _one_of(DATASETS), s.dataset),
                     (f"sources[{i}].method", s.method in METHODS, _one_of(METHODS), s.method),
                     (f"sources[{i}].arch", _known(s.arch, ARCHITECTURES), _one_of(ARCHITECTURES),
                      s.arch)]
        for i, t in enumerate(self.transfers):
            rows += [(f"transfers[{i}].targets", _known(x, DATASETS), _one_of(DATASETS), x)
                     for x in t.targets + t.optional_targets]
        return rows

    def smoke(self) -> "Study":
        """Seconds-long sizes for every run (docs/architecture.md, principle 12): the grid stays,
        each source trains 8 steps of 8 (no warm-up), each transfer 4 steps of 8, evaluations
        use :meth:`EvalSettings.smoke`, fp32, a log line every 2 steps."""
        return dataclasses.replace(
            self,
            sources=tuple(dataclasses.replace(s, steps=8, batch_size=8, warmup_steps=0)
                          for s in self.sources),
            transfers=tuple(dataclasses.replace(t, steps=4 if t.finetune != "none" else 0,
                                                batch_size=8) for t in self.transfers),
            evaluation=self.evaluation.smoke(),
            execution=dataclasses.replace(self.execution, precision="fp32", log_every=2))


def _known(name: str, table: dict) -> bool:
    return name in table or is_class_path(name)


def _one_of(table: dict) -> str:
    return f"one of {', '.join(sorted(table))} (or a module:Class path)"


def _plain_name(name: str) -> bool:
    """A name usable as one folder-name component (issue 14: nothing escapes its root)."""
    return bool(name) and not any(c in name for c in "/\\ \t\n") and name not in (".", "..") \
        and not name.startswith(".")


# ---------------------------------------------------------------------------- loading
def study_text(name_or_path: str | Path) -> tuple[str, str, str]:
    """(text, suffix, origin) of a packaged study by name, or of a YAML/JSON file."""
    if str(name_or_path) in PACKAGED:
        text = resources.files("disentkit.studies").joinpath(f"{name_or_path}.yaml").read_text("utf-8")
        return text, ".yaml", f"packaged study {name_or_path!r}"
    path = Path(name_or_path)
    if not path.is_file():
        raise ConfigError(f"study {str(name_or_path)!r}: not a packaged study {PACKAGED} "
                          "and not a YAML/JSON file")
    try:
        return path.read_text(encoding="utf-8"), path.suffix.lower(), str(path)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def load_study(name_or_path: str | Path, *, smoke: bool = False) -> Study:
    """A packaged study by name (``quick``, ``paper``) or a YAML/JSON file, fully validated."""
    text, suffix, origin = study_text(name_or_path)
    try:
        data = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        kind = "JSON" if suffix == ".json" else "YAML"
        raise ConfigError(f"{origin}: not valid {kind}: {str(exc).splitlines()[0]}") from None
    try:
        study = from_dict(Study, _merge_defaults(data), "study")
        if not study.name and isinstance(name_or_path, (str, Path)):
            study.name = Path(name_or_path).stem
        return (study.smoke() if smoke else study).validate()
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}") from None


def _merge_defaults(data: Any) -> Any:
    """A top-level ``defaults`` mapping is merged into every source entry (its own keys win)."""
    if not isinstance(data, dict) or "defaults" not in data:
        return data
    data, defaults = dict(data), data.get("defaults") or {}
    data.pop("defaults")
    if not isinstance(defaults, dict):
        raise ConfigError(f"config study.defaults must be a mapping, found {defaults!r}")
    sources = data.get("sources")
    if isinstance(sources, list):
        data["sources"] = [{**defaults, **s} if isinstance(s, dict) else s for s in sources]
    return data


# ---------------------------------------------------------------------------- plan
def plan(study: Study, out: str | Path | None = None, *,
         optional: dict[str, bool] | None = None) -> Plan:
    """Expand ``study`` into runs: sources (file order x β x seed), then transfers (file order x
    target x β x seed). ``optional`` says which optional targets are available (name -> bool;
    None: all). Returns a :class:`Plan` under ``out`` (default ``runs/<name>``)."""
    runs, by_source = [], {}
    for s in study.sources:
        by_source[s.name] = []
        for beta in s.betas:
            for seed in s.seeds:
                cfg = s.train_config(beta, seed, study.execution)
                config = {"kind": "source", "experiment": s.name, "train": to_dict(cfg),
                          "evaluation": to_dict(study.evaluation.settings()),
                          "floor": study.evaluation.floor}
                rid, name = config_id(config), f"{s.name}.b{beta:g}.s{seed}"
                spec = RunSpec(rid, "source", name, Path("sources") / f"{name}.{rid[:8]}", config)
                by_source[s.name].append((spec, beta, seed))
                runs.append(spec)
    for t in study.transfers:
        extra = [x for x in t.optional_targets if optional is None or optional.get(x)]
        for target in tuple(t.targets) + tuple(extra):
            for source, beta, seed in by_source.get(t.source, []):
                config = {"kind": "transfer", "experiment": f"{t.source}->{target}",
                          "source_id": source.id, "transfer": _transfer_dict(study, t, target, seed)}
                rid, name = config_id(config), f"{t.source}--{target}.b{beta:g}.s{seed}"
                runs.append(RunSpec(rid, "transfer", name,
                                    Path("transfers") / f"{name}.{rid[:8]}", config, (source.id,)))
    ids = [r.id for r in runs]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"study {study.name}: two runs resolve to the same config "
                          "(a source or a transfer target is listed twice)")
    runs = group_runs(runs, study.execution.ensemble)  # ids and folders stay the same
    return Plan(study, tuple(runs), Path(out) if out is not None else Path("runs") / study.name)


def _transfer_dict(study: Study, t: TransferSpec, target: str, seed: int) -> dict:
    cfg = TransferConfig(
        source="<source run>", target=target, finetune=t.finetune, steps=t.steps, beta=t.beta,
        lr=t.lr, batch_size=t.batch_size, grad_clip=t.grad_clip, seed=seed,
        heldout_fraction=t.heldout_fraction, device=study.execution.device,
        precision=study.execution.precision, log_every=study.execution.log_every,
        eval=study.evaluation.settings(transfer=True))
    return to_dict(apply_overrides(cfg, t.overrides, f"transfers[{t.source}].overrides"))


def _resolved_config(spec: RunSpec):
    """The TrainConfig or TransferConfig a run will use, validated (raises ConfigError)."""
    if spec.kind == "source":
        return from_dict(TrainConfig, spec.config["train"], "train").validate()
    cfg = from_dict(TransferConfig, spec.config["transfer"], "transfer")
    require(cfg.check(), f"run {spec.name}")
    return cfg
