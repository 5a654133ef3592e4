"""``disentkit metrics``, ``disentkit omes`` and ``disentkit encode`` end to end (in process)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from disentkit.cli import main
from disentkit.metrics.representations import save_representations


@pytest.fixture
def rep_folder(tmp_path):
    """A small folder in the reference layout: 3 factors, a code with one dimension each."""
    rng = np.random.default_rng(0)
    factors = np.stack([rng.integers(0, s, 300) for s in (3, 4, 5)], axis=1)
    noisy = factors + 0.05 * rng.normal(size=factors.shape)
    mean = np.concatenate([noisy, rng.normal(size=(300, 1))], axis=1)
    sampled = mean + 0.1 * rng.normal(size=mean.shape)
    save_representations(tmp_path / "rep", mean, sampled, factors, ["shape", "scale", "pos"])
    return tmp_path / "rep"


def test_metrics_command_prints_a_table_and_writes_json(rep_folder, tmp_path, capsys):
    out = tmp_path / "m.json"
    code = main([
        "metrics", "--representations", str(rep_folder / "representations.npz"),
        "--classes", str(rep_folder / "classes.csv"), "--metrics", "omes,mig,factor_vae",
        "--seed", "2", "--key", "sampled", "--json", str(out),
    ])
    assert code == 0
    printed = capsys.readouterr().out
    assert "omes.score" in printed and "mig.score" in printed and "dci" not in printed
    data = json.loads(out.read_text())
    assert set(data) == {"metrics", "details", "meta"}
    meta = data["meta"]
    assert meta["seed"] == 2 and meta["n"] == 300 and meta["key"] == "sampled"
    assert data["meta"]["backend"] == "reference" and "numpy" in data["meta"]["versions"]
    assert data["details"]["omes"]["association"] == {"shape": 0, "scale": 1, "pos": 2}
    assert 0.9 < data["metrics"]["mig.score"] <= 1.0


def test_metrics_command_bootstrap_and_fast_backend(rep_folder, tmp_path, capsys):
    out = tmp_path / "b.json"
    code = main([
        "metrics", "--representations", str(rep_folder / "representations.npz"),
        "--classes", str(rep_folder / "classes.csv"), "--metrics", "dci,mig",
        "--backend", "fast", "--threads", "1", "--bootstrap", "3", "--json", str(out),
    ])
    assert code == 0
    assert "95% interval" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["details"]["dci"]["backend"] == "fast"
    m = data["metrics"]
    assert m["dci.disentanglement.ci_low"] <= m["dci.disentanglement.ci_high"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--metrics", "omes,nope"], "unknown metric"),
        (["--backend", "gpu"], "valid backends"),
        (["--train-fraction", "1.2"], "train_fraction"),
        (["--key", "logvar"], "no array 'logvar'"),
    ],
)
def test_metrics_command_bad_input_exits_2(rep_folder, capsys, extra, message):
    code = main([
        "metrics", "--representations", str(rep_folder / "representations.npz"),
        "--classes", str(rep_folder / "classes.csv"), *extra,
    ])
    assert code == 2
    assert message in capsys.readouterr().err


def test_metrics_command_nan_codes_and_missing_files_exit_2(rep_folder, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(rep_folder, bad)
    with np.load(bad / "representations.npz") as d:
        mean, sampled = d["mean"].copy(), d["sampled"]
    mean[3, 1] = np.nan
    np.savez(bad / "representations.npz", mean=mean, sampled=sampled)
    args = ["metrics", "--representations", str(bad / "representations.npz"), "--classes"]
    assert main([*args, str(bad / "classes.csv"), "--metrics", "mig"]) == 2
    assert "finite" in capsys.readouterr().err
    assert main([*args, str(tmp_path / "none.csv")]) == 2
    assert "expected layout" in capsys.readouterr().err


def test_omes_command_writes_every_file(rep_folder, tmp_path, capsys):
    dest = tmp_path / "omes_out"
    assert main(["omes", str(rep_folder), "--out", str(dest), "--seed", "1"]) == 0
    printed = capsys.readouterr().out
    assert "alpha" in printed and "max" in printed and "shape->0" in printed
    data = json.loads((dest / "omes.json").read_text())
    assert set(data["scores"]) == {"max", "avg"} and len(data["scores"]["avg"]) == 11
    assert (dest / "association.csv").read_text().splitlines() == [
        "factor,dimension", "shape,0", "scale,1", "pos,2"
    ]
    assert (dest / "inactive.csv").read_text().splitlines()[0] == "inactive"
    relation = (dest / "relation.csv").read_text().splitlines()
    assert relation[0] == "dimension,shape,scale,pos" and len(relation) == 1 + 4
    png = (dest / "relation.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(dest.glob(".*tmp*"))  # atomic writes leave no temporary files


def test_omes_command_on_the_reference_example(reference_dir, tmp_path, capsys):
    assert main(["omes", str(reference_dir / "omes_example"), "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "omes.json").read_text())
    assert list(data["pairs"].values()) == [6601, 6669, 6615, 5459, 892, 5077]
    assert abs(data["scores"]["max"]["0.5"] - 0.730) <= 0.004
    assert abs(data["scores"]["avg"]["0.5"] - 0.635) <= 0.004


def test_omes_command_on_a_folder_without_files_exits_2(tmp_path, capsys):
    assert main(["omes", str(tmp_path)]) == 2
    assert "representations.npz" in capsys.readouterr().err


def test_encode_command_uses_load_run(monkeypatch, toy_dataset_cls, tmp_path, capsys):
    import torch

    import disentkit.data.registry as registry
    import disentkit.training.checkpoint as checkpoint

    class Encoder(torch.nn.Module):
        def encode(self, x):
            mu = x.flatten(1)[:, :4] * 2.0
            return mu, torch.zeros_like(mu)

    seen = {}

    def fake_load_run(run_dir, device="cpu"):
        seen["run_dir"] = str(run_dir)
        return Encoder().eval(), {"config": "made in the test"}

    monkeypatch.setattr(checkpoint, "load_run", fake_load_run)
    monkeypatch.setattr(registry, "get_dataset", lambda name, **kw: toy_dataset_cls())
    out = tmp_path / "enc"
    args = ["encode", str(tmp_path / "run"), "--dataset", "toy", "--out", str(out)]
    assert main([*args, "--n", "40"]) == 0
    assert seen["run_dir"] == str(tmp_path / "run")
    with np.load(out / "representations.npz") as d:
        assert d["mean"].shape == (40, 4) and d["sampled"].dtype == np.float32
    assert (out / "classes.csv").read_text().splitlines()[0] == "f0,f1,f2,f3"
    assert "40 samples" in capsys.readouterr().out
    assert main([*args, "--n", "0"]) == 2


def test_encode_command_on_a_missing_run_exits_2(tmp_path, capsys):
    run = str(tmp_path / "nope")
    code = main(["encode", run, "--dataset", "dsprites", "--n", "4", "--out", str(tmp_path)])
    assert code == 2
    assert "nope" in capsys.readouterr().err


def test_encode_command_on_a_real_run_folder(tmp_path, capsys):
    """A run folder as the trainer writes it (config.json + checkpoint), encoded end to end."""
    import torch

    from disentkit.config import TrainConfig, save
    from disentkit.models import build_model
    from disentkit.training import checkpoint as ckpt

    torch.manual_seed(0)
    model = build_model("locatello", 1, 4)
    cfg = TrainConfig()
    cfg.model.latent_dim = 4
    run = tmp_path / "run"
    save(cfg, run / "config.json")
    ckpt.save_checkpoint(run, ckpt.TrainingState(
        step=0, model=model.state_dict(), optimizer={"state": {}, "param_groups": []},
        torch_rng=torch.Generator().get_state(),
        numpy_rng=ckpt.numpy_rng_state(np.random.default_rng(0)),
        info={"arch": "locatello", "in_channels": 1, "latent_dim": 4},
    ))
    out = tmp_path / "enc"
    args = ["encode", str(run), "--dataset", "dsprites", "--n", "24", "--out", str(out)]
    assert main([*args, "--batch-size", "10"]) == 0
    with np.load(out / "representations.npz") as d:
        mean = d["mean"]
    assert mean.shape == (24, 4) and np.isfinite(mean).all() and mean.std(0).min() > 0
    header = (out / "classes.csv").read_text().splitlines()[0]
    assert header == "color,shape,scale,orientation,posX,posY"


@pytest.mark.parametrize("sampling", ["lines", "uniform"])
def test_encode_then_metrics_reproduces_the_run_evaluation(tmp_path, capsys, sampling):
    """`disentkit encode` + `disentkit metrics` on a run folder give the numbers the run's own
    evaluation wrote, for the same model, n, seed and sampling (one setting everywhere)."""
    import json

    import torch

    from disentkit.config import TrainConfig, save
    from disentkit.evaluate import EvalSettings, evaluate_source
    from disentkit.models import build_model
    from disentkit.training import checkpoint as ckpt

    torch.manual_seed(1)
    cfg = TrainConfig()
    cfg.model.latent_dim = 4
    run = tmp_path / "run"
    save(cfg, run / "config.json")
    ckpt.save_checkpoint(run, ckpt.TrainingState(
        step=0, model=build_model("locatello", 1, 4).state_dict(),
        optimizer={"state": {}, "param_groups": []}, torch_rng=torch.Generator().get_state(),
        numpy_rng=ckpt.numpy_rng_state(np.random.default_rng(0)),
        info={"arch": "locatello", "in_channels": 1, "latent_dim": 4}))
    settings = EvalSettings(n=240, seed=3, metrics=("omes", "dci", "mig"), backend="fast",
                            figures=False, sampling=sampling)
    saved = evaluate_source(run, settings, floor=False)["source"]
    assert saved["evaluation"]["test_rows_seen_in_train"] == 0
    out = tmp_path / "enc"
    assert main(["encode", str(run), "--dataset", cfg.data.dataset, "--n", "240", "--seed", "3",
                 "--sampling", sampling, "--out", str(out)]) == 0
    for key in ("mean", "sampled"):
        with np.load(out / "representations.npz") as a, np.load(run / "eval" / "representations.npz") as b:
            np.testing.assert_array_equal(a[key], b[key])
    assert (out / "classes.csv").read_text() == (run / "eval" / "classes.csv").read_text()
    assert main(["metrics", "--representations", str(out / "representations.npz"), "--classes",
                 str(out / "classes.csv"), "--metrics", "omes,dci,mig", "--backend", "fast",
                 "--seed", "3", "--json", str(tmp_path / "m.json")]) == 0
    scored = json.loads((tmp_path / "m.json").read_text())["metrics"]
    assert scored and all(scored[k] == pytest.approx(v, abs=1e-9) for k, v in saved["metrics"].items())
