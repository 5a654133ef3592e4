"""The representations.npz + classes.csv interchange format (encoding: tests/test_views.py)."""

from __future__ import annotations

import numpy as np
import pytest

from disentkit.errors import DataLayoutError
from disentkit.metrics.representations import load_representations, save_representations


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
