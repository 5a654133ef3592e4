"""A study file (YAML or JSON) → a deterministic list of runs.

The paper's evidence (Dapueto et al. 2024, §4 and appendix tables) is a grid: 5 weakly-supervised
source experiments × β ∈ {1, 2} × 10 seeds, and 15 source→target transfers of each of those 20
models, each fine-tuned for 50k steps and evaluated before and after. A study file describes such a
grid as data; :func:`expand` turns it into :class:`RunSpec` objects, each with

* a *resolved* config (every value the run depends on, spelled out; no defaults left implicit),
* a stable id: the first 12 hex digits of the SHA-256 of that config as canonical JSON, so the same
  study always yields the same ids, and changing any setting of a run gives it a new id and hence
  a new folder (old results are never mistaken for new ones),
* a run folder ``sources/<name>.<id8>`` or ``transfers/<name>.<id8>`` under the study's output,
* its dependencies: a transfer depends on the source run it starts from (its config embeds the
  source's id, so a changed source changes every transfer id downstream). A transfer fine-tunes
  with its source model's seed and, unless the study says otherwise, its β (the reference code
  silently forced β = 1 and seed 0; docs/science.md, pitfalls).

Format (keys not listed raise ``ValueError`` naming the valid ones)::

    name: quick
    defaults:                      # shared by every source (any source key)
      method: gvae-labels
    evaluation: {n_samples: 15008, metrics: null, figures: true, floor: true}  # null: every metric
    sources:
      - name: color-dsprites       # experiment name that transfers refer to
        dataset: color-dsprites
        method: ada-gvae
        arch: locatello
        latent_dim: 10
        betas: [1, 2]
        seeds: 10                  # an int n means 0..n-1, or a list of ints
        steps: 400000
        warmup: 50000              # β warm-up steps (paper: 50k)
        batch_size: 64
        lr: 1.0e-4
        set: {}                    # extra dotted TrainConfig overrides, e.g. {"optim.grad_clip": 1.0}
    transfers:
      - source: color-dsprites
        targets: [noisy-color-dsprites, shapes3d]
        finetune_steps: 50000
        finetune: all              # all | encoder | decoder | none
        beta: null                 # fine-tuning β; null: the source model's β
        batch_size: 64
        lr: 1.0e-4
    smoke: {steps: 8, warmup: 0, finetune_steps: 4, batch_size: 8, n_samples: 240,
            metrics: [omes, dci, mig], figures: false, floor: false}

``--smoke`` replaces steps, warm-up, fine-tuning steps, batch size, evaluation size and metrics
by the ``smoke`` section's values (defaults in :data:`SMOKE_DEFAULTS`) so every run takes seconds.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from disentkit.runfolder import check_plain_name

SOURCE_KEYS = {
    "name": None,
    "dataset": None,
    "method": "gvae-labels",
    "arch": "locatello",
    "latent_dim": 10,
    "betas": [1.0],
    "seeds": [0],
    "steps": 400_000,
    "warmup": 50_000,
    "batch_size": 64,
    "lr": 1e-4,
    "set": {},
}
TRANSFER_KEYS = {
    "source": None,
    "targets": None,
    "finetune_steps": 50_000,
    "finetune": "all",
    "beta": None,  # None: the source's β
    "batch_size": 64,
    "lr": 1e-4,
    "set": {},
}
#: evaluation of every model (paper: 15,008 samples, every metric); ``floor`` also evaluates each
#: source's untrained network (the source table's floor), ``figures`` writes the figures
EVALUATION_KEYS = {"n_samples": 15_008, "metrics": None, "figures": True, "floor": True}
SMOKE_DEFAULTS = {
    "steps": 8,
    "warmup": 0,
    "finetune_steps": 4,
    "batch_size": 8,
    "n_samples": 240,
    "metrics": ["omes", "dci", "mig"],
    "figures": False,
    "floor": False,
}
STUDY_KEYS = {"name", "description", "defaults", "evaluation", "sources", "transfers", "smoke"}
FINETUNE_CHOICES = ("all", "encoder", "decoder", "none")


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One run of a study: what to do (``config``), where (``folder``), and after what."""

    id: str
    kind: str  # "source" or "transfer"
    name: str
    folder: Path
    config: dict
    depends_on: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "folder": str(self.folder),
            "config": self.config,
            "depends_on": list(self.depends_on),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "RunSpec":
        return cls(
            id=data["id"],
            kind=data["kind"],
            name=data["name"],
            folder=Path(data["folder"]),
            config=data["config"],
            depends_on=tuple(data.get("depends_on", ())),
        )


