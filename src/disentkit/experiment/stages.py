"""Run one planned run of a study, whatever the executor: the one place where a study meets the
training, evaluation and transfer code — and the checks made before any of it starts.

* :func:`preflight` checks, in the first second, everything a study needs that a config check
  cannot see: the metric backend can be imported (LightGBM for ``fast``), every source and target
  dataset can be built (files under ``--data-root`` for the real ones). Optional targets that are
  missing are reported and left out; anything else missing is an error before any training.
* :func:`run_source` trains (resuming from the folder's checkpoint), then evaluates the source
  on its own data beside its untrained floor (``eval/``, ``floor/``): the paper's source table.
* :func:`run_transfer` runs :func:`disentkit.transfers.transfer` (zero-shot, fine-tuning, after).
* The leader of an ensemble (``execution.ensemble``) trains its whole group first, in every
  member's folder (:mod:`disentkit.experiment.ensembles`).

Every stage whose output exists is skipped, so a re-run finishes an interrupted run and costs
seconds on a finished one.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from pathlib import Path
from typing import Callable

from disentkit.config import TrainConfig, from_dict
from disentkit.data.registry import dataset_class, get_dataset
from disentkit.errors import DisentkitError
from disentkit.evaluate import EvalSettings, evaluate_source, is_complete
from disentkit.experiment.study import RunSpec, Study
from disentkit.metrics import check_backend
from disentkit.training import train
from disentkit.training.checkpoint import checkpoint_path, load_checkpoint
from disentkit.training.prepare import build_dataset, is_run_folder
from disentkit.transfers import TransferConfig, transfer

log = logging.getLogger(__name__)


class PreflightError(DisentkitError, ValueError):
    """Something a study needs is missing; raised before any training starts."""


@dataclasses.dataclass(frozen=True)
class Runtime:
    """Where and how a run executes; not part of its id (the results do not depend on it).

    ``data_root``: folder holding the real datasets (itself or a sub-folder named after each
    dataset). ``threads``: CPU threads for training and for the metrics' classifiers.
    """

    threads: int | None = None
    device: str | None = None  # None: the study's execution.device
    data_root: str | None = None


def dataset_root(name: str, data_root: str | None) -> str | None:
    """The ``root`` for dataset ``name``: ``data_root/name`` when that folder exists; else
    ``data_root`` itself for a dataset that cannot be built without files; else None (generated
    data). A dataset that needs files without ``data_root`` is an error that says so."""
    param = inspect.signature(dataset_class(name)).parameters.get("root")
    if param is None:
        return None
    required = param.default is inspect.Parameter.empty
    if data_root and (Path(data_root) / name).is_dir():
        return str(Path(data_root) / name)
    if required and not data_root:
        raise PreflightError(f"dataset {name!r} is read from files: pass --data-root DIR "
                             "(holding them, or a sub-folder named after the dataset)")
    return str(data_root) if required else None


def _try_dataset(name: str, data_root: str | None) -> str | None:
    """None when ``name`` can be built from ``data_root``, else the first line of the reason."""
    try:
        root = dataset_root(name, data_root)
        get_dataset(name, root=root) if root else get_dataset(name)
    except (DisentkitError, ValueError, OSError, ImportError) as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None


def preflight(study: Study, data_root: str | None) -> dict[str, bool]:
    """Check the backend and every dataset before any work; return which optional targets are
    available (name -> bool). Raises :class:`PreflightError` listing every missing piece."""
    problems = []
    try:
        check_backend(study.evaluation.backend)
    except (ValueError, ImportError) as exc:
        problems.append(f"evaluation.backend {study.evaluation.backend!r}: {exc}")
    required = {s.dataset for s in study.sources} | {x for t in study.transfers for x in t.targets}
    for name in sorted(required):
        reason = _try_dataset(name, data_root)
        if reason:
            problems.append(f"dataset {name}: {reason}")
    if problems:
        raise PreflightError(f"study {study.name} cannot start: " + "; ".join(problems))
    optional = {}
    for name in sorted({x for t in study.transfers for x in t.optional_targets} - required):
        reason = _try_dataset(name, data_root) if data_root else "no --data-root given"
        optional[name] = reason is None
        if reason:
            log.warning("skipping optional target %s: %s", name, reason)
    return optional


def source_train_config(spec: RunSpec, runtime: Runtime) -> TrainConfig:
    """The :class:`TrainConfig` of a source run (the plan's resolved values + the runtime)."""
    cfg = from_dict(TrainConfig, spec.config["train"], "train")
    cfg.data.root = dataset_root(cfg.data.dataset, runtime.data_root)
    cfg.run.threads = runtime.threads
    if runtime.device is not None:
        cfg.run.device = runtime.device
    return cfg.validate()


def eval_settings(spec: RunSpec, runtime: Runtime) -> EvalSettings:
    ev = from_dict(EvalSettings, spec.config["evaluation"], "evaluation")
    return dataclasses.replace(ev, n_jobs=runtime.threads) if runtime.threads else ev


def run_source(spec: RunSpec, run_dir: Path, runtime: Runtime,
               progress: Callable | None = None, say: Callable[[str], None] = log.info) -> None:
    """Train (resuming from the folder's checkpoint if any), then evaluate the source on its own
    data beside its untrained floor: the source table of the paper."""
    train_source(spec, run_dir, runtime, progress, say)
    evaluate_source_run(spec, run_dir, runtime, say)


def train_source(spec: RunSpec, run_dir: Path, runtime: Runtime,
                 progress: Callable | None = None, say: Callable[[str], None] = log.info) -> int:
    """Train the source run into ``run_dir`` (resume; skip when finished); return how many runs
    trained: 1 or 0, or, for an ensemble's leader, the members it trained at once with itself
    (:mod:`disentkit.experiment.ensembles`; each member's own run then skips its training)."""
    if spec.leads:
        from disentkit.experiment.ensembles import out_of, train_source_group  # imports this

        return train_source_group(spec, out_of(spec, run_dir), runtime, progress, say)
    cfg = source_train_config(spec, runtime)
    have = checkpoint_path(run_dir).is_file()
    done = have and load_checkpoint(run_dir).step >= cfg.run.steps
    say(f"train source {spec.name} ({cfg.run.steps} steps)" + (" (skipped: done)" if done else ""))
    if not done:  # a folder killed before its first checkpoint resumes too (from step 0)
        train(cfg, run_dir, resume=is_run_folder(run_dir),
              progress=progress if progress is not None else False)
    return int(not done)


def evaluate_source_run(spec: RunSpec, run_dir: Path, runtime: Runtime,
                        say: Callable[[str], None] = log.info) -> int:
    """Evaluate a trained source (``eval/``) and its untrained floor (``floor/``); return the
    number of evaluations that ran (finished ones are skipped)."""
    cfg = source_train_config(spec, runtime)
    floor = bool(spec.config.get("floor", True))
    parts = ("eval", "floor") if floor else ("eval",)
    todo = sum(not is_complete(run_dir / p) for p in parts)
    say(f"evaluate source {spec.name}" + (" and its untrained floor" if floor else "")
        + ("" if todo else " (skipped: done)"))
    evaluate_source(run_dir, eval_settings(spec, runtime), dataset=build_dataset(cfg), floor=floor)
    _check_complete(spec, run_dir, parts)
    return todo


def transfer_config(spec: RunSpec, source_dir: Path, runtime: Runtime) -> TransferConfig:
    """The :class:`TransferConfig` of a transfer run (the plan's values + the runtime)."""
    cfg = from_dict(TransferConfig, spec.config["transfer"], "transfer")
    cfg.source = str(source_dir)
    cfg.data_root = dataset_root(cfg.target, runtime.data_root)
    cfg.threads = runtime.threads
    if runtime.device is not None:
        cfg.device = runtime.device
    if runtime.threads:
        cfg.eval = dataclasses.replace(cfg.eval, n_jobs=runtime.threads)
    return cfg.validate()


def run_transfer(spec: RunSpec, run_dir: Path, source_dir: Path, runtime: Runtime,
                 progress=None) -> None:
    """Zero-shot evaluation, fine-tuning and evaluation after; finished stages skip. An
    ensemble's leader first fine-tunes its whole group at once (its own fine-tuning included)."""
    cfg = transfer_config(spec, source_dir, runtime)
    if spec.leads:
        from disentkit.experiment.ensembles import finetune_group, out_of  # imports this

        finetune_group(spec, out_of(spec, run_dir), runtime, progress)
    transfer(cfg, run_dir, progress=progress)
    parts = ("before", "floor") + (() if cfg.finetune == "none" else ("after",))
    _check_complete(spec, run_dir, parts)


def source_dir_of(spec: RunSpec, out: Path) -> Path | None:
    """A transfer's source run folder, found from the source id in its config."""
    if spec.kind != "transfer":
        return None
    matches = sorted((out / "sources").glob(f"*.{spec.config['source_id'][:8]}"))
    if not matches:
        raise FileNotFoundError(f"transfer {spec.name}: its source run {spec.config['source_id']} "
                                f"has no folder under {out / 'sources'}")
    return matches[0]


def dispatch(spec: RunSpec, run_dir: Path, source_dir: Path | None, runtime: Runtime,
             progress=None) -> None:
    """Call the entry point for ``spec.kind``: train + evaluate a source, or transfer."""
    if spec.kind == "source":
        run_source(spec, run_dir, runtime, progress)
    elif spec.kind == "transfer":
        if source_dir is None:
            raise ValueError(f"transfer {spec.name}: no source run folder")
        run_transfer(spec, run_dir, source_dir, runtime, progress)
    else:
        raise ValueError(f"run {spec.id}: kind must be 'source' or 'transfer', found {spec.kind!r}")


def _check_complete(spec: RunSpec, run_dir: Path, parts: tuple[str, ...]) -> None:
    """A run is done only when its results are on disk (docs/architecture.md, "Contracts")."""
    missing = [p for p in parts if not is_complete(run_dir / p)]
    if missing:
        raise RuntimeError(f"run {spec.name} returned without complete results in {missing} "
                           f"under {run_dir}")
