"""A study trains compatible runs as ensembles (``execution.ensemble`` / ``--ensemble M``): the
plan groups them without changing any id, a group's leader trains every member at once (sources,
then fine-tunings), each member still finishes as its own run with the single runs' results
(within the tolerance of tests/test_ensemble.py), resume buckets members by step, and a failed
leader blocks its members with a message that says so."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import yaml
from test_ensemble import TOLERANCE

from disentkit.cli import main
from disentkit.config import ConfigError
from disentkit.experiment import ensembles
from disentkit.experiment.engine import run_study
from disentkit.experiment.stages import Runtime, source_train_config
from disentkit.experiment.study import RunSpec, load_study, plan
from disentkit.sweep import state as st
from disentkit.training import train
from disentkit.training.checkpoint import load_checkpoint


def _write(tmp_path: Path, data: dict, name: str = "ens") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _grid_study(tmp_path: Path) -> Path:
    """6 sources of one entry (3 seeds x 2 betas), an identical entry of its own, an entry that
    differs in lr; fine-tunings of all weights, of the encoder only, and --compat ones."""
    src = {"dataset": "color-dsprites", "steps": 5, "warmup_steps": 0}
    return _write(tmp_path, {
        "name": "grid",
        "sources": [{**src, "name": "color", "seeds": [0, 1, 2], "betas": [1, 2]},
                    {**src, "name": "twin", "seeds": [3]},
                    {**src, "name": "other", "seeds": [0, 1], "lr": 5.0e-4}],
        "transfers": [{"source": "color", "targets": ["noisy-color-dsprites", "shapes3d"], "steps": 3},
                      {"source": "color", "targets": ["coins-augmented"], "finetune": "encoder"},
                      {"source": "other", "targets": ["shapes3d"], "overrides": {"compat": True}}],
        "evaluation": {"n": 16},
    })


def test_plan_groups_compatible_runs_without_changing_ids(tmp_path):
    study = load_study(_grid_study(tmp_path))
    alone = plan(study)
    study.execution = dataclasses.replace(study.execution, ensemble=4)
    grouped = plan(study)
    # the same runs, ids, folders and order: an ensemble changes how runs compute, not what
    assert [(r.id, r.folder, r.config) for r in grouped.runs] == \
        [(r.id, r.folder, r.config) for r in alone.runs]
    assert all(r.ensemble == () for r in alone.runs)
    by_id = grouped.by_id()
    groups = {r.ensemble for r in grouped.runs if r.ensemble}

    def names(kind, prefix):
        return sorted(tuple(by_id[i].name for i in g) for g in groups
                      if by_id[g[0]].kind == kind and by_id[g[0]].name.startswith(prefix))

    assert names("source", "color") == [
        ("color.b1.s0", "color.b1.s1", "color.b1.s2", "color.b2.s0"), ("color.b2.s1", "color.b2.s2")]
    assert names("source", "other") == [("other.b1.s0", "other.b1.s1")]
    assert not names("source", "twin")  # same config as color's, another study entry: alone
    for target in ("noisy-color-dsprites", "shapes3d"):  # as their sources trained
        assert names("transfer", f"color--{target}") == [
            tuple(f"color--{target}.{n.split('.', 1)[1]}" for n in g) for g in names("source", "color")]
    assert not names("transfer", "color--coins")  # encoder only: not an ensemble
    assert not names("transfer", "other--")  # --compat resumes each source's own state: alone
    for g in groups:
        leader = by_id[g[0]]
        assert leader.leads and leader.depends_on == alone.by_id()[leader.id].depends_on
        for i in g[1:]:  # every other member runs after its leader, on every executor
            member = by_id[i]
            assert not member.leads and member.depends_on == alone.by_id()[i].depends_on + (g[0],)
            assert [r.id for r in grouped.runs].index(g[0]) < [r.id for r in grouped.runs].index(i)
    member = by_id[next(iter(groups))[1]]
    assert RunSpec.from_dict(json.loads(json.dumps(member.to_dict()))) == member


def test_bad_ensemble_is_one_line_naming_the_field(tmp_path, capsys):
    path = _grid_study(tmp_path)
    out = ["--out", str(tmp_path / "o")]
    for argv in (["sweep", "run", str(path), "--ensemble", "0", *out],
                 ["sweep", "plan", str(path), "--ensemble", "-1", *out],
                 ["run", "--preset", str(path), "--ensemble", "0", *out]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "execution.ensemble must be >= 1" in err, err
    data = yaml.safe_load(path.read_text())
    for bad in (0, "two"):
        data["execution"] = {"ensemble": bad}
        assert main(["sweep", "plan", str(_write(tmp_path, data, "bad")), *out]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "execution.ensemble" in err, err
    with pytest.raises(ConfigError, match="execution.ensemble"):
        load_study(_write(tmp_path, data, "bad"))
    assert not (tmp_path / "o").exists()
    # the flag groups what plan lists: each member runs after its leader
    listing = tmp_path / "plan.json"
    assert main(["sweep", "plan", str(path), "--ensemble", "4", *out, "--json", str(listing)]) == 0
    rows = {r["name"]: r for r in json.loads(listing.read_text())}
    leader = rows["color.b1.s0"]["id"][:8]
    assert [n for n, r in rows.items() if r["kind"] == "source" and leader in r["after"]] == \
        ["color.b1.s1", "color.b1.s2", "color.b2.s0"]
    assert not (tmp_path / "o").exists()


# --- the real thing, in smoke sizes ------------------------------------------------------------


def _small_study(tmp_path: Path, transfers: bool = True) -> Path:
    data = {"name": "small",
            "sources": [{"name": "color", "dataset": "color-dsprites", "seeds": [0, 1], "steps": 8,
                         "batch_size": 8, "lr": 1.0e-3, "warmup_steps": 0}],
            "transfers": [{"source": "color", "targets": ["noisy-color-dsprites"], "steps": 4,
                           "batch_size": 8, "lr": 1.0e-3}] if transfers else [],
            "evaluation": {"n": 160, "metrics": ["mig"], "floor": False, "figures": False},
            "execution": {"device": "cpu", "log_every": 2}}
    return _write(tmp_path, data, "small" if transfers else "sources")


def _run(path: Path, out: Path, ensemble: int) -> dict:
    study = load_study(path)
    study.execution = dataclasses.replace(study.execution, ensemble=ensemble)
    return run_study(study, out, runtime=Runtime(threads=1), report=False)


def _counting(monkeypatch, name: str) -> list:
    calls, real = [], getattr(ensembles, name)

    def counted(cfgs, dirs, **kwargs):
        calls.append((len(cfgs) if isinstance(cfgs, list) else 1, kwargs.get("resume")))
        return real(cfgs, dirs, **kwargs)

    monkeypatch.setattr(ensembles, name, counted)
    return calls


def _max_diff(a: Path, b: Path) -> float:
    sa, sb = load_checkpoint(a), load_checkpoint(b)
    assert sa.step == sb.step and sa.model.keys() == sb.model.keys()
    return max(float((sa.model[k].double() - sb.model[k].double()).abs().max()) for k in sa.model)


def test_inline_study_trains_groups_at_once_with_the_single_runs_results(tmp_path, monkeypatch):
    path = _small_study(tmp_path)
    single = _run(path, tmp_path / "one", 1)
    ensemble_calls, train_calls = _counting(monkeypatch, "train_ensemble"), _counting(monkeypatch, "train")
    monkeypatch.setattr("disentkit.experiment.stages.train",
                        lambda *a, **k: pytest.fail("a member trained on its own"))
    monkeypatch.setattr("disentkit.training.train",  # what a transfer's own fine-tuning calls
                        lambda *a, **k: pytest.fail("a fine-tuning trained on its own"))
    grouped = _run(path, tmp_path / "two", 2)
    assert ensemble_calls == [(2, False), (2, False)] and train_calls == []  # sources, fine-tunings
    assert set(single["states"].values()) == set(grouped["states"].values()) == {st.DONE}
    runs = grouped["plan"].runs
    assert [r.id for r in runs] == [r.id for r in single["plan"].runs]
    assert [len(r.ensemble) for r in runs] == [2, 2, 2, 2]
    study = json.loads((tmp_path / "two" / "study.json").read_text())
    assert [r["ensemble"] for r in study["runs"]] == [list(r.ensemble) for r in runs]
    for r in runs:
        one, two = tmp_path / "one" / r.folder, tmp_path / "two" / r.folder
        parts = ("eval",) if r.kind == "source" else ("before", "floor", "after")
        for part in parts:
            assert (two / part / "results.json").is_file(), (r.name, part)
        weights = "." if r.kind == "source" else "finetune"
        assert _max_diff(one / weights, two / weights) <= TOLERANCE["locatello"], r.name
        assert json.loads((two / st.SPEC_FILE).read_text())["ensemble"] == list(r.ensemble)


def test_resume_buckets_members_by_step(tmp_path, monkeypatch):
    """An interrupted member resumes from its checkpoint alone when the others are at another
    step; the result is the uninterrupted single run's, bit for bit (CPU)."""
    path = _small_study(tmp_path, transfers=False)
    single = _run(path, tmp_path / "one", 1)
    study = load_study(path)
    study.execution = dataclasses.replace(study.execution, ensemble=2)
    leader, member = plan(study, tmp_path / "two").runs
    cfg = source_train_config(member, Runtime(threads=1))
    cfg.run.steps = 4  # as if killed after its checkpoint at step 4
    train(cfg, tmp_path / "two" / member.folder, progress=False)
    ensemble_calls, train_calls = _counting(monkeypatch, "train_ensemble"), _counting(monkeypatch, "train")
    assert set(run_study(study, tmp_path / "two", runtime=Runtime(threads=1),
                         report=False)["states"].values()) == {st.DONE}
    assert ensemble_calls == [] and sorted(train_calls) == [(1, False), (1, True)]
    for r in (leader, member):
        assert _max_diff(tmp_path / "one" / r.folder, tmp_path / "two" / r.folder) == 0.0
    assert set(single["states"].values()) == {st.DONE}