@dataclasses.dataclass(frozen=True)
class Study:
    """A loaded study: its name and its runs in execution order (sources first)."""

    name: str
    runs: tuple[RunSpec, ...]
    out: Path

    def by_id(self) -> dict[str, RunSpec]:
        return {r.id: r for r in self.runs}

    def of_kind(self, kind: str) -> list[RunSpec]:
        return [r for r in self.runs if r.kind == kind]


def config_id(config: dict) -> str:
    """Stable id of a resolved config: SHA-256 of its canonical JSON, 12 hex digits."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def read_study_file(path: str | Path) -> dict:
    """Parse a study file (``.yaml``/``.yml`` or ``.json``) into a dict."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"study file not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"study file {path} is not valid {path.suffix[1:].upper()}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"study file {path}: expected a mapping at the top, found {type(data).__name__}")
    return data


def load_study(path: str | Path, out: str | Path | None = None, *, smoke: bool = False) -> Study:
    """Load and expand a study file. ``out`` defaults to ``runs/<study name>`` (``-smoke`` added
    with ``smoke``), relative to the current folder."""
    data = read_study_file(path)
    name = check_plain_name(str(data.get("name") or Path(path).stem), f"{path}: study name")
    if out is None:
        out = Path("runs") / (f"{name}-smoke" if smoke else name)
    return Study(name=name, runs=tuple(expand(data, smoke=smoke)), out=Path(out))


def expand(data: dict, *, smoke: bool = False) -> list[RunSpec]:
    """Expand a study dict into runs: sources (file order × β × seed), then transfers
    (file order × target × β × seed). Deterministic: the same dict gives the same list."""
    _check_keys("study", data, STUDY_KEYS)
    defaults = data.get("defaults") or {}
    _check_keys("defaults", defaults, set(SOURCE_KEYS) - {"name"})
    evaluation = {**EVALUATION_KEYS, **(data.get("evaluation") or {})}
    _check_keys("evaluation", evaluation, set(EVALUATION_KEYS))
    smoke_values = {**SMOKE_DEFAULTS, **(data.get("smoke") or {})}
    _check_keys("smoke", smoke_values, set(SMOKE_DEFAULTS))
    if smoke:
        evaluation.update({k: smoke_values[k] for k in ("n_samples", "metrics", "figures", "floor")})

    sources = data.get("sources") or []
    if not isinstance(sources, list) or not sources:
        raise ValueError("study: 'sources' must be a non-empty list of source experiments")
    runs: list[RunSpec] = []
    by_experiment: dict[str, list[RunSpec]] = {}
    for i, entry in enumerate(sources):
        where = f"sources[{i}]"
        _check_keys(where, entry, set(SOURCE_KEYS))
        src = {**copy.deepcopy(SOURCE_KEYS), **copy.deepcopy(defaults), **entry}
        for key in ("name", "dataset"):
            if not src.get(key):
                raise ValueError(f"{where}: missing required key {key!r}")
        _check_dataset(where, src["dataset"])
        check_plain_name(src["name"], f"{where}.name")  # it becomes a folder name
        if src["name"] in by_experiment:
            raise ValueError(f"{where}: source name {src['name']!r} is used twice; names must be unique")
        if smoke:
            src.update({k: smoke_values[k] for k in ("steps", "warmup", "batch_size")})
        experiment_runs = []
        for beta in _betas(where, src["betas"]):
            for seed in _seeds(where, src["seeds"]):
                config = {
                    "kind": "source",
                    "experiment": src["name"],
                    "dataset": src["dataset"],
                    "method": src["method"],
                    "arch": src["arch"],
                    "latent_dim": int(src["latent_dim"]),
                    "beta": beta,
                    "seed": seed,
                    "steps": _positive_int(where, "steps", src["steps"]),
                    "warmup": _positive_int(where, "warmup", src["warmup"], zero_ok=True),
                    "batch_size": _positive_int(where, "batch_size", src["batch_size"]),
                    "lr": float(src["lr"]),
                    "set": dict(src["set"] or {}),
                    "evaluation": dict(evaluation),
                }
                run_id = config_id(config)
                name = f"{src['name']}.b{_fmt(beta)}.s{seed}"
                spec = RunSpec(run_id, "source", name, Path("sources") / f"{name}.{run_id[:8]}", config)
                experiment_runs.append(spec)
        by_experiment[src["name"]] = experiment_runs
        runs.extend(experiment_runs)

    for i, entry in enumerate(data.get("transfers") or []):
        where = f"transfers[{i}]"
        _check_keys(where, entry, set(TRANSFER_KEYS))
        tr = {**copy.deepcopy(TRANSFER_KEYS), **entry}
        if tr["source"] not in by_experiment:
            raise ValueError(
                f"{where}: source {tr['source']!r} is not a source experiment of this study; "
                f"sources: {sorted(by_experiment)}"
            )
        targets = tr["targets"]
        if isinstance(targets, str):
            targets = [targets]
        if not targets:
            raise ValueError(f"{where}: 'targets' must list at least one dataset")
        if tr["finetune"] not in FINETUNE_CHOICES:
            raise ValueError(f"{where}: finetune must be one of {FINETUNE_CHOICES}, found {tr['finetune']!r}")
        if smoke:
            tr.update({"finetune_steps": smoke_values["finetune_steps"], "batch_size": smoke_values["batch_size"]})
        for target in targets:
            _check_dataset(where, target)
            check_plain_name(target, f"{where}.targets")
            for source in by_experiment[tr["source"]]:
                config = {
                    "kind": "transfer",
                    "experiment": f"{tr['source']}->{target}",
                    "source_id": source.id,
                    "source_dataset": source.config["dataset"],
                    "target": target,
                    "beta": source.config["beta"] if tr["beta"] is None else _betas(where, tr["beta"])[0],
                    "seed": source.config["seed"],
                    "finetune_steps": _positive_int(where, "finetune_steps", tr["finetune_steps"], zero_ok=True),
                    "finetune": tr["finetune"],
                    "batch_size": _positive_int(where, "batch_size", tr["batch_size"]),
                    "lr": float(tr["lr"]),
                    "set": dict(tr["set"] or {}),
                    "evaluation": dict(evaluation),
                }
                run_id = config_id(config)
                name = f"{tr['source']}--{target}.b{_fmt(config['beta'])}.s{config['seed']}"
                folder = Path("transfers") / f"{name}.{run_id[:8]}"
                runs.append(RunSpec(run_id, "transfer", name, folder, config, (source.id,)))
    ids = [r.id for r in runs]
    if len(set(ids)) != len(ids):
        raise ValueError("study: two runs resolve to the same config (a transfer or source is listed twice)")
    return runs


