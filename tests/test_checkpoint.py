"""Checkpoints: exact round trip of every piece of state, atomic writes, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from disentkit.cli import main
from disentkit.config import TrainConfig, save
from disentkit.models import build_model
from disentkit.training import checkpoint as ckpt


def _state(step=3):
    torch.manual_seed(0)
    model = build_model("locatello", 1, 4)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.encode(torch.rand(2, 1, 64, 64))[0].sum().backward()
    opt.step()
    gen = torch.Generator().manual_seed(5)
    rng = np.random.default_rng(7)
    rng.random(3)
    info = {"arch": "locatello", "in_channels": 1, "latent_dim": 4}
    return model, opt, gen, rng, ckpt.TrainingState(
        step=step, model=model.state_dict(), optimizer=opt.state_dict(), torch_rng=gen.get_state(),
        numpy_rng=ckpt.numpy_rng_state(rng), info=info)


def _run_folder(tmp_path, state):
    cfg = TrainConfig()
    cfg.model.latent_dim = 4
    save(cfg, tmp_path / "config.json")
    ckpt.save_checkpoint(tmp_path, state)
    return cfg


def test_round_trip_restores_weights_optimiser_and_generators(tmp_path):
    model, opt, gen, rng, state = _state()
    ckpt.save_checkpoint(tmp_path, state)
    back = ckpt.load_checkpoint(tmp_path)
    assert back.step == 3 and back.info == state.info
    assert all(torch.equal(v, back.model[k]) for k, v in model.state_dict().items())
    fresh = build_model("locatello", 1, 4)
    opt2 = torch.optim.Adam(fresh.parameters(), lr=1e-3)
    opt2.load_state_dict(back.optimizer)
    a, b = opt.state_dict(), opt2.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for i in a["state"]:
        for key in a["state"][i]:
            assert torch.equal(a["state"][i][key], b["state"][i][key])
    gen2 = torch.Generator()
    gen2.set_state(back.torch_rng)
    assert torch.equal(torch.randn(4, generator=gen), torch.randn(4, generator=gen2))
    rng2 = ckpt.restore_numpy_rng(back.numpy_rng)
    assert np.array_equal(rng.random(5), rng2.random(5))


def test_load_run_gives_an_eval_model_and_its_config(tmp_path):
    model, *_, state = _state()
    cfg = _run_folder(tmp_path, state)
    loaded, loaded_cfg = ckpt.load_run(tmp_path)
    assert loaded_cfg == cfg and not loaded.training
    x = torch.rand(2, 1, 64, 64)
    model.eval()
    assert torch.equal(loaded.encode(x)[0], model.encode(x)[0])


def test_corrupt_truncated_foreign_and_missing_checkpoints_raise_clear_errors(tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(ckpt.CheckpointError, match="not a run folder: expected file .*config.json"):
        ckpt.load_run(tmp_path)
    *_, state = _state()
    _run_folder(tmp_path, state)
    path = ckpt.checkpoint_path(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ckpt.CheckpointError, match="corrupt or unreadable"):
        ckpt.load_run(tmp_path)
    path.write_bytes(b"\x80\x04 not a safetensors file")
    with pytest.raises(ckpt.CheckpointError, match="corrupt or unreadable"):
        ckpt.load_checkpoint(tmp_path)
    save_file({"weight": torch.zeros(2)}, str(path), metadata={"format": "pt"})
    with pytest.raises(ckpt.CheckpointError, match="not a disentkit checkpoint.*found 'pt'"):
        ckpt.load_checkpoint(tmp_path)
    path.unlink()
    with pytest.raises(ckpt.CheckpointError, match="no checkpoint in run folder"):
        ckpt.load_run(tmp_path)


def test_weights_of_another_shape_are_refused(tmp_path):
    *_, state = _state()
    cfg = _run_folder(tmp_path, state)
    cfg.model.latent_dim = 6  # config and weights disagree
    save(cfg, tmp_path / "config.json")
    with pytest.raises(ckpt.CheckpointError, match=r"has shape \[256, 4\], the network expects \[256, 6\]"):
        ckpt.load_run(tmp_path)


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    import safetensors.torch

    *_, state = _state(step=2)
    ckpt.save_checkpoint(tmp_path, state)

    def broken(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", broken)
    state.step = 4
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint(tmp_path, state)
    assert ckpt.load_checkpoint(tmp_path).step == 2
    assert [p.name for p in ckpt.checkpoint_path(tmp_path).parent.iterdir()] == [ckpt.CHECKPOINT_FILE]


def test_cli_resume_of_a_corrupt_run_exits_2(tmp_path, capsys):
    *_, state = _state()
    _run_folder(tmp_path, state)
    ckpt.checkpoint_path(tmp_path).write_bytes(b"garbage")
    assert main(["train", "--out", str(tmp_path), "--resume", "--steps", "10"]) == 2
    assert "corrupt" in capsys.readouterr().err
    assert json.loads((tmp_path / "config.json").read_text())["model"]["latent_dim"] == 4
