"""The training loop: learning, determinism, exact resume (also after SIGKILL), NaN handling,
run-folder guards, fine-tuning options and the ``disentkit train`` CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from disentkit.cli import main
from disentkit.config import TrainConfig, apply_overrides
from disentkit.data.base import FactorDataset
from disentkit.methods.base import NonFiniteLossError
from disentkit.training import train
from disentkit.training.checkpoint import load_checkpoint, load_run
from disentkit.training.logging import read_log
from disentkit.training.prepare import RunExistsError


class Squares(FactorDataset):
    """A white square on black, 64x64: x and y position (8 each) and size (3)."""

    name = "squares"
    factor_names = ("x", "y", "size")
    factor_sizes = (8, 8, 3)
    image_shape = (1, 64, 64)

    def __init__(self, channels: int = 1):
        self.image_shape = (channels, 64, 64)

    def images(self, factors, rng=None):
        f = self.check_factors(factors)
        x0, y0, s = 4 + 6 * f[:, 0], 4 + 6 * f[:, 1], 6 + 4 * f[:, 2]
        g = np.arange(64)
        inx = (g >= x0[:, None]) & (g < (x0 + s)[:, None])
        iny = (g >= y0[:, None]) & (g < (y0 + s)[:, None])
        img = (iny[:, :, None] & inx[:, None, :]).astype(np.float32)
        return np.repeat(img[:, None], self.image_shape[0], axis=1)


class NaNSquares(Squares):
    """Squares whose images turn NaN from the ``bad_call``-th call on (1-based)."""

    def __init__(self, bad_call: int):
        super().__init__()
        self.calls, self.bad_call = 0, bad_call

    def images(self, factors, rng=None):
        self.calls += 1
        out = super().images(factors, rng)
        return out * np.nan if self.calls >= self.bad_call else out


def small_config(steps=8, method="ada-gvae", **overrides) -> TrainConfig:
    cfg = TrainConfig()
    sets = [f"run.steps={steps}", f"method.name={method}", "optim.batch_size=4", "optim.lr=1e-3",
            "run.log_every=1", "run.checkpoint_every=2", "run.precision=fp32", "run.device=cpu",
            "run.threads=1", "model.latent_dim=4"]
    sets += [f"{k.replace('__', '.')}={json.dumps(v)}" for k, v in overrides.items()]
    return apply_overrides(cfg, sets)


def weights(run_dir) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir).model


def assert_same_state(a, b):
    sa, sb = load_checkpoint(a), load_checkpoint(b)
    assert sa.step == sb.step
    assert sa.model.keys() == sb.model.keys()
    for k in sa.model:
        assert torch.equal(sa.model[k], sb.model[k]), k
    for i, entry in sa.optimizer["state"].items():
        for key, value in entry.items():
            assert torch.equal(value, sb.optimizer["state"][i][key]), (i, key)


# ----------------------------------------------------------------------------- learning
def test_training_lowers_the_loss_and_logs_every_field(tmp_path):
    run = train(small_config(40, optim__batch_size=8), tmp_path / "r", dataset=Squares(), progress=False)
    log = read_log(run)
    assert [r["step"] for r in log] == list(range(1, 41))
    assert set(log[0]) == {"step", "loss", "reconstruction", "kl", "beta", "images_per_s", "elapsed_s"}
    assert 0 < log[0]["elapsed_s"] <= log[-1]["elapsed_s"]  # wall time, for the report
    assert log[0]["images_per_s"] > 0 and log[0]["beta"] == 1.0
    first = np.mean([r["loss"] for r in log[:5]])
    last = np.mean([r["loss"] for r in log[-5:]])
    assert last < 0.6 * first, (first, last)
    assert json.loads((run / "config.json").read_text())["run"]["steps"] == 40


@pytest.mark.slow
def test_200_step_run_on_dsprites_lowers_the_loss(tmp_path):
    from disentkit.data.registry import available_datasets

    if "dsprites" not in available_datasets():
        pytest.skip("the dsprites dataset module is not available")
    cfg = small_config(200, optim__batch_size=8, run__log_every=10, run__checkpoint_every=200,
                       data__dataset="dsprites", model__latent_dim=10)
    log = read_log(train(cfg, tmp_path / "d", progress=False))
    assert log[-1]["loss"] < 0.4 * log[0]["loss"], (log[0]["loss"], log[-1]["loss"])  # seen: 0.14


@pytest.mark.parametrize("method", ["beta-vae", "gvae-labels", "ada-ml-vae"])
def test_every_method_and_bf16_channels_last_train(tmp_path, method):
    cfg = small_config(2, method, run__precision="bf16", model__arch="paper")
    run = train(cfg, tmp_path / method, dataset=Squares(channels=3), progress=False)
    assert all(np.isfinite(r["loss"]) for r in read_log(run))
    assert load_checkpoint(run).info["precision"] == "bf16"
    model, loaded = load_run(run)
    assert not model.training and loaded == cfg
    assert model.encode(torch.rand(2, 3, 64, 64))[0].shape == (2, 4)


# ----------------------------------------------------------------------------- determinism and resume
def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    a = train(small_config(3), tmp_path / "a", dataset=Squares(), progress=False)
    b = train(small_config(3), tmp_path / "b", dataset=Squares(), progress=False)
    c = train(small_config(3, run__seed=1), tmp_path / "c", dataset=Squares(), progress=False)
    assert_same_state(a, b)
    assert not all(torch.equal(weights(a)[k], weights(c)[k]) for k in weights(a))


def test_prefetching_thread_draws_the_same_batches(tmp_path):
    a = train(small_config(4), tmp_path / "a", dataset=Squares(), progress=False)
    b = train(small_config(4, run__prefetch=False), tmp_path / "b", dataset=Squares(), progress=False)
    assert_same_state(a, b)
    assert load_checkpoint(a).numpy_rng == load_checkpoint(b).numpy_rng


def test_stopped_at_half_and_resumed_is_bitwise_identical(tmp_path):
    full = train(small_config(8), tmp_path / "full", dataset=Squares(), progress=False)
    half = train(small_config(4), tmp_path / "half", dataset=Squares(), progress=False)
    assert load_checkpoint(half).step == 4
    train(small_config(8), half, dataset=Squares(), resume=True, progress=False)
    assert_same_state(full, half)
    assert read_log(full) == [dict(r, images_per_s=r2["images_per_s"], elapsed_s=r2["elapsed_s"])
                              for r, r2 in zip(read_log(half), read_log(full))]


KILL_SCRIPT = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from test_train import Squares, small_config
from disentkit.training import train

def progress(step, steps):
    if step == 5:  # after step 5; the last checkpoint is step 4
        os.kill(os.getpid(), signal.SIGKILL)

train(small_config(8), {out!r}, dataset=Squares(), progress=progress)
"""


