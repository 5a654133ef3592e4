"""An ensemble's leader trains its whole group (``execution.ensemble`` / ``--ensemble M``).

The plan records each group on its members and makes every other member depend on the leader
(:func:`disentkit.experiment.runs.group_runs`), so the leader's run comes first on every executor.
When it starts, the leader reads its members' specs from ``out/study.json`` (the engine writes
every run's spec there before any run starts) and trains, in each member's own folder, what is
still to train with :func:`~disentkit.training.ensemble.train_ensemble`: for sources their
training (:func:`train_source_group`), for transfers their fine-tuning (:func:`finetune_group`).
Each member's own run then finds that training finished, skips it as it skips any finished stage,
and evaluates as usual: folders, ids and results are those of runs trained one by one, up to float
reassociation in the batched network.

Resuming: members are bucketed by their checkpoint's step (none: 0) and each bucket of two or more
trains as one ensemble from there; a lone member trains with plain ``train``; finished members,
members whose run is done or held by another live process, and (for transfers) members whose
source is not trained yet are left alone: their own runs handle them. A member's failure (a
non-finite loss, a folder it cannot write) is its own run's to report, so the leader only warns
about it; the leader's run fails only when its own training did not finish.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable

from disentkit.config import TrainConfig
from disentkit.errors import DisentkitError
from disentkit.experiment.runs import RunSpec
from disentkit.experiment.stages import (Runtime, source_dir_of, source_train_config,
                                         transfer_config)
from disentkit.io import read_json
from disentkit.methods.base import NonFiniteLossError
from disentkit.sweep.state import DONE, RUNNING, run_state
from disentkit.training import train
from disentkit.training.checkpoint import checkpoint_path, load_checkpoint
from disentkit.training.ensemble import group_members, train_ensemble
from disentkit.training.prepare import is_run_folder
from disentkit.transfers import StageProgress, prepare_finetune, target_dataset

log = logging.getLogger(__name__)

#: one member still to train: (its TrainConfig, its training run folder, its checkpoint's step)
Item = tuple[TrainConfig, Path, int]


def out_of(spec: RunSpec, run_dir: Path) -> Path:
    """The study's output folder, from a run's folder (``out / spec.folder``)."""
    return run_dir.parents[len(Path(spec.folder).parts) - 1]


def members_of(spec: RunSpec, out: Path) -> list[RunSpec]:
    """The leader's ensemble, leader first, from ``out/study.json``."""
    path = out / "study.json"
    runs = {r["id"]: r for r in read_json(path).get("runs", [])} if path.is_file() else {}
    missing = [i for i in spec.ensemble[1:] if i not in runs]
    if missing:
        raise DisentkitError(f"run {spec.name} leads an ensemble of {len(spec.ensemble)} runs, but "
                             f"{path} does not list {', '.join(missing)}: run the study through "
                             "its engine (disentkit run / sweep run), which writes it first")
    return [spec] + [RunSpec.from_dict(runs[i]) for i in spec.ensemble[1:]]


def _step(run_dir: Path) -> int | None:
    """The step of a training folder's checkpoint (None: no checkpoint yet)."""
    return load_checkpoint(run_dir).step if checkpoint_path(run_dir).is_file() else None


def _to_train(run_dir: Path, steps: int) -> int | None:
    """The step to continue ``run_dir`` from (0: from scratch), None when it is finished."""
    step = _step(run_dir)
    return (step or 0) if step is None or step < steps else None


def _left_alone(member: RunSpec, leader: RunSpec, out: Path) -> bool:
    """A member whose run is done, or is being run by another live process right now."""
    return member.id != leader.id and run_state(out / member.folder).state in (DONE, RUNNING)


def train_source_group(spec: RunSpec, out: Path, runtime: Runtime, progress: Callable | None = None,
                       say: Callable[[str], None] = log.info) -> int:
    """Train the sources of the ensemble ``spec`` leads, each into its own run folder; return how
    many trained (0: all finished already)."""
    todo: list[Item] = []
    names = []
    for m in members_of(spec, out):
        cfg = None if _left_alone(m, spec, out) else source_train_config(m, runtime)
        step = None if cfg is None else _to_train(out / m.folder, cfg.run.steps)
        if step is not None:
            todo.append((cfg, out / m.folder, step))
            names.append(m.name)
    steps = source_train_config(spec, runtime).run.steps
    say(f"train source {spec.name} ({steps} steps) (skipped: done)" if not todo else
        f"train source {names[0]} ({steps} steps)" if len(todo) == 1 else
        f"train sources {', '.join(names)} as one ensemble ({steps} steps)")
    _finish(spec, out / spec.folder, steps, _train_items(todo, progress))
    return len(todo)