def test_train_items_bucket_by_step_and_leave_a_member_failure_to_its_run(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(ensembles, "train_ensemble",
                        lambda cfgs, dirs, **k: calls.append(([d.name for d in dirs], k["resume"])))

    def fake_train(cfg, d, **k):
        calls.append(([d.name], k["resume"]))
        if d.name == "e":
            raise RuntimeError("e broke")

    monkeypatch.setattr(ensembles, "train", fake_train)
    cfg = source_train_config(plan(load_study(_small_study(tmp_path))).runs[0], Runtime())
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "config.json").write_text("{}")  # started before: resumed
    items = [(cfg, tmp_path / n, step) for n, step in
             (("a", 0), ("b", 4), ("c", 4), ("d", 0), ("e", 6))]
    errors = ensembles._train_items(items, None)
    assert calls == [(["a", "d"], False), (["b", "c"], True), (["e"], False)]
    assert [([d.name for d in dirs], str(exc)) for dirs, exc in errors] == [(["e"], "e broke")]


def test_an_ensemble_that_fails_for_one_member_trains_the_others_alone(tmp_path, monkeypatch):
    """A member folder the ensemble cannot take (here: a refusal) must not fail its leader: the
    unfinished members train one by one and only the bad one's error is reported. A non-finite
    loss is not retried (the other members finished; the bad one would fail again)."""
    from disentkit.methods.base import NonFiniteLossError

    calls = []

    def broken_ensemble(cfgs, dirs, **k):
        raise ValueError(f"{dirs[1]} holds files disentkit did not write")

    def fake_train(cfg, d, **k):
        calls.append(d.name)
        if d.name == "b":
            raise ValueError("b is foreign")

    monkeypatch.setattr(ensembles, "train_ensemble", broken_ensemble)
    monkeypatch.setattr(ensembles, "train", fake_train)
    cfg = source_train_config(plan(load_study(_small_study(tmp_path))).runs[0], Runtime())
    items = [(cfg, tmp_path / n, 0) for n in ("a", "b", "c")]
    errors = ensembles._train_items(items, None)
    assert calls == ["a", "b", "c"]
    assert [([d.name for d in dirs], str(exc)) for dirs, exc in errors] == [(["b"], "b is foreign")]

    def nan_ensemble(cfgs, dirs, **k):
        raise NonFiniteLossError(3, "loss", float("nan"))

    calls.clear()
    monkeypatch.setattr(ensembles, "train_ensemble", nan_ensemble)
    errors = ensembles._train_items(items, None)
    assert calls == [] and len(errors) == 1 and isinstance(errors[0][1], NonFiniteLossError)


