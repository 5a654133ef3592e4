"""Fault injection (issue 14, item 10): every kind of corrupt input file fed to every command
that reads it, and SIGKILL at points of training, checkpointing and a sweep worker.

Each corrupt-input case asserts exit code 2, a message naming the file, no traceback, and no new
or changed file outside the command's fresh output folder. Each case runs under a timeout, so
a hang fails the test instead of the CI job.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from disentkit.cli import main
from disentkit.config import TrainConfig, apply_overrides
from disentkit.training import train
from disentkit.training.checkpoint import checkpoint_path, load_checkpoint
from faults import generators as G

CASE_TIMEOUT_S = 120


@pytest.fixture(autouse=True)
def _timeout():
    """Fail (not hang) a case that runs past CASE_TIMEOUT_S."""
    def expire(signum, frame):
        raise TimeoutError(f"fault case ran past {CASE_TIMEOUT_S} s: a hang")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(CASE_TIMEOUT_S)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def tiny_config(steps=2, **sets) -> TrainConfig:
    base = [f"run.steps={steps}", "optim.batch_size=2", "run.log_every=1",
            "run.checkpoint_every=2", "run.precision=fp32", "run.device=cpu", "run.threads=1",
            "model.latent_dim=4", "method.name=beta-vae"]
    return apply_overrides(TrainConfig(), base + [f"{k}={json.dumps(v)}" for k, v in sets.items()])


@pytest.fixture(scope="module")
def source_run(tmp_path_factory) -> Path:
    return train(tiny_config(), tmp_path_factory.mktemp("src") / "run", progress=False)


def copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def run_case(tmp_path, capsys, argv, bad_file, monkeypatch):
    """Run ``argv`` (``{OUT}`` is the fresh output folder); check the fault contract."""
    out = tmp_path / "fresh-out"
    cache = tmp_path / "cache"
    monkeypatch.setenv("DISENTKIT_CACHE_DIR", str(cache))
    before = G.snapshot(tmp_path, exclude=(out, cache))
    argv = [a.replace("{OUT}", str(out)) for a in argv]
    code = main(argv)
    cap = capsys.readouterr()
    err = cap.err + cap.out  # verify lists its findings on stdout
    assert code == 2, f"{argv}: exit {code}\n{err}"
    assert "Traceback" not in err, err
    assert str(bad_file) in err or Path(bad_file).name in err, f"file not named:\n{err}"
    assert G.snapshot(tmp_path, exclude=(out, cache)) == before, "a file outside --out changed"
    return err


TRAIN = ["train", "--steps", "1", "--batch-size", "2", "--out", "{OUT}/run", "--threads", "1",
         "--device", "cpu"]


# ------------------------------------------------------------------------------ images, CSV
@pytest.mark.parametrize("fault", ["truncated", "random"])
@pytest.mark.parametrize("command", ["show", "verify", "train"])
def test_corrupt_png(tmp_path, capsys, monkeypatch, fault, command):
    root = G.folder_dataset(tmp_path / "ds", bad=fault)
    argv = {"show": ["datasets", "show", "folder", "--root", str(root), "--out", "{OUT}/s.png"],
            "verify": ["datasets", "verify", "folder", "--root", str(root)],
            "train": TRAIN + ["--dataset", "folder", "--root", str(root)]}[command]
    run_case(tmp_path, capsys, argv, root / "3.png", monkeypatch)


@pytest.mark.parametrize("fault", sorted(G.CSV_FAULTS))
@pytest.mark.parametrize("command", ["show", "train"])
def test_corrupt_factors_csv(tmp_path, capsys, monkeypatch, fault, command):
    (tmp_path / "outside.png").write_bytes((G.good_png(tmp_path / "x.png")).read_bytes())
    root = G.folder_dataset(tmp_path / "ds", csv_text=G.CSV_FAULTS[fault])
    argv = {"show": ["datasets", "show", "folder", "--root", str(root), "--out", "{OUT}/s.png"],
            "train": TRAIN + ["--dataset", "folder", "--root", str(root)]}[command]
    run_case(tmp_path, capsys, argv, root / "factors.csv", monkeypatch)


def test_factors_csv_with_an_excel_bom_is_read(tmp_path):
    from disentkit.data.folder import FolderDataset

    root = G.folder_dataset(tmp_path / "ds", csv_text="\ufeffimage,a,b\n0.png,0,0\n1.png,0,1\n"
                            "2.png,1,0\n3.png,1,1\n")
    ds = FolderDataset(root, cache_dir=tmp_path / "cache")
    assert ds.factor_names == ("a", "b") and len(ds) == 4


@pytest.mark.parametrize("fault", ["header-only", "not-utf8"])
def test_corrupt_classes_csv_for_metrics(tmp_path, capsys, monkeypatch, reference_dir, fault):
    bad = G.write(tmp_path / "in" / "classes.csv",
                  b"a,b\n" if fault == "header-only" else b"a,b\n1,\xff\n")
    npz = tmp_path / "in" / "representations.npz"
    npz.write_bytes((reference_dir / "omes_example" / "representations.npz").read_bytes())
    run_case(tmp_path, capsys, ["metrics", "--representations", str(npz), "--classes", str(bad),
                                "--json", "{OUT}/m.json"], bad, monkeypatch)


# ------------------------------------------------------------------------------ npz
@pytest.mark.parametrize("fault", sorted(G.NPZ_FAULTS))
@pytest.mark.parametrize("command", ["show", "train", "verify"])
def test_corrupt_dsprites_npz(tmp_path, capsys, monkeypatch, fault, command):
    bad = G.NPZ_FAULTS[fault](tmp_path / "in" / "d.npz")
    argv = {"show": ["datasets", "show", "dsprites", "--root", str(bad), "--out", "{OUT}/s.png"],
            "verify": ["datasets", "verify", "dsprites", "--root", str(bad)],
            "train": TRAIN + ["--dataset", "dsprites", "--root", str(bad)]}[command]
    run_case(tmp_path, capsys, argv, bad, monkeypatch)


def test_dsprites_in_0_255_is_refused_not_trained(tmp_path, capsys, monkeypatch):
    bad = G.dsprites_npz(tmp_path / "in" / "d255.npz", scale=255)
    err = run_case(tmp_path, capsys, TRAIN + ["--dataset", "dsprites", "--root", str(bad)], bad,
                   monkeypatch)
    assert "0/1" in err


@pytest.mark.parametrize("fault", sorted(G.NPZ_FAULTS))
def test_corrupt_representations_npz(tmp_path, capsys, monkeypatch, reference_dir, fault):
    folder = tmp_path / "in"
    bad = G.NPZ_FAULTS[fault](folder / "representations.npz")
    (folder / "classes.csv").write_bytes((reference_dir / "omes_example" / "classes.csv").read_bytes())
    run_case(tmp_path, capsys, ["metrics", "--representations", str(bad), "--classes",
                                str(folder / "classes.csv")], bad, monkeypatch)
    run_case(tmp_path, capsys, ["omes", str(folder), "--out", "{OUT}"], bad, monkeypatch)


# ------------------------------------------------------------------------------ h5
@pytest.mark.parametrize("fault", sorted(G.H5_FAULTS))
@pytest.mark.parametrize("command", ["show", "train", "verify"])
def test_corrupt_shapes3d_h5(tmp_path, capsys, monkeypatch, fault, command):
    bad = G.H5_FAULTS[fault](tmp_path / "in" / "3dshapes.h5")
    argv = {"show": ["datasets", "show", "shapes3d", "--root", str(bad), "--out", "{OUT}/s.png"],
            "verify": ["datasets", "verify", "shapes3d", "--root", str(bad)],
            "train": TRAIN + ["--dataset", "shapes3d", "--root", str(bad)]}[command]
    run_case(tmp_path, capsys, argv, bad, monkeypatch)


# ------------------------------------------------------------------------------ JSON
@pytest.mark.parametrize("fault", sorted(G.JSON_FAULTS))
def test_corrupt_train_config(tmp_path, capsys, monkeypatch, fault):
    bad = G.write(tmp_path / "in" / "cfg.json", G.JSON_FAULTS[fault])
    run_case(tmp_path, capsys, TRAIN + ["--dataset", "dsprites", "--config", str(bad)], bad,
             monkeypatch)


@pytest.mark.parametrize("fault", ["truncated", "not-utf8", "empty"])
def test_corrupt_run_config_json(tmp_path, capsys, monkeypatch, source_run, fault):
    run = copy_run(source_run, tmp_path / "in" / "run")
    bad = G.write(run / "config.json", G.JSON_FAULTS[fault])
    for argv in (["transfer", "--source", str(run), "--target", "noisy-dsprites", "--smoke",
                  "--out", "{OUT}/t"],
                 ["encode", str(run), "--dataset", "dsprites", "--n", "8",
                  "--out", "{OUT}/enc"],
                 ["train", "--resume", "--out", str(run), "--steps", "3"]):
        if argv[0] == "train":  # resume writes into the run itself: it must stay unchanged
            before = G.snapshot(run)
            assert main(argv) == 2
            assert str(bad) in capsys.readouterr().err
            assert G.snapshot(run) == before
            continue
        run_case(tmp_path, capsys, argv, bad, monkeypatch)


@pytest.mark.parametrize("fault", ["truncated", "not-utf8", "list"])
@pytest.mark.parametrize("command", ["report", "aggregate"])
def test_broken_results_json_refused_unless_skip_broken(tmp_path, capsys, monkeypatch, fault,
                                                        command):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_report import fabricate

    root = fabricate(tmp_path / "in", seeds=(0, 1))
    bad = root / "source-s1" / "eval" / "results.json"
    data = bad.read_bytes()
    bad.write_bytes({"truncated": data[: len(data) // 2], "not-utf8": b"\xff" + data,
                     "list": b"[1]"}[fault])
    if fault == "list":  # valid JSON that is not ours: skipped as another tool's file
        assert main([command, str(root)] if command == "report" else
                    ["aggregate", str(root), "--no-report"]) == 0
        return
    argv = [command, str(root)] if command == "report" else ["aggregate", str(root)]
    err = run_case(tmp_path, capsys, argv, bad, monkeypatch)
    assert "--skip-broken" in err
    assert main(argv + ["--skip-broken"]) == 0
    written = root / ("report.md" if command == "report" else "aggregate.md")
    assert str(bad) in written.read_text(encoding="utf-8")


# ------------------------------------------------------------------------------ YAML (studies)
@pytest.mark.parametrize("fault", sorted(G.YAML_FAULTS))
@pytest.mark.parametrize("command", ["plan", "run"])
def test_corrupt_study(tmp_path, capsys, monkeypatch, fault, command):
    bad = G.write(tmp_path / "in" / "study.yaml", G.YAML_FAULTS[fault])
    argv = ["sweep", command, str(bad), "--out", "{OUT}/sweep"]
    run_case(tmp_path, capsys, argv, bad, monkeypatch)
    assert not (tmp_path / "escaped").exists() and not (tmp_path.parent / "escaped").exists()


# ------------------------------------------------------------------------------ safetensors
@pytest.mark.parametrize("fault", G.SAFETENSORS_FAULTS)
def test_corrupt_checkpoint(tmp_path, capsys, monkeypatch, source_run, fault):
    run = copy_run(source_run, tmp_path / "in" / "run")
    bad = G.corrupt_checkpoint(run, fault)
    commands = [["encode", str(run), "--dataset", "dsprites", "--n", "8",
                 "--out", "{OUT}/enc"],
                ["transfer", "--source", str(run), "--target", "noisy-dsprites", "--smoke",
                 "--out", "{OUT}/t"]]
    if fault == "bitgen":  # the weights load; resuming reads the generator state
        commands = [["train", "--resume", "--out", str(run), "--steps", "4"]]
    for argv in commands:
        if argv[0] == "train":
            before = G.snapshot(run)
            assert main(argv) == 2
            err = capsys.readouterr().err
            assert str(bad) in err and "Traceback" not in err
            assert G.snapshot(run) == before
            continue
        run_case(tmp_path, capsys, argv, bad, monkeypatch)


# ------------------------------------------------------------------------------ gradients
def test_infinite_gradient_caught_without_clipping():
    from disentkit.methods import build_method
    from disentkit.methods.base import Batch, NonFiniteLossError
    from disentkit.models import build_model

    torch.manual_seed(0)
    model = build_model("locatello", 1, 4)
    first = next(model.parameters())
    first.register_hook(lambda g: g * float("inf"))
    method = build_method("beta-vae", beta=1.0)
    opt = torch.optim.Adam(model.parameters())
    batch = Batch(x1=torch.rand(2, 1, 64, 64))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(NonFiniteLossError, match="gradient norm"):
        method.training_step(model, opt, batch, 0, torch.Generator().manual_seed(0), None, "fp32")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