def finetune_group(spec: RunSpec, out: Path, runtime: Runtime,
                   progress: StageProgress | None = None) -> int:
    """Prepare the transfer of every member of the ensemble ``spec`` leads (folder,
    ``transfer.json``, the folder its fine-tuning starts from) and train their fine-tunings at
    once, each into its own ``finetune/``; return how many trained. One training split serves
    them all when they share it (they do, as planned); otherwise they train one by one."""
    progress = progress or StageProgress(prefix=f"[{spec.name}] ")
    todo: list[Item] = []
    names, splits, targets = [], {}, {}
    for m in members_of(spec, out):
        if m.id != spec.id and (_left_alone(m, spec, out) or not _source_trained(m, out)):
            continue
        try:
            tcfg, run_dir, split, train_set = _prepare_member(m, out, runtime, targets)
        except Exception as exc:  # noqa: BLE001 - a member's problem is its own run's to report
            if m.id == spec.id:
                raise
            log.warning("ensemble of %s: leaving %s to its own run (%s: %s)", spec.name, m.name,
                        type(exc).__name__, exc)
            continue
        step = _to_train(run_dir, tcfg.run.steps)
        if step is not None:
            todo.append((tcfg, run_dir, step))
            names.append(m.name)
            splits[run_dir] = (split, train_set)
    if todo:
        progress.stage(f"fine-tuning {', '.join(names)}"
                       + (" as one ensemble" if len(todo) > 1 else ""))
    if len({key for key, _ in splits.values()}) <= 1:
        shared = next((train_set for _, train_set in splits.values()), None)
        errors = _train_items(todo, progress, shared)
    else:  # not one training split: one by one, each on its own
        errors = [e for item in todo for e in _train_items([item], progress, splits[item[1]][1])]
    steps = transfer_config(spec, source_dir_of(spec, out), runtime).steps
    _finish(spec, out / spec.folder / "finetune", steps, errors)
    return len(todo)


def _prepare_member(m: RunSpec, out: Path, runtime: Runtime, targets: dict):
    """(fine-tuning TrainConfig, its folder, its training split's key, the split) of one member
    transfer, prepared as :func:`~disentkit.transfers.transfer` would; ``targets`` caches the
    target datasets by (name, root), so the group builds each once."""
    cfg = transfer_config(m, source_dir_of(m, out), runtime)
    where = (cfg.target, cfg.data_root, json.dumps(cfg.target_options, sort_keys=True))
    if where not in targets:
        targets[where] = target_dataset(cfg.target, cfg.data_root, cfg.target_options)
    tcfg, run_dir, train_set = prepare_finetune(cfg, out / m.folder, dataset=targets[where])
    return tcfg, run_dir, (*where, cfg.heldout_fraction, cfg.split_seed), train_set


def _source_trained(member: RunSpec, out: Path) -> bool:
    """The member transfer's source run is done, or at least its training is finished."""
    try:
        source = source_dir_of(member, out)
    except FileNotFoundError:
        return False
    if run_state(source).state == DONE:
        return True
    step = _step(source)
    return step is not None and (source / "config.json").is_file() and \
        step >= read_json(source / "config.json")["run"]["steps"]


def _train_items(items: list[Item], progress, dataset=None) -> list[tuple[list[Path], Exception]]:
    """Train the items: those at one step in ensembles of compatible configs, a lone one with
    ``train``, each resuming what its folder holds. Return the errors with the folders they
    concern; a failing group does not stop the others."""
    buckets: dict[int, list[Item]] = {}
    for item in items:
        buckets.setdefault(item[2], []).append(item)
    errors = []
    show = progress if progress is not None else False
    for step in sorted(buckets):
        bucket = buckets[step]
        for idx in group_members([cfg for cfg, _, _ in bucket], len(bucket)):
            cfgs, dirs = [bucket[i][0] for i in idx], [bucket[i][1] for i in idx]
            resume = any(is_run_folder(d) for d in dirs)  # also a folder killed before step 1
            try:
                if len(cfgs) > 1:
                    train_ensemble(cfgs, dirs, resume=resume, progress=show, dataset=dataset)
                else:
                    train(cfgs[0], dirs[0], resume=resume, progress=show, dataset=dataset)
            except NonFiniteLossError as exc:  # the others finished; the bad one would again
                errors.append((dirs, exc))
            except Exception as exc:  # noqa: BLE001 - e.g. one member's folder is refused
                if len(cfgs) == 1:
                    errors.append((dirs, exc))
                    continue
                log.warning("ensemble of %s failed (%s: %s); training them one by one",
                            ", ".join(map(str, dirs)), type(exc).__name__, exc)
                errors += _one_by_one(cfgs, dirs, show, dataset)
    return errors


def _one_by_one(cfgs: list[TrainConfig], dirs: list[Path], show, dataset) -> list:
    """After an ensemble failed for a reason that is not a non-finite loss (a member's folder
    refused, say), train its unfinished members alone, so one member cannot fail the others."""
    errors = []
    for cfg, d in zip(cfgs, dirs):
        if _to_train(d, cfg.run.steps) is None:
            continue
        try:
            train(cfg, d, resume=is_run_folder(d), progress=show, dataset=dataset)
        except Exception as exc:  # noqa: BLE001 - reported by the run it belongs to
            errors.append(([d], exc))
    return errors


def _finish(spec: RunSpec, own: Path, steps: int, errors) -> None:
    """Raise the leader's own error when its training did not finish; warn about the others'
    (each member's own run retrains what is unfinished and reports its failure)."""
    if _to_train(own, steps) is not None:
        mine = [exc for dirs, exc in errors if own in dirs]
        if mine or errors:
            raise (mine or [exc for _, exc in errors])[0]
        raise DisentkitError(f"run {spec.name}: its ensemble finished without training it")
    for dirs, exc in errors:
        log.warning("ensemble of %s: training %s failed (%s: %s); each of these runs will "
                    "retry it alone", spec.name, ", ".join(map(str, dirs)), type(exc).__name__, exc)