def failing_leader_dispatch(spec, run_dir, source_dir, runtime):
    """Fail the first source (an ensemble's leader); write a marker elsewhere (picklable)."""
    if spec.name == "color.b1.s0":
        raise RuntimeError("the leader broke")
    (run_dir / "result.txt").write_text(spec.id)


def test_a_failed_leader_blocks_its_members_and_says_so(tmp_path):
    from disentkit.sweep.local import BLOCKED, run_local

    study = load_study(_small_study(tmp_path))
    study.execution = dataclasses.replace(study.execution, ensemble=2)
    the_plan = plan(study, tmp_path / "out")
    lines: list[str] = []
    states = run_local(the_plan, workers=1, runtime=Runtime(threads=1),
                       dispatch=failing_leader_dispatch, log=lines.append)
    by_name = {r.name: r.id for r in the_plan.runs}
    assert states[by_name["color.b1.s0"]] == st.FAILED
    assert {states[by_name[n]] for n in by_name if n != "color.b1.s0"} == {BLOCKED}
    text = "\n".join(lines)
    assert "blocked  color.b1.s1: color.b1.s0, which trains its ensemble, failed" in text
    assert "blocked  color--noisy-color-dsprites.b1.s0: its source color.b1.s0 failed" in text
    assert "blocked  color--noisy-color-dsprites.b1.s1: its source color.b1.s1 is blocked" in text


