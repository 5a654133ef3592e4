"""The one configuration path (disentkit.config): parse, coerce (unions included), validate,
dotted overrides, and errors that name the field, the expected type and the value found."""

from __future__ import annotations

import json
import math

import pytest

from disentkit.cli import main
from disentkit.config import (ConfigError, TrainConfig, apply_overrides, coerce, differences,
                              from_dict, load, to_dict)
from disentkit.evaluate import EvalSettings
from disentkit.transfers import TransferConfig


def test_union_fields_are_coerced():
    cfg = apply_overrides(TrainConfig(), ["optim.grad_clip=2", "run.threads=3"])
    assert cfg.optim.grad_clip == 2.0 and isinstance(cfg.optim.grad_clip, float)
    assert cfg.run.threads == 3 and isinstance(cfg.run.threads, int)
    assert apply_overrides(cfg, ["optim.grad_clip=null"]).optim.grad_clip is None
    assert apply_overrides(cfg, ["optim.lr=5e-4"]).optim.lr == 5e-4
    assert coerce(float | None, "1e-4", "x") == 1e-4  # YAML 1.1 reads 1e-4 as text
    assert coerce(tuple[float, ...] | None, [1, 2], "x") == (1.0, 2.0)
    assert coerce(int, 4e5, "steps") == 400000


@pytest.mark.parametrize("override, message", [
    ("optim.lr=fast", "config optim.lr must be float, found 'fast' (str)"),
    ("optim.grad_clip=[1]", "config optim.grad_clip must be float or null, found [1] (list)"),
    ("run.steps=1.5", "config run.steps must be int, found 1.5 (float)"),
    ("run.prefetch=1", "config run.prefetch must be bool, found 1 (int)"),
    ("method.beta=NaN", "config method.beta must be a finite number, found nan"),
    ("optim.lr=-1", "config optim.lr must be > 0, found -1.0"),
    ("optim.nope=1", "no key 'nope'"),
    ("train.lr=1", "no section 'train'"),
    ("optim.lr", "must look like section.key=value"),
])
def test_bad_values_name_field_type_and_value(override, message):
    with pytest.raises(ConfigError) as info:
        apply_overrides(TrainConfig(), [override]).validate()
    assert message in str(info.value)


def test_free_mappings_take_new_keys_and_round_trip(tmp_path):
    cfg = apply_overrides(TrainConfig(), {"data.options.cache_dir": "/tmp/c", "method.beta": 2})
    assert cfg.data.options == {"cache_dir": "/tmp/c"} and cfg.method.beta == 2.0
    (tmp_path / "c.json").write_text(json.dumps(to_dict(cfg)))
    assert load(TrainConfig, tmp_path / "c.json") == cfg
    (tmp_path / "bad.json").write_text(json.dumps({"optim": {"lr": "x"}}))
    with pytest.raises(ConfigError, match="bad.json: config optim.lr must be float"):
        load(TrainConfig, tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict(TrainConfig, {"optimm": {}})


def test_transfer_and_eval_settings_share_the_path():
    cfg = from_dict(TransferConfig, {"source": "s", "target": "t", "eval": {"n": 100, "metrics": ["omes"]}})
    assert cfg.eval.metrics == ("omes",) and cfg.grad_clip is None and cfg.beta == 1.0
    with pytest.raises(ConfigError, match="beta must be a finite number"):
        from_dict(TransferConfig, {"source": "s", "target": "t", "beta": math.nan})
    with pytest.raises(ConfigError, match="eval.n must be >= 2, found 0"):
        apply_overrides(cfg, ["eval.n=0"]).validate()
    with pytest.raises(ConfigError, match="eval.sampling must be one of"):
        apply_overrides(cfg, {"eval.sampling": "grid"}).validate()
    with pytest.raises(ConfigError, match="steps must be >= 1"):
        apply_overrides(cfg, {"steps": 0}).validate()
    assert apply_overrides(cfg, {"steps": 0, "finetune": "none"}).validate().steps == 0


def test_one_smoke_per_config():
    small = TrainConfig().smoke()
    assert (small.run.steps, small.optim.batch_size, small.run.precision) == (8, 8, "fp32")
    tiny = TransferConfig(source="s", target="t").smoke()
    assert tiny.steps == 4 and tiny.eval == EvalSettings().smoke() and tiny.eval.n == 160


def test_cli_set_coerces_grad_clip_to_float():
    from disentkit.cli import build_parser
    from disentkit.cli.train import resolve_config

    args = build_parser().parse_args(["train", "--out", "x", "--set", "optim.grad_clip=2"])
    cfg = resolve_config(args)
    assert cfg.optim.grad_clip == 2.0 and isinstance(cfg.optim.grad_clip, float)
    assert main(["train", "--out", "x", "--set", "run.steps=nan"]) == 2


def test_cli_validates_before_writing_anything(tmp_path, capsys):
    """Bad values are refused before any state is saved (issue 14, item 3)."""
    src = tmp_path / "src"
    common = ["transfer", "--source", str(src), "--target", "shapes3d", "--smoke"]
    assert main(common + ["--out", str(tmp_path / "t1"), "--beta", "nan"]) == 2
    assert "beta must be a finite number" in capsys.readouterr().err
    assert main(common[:-1] + ["--out", str(tmp_path / "t2"), "--n", "0"]) == 2
    assert "eval.n must be >= 2, found 0" in capsys.readouterr().err
    assert main(common + ["--out", str(tmp_path / "t3"), "--grad-clip", "x"]) == 2
    assert "grad_clip must be float or null" in capsys.readouterr().err
    (tmp_path / "list.json").write_text("[1, 2]")
    assert main(["train", "--out", str(tmp_path / "r"), "--config", str(tmp_path / "list.json")]) == 2
    assert "expected a mapping of config sections" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["list.json"]


def test_differences_names_each_changed_field():
    a = TrainConfig()
    b = apply_overrides(a, {"optim.lr": 5e-4, "run.steps": 9, "data.options.cache_dir": "c"})
    assert differences(a, b, ignore=("run.steps",)) == [
        "data.options.cache_dir (saved None, given 'c')", "optim.lr (saved 0.0001, given 0.0005)"]
    assert differences(a, to_dict(a)) == []
