"""Pairs that exist, or a clear error (issue 14, item 5): the pair index, sparse grids, and a
batch thread that dies or stalls surfacing in the main thread."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest

from disentkit.cli import main
from disentkit.data.dsprites import DSprites
from disentkit.data.pairs import check_pairs, pair_index, sample_pair_factors
from disentkit.training import batches


def test_sparse_dsprites_cut_is_refused_quickly(tmp_path, capsys):
    """Every 997th row of the public grid: no two rows differ in one factor (it hung before)."""
    cut = DSprites().export(tmp_path / "cut.npz", indices=np.arange(0, 737280, 997))
    out = tmp_path / "run"
    t0 = time.monotonic()
    code = main(["train", "--dataset", "dsprites", "--root", str(cut), "--method", "ada-gvae",
                 "--steps", "3", "--batch-size", "4", "--out", str(out)])
    assert time.monotonic() - t0 < 60
    assert code == 2
    err = capsys.readouterr().err
    assert "dsprites" in err and "pairs cannot be drawn" in err
    assert not out.exists()  # nothing left behind


def test_incomplete_grid_excludes_factors_without_pairs(toy_dataset_cls, caplog):
    # f1 varies only across rows that differ in other factors too: it has no pair
    table = np.array([[0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 2],   # a line along f3
                      [0, 1, 1, 0], [0, 1, 1, 3],                 # a line along f3
                      [0, 2, 3, 4]])                              # alone on every line
    ds = toy_dataset_cls(combinations=table)
    with caplog.at_level(logging.WARNING, logger="disentkit.data.pairs"):
        index = pair_index(ds)
    assert "f1" in caplog.text and "f2" in caplog.text
    np.testing.assert_array_equal(index.factors_with_pairs, [False, False, False, True])
    np.testing.assert_array_equal(index.pairable_rows, [0, 1, 2, 3, 4])
    f1, f2, mask = sample_pair_factors(ds, 2000, np.random.default_rng(0))
    assert mask[:, 3].all() and not mask[:, :3].any()
    assert not (f1 == table[5]).all(axis=1).any(), "the isolated row has no partner"
    assert ds.contains(f2).all() and ((f1 != f2) == mask).all()


def test_grid_without_pairs_is_refused_naming_it(toy_dataset_cls):
    ds = toy_dataset_cls(combinations=np.array([[0, 0, 0, 0], [0, 1, 1, 1], [0, 2, 2, 2]]))
    with pytest.raises(ValueError, match="toy: no two of its 3 factor combinations"):
        check_pairs(ds)
    with pytest.raises(ValueError, match="toy"):
        sample_pair_factors(ds, 4, np.random.default_rng(0))


def test_pairs_unchanged_on_a_grid_where_every_row_has_a_partner(toy_dataset_cls):
    full = toy_dataset_cls().index_to_factors(np.arange(60))
    ds = toy_dataset_cls(combinations=full[::2])
    a = sample_pair_factors(ds, 500, np.random.default_rng(3))
    b = sample_pair_factors(toy_dataset_cls(combinations=full[::2]), 500, np.random.default_rng(3))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


class _Boom:
    """A dataset stand-in whose ``images`` dies or blocks in the batch thread."""

    def __init__(self, mode):
        self.mode, self.factor_sizes = mode, (3,)
        self.release = threading.Event()

    def sample_factors(self, n, rng):
        return rng.integers(0, 3, size=(n, 1))

    def images(self, factors, rng=None):
        if self.mode == "raise":
            raise OSError("disk gone: /data/x.png")
        self.release.wait(30)
        return np.zeros((len(factors), 1, 2, 2), np.float32)


def test_batch_thread_error_reaches_main_thread():
    stream = batches.batch_stream(_Boom("raise"), False, 2, np.random.default_rng(0), 1, count=3)
    with pytest.raises(OSError, match="/data/x.png"):
        next(stream)


def test_stalled_batch_thread_raises_within_seconds():
    ds = _Boom("block")
    stream = batches.batch_stream(ds, False, 2, np.random.default_rng(0), 1, count=3, stall_s=1.0)
    t0 = time.monotonic()
    with pytest.raises(batches.BatchStreamError, match="no training batch arrived"):
        next(stream)
    assert time.monotonic() - t0 < 5
    ds.release.set()