def test_sigkill_mid_run_then_resume_is_bitwise_identical(tmp_path):
    out = tmp_path / "killed"
    script = KILL_SCRIPT.format(tests=str(Path(__file__).parent), out=str(out))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert load_checkpoint(out).step == 4
    assert max(r["step"] for r in read_log(out)) == 5  # logged past the checkpoint, then killed
    train(small_config(8), out, dataset=Squares(), resume=True, progress=False)
    full = train(small_config(8), tmp_path / "full", dataset=Squares(), progress=False)
    assert_same_state(full, out)
    assert [r["step"] for r in read_log(out)] == list(range(1, 9))  # no duplicated steps


# ----------------------------------------------------------------------------- failures and guards
def test_non_finite_loss_stops_names_step_and_term_and_keeps_checkpoint(tmp_path):
    with pytest.raises(NonFiniteLossError, match=r"non-finite reconstruction \(nan\) at step 7.*step 6"):
        train(small_config(10), tmp_path / "nan", dataset=NaNSquares(bad_call=7), progress=False)
    assert load_checkpoint(tmp_path / "nan").step == 6
    assert "error" in read_log(tmp_path / "nan")[-1]


def test_lazy_guard_reads_the_device_only_at_log_and_checkpoint_steps(tmp_path, monkeypatch):
    """The accelerator path (no host read per step), forced on CPU: same weights and log as the
    eager path; a NaN is caught at the next log/checkpoint step, names its first bad step, and
    never reaches a checkpoint."""
    from disentkit.training import loop

    eager = train(small_config(6, run__log_every=3), tmp_path / "eager", dataset=Squares(),
                  progress=False)
    monkeypatch.setattr(loop, "EAGER_GUARD_DEVICES", ())
    lazy = train(small_config(6, run__log_every=3), tmp_path / "lazy", dataset=Squares(),
                 progress=False)
    assert_same_state(eager, lazy)
    drop = lambda rows: [{k: v for k, v in r.items() if k not in ("images_per_s", "elapsed_s")}
                         for r in rows]
    assert drop(read_log(eager)) == drop(read_log(lazy))
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss or gradient norm \(nan\) at "
                                                 r"step 7.*step 6"):
        train(small_config(10, run__log_every=5, run__checkpoint_every=3), tmp_path / "nan",
              dataset=NaNSquares(bad_call=7), progress=False)
    assert load_checkpoint(tmp_path / "nan").step == 6
    assert read_log(tmp_path / "nan")[-1]["step"] == 7
    assert "error" in read_log(tmp_path / "nan")[-1]


