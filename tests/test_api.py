"""The Python API (``import disentkit as dk``): datasets as torch Datasets, weak pairs with a
DataLoader, train -> Run, encode, metrics.compute, transfer; own classes plug in without
registration and are recorded by class path; the examples run at smoke size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import disentkit as dk
from disentkit.models.locatello import LocatelloVAE

ROOT = Path(__file__).resolve().parents[1]


class Squares(dk.FactorDataset):
    """A white square on black, 64x64 grey: x (8), y (8), size (3)."""

    name = "squares-api"
    factor_names = ("x", "y", "size")
    factor_sizes = (8, 8, 3)
    image_shape = (1, 64, 64)

    def images(self, factors, rng=None):
        factors = self.check_factors(factors)
        out = np.zeros((len(factors), 1, 64, 64), dtype=np.float32)
        for img, (x, y, s) in zip(out, factors):
            side = 4 + 4 * s
            img[0, 4 + 6 * y: 4 + 6 * y + side, 4 + 6 * x: 4 + 6 * x + side] = 1.0
        return out


class MyNet(LocatelloVAE):
    """A network of the user's own (here: a subclass), built as Class(in_channels, latent_dim)."""


def test_import_is_lazy_and_names_are_distinct():
    code = "import sys, disentkit as dk; assert 'torch' not in sys.modules; print(sorted(dir(dk))[:3])"
    assert subprocess.run([sys.executable, "-c", code], env={**os.environ}, capture_output=True).returncode == 0
    assert callable(dk.train) and callable(dk.transfer) and dk.datasets.__name__ == "disentkit.datasets"
    import disentkit.training  # noqa: F401  - the training package does not shadow dk.train
    import disentkit.transfers  # noqa: F401
    assert callable(dk.train) and callable(dk.transfer)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        dk.nope  # noqa: B018


def test_datasets_are_torch_datasets_and_pairs_load():
    ds = dk.datasets.get("color-dsprites")
    assert isinstance(ds, Dataset) and len(ds) == 7 * 3 * 6 * 40 * 32 * 32
    image, factors = ds[1]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32
    assert factors.tolist() == [0, 0, 0, 0, 0, 1]  # row order of the public file: last factor fastest
    assert torch.equal(ds[-1][1], torch.tensor([6, 2, 5, 39, 31, 31]))
    with pytest.raises(IndexError):
        ds[len(ds)]
    images, classes = next(iter(DataLoader(Squares(), batch_size=5, shuffle=True)))
    assert images.shape == (5, 1, 64, 64) and classes.shape == (5, 3)
    assert "color-dsprites" in dk.datasets.names()
    pairs = dk.datasets.pairs(Squares(), seed=3, length=10)
    x1, x2, changed = next(iter(DataLoader(pairs, batch_size=10)))
    assert x1.shape == x2.shape == (10, 1, 64, 64) and changed.shape == (10, 3)
    assert (changed.sum(1) == 1).all() and not torch.equal(x1, x2)
    assert torch.equal(pairs[4][0], pairs[4][0])  # item i is the same on every access
    with pytest.raises(ValueError, match="length"):
        dk.datasets.pairs(Squares(), length=0)


def test_train_encode_compute_transfer_with_own_classes(tmp_path):
    run = dk.train(dataset=Squares(), method="ada-gvae", steps=3, batch_size=4, arch=MyNet,
                   latent_dim=4, out=tmp_path / "src", progress=False, device="cpu")
    assert isinstance(run, dk.Run) and run.path == tmp_path / "src"
    saved = json.loads((run.path / "config.json").read_text())
    assert saved["data"]["dataset"] == f"{__name__}:Squares"  # recorded by class path
    assert saved["model"]["arch"] == f"{__name__}:MyNet"
    assert run.config.run.steps == 3 and isinstance(run.model(), MyNet)
    assert [r["step"] for r in run.log() if "loss" in r][-1] == 3
    codes = run.encode(Squares(), n=64, sampling="uniform", seed=1)
    assert codes.mean.shape == (64, 4) and codes.factors.shape == (64, 3)
    assert len(np.unique(codes.factors, axis=0)) == 64  # the evaluation's rule: no repeated row
    assert len(run.encode(Squares(), n=500, sampling="uniform")) == 8 * 8 * 3  # all there are
    assert codes.factor_names == ("x", "y", "size")
    again = run.encode(Squares(), n=64, sampling="uniform", seed=1)
    assert np.array_equal(codes.mean, again.mean)  # same seed, same codes
    scores = dk.metrics.compute(codes, metrics=["mig", "dci"])
    assert set(scores) >= {"mig.score", "dci.disentanglement"}
    assert all(isinstance(v, float) for v in scores.values())
    assert dk.metrics.compute((codes.mean, codes.factors), metrics="mig") == {
        k: v for k, v in scores.items() if k.startswith("mig")}
    with pytest.raises(ValueError, match="encode.sampling"):
        run.encode(Squares(), n=10, sampling="grid")

    ev = dk.EvalSettings(n=64, metrics=("mig",), backend="fast", figures=False, sampling="uniform")
    tr = dk.transfer(run, target=Squares(), finetune_steps=2, batch_size=4, evaluation=ev,
                     device="cpu", out=tmp_path / "tr")
    assert isinstance(tr, dk.TransferResult) and tr.path == tmp_path / "tr"
    assert "mig.score" in tr.before and "mig.score" in tr.after
    record = json.loads((tmp_path / "tr" / "transfer.json").read_text())
    assert record["config"]["target"] == f"{__name__}:Squares" and record["config"]["grad_clip"] is None


@pytest.mark.parametrize("script", ["train_encode_score.py", "transfer_own_dataset.py"])
def test_examples_run_at_smoke_size(script, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg",
           "DISENTKIT_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / script), "--smoke", "--out",
                           str(tmp_path)], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ("omes.score" in proc.stdout) and ("untrained" in proc.stdout or "before" in proc.stdout)
