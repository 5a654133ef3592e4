"""Encoding a dataset with a model, and the representations.npz + classes.csv interchange format."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from disentkit.errors import DataLayoutError
from disentkit.metrics.representations import (
    encode_dataset,
    load_representations,
    save_representations,
)


class TinyEncoder(torch.nn.Module):
    """encode(x) -> (mu, logvar): mu reads the pixels that hold the factors."""

    def __init__(self, latent=3, logvar=-2.0):
        super().__init__()
        self.proj = torch.nn.Linear(16, latent)
        self.logvar = logvar

    def encode(self, x):
        mu = self.proj(x.flatten(1))
        return mu, torch.full_like(mu, self.logvar)


def test_encode_dataset_shapes_determinism_and_sampling(toy_dataset_cls):
    torch.manual_seed(0)
    model, ds = TinyEncoder().train(), toy_dataset_cls()
    mean, sampled, factors = encode_dataset(model, ds, 50, seed=3, batch_size=16)
    assert mean.shape == sampled.shape == (50, 3) and factors.shape == (50, 4)
    assert mean.dtype == sampled.dtype == np.float32 and factors.dtype == np.int64
    assert ds.contains(factors).all()
    assert model.training  # the caller's mode is restored
    again = encode_dataset(model, ds, 50, seed=3, batch_size=7)
    for a, b in zip((mean, sampled, factors), again):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # mean is the encoder's mu; sampled = mu + exp(logvar/2)·eps with eps ~ N(0, 1)
    expected = model.encode(torch.as_tensor(ds.images(factors)))[0].detach().numpy()
    np.testing.assert_allclose(mean, expected, atol=1e-5)
    spread = (sampled - mean) / np.exp(-1.0)
    assert abs(spread.std() - 1.0) < 0.2
    other = encode_dataset(model, ds, 50, seed=4)[2]
    assert not np.array_equal(other, factors)


def test_encode_dataset_rejects_bad_sizes(toy_dataset_cls):
    with pytest.raises(ValueError, match="n must be >= 1"):
        encode_dataset(TinyEncoder(), toy_dataset_cls(), 0, seed=0)
    with pytest.raises(ValueError, match="batch_size"):
        encode_dataset(TinyEncoder(), toy_dataset_cls(), 5, seed=0, batch_size=0)
    rgb = TinyEncoder()
    rgb.in_channels = 3
    with pytest.raises(ValueError, match="3-channel images; dataset 'toy' has 1"):
        encode_dataset(rgb, toy_dataset_cls(), 5, seed=0)


def test_save_and_load_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    mean, sampled = rng.normal(size=(20, 4)), rng.normal(size=(20, 4))
    factors = rng.integers(0, 5, size=(20, 2))
    out = tmp_path / "out"
    npz, csv_file = save_representations(out, mean, sampled, factors, ["shape", "scale"])
    assert sorted(p.name for p in out.iterdir()) == ["classes.csv", "representations.npz"]
    lines = csv_file.read_text().splitlines()
    assert lines[0] == "shape,scale" and len(lines) == 21
    assert lines[1] == ",".join(str(v) for v in factors[0])
    with np.load(npz) as data:
        assert data["mean"].dtype == np.float32 and set(data.files) == {"mean", "sampled"}
    codes, f, names = load_representations(npz, csv_file, key="sampled")
    np.testing.assert_allclose(codes, sampled.astype(np.float32))
    np.testing.assert_array_equal(f, factors)
    assert names == ["shape", "scale"]


def test_save_rejects_mismatched_arrays(tmp_path):
    z = np.zeros((5, 2))
    with pytest.raises(ValueError, match="one column per name"):
        save_representations(tmp_path, z, z, np.zeros((5, 3), int), ["a", "b"])
    with pytest.raises(ValueError, match="both be"):
        save_representations(tmp_path, z, np.zeros((5, 3)), np.zeros((5, 2), int), ["a", "b"])
    with pytest.raises(ValueError, match="integer"):
        save_representations(tmp_path, z, z, np.full((5, 2), 0.5), ["a", "b"])
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def _write(folder, classes_text, n=3):
    folder.mkdir(exist_ok=True)
    zeros = np.zeros((n, 2), np.float32)
    np.savez(folder / "representations.npz", mean=zeros, sampled=zeros)
    (folder / "classes.csv").write_text(classes_text)
    return folder / "representations.npz", folder / "classes.csv"


def test_load_reads_float_formatted_classes_and_refuses_bad_ones(tmp_path):
    npz, csv_file = _write(tmp_path / "ok", "a,b\n1.0,2.0\n0.0,3.0\n4.0,0.0\n")
    _, f, names = load_representations(npz, csv_file)
    assert f.dtype == np.int64 and f.tolist() == [[1, 2], [0, 3], [4, 0]] and names == ["a", "b"]
    npz, csv_file = _write(tmp_path / "half", "a,b\n1.5,2\n0,3\n4,0\n")
    with pytest.raises(ValueError, match="non-integer value 1.5 at row 0"):
        load_representations(npz, csv_file)
    npz, csv_file = _write(tmp_path / "short", "a,b\n1,2\n0,3\n")
    with pytest.raises(ValueError, match="holds 3 codes but .* 2 rows"):
        load_representations(npz, csv_file)
    with pytest.raises(ValueError, match="no array 'logvar'"):
        load_representations(npz, csv_file, key="logvar")
    with pytest.raises(DataLayoutError, match="expected layout"):
        load_representations(tmp_path / "missing.npz", csv_file)


def test_load_the_reference_example(reference_dir):
    folder = reference_dir / "omes_example"
    npz, csv_file = folder / "representations.npz", folder / "classes.csv"
    codes, factors, names = load_representations(npz, csv_file)
    assert codes.shape == (15008, 10) and factors.shape == (15008, 6)
    assert names[0] == "floor_hue" and factors.min() == 0 and factors[:, 5].max() == 14
