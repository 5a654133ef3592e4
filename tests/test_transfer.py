"""Transfer: held-out split, channel adaptation both ways, before/after on a tiny fixture,
skipping finished stages, --compat, and clear errors for a corrupt source run folder."""

from __future__ import annotations

import shutil

from pathlib import Path

import numpy as np
import pytest
import torch

from disentkit.cli import main
from disentkit.data.base import FactorDataset
from disentkit.evaluate import EvalSettings
from disentkit.io import read_json
from disentkit.data.views import CombinationSubset, is_heldout
from disentkit.models.channels import adapt_channels
from disentkit.transfers import (
    SourceRunError,
    StageProgress,
    TransferConfig,
    transfer,
)

EVAL = EvalSettings(n=160, metrics=("omes", "dci", "mig", "downstream"), backend="fast", batch_size=80)
#: for tests about the mechanics, not the numbers: no classifiers, no figures
LIGHT = EvalSettings(n=120, metrics=("omes", "mig"), backend="fast", batch_size=120, figures=False)


class Squares(FactorDataset):
    """64x64 squares: position x (8) and y (8), size (4); 1 or 3 channels (colour 2 when 3).
    256 combinations (512 with colour), so a 25 % held-out part still holds ~64 rows."""

    name = "squares"
    source = "made in the test"

    def __init__(self, channels=1, combinations=None):
        self.factor_names = ("x", "y", "size") + (("color",) if channels == 3 else ())
        self.factor_sizes = (8, 8, 4) + ((2,) if channels == 3 else ())
        self.image_shape = (channels, 64, 64)
        self.combinations = combinations

    def images(self, factors, rng=None):
        f = self.check_factors(factors)
        c = self.image_shape[0]
        out = np.zeros((len(f), c, 64, 64), np.float32)
        for i, row in enumerate(f):
            x, y, s = row[:3]
            w = 6 + 4 * s
            color = np.ones(c) if c == 1 or row[3] == 0 else np.array([1.0, 0.3, 0.1])
            out[i, :, 4 + 6 * y: 4 + 6 * y + w, 4 + 6 * x: 4 + 6 * x + w] = color[:, None, None]
        return out


def train_source(folder, channels=1, steps=3):
    from disentkit.config import DataConfig, MethodConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig
    from disentkit.training import train

    cfg = TrainConfig(
        data=DataConfig(dataset="squares"), model=ModelConfig(arch="locatello", latent_dim=4),
        method=MethodConfig(name="ada-gvae"), optim=OptimConfig(batch_size=4, lr=1e-3),
        run=RunConfig(steps=steps, seed=0, precision="fp32", device="cpu", log_every=1,
                      checkpoint_every=steps),
    )
    return train(cfg, folder, dataset=Squares(channels), progress=False)


@pytest.fixture(scope="module")
def source_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    return {c: train_source(root / f"c{c}", channels=c) for c in (1, 3)}


def tcfg(source, **kw):
    base = dict(source=str(source), target="squares", steps=3, batch_size=4, lr=1e-3,
                precision="fp32", device="cpu", log_every=1, eval=EVAL)
    base.update(kw)
    return TransferConfig(**base)


def quiet():
    return StageProgress()


# ---------------------------------------------------------------------------- split
def test_heldout_split_partitions_the_grid(toy_dataset_cls):
    ds = toy_dataset_cls(sizes=(2, 5, 6, 7))
    every = ds.index_to_factors(np.arange(len(ds)))
    held = is_heldout(ds, every, 0.3, seed=1)
    assert 0.2 < held.mean() < 0.4
    assert np.array_equal(held, is_heldout(ds, every, 0.3, seed=1))  # deterministic
    assert not np.array_equal(held, is_heldout(ds, every, 0.3, seed=2))  # seeded
    train, test = CombinationSubset(ds, "train", 0.3, 1), CombinationSubset(ds, "heldout", 0.3, 1)
    assert len(train) + len(test) == len(ds) and len(test) == held.sum()
    rng = np.random.default_rng(0)
    assert held[ds.factors_to_index(test.sample_factors(500, rng))].all()
    assert not held[ds.factors_to_index(train.sample_factors(500, rng))].any()
    assert np.array_equal(test.contains(every), held)
    # every value of every factor still appears in the held-out part
    heldout_rows = every[held]
    assert all(len(np.unique(heldout_rows[:, k])) == s for k, s in enumerate(ds.factor_sizes))


