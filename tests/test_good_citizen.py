"""Good citizen in other people's processes (issue 11, item 8): no matplotlib backend switch,
outputs (checkpoints included) with the umask's permissions, TensorBoard logs that read back."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from disentkit.cli import main
from disentkit.config import TRAIN_SMOKE
from disentkit.io import atomic_path, write_text

SRC = Path(__file__).resolve().parents[1] / "src"


def test_no_module_switches_the_matplotlib_backend():
    offenders = []
    for path in (SRC / "disentkit").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if re.search(r"matplotlib\.use\(|import matplotlib\.pyplot|from matplotlib import pyplot", text):
            offenders.append(str(path.relative_to(SRC)))
    assert not offenders, f"use matplotlib.figure.Figure instead of pyplot/backends: {offenders}"


def test_plotting_keeps_the_callers_backend_and_pyplot_state(tmp_path):
    """In a fresh interpreter whose user chose the svg backend: every figure disentkit draws
    leaves the backend as it was and never touches pyplot."""
    code = f"""
import sys, matplotlib
matplotlib.use("svg")
import numpy as np
from disentkit.data.registry import get_dataset
from disentkit.viz.dataset import save_dataset_figure
from disentkit.viz import figures as F
from disentkit.cli.metrics import save_relation_heatmap
out = {str(tmp_path)!r}
save_dataset_figure(get_dataset("dsprites"), out + "/d.png")
F.save_figure(F.curves_figure({{"t": [{{"step": 1, "loss": 2.0, "reconstruction": 1.0, "kl": 1.0}}]}},
                              "c"), out + "/c.png")
x = np.random.default_rng(0).random((3, 1, 8, 8))
F.save_figure(F.reconstruction_figure(x, x, "r"), out + "/x.png")
save_relation_heatmap(np.eye(2), ["a", "b"], {{"a": 0, "b": 1}}, [], out + "/r.png")
assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
assert "matplotlib.pyplot" not in sys.modules
print("ok")
"""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    env.pop("MPLBACKEND", None)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr
    for name in ("d.png", "c.png", "r.png", "x.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


@pytest.fixture
def umask():
    def set_mask(mask):
        return os.umask(mask)

    old = os.umask(0o022)
    os.umask(old)
    yield set_mask
    os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_atomic_writes_get_the_umask_permissions(tmp_path, umask, mask):
    umask(mask)
    write_text(tmp_path / "a.txt", "x")
    with atomic_path(tmp_path / "b.bin") as tmp:  # a writer that replaces the file (0600)
        tmp.unlink()
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    for name in ("a.txt", "b.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~mask, name


def test_checkpoints_are_readable_like_every_other_output(tmp_path, umask):
    umask(0o022)
    out = tmp_path / "run"
    assert main(["-q", "train", "--smoke", "--dataset", "dsprites", "--out", str(out),
                 "--threads", "1"]) == 0
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.suffix == ".safetensors" for p in files)
    modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    assert set(modes.values()) == {"0o644"}, modes


# ---------------------------------------------------------------------------- TensorBoard
def test_tensorboard_logger_writes_scalars_and_a_final_image(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    assert main(["-q", "train", "--smoke", "--dataset", "dsprites", "--out", str(out),
                 "--threads", "1", "--logger", "tensorboard"]) == 0
    events = list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1
    acc = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    tags = acc.Tags()
    assert {"train/loss", "train/kl", "train/reconstruction", "train/beta"} <= set(tags["scalars"])
    from disentkit.training.logging import read_log

    logged = [r for r in read_log(out) if "loss" in r]
    loss = acc.Scalars("train/loss")
    assert [e.step for e in loss] == [r["step"] for r in logged]
    assert np.allclose([e.value for e in loss], [r["loss"] for r in logged], rtol=1e-5)
    images = acc.Images("reconstructions_and_traversals")
    assert len(images) == 1 and images[0].step == TRAIN_SMOKE["run.steps"]
    # 8 inputs, 8 reconstructions and one traversal row per latent dimension (10), 64-px tiles
    assert images[0].height == 2 + (2 + 10) * 66 and images[0].width == 2 + 8 * 66
    import json

    assert json.loads((out / "config.json").read_text())["run"]["logger"] == "tensorboard"


def test_tensorboard_missing_names_the_extra_before_training(tmp_path, monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name == "tensorboard" or name.startswith("tensorboard."):
            raise ImportError("No module named 'tensorboard'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    out = tmp_path / "run"
    assert main(["train", "--smoke", "--dataset", "dsprites", "--out", str(out),
                 "--logger", "tensorboard"]) == 2
    assert "disentkit[tensorboard]" in capsys.readouterr().err
    assert not out.exists()


def test_logger_is_a_checked_config_field():
    from disentkit.config import TrainConfig

    cfg = TrainConfig()
    assert cfg.run.logger == "jsonl"
    cfg.run.logger = "wandb"
    with pytest.raises(ValueError, match="run.logger"):
        cfg.validate()