def test_existing_run_is_not_overwritten_without_asking(tmp_path):
    run = train(small_config(2), tmp_path / "r", dataset=Squares(), progress=False)
    with pytest.raises(RunExistsError, match=r"finished run \(step 2\).*--overwrite"):
        train(small_config(2), run, dataset=Squares(), progress=False)
    with pytest.raises(ValueError, match=r"method.beta \(saved 1.0, given 2.0\)"):
        train(small_config(2, method__beta=2.0), run, dataset=Squares(), resume=True, progress=False)
    with pytest.raises(ValueError, match="below the checkpoint's step 2"):
        train(small_config(1), run, dataset=Squares(), resume=True, progress=False)
    train(small_config(2, run__seed=5), run, dataset=Squares(), overwrite=True, progress=False)
    assert json.loads((run / "config.json").read_text())["run"]["seed"] == 5


def test_init_from_and_partial_fine_tuning_with_a_fresh_optimiser(tmp_path):
    source = train(small_config(2), tmp_path / "src", dataset=Squares(), progress=False)
    copy = train(small_config(0, method="beta-vae", model__init_from=str(source)),
                 tmp_path / "copy", dataset=Squares(), progress=False)
    assert all(torch.equal(weights(source)[k], v) for k, v in weights(copy).items())
    tuned = train(small_config(2, method="beta-vae", model__init_from=str(source),
                               optim__trainable="encoder"), tmp_path / "enc", dataset=Squares(),
                  progress=False)
    src, new = weights(source), weights(tuned)
    assert all(torch.equal(src[k], new[k]) for k in src if k.startswith("decoder"))
    assert not torch.equal(src["fc_mu.weight"], new["fc_mu.weight"])
    state = load_checkpoint(tuned).optimizer["state"]
    encoder_params = [k for k in src if not k.startswith("decoder")]
    assert len(state) == len(encoder_params)  # fresh Adam over the encoder only
    assert all(int(s["step"]) == 2 for s in state.values())


def test_gvae_labels_needs_a_latent_per_factor(tmp_path):
    with pytest.raises(ValueError, match="latent_dim must be >= the 3 factors"):
        train(small_config(1, "gvae-labels", model__latent_dim=2), tmp_path / "g",
              dataset=Squares(), progress=False)


# ----------------------------------------------------------------------------- CLI
@pytest.fixture
def squares_registered(monkeypatch):
    from disentkit.data import registry

    monkeypatch.setitem(registry.DATASETS, "squares", f"{__name__}:Squares")


def test_cli_smoke_resume_and_errors(tmp_path, capsys, squares_registered):
    out = tmp_path / "cli"
    args = ["train", "--dataset", "squares", "--method", "gvae-labels", "--arch", "locatello",
            "--latent-dim", "5", "--beta", "2", "--seed", "3", "--out", str(out), "--smoke",
            "--device", "cpu", "--threads", "1", "--set", "optim.lr=5e-4"]
    assert main([*args, "-v"]) == 0
    err = capsys.readouterr().err  # -v prints the resolved config (a debug record)
    saved = json.loads((out / "config.json").read_text())
    assert json.JSONDecoder().raw_decode(err[err.index("{"):])[0] == saved
    assert saved["method"] == {"name": "gvae-labels", "beta": 2.0, "warmup_steps": 0, "options": {}}
    assert saved["optim"]["lr"] == 5e-4 and saved["run"]["seed"] == 3 and saved["model"]["latent_dim"] == 5
    steps = saved["run"]["steps"]
    assert load_checkpoint(out).step == steps
    assert main(args) == 2  # a finished run is not overwritten
    assert "--overwrite" in capsys.readouterr().err
    assert main(["train", "--out", str(out), "--resume", "--steps", str(steps + 2)]) == 0
    assert load_checkpoint(out).step == steps + 2
    assert main(args + ["--overwrite"]) == 0 and load_checkpoint(out).step == steps
    assert main(["train", "--out", str(tmp_path / "x"), "--smoke", "--dataset", "squares",
                 "--set", "optim.lr=fast"]) == 2
    assert "optim.lr must be float" in capsys.readouterr().err