def test_heldout_split_on_incomplete_grid(toy_dataset_cls):
    full = toy_dataset_cls(sizes=(1, 3, 4, 5))
    table = full.index_to_factors(np.arange(0, len(full), 2))  # half the grid exists
    ds = toy_dataset_cls(sizes=(1, 3, 4, 5), combinations=table)
    test = CombinationSubset(ds, "heldout", 0.5, 0)
    train = CombinationSubset(ds, "train", 0.5, 0)
    assert len(test) + len(train) == len(table)
    drawn = test.sample_factors(200, np.random.default_rng(0))
    assert ds.contains(drawn).all() and is_heldout(ds, drawn, 0.5, 0).all()
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\)"):
        CombinationSubset(ds, "heldout", 1.0, 0)
    with pytest.raises(ValueError, match="part must be"):
        CombinationSubset(ds, "test", 0.5, 0)


# ---------------------------------------------------------------------------- channels
def _model(channels):
    from disentkit.models import build_model

    torch.manual_seed(0)
    return build_model("locatello", channels, 4).eval()


def test_adapt_one_to_three_channels_sees_the_grey_mean():
    grey_model = _model(1)
    rgb_model = adapt_channels(grey_model, 3)
    assert rgb_model.in_channels == 3 and grey_model.in_channels == 1
    x = torch.rand(5, 3, 64, 64)
    with torch.no_grad():
        mu_rgb, _ = rgb_model.encode(x)
        mu_grey, _ = grey_model.encode(x.mean(dim=1, keepdim=True))
        assert torch.allclose(mu_rgb, mu_grey, atol=1e-4)
        z = torch.randn(5, 4)
        out3, out1 = rgb_model.decode(z), grey_model.decode(z)
    assert out3.shape == (5, 3, 64, 64)
    for c in range(3):  # every colour channel reconstructs the grey logit
        assert torch.allclose(out3[:, c], out1[:, 0], atol=1e-5)


def test_adapt_three_to_one_channel_matches_grey_as_rgb():
    rgb_model = _model(3)
    grey_model = adapt_channels(rgb_model, 1)
    g = torch.rand(5, 1, 64, 64)
    with torch.no_grad():
        mu_grey, _ = grey_model.encode(g)
        mu_rgb, _ = rgb_model.encode(g.repeat(1, 3, 1, 1))
        assert torch.allclose(mu_grey, mu_rgb, atol=1e-4)
        z = torch.randn(5, 4)
        assert torch.allclose(grey_model.decode(z)[:, 0], rgb_model.decode(z).mean(dim=1), atol=1e-5)
    assert adapt_channels(rgb_model, 3) is rgb_model
    with pytest.raises(ValueError, match="1 <-> 3"):
        adapt_channels(rgb_model, 4)


