"""Config round trips, dotted overrides, atomic writes, registry errors and the CLI frame."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from disentkit import config as cfgmod
from disentkit.cli import main
from disentkit.errors import DataLayoutError, UnknownNameError
from disentkit.io import atomic_path, read_json, write_json


@dataclasses.dataclass
class Inner:
    lr: float = 1e-4
    sizes: tuple[int, ...] = (1, 2)


@dataclasses.dataclass
class Outer:
    name: str = "x"
    inner: Inner = dataclasses.field(default_factory=Inner)
    root: str | None = None


def test_config_round_trip(tmp_path):
    cfg = Outer(name="y", inner=Inner(lr=0.5, sizes=(3, 4)))
    cfgmod.save(cfg, tmp_path / "c.json")
    back = cfgmod.load(Outer, tmp_path / "c.json")
    assert back == cfg
    assert isinstance(back.inner, Inner) and back.inner.sizes == (3, 4)


def test_config_unknown_key_lists_valid():
    with pytest.raises(ValueError, match="valid keys"):
        cfgmod.from_dict(Outer, {"nme": "typo"})


def test_overrides_parse_json_and_strings():
    cfg = cfgmod.apply_overrides(Outer(), ["inner.lr=5e-4", "name=abc", "root=/data", "inner.sizes=[5,6]"])
    assert cfg.inner.lr == 5e-4 and cfg.name == "abc" and cfg.root == "/data"
    assert cfg.inner.sizes == (5, 6)
    with pytest.raises(ValueError, match="no key"):
        cfgmod.apply_overrides(Outer(), ["inner.momentum=1"])
    with pytest.raises(ValueError, match="section.key=value"):
        cfgmod.apply_overrides(Outer(), ["inner.lr"])


def test_int_coerced_to_float_field():
    assert isinstance(cfgmod.from_dict(Inner, {"lr": 1}).lr, float)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"a": np.float32(1.5), "b": np.arange(2)})
    assert read_json(target) == {"a": 1.5, "b": [0, 1]}
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed midway")
    assert json.loads(target.read_text()) == {"a": 1.5, "b": [0, 1]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]
    assert (target.stat().st_mode & 0o777) == 0o666 & ~_current_umask()


def test_error_messages_name_path_and_layout():
    err = DataLayoutError("/x/y.npz", "missing file", "root/y.npz")
    assert "/x/y.npz" in str(err) and "root/y.npz" in str(err)
    assert isinstance(err, FileNotFoundError)
    err = UnknownNameError("dataset", "nope", ["a", "b"])
    assert str(err) == "unknown dataset 'nope'; valid names: a, b"


def test_registry_unknown_dataset():
    from disentkit.data.registry import get_dataset

    with pytest.raises(UnknownNameError, match="valid names"):
        get_dataset("no-such-dataset")


def test_cli_help_and_unknown_dataset(capsys):
    assert main([]) == 2
    assert main(["datasets", "show", "no-such-dataset", "--out", "x.png"]) == 2
    assert "unknown dataset" in capsys.readouterr().err


def test_show_figure_on_toy_dataset(tmp_path, toy_dataset_cls):
    from PIL import Image

    from disentkit.viz.dataset import save_dataset_figure, traversal_factors

    ds = toy_dataset_cls()
    base = np.array([0, 1, 2, 3])
    rows = traversal_factors(ds, base, 3)
    np.testing.assert_array_equal(rows[:, 3], np.arange(5))
    assert (rows[:, :3] == base[:3]).all()
    out = save_dataset_figure(ds, tmp_path / "toy.png", seed=1)
    assert Image.open(out).size[0] > 100


def _current_umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_real_dataset_without_root_names_root(capsys):
    from disentkit.data.registry import get_dataset

    with pytest.raises(ValueError, match="needs root"):
        get_dataset("coil100-augmented")
    assert main(["datasets", "show", "rgbd-objects", "--out", "x.png"]) == 2
    assert "--root" in capsys.readouterr().err