def test_cli_reads_a_partial_config_file_and_grad_clip_none(tmp_path, squares_registered):
    from disentkit.cli.train import register, resolve_config
    import argparse

    file = tmp_path / "c.json"
    file.write_text(json.dumps({"method": {"name": "beta-vae", "warmup_steps": 10}}))
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["train", "--out", str(tmp_path / "o"), "--config", str(file),
                              "--beta", "4", "--grad-clip", "none"])
    cfg = resolve_config(args)
    assert (cfg.method.name, cfg.method.warmup_steps, cfg.method.beta) == ("beta-vae", 10, 4.0)
    assert cfg.optim.grad_clip is None and cfg.data.dataset == "dsprites"
    file.write_text(json.dumps({"methods": {}}))
    with pytest.raises(ValueError, match="expected sections"):
        resolve_config(args)


def test_a_weights_only_checkpoint_cannot_be_resumed(tmp_path):
    from disentkit.config import save
    from disentkit.training.checkpoint import CheckpointError, TrainingState, save_checkpoint

    run = train(small_config(1), tmp_path / "r", dataset=Squares(), progress=False)
    save_checkpoint(run, TrainingState(step=1, model=weights(run), info={"in_channels": 1}))
    save(small_config(1), run / "config.json")
    with pytest.raises(CheckpointError, match="holds weights only"):
        train(small_config(3), run, dataset=Squares(), resume=True, progress=False)


def test_a_failing_renderer_stops_training_with_its_error(tmp_path):
    class Broken(Squares):
        def images(self, factors, rng=None):
            raise ValueError("broken renderer")

    with pytest.raises(ValueError, match="broken renderer"):
        train(small_config(3), tmp_path / "b", dataset=Broken(), progress=False)


def test_device_precision_and_seed_resolution():
    from disentkit.training import prepare

    cpu = torch.device("cpu")
    assert prepare.resolve_precision("fp32", cpu) == "fp32"
    assert prepare.resolve_precision("auto", cpu) == "fp32"  # bf16 on a CPU only when asked
    assert prepare.use_channels_last(cpu, "fp32")
    assert not prepare.use_channels_last(torch.device("cuda"), "fp32")
    if not torch.cuda.is_available():
        assert prepare.resolve_device("auto") == cpu
        with pytest.raises(ValueError, match="sees no CUDA device"):
            prepare.resolve_device("cuda")
    s0, s1 = prepare.seeds(0), prepare.seeds(1)
    assert s0 == prepare.seeds(0) and len(set(s0.values())) == 3
    assert all(s0[k] != s1[k] for k in s0)


def test_decoder_only_fine_tuning_freezes_the_encoder_in_eval_mode():
    from disentkit.models import build_model
    from disentkit.training.prepare import trainable_parameters

    model = build_model("paper", 1, 4).train()
    params = trainable_parameters(model, "decoder")
    assert {id(p) for p in params} == {id(p) for n, p in model.named_parameters()
                                       if n.startswith("decoder")}
    assert not model.encoder.training and model.decoder.training
    assert not any(p.requires_grad for p in model.fc_mu.parameters())


def test_training_flushes_subnormals_on_every_cpu_thread_and_restores_them():
    """Subnormal arithmetic made the quick source's steps 1.75x slower after 1,000 steps; the
    training context treats them as zero on the caller *and* on PyTorch's OpenMP threads (a
    large elementwise op runs on all of them), and turns that off again afterwards."""
    from disentkit.training import prepare

    tiny = torch.full((1 << 22,), 1e-39)  # subnormal in float32, split across every thread
    assert int((tiny * 1.0).count_nonzero()) == tiny.numel()
    with prepare.flush_denormals(torch.device("cpu")):
        assert int((tiny * 1.0).count_nonzero()) == 0
    assert int((tiny * 1.0).count_nonzero()) == tiny.numel()


def test_a_log_with_bytes_that_are_not_utf8_is_read_and_named(tmp_path, caplog):
    (tmp_path / "log.jsonl").write_bytes(b'{"step": 1, "loss": 2.0}\n\xff\xfe garbage\n'
                                         b'\x80\x81\n{"step": 2, "loss": 1.0}\n')
    caplog.set_level("WARNING", logger="disentkit")
    assert [r["step"] for r in read_log(tmp_path)] == [1, 2]
    assert str(tmp_path / "log.jsonl") in caplog.text and "2 unreadable line" in caplog.text
