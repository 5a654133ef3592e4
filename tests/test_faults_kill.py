"""SIGKILL at points of checkpointing, transfer and a sweep worker, then resume (issue 14,
items 6, 8 and 10): results bitwise identical to an uninterrupted run, and no leftovers.

(SIGKILL in the middle of training steps is covered by tests/test_train.py.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import yaml

from disentkit.runfolder import TEMP_NAME
from disentkit.training.checkpoint import load_checkpoint

TIMEOUT_S = 300

#: run the CLI in a child whose second checkpoint save writes half its temporary file and dies
KILL_IN_SAVE = textwrap.dedent("""
    import os, signal, sys
    import safetensors.torch as st
    real, calls = st.save_file, []

    def dying(tensors, filename, metadata=None):
        calls.append(filename)
        real(tensors, filename, metadata=metadata)
        if len(calls) == int(os.environ["KILL_AT_SAVE"]):
            with open(filename, "r+b") as f:
                f.truncate(os.path.getsize(filename) // 2)
            os.kill(os.getpid(), signal.SIGKILL)

    st.save_file = dying
    from disentkit.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def _child(argv, kill_at: int, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "KILL_AT_SAVE": str(kill_at),
           "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", KILL_IN_SAVE, *argv], capture_output=True,
                          text=True, timeout=TIMEOUT_S, env=env, cwd=cwd)


def _temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if TEMP_NAME.match(p.name)]


def _same_checkpoint(a: Path, b: Path) -> None:
    sa, sb = load_checkpoint(a), load_checkpoint(b)
    assert sa.step == sb.step and sa.numpy_rng == sb.numpy_rng
    assert all(torch.equal(sa.model[k], sb.model[k]) for k in sa.model)
    assert torch.equal(sa.torch_rng, sb.torch_rng)


TRAIN = ["train", "--dataset", "dsprites", "--smoke", "--threads", "1", "--device", "cpu",
         "--precision", "fp32"]


def test_sigkill_inside_a_checkpoint_save_then_resume(tmp_path):
    from disentkit.cli import main

    killed, full = tmp_path / "killed", tmp_path / "full"
    proc = _child(TRAIN + ["--out", str(killed)], kill_at=2, cwd=tmp_path)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    from disentkit.config import TRAIN_SMOKE

    # the first save (smoke checkpoint_every) survived intact
    assert load_checkpoint(killed).step == TRAIN_SMOKE["run.checkpoint_every"]
    assert _temporaries(killed), "the half-written temporary file is the point of this test"
    assert main(TRAIN + ["--out", str(killed), "--resume"]) == 0
    assert not _temporaries(killed), "temporary files of the killed save were not removed"
    assert main(TRAIN + ["--out", str(full)]) == 0
    _same_checkpoint(killed, full)


@pytest.mark.parametrize("kill_at", [1, 3])  # saving the channel-adapted source; fine-tuning
def test_sigkill_during_transfer_then_rerun(tmp_path, kill_at):
    from disentkit.cli import main

    source = tmp_path / "source"
    assert main(TRAIN + ["--out", str(source)]) == 0
    common = ["transfer", "--source", str(source), "--target", "noisy-dsprites", "--smoke",
              "--metrics", "mig", "--device", "cpu", "--precision", "fp32"]
    killed, full = tmp_path / "t-killed", tmp_path / "t-full"
    proc = _child(common + ["--out", str(killed)], kill_at=kill_at, cwd=tmp_path)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert main(common + ["--out", str(killed)]) == 0
    assert main(common + ["--out", str(full)]) == 0
    assert not _temporaries(killed)
    _same_checkpoint(killed / "finetune", full / "finetune")
    after = [json.loads((d / "after" / "results.json").read_text())["metrics"] for d in (killed, full)]
    assert after[0] == after[1]


# ------------------------------------------------------------------------------ sweep worker
def slow_or_dying_dispatch(spec, run_dir, source_dir, runtime):
    """Seed 1's source dies at once (as under the OOM killer); seed 0's takes a second."""
    if spec.name.endswith(".s1") and spec.kind == "source":
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(1.0 if spec.kind == "source" else 0.0)
    (run_dir / "result.txt").write_text(spec.id)


def test_a_killed_worker_fails_only_its_own_run(tmp_path):
    from disentkit.experiment.stages import Runtime
    from disentkit.experiment.study import load_study, plan
    from disentkit.sweep import state as st
    from disentkit.sweep.local import BLOCKED, run_local

    data = {"name": "two", "sources": [{"name": "c", "dataset": "color-dsprites", "seeds": [0, 1],
                                        "steps": 2, "warmup_steps": 0}],
            "transfers": [{"source": "c", "targets": ["noisy-color-dsprites"], "steps": 1}],
            "evaluation": {"n": 16}}
    (tmp_path / "two.yaml").write_text(yaml.safe_dump(data))
    study = plan(load_study(tmp_path / "two.yaml"), tmp_path / "out")
    states = run_local(study, workers=2, runtime=Runtime(threads=1),
                       dispatch=slow_or_dying_dispatch, log=lambda s: None)
    by = {r.name: r for r in study.runs}
    assert states[by["c.b1.s1"].id] == st.FAILED
    assert states[by["c.b1.s0"].id] == st.DONE, "the healthy neighbour was taken down"
    assert states[by["c--noisy-color-dsprites.b1.s0"].id] == st.DONE
    assert states[by["c--noisy-color-dsprites.b1.s1"].id] == BLOCKED
    assert not list((tmp_path / "out").rglob(st.LOCK_FILE)), "running.json left behind"