def _check_keys(where: str, data: Any, valid: set[str]) -> None:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, found {type(data).__name__}")
    unknown = set(data) - set(valid)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; valid keys: {sorted(valid)}")


def _check_dataset(where: str, name: str) -> None:
    from disentkit.data.registry import DATASETS

    if name not in DATASETS:
        raise ValueError(f"{where}: unknown dataset {name!r}; valid names: {', '.join(sorted(DATASETS))}")


def _seeds(where: str, seeds: Any) -> list[int]:
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError(f"{where}: seeds as a count must be >= 1, found {seeds}")
        return list(range(seeds))
    if isinstance(seeds, list) and seeds and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"{where}: seeds repeat: {seeds}")
        return list(seeds)
    raise ValueError(f"{where}: seeds must be a count or a non-empty list of ints, found {seeds!r}")


def _betas(where: str, betas: Any) -> list[float]:
    if isinstance(betas, (int, float)) and not isinstance(betas, bool):
        betas = [betas]
    if not isinstance(betas, list) or not betas:
        raise ValueError(f"{where}: betas must be a non-empty list of numbers, found {betas!r}")
    out = []
    for b in betas:
        if isinstance(b, bool) or not isinstance(b, (int, float)) or b < 0:
            raise ValueError(f"{where}: every beta must be a number >= 0, found {b!r}")
        out.append(float(b))
    return out


def _positive_int(where: str, key: str, value: Any, zero_ok: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if zero_ok else 1):
        bound = ">= 0" if zero_ok else ">= 1"
        raise ValueError(f"{where}: {key} must be an integer {bound}, found {value!r}")
    return value


def _fmt(beta: float) -> str:
    return f"{beta:g}"