# ---------------------------------------------------------------------------- transfer
def test_transfer_before_after_on_heldout_then_skip(tmp_path, source_runs, monkeypatch):
    out = tmp_path / "t"
    res = transfer(tcfg(source_runs[1]), out, progress=quiet(), dataset=Squares(1))
    for stage in ("before", "after"):
        for name in ("representations.npz", "classes.csv", "results.json",
                     "figures/reconstructions.png", "figures/traversals.png"):
            assert (out / stage / name).is_file(), (stage, name)
    before, after = res["before"], res["after"]
    assert before["kind"] == "before" and after["kind"] == "after"
    assert before["transfer"]["eval_split"].startswith("held-out combinations")
    assert after["log"] == "../finetune/log.jsonl" and (out / "finetune" / "log.jsonl").is_file()
    assert 0 <= before["metrics"]["gbt.mean_test_accuracy"] <= 1
    assert before["metrics"] != after["metrics"]  # fine-tuning changed the model
    # evaluation used only held-out combinations; both stages saw the same images
    ds = Squares(1)
    classes = np.loadtxt(out / "before" / "classes.csv", delimiter=",", skiprows=1, dtype=int)
    assert is_heldout(ds, classes, 0.25, 0).all()
    assert np.array_equal(classes, np.loadtxt(out / "after" / "classes.csv", delimiter=",",
                                              skiprows=1, dtype=int))
    # the protocol's record: no held-out combination twice, none on both sides of the split
    ev = before["evaluation"]
    assert ev["test_rows_seen_in_train"] == 0 and ev["distinct_combinations"] == ev["n"] == len(classes)
    assert ev["n"] < EVAL.n and ev["available_combinations"] == int(is_heldout(
        ds, np.argwhere(np.ones(ds.factor_sizes)), 0.25, 0).sum())  # the whole part, smaller n
    # the target floor: the source's untrained network on the same rows, recorded as a floor
    floor = res["floor"]
    assert floor["kind"] == "floor" and floor["transfer"]["target"] == "squares"
    assert floor["model"]["steps"] == 0 and floor["evaluation"] == ev
    assert np.array_equal(classes, np.loadtxt(out / "floor" / "classes.csv", delimiter=",",
                                              skiprows=1, dtype=int))
    assert before["metrics"] != floor["metrics"]
    ft = read_json(out / "finetune" / "config.json")
    assert ft["method"]["name"] == "beta-vae" and ft["model"]["init_from"] == str(source_runs[1])
    assert ft["run"]["seed"] == 0 and ft["optim"]["trainable"] == "all"
    saved = read_json(out / "transfer.json")
    assert saved["config"]["compat"] is False and saved["channel_rule"] is None

    # re-running skips every finished stage: no training, no file rewritten but transfer.json
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != "transfer.json"}
    import disentkit.training as train_mod

    def no_training(*a, **k):
        raise AssertionError("a finished fine-tuning must not train again")

    monkeypatch.setattr(train_mod, "train", no_training)
    res = transfer(tcfg(source_runs[1]), out, progress=quiet(), dataset=Squares(1))
    assert res["after"]["kind"] == "after"
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}
    with pytest.raises(ValueError, match="different transfer: beta"):
        transfer(tcfg(source_runs[1], beta=4.0), out, progress=quiet(), dataset=Squares(1))
    # the source folder moved (same name, same training config): still the same transfer
    import shutil

    moved = tmp_path / "elsewhere" / Path(source_runs[1]).name
    shutil.copytree(source_runs[1], moved)
    res = transfer(tcfg(moved), out, progress=quiet(), dataset=Squares(1))
    assert res["after"]["kind"] == "after" and stamps == {p: p.stat().st_mtime_ns for p in stamps}
    # another source under the same folder name is not
    other = tmp_path / "other" / Path(source_runs[1]).name
    shutil.copytree(source_runs[3], other)
    with pytest.raises(ValueError, match="different transfer: source"):
        transfer(tcfg(other), out, progress=quiet(), dataset=Squares(1))


def test_channel_adaptation_inside_transfer(tmp_path, source_runs):
    up = transfer(tcfg(source_runs[1], finetune="encoder", eval=LIGHT), tmp_path / "up", progress=quiet(),
                  dataset=Squares(3))
    assert up["before"]["transfer"]["channel_rule"].startswith("1->3")
    assert (tmp_path / "up" / "source_adapted" / "checkpoint" / "checkpoint.safetensors").is_file()
    from disentkit.training.checkpoint import load_run

    tuned, _ = load_run(tmp_path / "up" / "finetune")
    adapted, _ = load_run(tmp_path / "up" / "source_adapted")
    assert tuned.in_channels == 3
    # encoder-only fine-tuning leaves the decoder exactly as adapted
    dec = {k: v for k, v in tuned.state_dict().items() if k.startswith("decoder")}
    assert dec and all(torch.equal(v, adapted.state_dict()[k]) for k, v in dec.items())
    down = transfer(tcfg(source_runs[3], finetune="none", eval=LIGHT), tmp_path / "down", progress=quiet(),
                    dataset=Squares(1))
    assert down["after"] is None and down["before"]["transfer"]["channel_rule"].startswith("3->1")
    assert down["floor"]["kind"] == "floor"  # the floor's network is adapted alike (3 -> 1)
    assert not (tmp_path / "down" / "finetune").exists()


def test_compat_reproduces_the_reference_behaviour(tmp_path, source_runs):
    out = tmp_path / "c"
    res = transfer(tcfg(source_runs[1], compat=True, beta=4.0, seed=7, eval=LIGHT), out, progress=quiet(),
                   dataset=Squares(1))
    ft = read_json(out / "finetune" / "config.json")
    assert ft["method"]["beta"] == 1.0 and ft["run"]["seed"] == 0
    assert ft["run"]["steps"] == 3 + 3  # the source's step counter and optimiser carried on
    assert res["after"]["transfer"]["compat"] is True
    assert res["after"]["transfer"]["eval_split"].startswith("training images")


