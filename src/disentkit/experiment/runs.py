"""The runs of a planned study: :class:`RunSpec` (one run), :class:`Plan` (all of them), their
stable ids (:func:`config_id`), and the ensembles they train in (:func:`group_runs`).

Kept apart from :mod:`disentkit.experiment.study` (the schema and its expansion) so that each
module stays readable; ``study`` re-exports every name here.

**Ensembles** (``execution.ensemble: M`` / ``--ensemble M``). The paper's grid trains, per source
experiment, seeds × βs of one network and fine-tunes each the same way; one small VAE at a time
leaves a GPU mostly idle, and :func:`disentkit.training.ensemble.train_ensemble` trains M such runs
as one vmapped network whose members equal the single runs up to float reassociation. So an
ensemble changes how runs compute, not what they are: ids, folders and results stay the single
runs'. At plan time the compatible runs are chunked into groups of at most M, recorded on every
member (``RunSpec.ensemble``: member ids, leader first), and each non-leader member
``depends_on`` its leader, so every executor (the inline order, the local pool, Slurm waves)
runs the leader first without scheduling code of its own: the leader trains the whole group
(:mod:`disentkit.experiment.ensembles`), and each member's own run then finds its training
finished and evaluates as usual.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from disentkit.config import TrainConfig, from_dict
from disentkit.training.ensemble import group_members

if TYPE_CHECKING:
    from disentkit.experiment.study import Study


@dataclass(frozen=True)
class RunSpec:
    """One run of a study: what to do (``config``), where (``folder``), and after what.
    ``ensemble``: the ids of the runs it trains with, leader first (empty: it trains alone)."""

    id: str
    kind: str  # "source" or "transfer"
    name: str
    folder: Path
    config: dict
    depends_on: tuple[str, ...] = ()
    ensemble: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "folder": str(self.folder),
                "depends_on": list(self.depends_on), "ensemble": list(self.ensemble)}

    @classmethod
    def from_dict(cls, data: dict) -> "RunSpec":
        return cls(**{**data, "folder": Path(data["folder"]),
                      "depends_on": tuple(data.get("depends_on", ())),
                      "ensemble": tuple(data.get("ensemble", ()))})

    @property
    def leads(self) -> bool:
        """True for the run that trains its whole ensemble (the first member)."""
        return len(self.ensemble) > 1 and self.ensemble[0] == self.id


@dataclass(frozen=True)
class Plan:
    """A study expanded into runs in execution order (sources first), under ``out``."""

    study: "Study"
    runs: tuple[RunSpec, ...]
    out: Path

    name = property(lambda self: self.study.name)

    def by_id(self) -> dict[str, RunSpec]:
        return {r.id: r for r in self.runs}

    def of_kind(self, kind: str) -> list[RunSpec]:
        return [r for r in self.runs if r.kind == kind]


#: fields of a resolved config that do not change results (left out of the id)
RUNTIME_KEYS = ("train.run.device", "train.run.threads", "train.run.log_every",
                "train.run.checkpoint_every", "train.run.prefetch", "train.data.root",
                "train.run.data_workers", "transfer.data_workers",
                "transfer.device", "transfer.threads", "transfer.log_every", "transfer.data_root",
                "transfer.source", "evaluation.n_jobs", "evaluation.batch_size",
                "transfer.eval.n_jobs", "transfer.eval.batch_size")

#: fields left out of the id while empty: added after ids were published, so that a study
#: that does not set them keeps its run ids (and its finished runs)
OMIT_WHEN_EMPTY = ("transfer.target_options",)


def config_id(config: dict) -> str:
    """Stable id of a resolved config without its runtime keys: SHA-256 of canonical JSON, 12 hex."""
    kept = json.loads(json.dumps(config))
    for key in RUNTIME_KEYS + OMIT_WHEN_EMPTY:
        node, parts = kept, key.split(".")
        for part in parts[:-1]:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict) and (key in RUNTIME_KEYS or node.get(parts[-1]) in ({}, None)):
            node.pop(parts[-1], None)
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


# ---------------------------------------------------------------------------- ensembles
def group_runs(runs: Sequence[RunSpec], size: int) -> list[RunSpec]:
    """``runs`` with their ensembles of at most ``size`` members recorded (``size`` 1: unchanged).

    Sources of one study source entry whose TrainConfigs share an
    :func:`~disentkit.training.ensemble.ensemble_key` are chunked by
    :func:`~disentkit.training.ensemble.group_members`. Transfers group when they fine-tune every
    weight without ``compat`` (which resumes each source's own optimiser) and share everything but
    seed and source run (one transfer entry and target) *and* their sources trained as one group:
    that group's leader trained all of them, so the transfers' leader, which depends on it, finds
    every member's source trained however the executor orders the runs. The plan's order keeps
    each leader before its members."""
    if size <= 1:
        return list(runs)
    entries: dict[str, list[RunSpec]] = {}
    for r in runs:
        if r.kind == "source":
            entries.setdefault(r.config["experiment"], []).append(r)
    groups, source_group = [], {}
    for entry in entries.values():
        cfgs = [from_dict(TrainConfig, r.config["train"], "train") for r in entry]
        for idx in group_members(cfgs, size):
            ids = tuple(entry[i].id for i in idx)
            groups.append(ids)
            source_group.update((i, ids) for i in ids)
    tunings: dict[str, list[RunSpec]] = {}
    for r in runs:
        t = r.config.get("transfer") if r.kind == "transfer" else None
        if t and t["finetune"] == "all" and not t["compat"] and t["steps"] > 0:
            sources = source_group.get(r.config["source_id"], (r.config["source_id"],))
            key = json.dumps([r.config["experiment"], {k: v for k, v in t.items() if k != "seed"},
                              sources], sort_keys=True)
            tunings.setdefault(key, []).append(r)
    for entry in tunings.values():
        groups += [tuple(r.id for r in entry[i:i + size]) for i in range(0, len(entry), size)]
    return _record(runs, groups, source_group)


def _record(runs: Sequence[RunSpec], groups: list[tuple[str, ...]],
            source_group: dict[str, tuple[str, ...]]) -> list[RunSpec]:
    """Write each group of two or more onto its members: ``ensemble``, and ``depends_on`` the
    leader (a transfers' leader also depends on the leader of its sources' group)."""
    by_id = {r.id: r for r in runs}
    member_of, extra = {}, {}
    for ids in groups:
        if len(ids) < 2:
            continue
        leader = by_id[ids[0]]
        for i in ids:
            member_of[i], extra[i] = ids, ids[:1]
        extra[leader.id] = (source_group.get(leader.config["source_id"], ())[:1]
                            if leader.kind == "transfer" else ())
    out = []
    for r in runs:
        if r.id in member_of:
            deps = tuple(dict.fromkeys(r.depends_on + extra[r.id]))
            r = dataclasses.replace(r, ensemble=member_of[r.id], depends_on=deps)
        out.append(r)
    return out
