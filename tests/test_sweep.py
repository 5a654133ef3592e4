"""Sweeps: study expansion, run state, local pool (order, failures, kill + resume), Slurm waves
(through submitit's local executor), aggregation with uncertainty, and the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from disentkit.cli import main
from disentkit.config import ConfigError
from disentkit.experiment.stages import Runtime
from disentkit.experiment.study import config_id, load_study, plan
from disentkit.sweep import state as st


def _plan(study, out=None, *, smoke=False, optional=None):
    return plan(load_study(study, smoke=smoke), out, optional=optional)


# --- a stand-in for training/transfer: top-level so spawned workers can unpickle it ----------


def fake_dispatch(spec, run_dir, source_dir, runtime):
    """Record the call, check the source finished first, fail or sleep on request (env)."""
    with open(run_dir / "calls.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"pid": os.getpid(), "threads": runtime.threads, "omp": os.environ.get("OMP_NUM_THREADS"),
                            "t": time.time()}) + "\n")
    if spec.kind == "transfer":
        assert (source_dir / "result.txt").read_text() == spec.depends_on[0], "source not finished"
    fail = os.environ.get("SWEEP_TEST_FAIL")
    if fail and spec.name.startswith(fail):
        raise RuntimeError(f"deliberate failure of {spec.name}")
    time.sleep(float(os.environ.get("SWEEP_TEST_SLEEP", "0")))
    (run_dir / "result.txt").write_text(spec.id)


def _calls(run_dir: Path) -> int:
    path = run_dir / "calls.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def _study(tmp_path: Path, *, seeds=2, extra_source=False) -> Path:
    data = {
        "name": "mini",
        "sources": [{"name": "color", "dataset": "color-dsprites", "seeds": list(range(seeds)),
                     "steps": 5, "warmup_steps": 0}],
        "transfers": [{"source": "color", "targets": ["noisy-color-dsprites", "coins-augmented"],
                       "steps": 3}],
        "evaluation": {"n": 16},
    }
    if extra_source:
        data["sources"].append({"name": "shapes", "dataset": "shapes3d", "seeds": [0], "steps": 5})
        data["transfers"].append({"source": "shapes", "targets": ["noisy-dsprites"], "steps": 3})
    path = tmp_path / "mini.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


# --- study -------------------------------------------------------------------------------------


def test_paper_study_is_the_papers_grid():
    study = _plan("paper")
    sources, transfers = study.of_kind("source"), study.of_kind("transfer")
    assert (len(sources), len(transfers)) == (100, 300)
    assert len({r.id for r in study.runs}) == 400
    train = {r.id: r.config["train"] for r in sources}
    # 5 experiments × β {1, 2} × seeds 0..9, the paper's network, fp32
    assert {(t["method"]["beta"], t["run"]["seed"]) for t in train.values()} == {
        (b, s) for b in (1.0, 2.0) for s in range(10)}
    assert len({r.config["experiment"] for r in sources}) == 5
    assert {t["model"]["arch"] for t in train.values()} == {"paper"}
    assert {t["run"]["precision"] for t in train.values()} == {"fp32"}
    steps = {t["data"]["dataset"]: t["run"]["steps"] for t in train.values()}
    assert steps["coil100-augmented"] == steps["coil100-augmented-binary"] == 300_000
    assert steps["color-dsprites"] == steps["shapes3d"] == 400_000
    warmup = {t["data"]["dataset"]: t["method"]["warmup_steps"] for t in train.values()}
    assert warmup["shapes3d"] == 0 and warmup["color-dsprites"] == 50_000  # as the paper's configs
    assert len({r.config["experiment"] for r in transfers}) == 15
    by_id = study.by_id()
    for t in transfers:  # each transfer starts from the model of the same experiment, β and seed
        (src,) = t.depends_on
        assert by_id[src].kind == "source"
        assert t.config["experiment"].startswith(by_id[src].config["experiment"] + "->")
        tr = t.config["transfer"]
        assert tr["seed"] == train[src]["run"]["seed"]
        assert (tr["steps"], tr["beta"], tr["grad_clip"], tr["eval"]["n"]) == (50_000, 1.0, None, 15_008)
        assert tr["eval"]["backend"] == "reference" == by_id[src].config["evaluation"]["backend"]
    assert len(_plan("paper", optional={}).runs) == 100 + 100  # without the real targets


def test_ids_are_stable_and_follow_the_config(tmp_path):
    path = _study(tmp_path)
    a, b = _plan(path).runs, _plan(path).runs
    assert [r.id for r in a] == [r.id for r in b]
    assert all(r.id == config_id(r.config) and r.folder.name.endswith(r.id[:8]) for r in a)
    # sources first, then transfers: the order a sequential executor can follow
    assert [r.kind for r in a] == ["source"] * 2 + ["transfer"] * 4
    data = yaml.safe_load(path.read_text())
    data["sources"][0]["lr"] = 3e-4  # a changed source changes its id and every transfer downstream
    path.write_text(yaml.safe_dump(data))
    c = _plan(path).runs
    assert not {r.id for r in c} & {r.id for r in a}
    smoke = _plan(path, smoke=True).runs
    assert {r.config["train"]["run"]["steps"] for r in smoke if r.kind == "source"} == {8}
    assert {r.config["evaluation"]["n"] for r in smoke if r.kind == "source"} == {160}
    assert not {r.id for r in smoke} & {r.id for r in c}
    # runtime settings (device, threads, data root) do not change an id
    cfg = json.loads(json.dumps(a[0].config))
    cfg["train"]["run"]["device"], cfg["train"]["data"]["root"] = "cuda", "/elsewhere"
    assert config_id(cfg) == a[0].id


@pytest.mark.parametrize(
    "patch, message",
    [
        ({"sources": [{"name": "x", "dataset": "color-dsprites", "stepz": 3}]}, "unknown key(s) ['stepz']"),
        ({"sources": [{"name": "x", "dataset": "no-such-set"}]}, "sources[0].dataset must be one of"),
        ({"sources": [{"name": "x", "dataset": "color-dsprites", "seeds": [1, 1]}]}, "distinct ints"),
        ({"sources": [{"name": "x", "dataset": "color-dsprites", "method": "nope"}]}, "sources[0].method"),
        ({"sources": [{"name": "x", "dataset": "color-dsprites", "lr": ""}]}, "sources[0].lr must be float"),
        ({"sources": [{"name": "x", "dataset": "color-dsprites", "lr": -1}]}, "optim.lr must be > 0"),
        ({"sources": [{"name": "x", "dataset": "color-dsprites", "steps": -1}]}, "run.steps must be >= 0"),
        ({"sources": [{"name": "../../x", "dataset": "color-dsprites"}]}, "plain name"),
        ({"name": ["a"]}, "study.name must be str"),
        ({"transfers": [{"source": "nope", "targets": ["shapes3d"]}]}, "transfers[0].source must be one of"),
        ({"transfers": [{"source": "x", "targets": 5}]}, "transfers[0].targets must be list of str"),
        ({"transfers": [{"source": "x", "targets": ["shapes3d"], "beta": "nan"}]}, "finite"),
        ({"evaluation": {"n": -5}}, "evaluation.n must be >= 2"),
        ({"evaluation": {"sampling": "grid"}}, "evaluation.sampling"),
        ({"sources": []}, "non-empty list"),
    ],
)
def test_bad_study_says_what_is_wrong(tmp_path, capsys, patch, message):
    data = {"name": "bad", "sources": [{"name": "x", "dataset": "color-dsprites"}], **patch}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_study(path)
    assert message in str(info.value) and str(path) in str(info.value)
    # `sweep plan` rejects what `sweep run` would, before writing anything
    assert main(["sweep", "plan", str(path), "--out", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_study_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not a packaged study"):
        load_study(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_study(bad)
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_study(bad)
    js = tmp_path / "s.json"
    js.write_text(json.dumps({"sources": [{"name": "x", "dataset": "shapes3d"}]}))
    study = _plan(js, tmp_path / "o")
    assert study.name == "s" and len(study.runs) == 1 and study.out == tmp_path / "o"


def test_packaged_study_and_its_path_are_the_same(tmp_path):
    from importlib import resources

    text = resources.files("disentkit.studies").joinpath("quick.yaml").read_text("utf-8")
    (tmp_path / "quick.yaml").write_text(text)
    assert load_study(tmp_path / "quick.yaml") == load_study("quick")


# --- state ---------------------------------------------------------------------------------------


def test_run_state_from_the_folder(tmp_path):
    run = tmp_path / "r"
    assert st.run_state(run).state == st.TODO
    lock = st.RunLock(run, heartbeat_s=0.05)
    assert lock.acquire()
    assert st.run_state(run).state == st.RUNNING
    assert not st.RunLock(run).acquire()  # a live lock is exclusive
    first = json.loads((run / st.LOCK_FILE).read_text())["heartbeat"]
    beat, deadline = first, time.time() + 10.0  # generous: CI machines are loaded
    while beat == first and time.time() < deadline:
        time.sleep(0.05)
        beat = json.loads((run / st.LOCK_FILE).read_text())["heartbeat"]
    assert beat > first  # the heartbeat thread keeps it fresh
    assert st.run_state(run, now=beat + st.STALE_AFTER_S + 1).state == st.TODO  # a silent lock goes stale
    lock.release()
    assert not (run / st.LOCK_FILE).exists()
    st.record_error(run, "RuntimeError", "boom", "Traceback ...")
    assert st.run_state(run) == st.RunState(st.FAILED, "RuntimeError: boom")
    st.record_done(run, id="x")
    assert st.run_state(run).state == st.DONE and not (run / st.ERROR_FILE).exists()


def test_lock_of_a_dead_process_is_stale(tmp_path):
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(proc.stdout)
    run = tmp_path / "r"
    run.mkdir()
    import socket

    (run / st.LOCK_FILE).write_text(json.dumps({"host": socket.gethostname(), "pid": dead_pid, "heartbeat": time.time()}))
    assert st.run_state(run).state == st.TODO
    assert st.RunLock(run).acquire()  # taken over


# --- local executor --------------------------------------------------------------------------


def test_local_pool_runs_sources_first_splits_threads_and_survives_a_failure(tmp_path, monkeypatch):
    from disentkit.sweep.local import BLOCKED, run_local, threads_per_worker

    monkeypatch.setenv("SWEEP_TEST_FAIL", "shapes")
    study = _plan(_study(tmp_path, extra_source=True), tmp_path / "out")
    states = run_local(study, workers=2, runtime=Runtime(threads=3), dispatch=fake_dispatch, log=lambda s: None)
    by_name = {r.name: r for r in study.runs}
    assert states[by_name["shapes.b1.s0"].id] == st.FAILED
    assert states[by_name["shapes--noisy-dsprites.b1.s0"].id] == BLOCKED
    assert not (study.out / by_name["shapes--noisy-dsprites.b1.s0"].folder / "calls.jsonl").exists()
    assert sum(s == st.DONE for s in states.values()) == 6
    err = json.loads((study.out / by_name["shapes.b1.s0"].folder / st.ERROR_FILE).read_text())
    assert err["type"] == "RuntimeError" and "deliberate failure" in err["traceback"]
    call = json.loads((study.out / by_name["color.b1.s0"].folder / "calls.jsonl").read_text())
    assert call["threads"] == 3 and call["omp"] == "3" and call["pid"] != os.getpid()
    assert threads_per_worker(2, cores=16) == 8 and threads_per_worker(3, cores=2) == 1
    with pytest.raises(ValueError, match="workers"):
        threads_per_worker(0)

    # re-running: done runs skip, the failed one is retried (and now succeeds), its transfer runs
    monkeypatch.delenv("SWEEP_TEST_FAIL")
    states = run_local(study, workers=2, runtime=Runtime(threads=1), dispatch=fake_dispatch, log=lambda s: None)
    assert set(states.values()) == {st.DONE}
    assert _calls(study.out / by_name["color.b1.s0"].folder) == 1
    assert _calls(study.out / by_name["shapes.b1.s0"].folder) == 2


def _run_for_kill(study_path: str, out: str) -> None:
    """Entry point of the subprocess that the kill test interrupts."""
    from disentkit.sweep.local import run_local

    run_local(_plan(study_path, out), workers=2, runtime=Runtime(threads=1), dispatch=fake_dispatch)


def test_killed_sweep_resumes_without_redoing_finished_runs(tmp_path, monkeypatch):
    from disentkit.sweep.local import run_local

    study = _plan(_study(tmp_path, seeds=3), tmp_path / "out")  # 3 sources, 6 transfers
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import test_sweep; "
            f"test_sweep._run_for_kill({str(tmp_path / 'mini.yaml')!r}, {str(study.out)!r})")
    env = {**os.environ, "SWEEP_TEST_SLEEP": "1.0"}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    folders = [study.out / r.folder for r in study.runs]
    deadline = time.time() + 180  # generous: CI machines are loaded
    while sum((f / st.DONE_FILE).exists() for f in folders) < 2 and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # like a lost terminal: no clean-up at all
    proc.wait()
    done_before = {f for f in folders if (f / st.DONE_FILE).exists()}
    assert 2 <= len(done_before) < len(folders)
    time.sleep(0.5)  # workers die with their parent (PR_SET_PDEATHSIG): their locks are stale
    assert all(st.run_state(f).state != st.RUNNING for f in folders)

    states = run_local(study, workers=2, runtime=Runtime(threads=1), dispatch=fake_dispatch, log=lambda s: None)
    assert set(states.values()) == {st.DONE}
    assert all(_calls(f) == 1 for f in done_before)  # finished runs were not redone
    assert all((f / "result.txt").exists() for f in folders)


# --- Slurm executor (waves), with submitit's local executor standing in for sbatch ----------


def test_slurm_time_and_options():
    from disentkit.sweep.slurm import SlurmOptions, parse_time_minutes

    assert parse_time_minutes("90") == 90
    assert parse_time_minutes("1:30:00") == 90
    assert parse_time_minutes("2-00:00:00") == 2 * 24 * 60
    assert parse_time_minutes("0:01:30") == 2
    with pytest.raises(ValueError, match="H:MM:SS"):
        parse_time_minutes("an hour")
    with pytest.raises(ValueError, match="at least 2 minutes"):
        SlurmOptions(time_min=1)
    with pytest.raises(ValueError, match="max-parallel"):
        SlurmOptions(max_parallel=0)


def _local_submitit(monkeypatch, submitted: list[int]) -> None:
    """Stand submitit's LocalExecutor in for sbatch; record each array's size."""
    import submitit

    from disentkit.sweep import slurm

    def local_executor(folder, options, name):
        ex = submitit.LocalExecutor(folder=str(folder / "%j"))
        ex.update_parameters(timeout_min=options.time_min)
        orig = ex.map_array

        def map_array(fn, *args):
            submitted.append(len(args[0]))
            return orig(fn, *args)

        ex.map_array = map_array
        return ex

    monkeypatch.setattr(slurm, "make_executor", local_executor)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))


def test_slurm_waves_record_failures_and_resubmit_only_what_is_not_done(tmp_path, monkeypatch):
    from disentkit.sweep import slurm
    from disentkit.sweep.local import BLOCKED

    submitted: list[int] = []
    _local_submitit(monkeypatch, submitted)
    monkeypatch.setenv("SWEEP_TEST_FAIL", "shapes")
    study = _plan(_study(tmp_path, seeds=1, extra_source=True), tmp_path / "out")
    options = slurm.SlurmOptions(time_min=2, max_parallel=2, poll_s=0.1)
    states = slurm.run_slurm(study, options, dispatch=fake_dispatch, log=lambda s: None)
    by_name = {r.name: r.id for r in study.runs}
    assert submitted == [2, 2]  # wave 1: both sources; wave 2: the transfers of the one that worked
    assert states[by_name["shapes.b1.s0"]] == st.FAILED
    assert states[by_name["shapes--noisy-dsprites.b1.s0"]] == BLOCKED
    assert sum(s == st.DONE for s in states.values()) == 3

    monkeypatch.delenv("SWEEP_TEST_FAIL")
    submitted.clear()
    states = slurm.run_slurm(study, options, dispatch=fake_dispatch, log=lambda s: None)
    assert submitted == [1, 1] and set(states.values()) == {st.DONE}


# --- aggregate ---------------------------------------------------------------------------------

SCHEMA = "disentkit.results/1"


def _write_result(folder: Path, kind: str, seed: int, beta: float, values: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "schema": SCHEMA,
        "kind": kind,
        "dataset": {"name": "noisy-color-dsprites", "factor_names": ["shape", "scale"]},
        "model": {"source_dataset": "color-dsprites", "method": "ada-gvae", "arch": "locatello",
                  "beta": beta, "seed": seed},
        "transfer": {"finetune": "all", "seed": seed, "eval_split": "held-out"},
        "metrics": values,
    }
    (folder / "results.json").write_text(json.dumps(data))


def test_aggregate_mean_std_and_bootstrap_interval(tmp_path):
    rng = np.random.default_rng(0)
    dci_before = {1.0: rng.uniform(0.2, 0.6, 4), 2.0: rng.uniform(0.2, 0.6, 3)}
    for beta, vals in dci_before.items():
        for seed, v in enumerate(vals):
            run = tmp_path / "transfers" / f"b{beta}.s{seed}"
            metrics = lambda d: {"dci.disentanglement": d, "gbt.test_accuracy.shape": 0.5 + d / 2,  # noqa: E731
                                 "gbt.mean_test_accuracy": 0.6, "gbt_pruned.mean_test_accuracy": 0.4}
            _write_result(run / "before", "before", seed, beta, metrics(v))
            _write_result(run / "after", "after", seed, beta, metrics(v + 0.1 * (seed + 1)))
    assert main(["aggregate", str(tmp_path), "--bootstrap", "500"]) == 0
    import csv

    rows = list(csv.DictReader((tmp_path / "aggregate.csv").open()))
    for beta, vals in dci_before.items():
        (row,) = [r for r in rows if r["metric"] == "dci.disentanglement" and float(r["beta"]) == beta]
        assert int(row["n"]) == len(vals)
        assert float(row["before_mean"]) == pytest.approx(vals.mean(), abs=1e-5)
        assert float(row["before_std"]) == pytest.approx(vals.std(), abs=1e-5)
        lo, hi = float(row["before_ci_low"]), float(row["before_ci_high"])
        assert vals.min() - 1e-5 <= lo <= vals.mean() <= hi <= vals.max() + 1e-5 and lo < hi
        deltas = 0.1 * np.arange(1, len(vals) + 1)
        assert float(row["delta_mean"]) == pytest.approx(deltas.mean(), abs=1e-5)
    assert {r["code"] for r in rows} == {"full", "pruned"}
    md = (tmp_path / "aggregate.md").read_text()
    assert "β=1" in md and "β=2" in md and " ± " in md and "(+0." in md
    assert main(["aggregate", str(tmp_path / "transfers" / "nothing-here")]) == 2


def test_bootstrap_interval_properties():
    from disentkit.sweep.aggregate import bootstrap_ci

    rng = np.random.default_rng(1)
    assert bootstrap_ci([0.3], rng=rng) == (0.3, 0.3)
    lo, hi = bootstrap_ci([np.nan, None], rng=rng)
    assert np.isnan(lo) and np.isnan(hi)
    wide = bootstrap_ci(np.random.default_rng(2).normal(0, 1, 10), rng=np.random.default_rng(3))
    narrow = bootstrap_ci(np.random.default_rng(2).normal(0, 0.1, 10), rng=np.random.default_rng(3))
    assert (wide[1] - wide[0]) > 5 * (narrow[1] - narrow[0])


# --- CLI ---------------------------------------------------------------------------------------


def test_cli_plan_lists_the_runs_and_checks_datasets(capsys, tmp_path):
    real = tmp_path / "data"
    (real / "coil100-augmented-binary").mkdir(parents=True)
    # the paper's grid reads Coil-100 from files: planning without them fails before anything
    assert main(["sweep", "plan", "paper", "--out", str(tmp_path / "p"), "--summary"]) == 2
    assert "coil100-augmented" in capsys.readouterr().err and not (tmp_path / "p").exists()
    assert main(["sweep", "plan", "quick", "--smoke", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "4 todo" in out and "color-dsprites--coins-augmented.b1.s0" in out
    assert "1 sources, 3 transfers (4 runs)" in out  # optional targets: no --data-root
    assert main(["sweep", "plan", str(tmp_path / "nope.yaml")]) == 2


def test_dataset_root_rule(tmp_path):
    from disentkit.experiment.stages import dataset_root

    assert dataset_root("shapes3d", None) is None  # generated: no files needed
    assert dataset_root("shapes3d", str(tmp_path)) is None  # ...unless a shapes3d folder is there
    (tmp_path / "shapes3d").mkdir()
    assert dataset_root("shapes3d", str(tmp_path)) == str(tmp_path / "shapes3d")
    assert dataset_root("rgbd-objects", str(tmp_path)) == str(tmp_path)  # needs files: the root itself
    with pytest.raises(ValueError, match="--data-root"):
        dataset_root("rgbd-objects", None)


# --- the real thing: a 2-seed smoke study through `disentkit sweep run`, killed and resumed -----


@pytest.mark.slow
def test_quick_smoke_sweep_killed_midway_resumes_and_aggregates(tmp_path):
    study_file = _study(tmp_path, seeds=2)
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "disentkit", "sweep", "run", str(study_file), "--executor", "local",
           "--workers", "2", "--smoke", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    study = _plan(study_file, out, smoke=True)
    folders = [out / r.folder for r in study.runs]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not any((f / st.DONE_FILE).exists() for f in folders) and time.time() < deadline:
        assert proc.poll() is None, "the sweep ended before it could be interrupted"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {f: (f / st.DONE_FILE).read_text() for f in folders if (f / st.DONE_FILE).exists()}
    assert 1 <= len(finished) < len(folders)

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    # the sweep's status lines are log records (stderr); results go to stdout
    assert f"{len(finished)} done, {len(folders) - len(finished)} to run" in rerun.stderr
    assert all(st.run_state(f).state == st.DONE for f in folders)
    assert all((f / st.DONE_FILE).read_text() == text for f, text in finished.items())  # not redone

    assert main(["aggregate", str(out), "--no-report", "--bootstrap", "200"]) == 0
    import csv

    rows = list(csv.DictReader((out / "aggregate.csv").open()))
    transfer_rows = [r for r in rows if r["finetune"] == "all"]
    assert {r["target"] for r in transfer_rows} == {"noisy-color-dsprites", "coins-augmented"}
    assert {int(r["n"]) for r in transfer_rows} == {2}  # two seeds behind every mean ± std
    assert " ± " in (out / "aggregate.md").read_text()


def test_slurm_job_id_names_the_array_element(monkeypatch):
    for var in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(var, raising=False)
    assert st.slurm_job_id() is None
    monkeypatch.setenv("SLURM_JOB_ID", "17")
    assert st.slurm_job_id() == "17"
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "15")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "2")
    assert st.slurm_job_id() == "15_2"  # what sacct -j understands; 17 would be another element


def interrupting_dispatch(spec, run_dir, source_dir, runtime):
    raise KeyboardInterrupt


def test_interrupted_run_is_todo_not_failed(tmp_path):
    from disentkit.sweep.execute import execute_run

    study = _plan(_study(tmp_path, seeds=1), tmp_path / "out")
    spec = study.runs[0]
    with pytest.raises(KeyboardInterrupt):
        execute_run(spec, study.out, dispatch=interrupting_dispatch)
    assert st.run_state(study.out / spec.folder).state == st.TODO
    assert execute_run(spec, study.out, dispatch=fake_dispatch) == st.DONE
    # a second executor finds the run done; a live lock held elsewhere makes it report "running"
    other = study.runs[1]
    lock = st.RunLock(study.out / other.folder)
    assert lock.acquire()
    assert execute_run(other, study.out, dispatch=fake_dispatch) == st.RUNNING
    lock.release()
    assert _calls(study.out / other.folder) == 0


def dying_dispatch(spec, run_dir, source_dir, runtime):
    """Kill the worker process outright (as the out-of-memory killer would) for one source."""
    if spec.name == "color.b1.s1":
        os.kill(os.getpid(), signal.SIGKILL)
    fake_dispatch(spec, run_dir, source_dir, runtime)


def test_a_worker_killed_hard_fails_its_run_and_the_pool_recovers(tmp_path):
    from disentkit.sweep.local import BLOCKED, run_local

    study = _plan(_study(tmp_path, seeds=2), tmp_path / "out")
    states = run_local(study, workers=1, runtime=Runtime(threads=1), dispatch=dying_dispatch, log=lambda s: None)
    by_name = {r.name: r for r in study.runs}
    dead = by_name["color.b1.s1"]
    assert states[dead.id] == st.FAILED
    assert json.loads((study.out / dead.folder / st.ERROR_FILE).read_text())["type"] == "WorkerDied"
    assert states[by_name["color--coins-augmented.b1.s1"].id] == BLOCKED
    # the pool was rebuilt: the other seed's transfers ran after the crash
    assert states[by_name["color--coins-augmented.b1.s0"].id] == st.DONE
    assert sum(s == st.DONE for s in states.values()) == 3


def test_slurm_job_that_dies_without_a_traceback_is_recorded_failed(tmp_path, monkeypatch):
    from disentkit.sweep import slurm

    _local_submitit(monkeypatch, [])
    study = _plan(_study(tmp_path, seeds=2), tmp_path / "out")
    states = slurm.run_slurm(study, slurm.SlurmOptions(time_min=2, poll_s=0.1), dispatch=dying_dispatch,
                             log=lambda s: None)
    dead = next(r for r in study.runs if r.name == "color.b1.s1")
    assert states[dead.id] == st.FAILED
    assert not (study.out / dead.folder / st.LOCK_FILE).exists()  # the dead job's lock is cleared
    assert json.loads((study.out / dead.folder / st.ERROR_FILE).read_text())["slurm_job_id"]
    assert sum(s == st.DONE for s in states.values()) == 3


def test_cli_run_rejects_bad_options(tmp_path, capsys):
    study = str(_study(tmp_path))
    out = ["--out", str(tmp_path / "o")]
    assert main(["sweep", "run", study, *out, "--workers", "0", "--threads", "1"]) == 2
    assert "--workers must be >= 1" in capsys.readouterr().err
    assert main(["sweep", "run", study, *out, "--executor", "slurm", "--slurm-time", "1"]) == 2
    assert "at least 2 minutes" in capsys.readouterr().err
    assert main(["sweep", "run", study, *out, "--threads", "0"]) == 2
    assert not (tmp_path / "o").exists()  # nothing started
    assert main(["aggregate", str(tmp_path), "--bootstrap", "0"]) == 2