@pytest.mark.slow
def test_local_sweep_with_ensemble_finishes_every_run(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "out"
    code = main(["sweep", "run", str(_small_study(tmp_path)), "--executor", "local",
                 "--workers", "2", "--threads", "1", "--ensemble", "2", "--out", str(out)])
    assert code == 0
    study = json.loads((out / "study.json").read_text())
    assert study["study"]["execution"]["ensemble"] == 2
    assert [len(r["ensemble"]) for r in study["runs"]] == [2, 2, 2, 2]
    for r in study["runs"]:
        folder = out / r["folder"]
        assert st.run_state(folder).state == st.DONE, r["name"]
        parts = ("eval",) if r["kind"] == "source" else ("before", "floor", "after")
        assert all((folder / p / "results.json").is_file() for p in parts), r["name"]
    # one network per group: every member's log has the group's one rate at every line
    for group in {tuple(r["ensemble"]) for r in study["runs"]}:
        logs = [out / next(r["folder"] for r in study["runs"] if r["id"] == i) for i in group]
        logs = [p if p.parent.name == "sources" else p / "finetune" for p in logs]
        rates = [[json.loads(line)["images_per_s"] for line in (p / "log.jsonl").read_text().splitlines()]
                 for p in logs]
        assert rates[0] and all(r == rates[0] for r in rates), group


def test_a_run_killed_before_its_first_checkpoint_resumes(tmp_path):
    """A source (or a fine-tuning) killed after writing its config but before its first
    checkpoint is re-run from step 0 by the next `run`/`sweep`, not refused as unfinished."""
    study = load_study(_small_study(tmp_path))
    out = tmp_path / "out"
    assert set(run_study(study, out, runtime=Runtime(threads=1),
                         report=False)["states"].values()) == {st.DONE}
    the_plan = plan(study, out)
    source = next(r for r in the_plan.runs if r.kind == "source")
    transfer = next(r for r in the_plan.runs if r.kind == "transfer")
    # what a kill leaves: the training folder's config written, no checkpoint, no results
    shutil.rmtree(out / source.folder / "checkpoint")
    shutil.rmtree(out / transfer.folder / "finetune" / "checkpoint")
    for r, part in ((source, "eval"), (transfer, "after")):
        (out / r.folder / st.DONE_FILE).unlink()
        shutil.rmtree(out / r.folder / part)
    again = run_study(study, out, runtime=Runtime(threads=1), report=False)
    assert set(again["states"].values()) == {st.DONE}
    for folder in (out / source.folder, out / transfer.folder / "finetune"):
        steps = json.loads((folder / "config.json").read_text())["run"]["steps"]
        assert load_checkpoint(folder).step == steps
