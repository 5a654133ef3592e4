"""The dataset contract's factor arithmetic and the weak-supervision pairs (docs/architecture.md, "Contracts")."""

from __future__ import annotations

import numpy as np
import pytest

from disentkit.data.pairs import sample_pair_factors, sample_pairs


def test_index_factor_bijection_complete(toy_dataset_cls):
    ds = toy_dataset_cls()
    idx = np.arange(len(ds))
    factors = ds.index_to_factors(idx)
    assert factors.shape == (60, 4)
    np.testing.assert_array_equal(ds.factors_to_index(factors), idx)
    # last factor fastest, as in the public files
    np.testing.assert_array_equal(factors[:6, 3], [0, 1, 2, 3, 4, 0])
    assert len({tuple(f) for f in factors}) == len(ds)


def test_index_factor_bijection_incomplete(toy_dataset_cls):
    full = toy_dataset_cls().index_to_factors(np.arange(60))
    keep = full[np.random.default_rng(0).random(60) < 0.5]
    ds = toy_dataset_cls(combinations=keep)
    idx = np.arange(len(ds))
    np.testing.assert_array_equal(ds.factors_to_index(ds.index_to_factors(idx)), idx)
    assert ds.contains(keep).all()
    missing = full[~ds.contains(full)]
    assert len(missing) == 60 - len(keep)
    with pytest.raises(ValueError, match="not present"):
        ds.factors_to_index(missing[:1])


def test_check_factors_errors(toy_dataset_cls):
    ds = toy_dataset_cls()
    with pytest.raises(ValueError, match="shape"):
        ds.check_factors(np.zeros((2, 3), dtype=int))
    with pytest.raises(ValueError, match="f2"):
        ds.check_factors(np.array([[0, 0, 7, 0]]))
    with pytest.raises(ValueError, match="integers"):
        ds.check_factors(np.array([[0, 0, 0.5, 0]]))


def test_sample_factors_uniform_and_seeded(toy_dataset_cls):
    ds = toy_dataset_cls()
    a = ds.sample_factors(20000, np.random.default_rng(1))
    b = ds.sample_factors(20000, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    counts = np.bincount(a[:, 3], minlength=5) / len(a)
    np.testing.assert_allclose(counts, 0.2, atol=0.02)


def test_pairs_change_exactly_one_varying_factor(toy_dataset_cls):
    ds = toy_dataset_cls()
    f1, f2, mask = sample_pair_factors(ds, 5000, np.random.default_rng(0))
    diff = f1 != f2
    np.testing.assert_array_equal(diff, mask)
    assert (diff.sum(1) == 1).all()
    assert not mask[:, 0].any(), "the constant factor must never be chosen"
    # every varying factor is chosen sometimes, roughly uniformly
    share = mask.mean(0)[1:]
    np.testing.assert_allclose(share, 1 / 3, atol=0.03)


def test_pairs_k_range_and_errors(toy_dataset_cls):
    ds = toy_dataset_cls()
    f1, f2, mask = sample_pair_factors(ds, 2000, np.random.default_rng(0), k=(1, 3))
    changed = (f1 != f2).sum(1)
    assert set(np.unique(changed)) == {1, 2, 3}
    np.testing.assert_array_equal(f1 != f2, mask)
    with pytest.raises(ValueError, match="only 3"):
        sample_pair_factors(ds, 10, np.random.default_rng(0), k=4)
    with pytest.raises(ValueError):
        sample_pair_factors(ds, 10, np.random.default_rng(0), k=0)


def test_pairs_on_incomplete_grid_only_existing(toy_dataset_cls):
    full = toy_dataset_cls().index_to_factors(np.arange(60))
    keep = full[np.random.default_rng(3).random(60) < 0.4]
    ds = toy_dataset_cls(combinations=keep)
    for k in (1, (1, 2)):
        f1, f2, mask = sample_pair_factors(ds, 3000, np.random.default_rng(0), k=k)
        assert ds.contains(f1).all() and ds.contains(f2).all()
        np.testing.assert_array_equal(f1 != f2, mask)
        assert (mask.sum(1) >= 1).all()


def test_pairs_on_incomplete_grid_uniform_partner(toy_dataset_cls):
    # a line with 3 members: partners of the first must be the two others, equally often
    keep = np.array([[0, 0, 0, 0], [0, 0, 0, 2], [0, 0, 0, 4], [0, 1, 1, 1]])
    ds = toy_dataset_cls(combinations=keep)
    f1, f2, _ = sample_pair_factors(ds, 6000, np.random.default_rng(0))
    assert not np.any(np.all(f1 == f2, axis=1))
    from_first = f2[np.all(f1 == keep[0], axis=1)]
    share = np.mean(from_first[:, 3] == 2)
    assert 0.42 < share < 0.58
    # the isolated combination never appears
    assert not np.any(np.all(f1 == keep[3], axis=1))


def test_sample_pairs_deterministic(toy_dataset_cls):
    ds = toy_dataset_cls()
    a = sample_pairs(ds, 64, np.random.default_rng(7))
    b = sample_pairs(ds, 64, np.random.default_rng(7))
    np.testing.assert_array_equal(a.x1, b.x1)
    np.testing.assert_array_equal(a.factors2, b.factors2)
    assert a.x1.shape == (64, 1, 4, 4) and a.x1.dtype == np.float32
    np.testing.assert_array_equal(a.changed_index, a.changed.argmax(1))