def test_corrupt_source_gives_a_clear_error(tmp_path, source_runs, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(source_runs[1], bad)
    (bad / "checkpoint" / "checkpoint.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(SourceRunError, match="corrupt or unreadable"):
        transfer(tcfg(bad), tmp_path / "t1", progress=quiet(), dataset=Squares(1))
    (bad / "config.json").unlink()
    code = main(["transfer", "--source", str(bad), "--target", "noisy-color-dsprites",
                 "--out", str(tmp_path / "t2"), "--smoke"])
    err = capsys.readouterr().err
    assert code == 2 and "source run folder" in err and "config.json" in err
    assert main(["transfer", "--source", str(tmp_path / "nowhere"), "--target", "shapes3d",
                 "--out", str(tmp_path / "t3"), "--smoke"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_transfer_config_validation():
    with pytest.raises(ValueError, match="finetune must be one of"):
        TransferConfig(source="a", target="b", finetune="head").validate()
    with pytest.raises(ValueError, match="steps must be >= 1"):
        TransferConfig(source="a", target="b", steps=0).validate()
    assert TransferConfig(source="a", target="b", steps=0, finetune="none").validate()
    compat = TransferConfig(source="a", target="b", compat=True, beta=3.0, seed=5).resolved()
    assert (compat.beta, compat.seed) == (1.0, 0)


def test_stage_progress_prints_stage_and_eta(caplog, monkeypatch):
    monkeypatch.setenv("DISENTKIT_PROGRESS_SECONDS", "3600")
    caplog.set_level("INFO", logger="disentkit")
    p = StageProgress(prefix="[x] ", every=0.0)  # overrides the environment
    p.stage("fine-tuning")
    for step in range(1, 5):
        p(step, 4)
    text = caplog.text
    assert "[x] fine-tuning" in text and "training: 4/4 steps (100%)" in text and "ETA 0:00" in text
    assert "training: 2/4 steps (50%)" in text and "steps/s" in text  # lines while it runs


def test_transfer_cli_end_to_end(tmp_path, source_runs, monkeypatch, capsys):
    monkeypatch.setenv("DISENTKIT_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "cli"
    args = ["transfer", "--source", str(source_runs[1]), "--target", "coins-augmented", "--out",
            str(out), "--smoke", "--metrics", "omes,mig,downstream", "--finetune", "decoder",
            "--beta", "2", "--seed", "5", "--threads", "1"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "gbt.mean_test_accuracy" in printed and "delta" in printed and str(out) in printed
    saved = read_json(out / "transfer.json")["config"]
    assert (saved["target"], saved["finetune"], saved["beta"], saved["seed"]) == ("coins-augmented", "decoder", 2.0, 5)
    assert saved["eval"]["metrics"] == ["omes", "mig", "downstream"] and saved["steps"] == 4
    after = read_json(out / "after" / "results.json")
    assert after["dataset"]["name"] == "coins-augmented" and after["transfer"]["channel_rule"].startswith("1->3")
    assert main(args) == 0  # the second time every stage is skipped
    assert "skipped: done" in capsys.readouterr().err


def test_target_options_reach_every_stage_and_are_checked(tmp_path, source_runs, monkeypatch,
                                                          capsys):
    """``--target-option`` (a study's ``target_options``) builds the target with its options
    for the zero-shot, floor, fine-tuning and after stages; an unknown or malformed option is a
    one-line error (exit 2) before any work."""
    monkeypatch.setenv("DISENTKIT_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "opt"
    base = ["transfer", "--source", str(source_runs[1]), "--target", "coins-augmented", "--out",
            str(out), "--smoke", "--metrics", "omes", "--threads", "1"]
    assert main(base + ["--target-option", "channels=1"]) == 0
    assert read_json(out / "transfer.json")["config"]["target_options"] == {"channels": 1}
    assert read_json(out / "finetune" / "config.json")["data"]["options"] == {"channels": 1}
    after = read_json(out / "after" / "results.json")
    assert after["transfer"]["channel_rule"] is None  # 1-channel source, 1-channel target
    capsys.readouterr()
    bad = tmp_path / "bad"
    assert main(base[:6] + [str(bad)] + base[7:] + ["--target-option", "depth_mode=normalised"]) == 2
    err = capsys.readouterr().err
    assert "target_options" in err and "channels" in err and not bad.exists()
    assert main(base[:6] + [str(bad)] + base[7:] + ["--target-option", "channels"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err and not bad.exists()


def test_empty_target_options_leave_run_ids_unchanged():
    from disentkit.experiment.study import config_id

    config = {"kind": "transfer", "transfer": {"target": "shapes3d", "steps": 5}}
    assert config_id({**config, "transfer": {**config["transfer"], "target_options": {}}}) == \
        config_id(config)
    assert config_id({**config, "transfer": {**config["transfer"],
                                             "target_options": {"supersample": 1}}}) != config_id(config)
