"""OMES: the published pairing, the relation matrix, the scores, and the reference numbers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from disentkit.metrics.omes import (
    ALPHAS,
    LineIndex,
    factor_pairs,
    multiple_encoding_scores,
    omes,
    omes_from_relation,
    overlap_scores,
    pool,
    relation_column,
)
from disentkit.metrics.representations import load_representations


def grid(*sizes) -> np.ndarray:
    return np.array(list(itertools.product(*[range(s) for s in sizes])), dtype=np.int64)


def differs_only_in(factors, a, b, k) -> bool:
    diff = factors[a] != factors[b]
    return bool(diff[:, k].all() and not np.delete(diff, k, axis=1).any())


# ------------------------------------------------------------------ pairs
@pytest.mark.parametrize(
    "pairing, per_line", [("per_member", lambda m: m * (m // 2)), ("once", lambda m: m // 2)]
)
def test_pair_counts_follow_the_published_pairing(pairing, per_line):
    factors = grid(5, 4, 3)  # lines of 5, 4 and 3 members
    rng = np.random.default_rng(0)
    for k, m in enumerate((5, 4, 3)):
        a, b, available = factor_pairs(factors, k, rng, pairing=pairing)
        lines = len(factors) // m
        assert available == len(a) == lines * per_line(m)
        assert differs_only_in(factors, a, b, k)


def test_each_shuffle_pairs_disjoint_members_and_drops_the_odd_one():
    factors = grid(7, 2)
    a, b, _ = factor_pairs(factors, 0, np.random.default_rng(1), pairing="once")
    for line in range(2):
        mine = factors[a, 1] == line
        members = np.concatenate([a[mine], b[mine]])
        assert len(members) == 6 and len(set(members.tolist())) == 6  # 3 disjoint pairs of 7


def test_duplicate_tuples_keep_their_first_row_only():
    base = grid(3, 3)
    factors = np.concatenate([base, base[::-1], base])  # every tuple three times
    a, b, available = factor_pairs(factors, 0, np.random.default_rng(0))
    assert available == 3 * 3  # 3 lines of 3 distinct tuples: 3·1 pairs each
    assert set(np.concatenate([a, b]).tolist()) <= set(range(len(base)))


def test_incomplete_grid_and_singleton_lines():
    factors = grid(4, 4)
    keep = np.random.default_rng(3).random(len(factors)) < 0.6
    factors = factors[keep]
    a, b, available = factor_pairs(factors, 1, np.random.default_rng(0))
    expected = sum(m * (m // 2) for m in np.bincount(factors[:, 0], minlength=4))
    assert available == expected == len(a)
    assert differs_only_in(factors, a, b, 1)


def test_subsample_is_capped_seeded_and_valid():
    factors = grid(20, 30)  # 30 lines of 20 members: 30·20·10 = 6000 pairs
    a, b, available = factor_pairs(factors, 0, np.random.default_rng(5), max_pairs=500)
    assert available == 6000 and len(a) == 500
    assert differs_only_in(factors, a, b, 0)
    a2, b2, _ = factor_pairs(factors, 0, np.random.default_rng(5), max_pairs=500)
    np.testing.assert_array_equal(a, a2)
    np.testing.assert_array_equal(b, b2)


def test_grid_and_sort_paths_find_the_same_lines():
    factors = grid(3, 4, 2)
    sparse = factors * np.array([1000003, 1, 1])  # huge value range: forces the sort path
    for k in range(3):
        dense_idx, sparse_idx = LineIndex(factors), LineIndex(sparse)
        assert dense_idx.grid is not None
        for idx in (dense_idx, sparse_idx):
            a, b, available = idx.pairs(k, np.random.default_rng(0))
            assert available == len(a) and differs_only_in(factors, a, b, k)


def test_unknown_pairing_raises():
    with pytest.raises(ValueError, match="pairing"):
        factor_pairs(grid(2, 2), 0, np.random.default_rng(0), pairing="twice")


# ------------------------------------------------------------------ relation and scores
def test_relation_is_one_minus_abs_correlation_and_zero_when_constant():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = np.stack([x[:, 0], -x[:, 1] + 0.0, rng.normal(size=200)], axis=1)
    x[:, 2] = y[:, 2] = 4.0  # constant within the pairs
    m = relation_column(x, y)
    np.testing.assert_allclose(m, [0.0, 0.0, 0.0], atol=1e-12)
    z = rng.normal(size=(200, 1))
    w = rng.normal(size=(200, 1))
    expected = 1 - abs(np.corrcoef(z[:, 0], w[:, 0])[0, 1])
    assert relation_column(z, w)[0] == pytest.approx(expected)


def _published_scores(covs, alpha, gamma):
    """The published loops (src/evaluation/metrics/omes.py), restated as an oracle."""
    d, k = covs.shape
    total = []
    for f in range(k):
        os_ = [1 - np.abs(np.eye(k)[f] - covs[i]).mean() for i in range(d)]
        me = [1 - np.abs(np.eye(d)[i] - covs[:, f]).mean() for i in range(d)]
        w = covs[:, f]
        if gamma:
            o, e = np.average(np.array(os_) * w, weights=w), np.average(np.array(me) * w, weights=w)
        else:
            o, e = np.max(np.array(os_) * w), np.max(np.array(me) * w)
        total.append(alpha * o + (1 - alpha) * e)
    return np.mean(total)


def test_scores_match_the_published_formulas():
    m = np.random.default_rng(4).uniform(0.05, 1.0, size=(6, 4))
    table = omes_from_relation(m, np.zeros(6, bool))["table"]
    for alpha in ALPHAS:
        assert table["avg"][alpha] == pytest.approx(_published_scores(m, alpha, True))
        assert table["max"][alpha] == pytest.approx(_published_scores(m, alpha, False))
    assert overlap_scores(m).shape == multiple_encoding_scores(m).shape == (6, 4)


def test_avg_pooling_with_zero_weights_is_zero():
    m = np.array([[0.8, 0.0], [0.1, 0.0]])
    out = pool(overlap_scores(m), m, "avg")
    assert out[1] == 0.0 and out[0] > 0
    with pytest.raises(ValueError, match="pooling"):
        pool(overlap_scores(m), m, "median")


def test_inactive_dimensions_are_dropped_and_association_uses_original_indices():
    factors = grid(4, 5, 3)
    factors = np.concatenate([factors] * 3)
    rng = np.random.default_rng(0)
    z = np.zeros((len(factors), 4))
    z[:, 0] = 0.001 * rng.normal(size=len(factors))  # inactive (std < 0.05)
    z[:, 1] = factors[:, 2] + 0.01 * rng.normal(size=len(factors))
    z[:, 2] = factors[:, 0] + 0.01 * rng.normal(size=len(factors))
    z[:, 3] = factors[:, 1] + 0.01 * rng.normal(size=len(factors))
    out = omes(z, factors, factor_names=["x", "y", "w"], random_state=0)
    assert out.details["inactive"] == [0]
    assert out.details["association"] == {"x": 2, "y": 3, "w": 1}
    assert out.details["backend"] == "numpy"
    assert set(out) >= {"omes.score", "omes.os", "omes.mes", "omes.factor.x", "omes.alpha_0.1.max"}
    assert len([k for k in out if k.startswith("omes.alpha_")]) == 22


def test_factor_without_pairs_warns_and_scores_zero():
    # no two rows differ in f0 alone; rows 0, 2, 3 differ in f1 alone
    factors = np.array([[0, 0], [1, 1], [0, 2], [0, 3]])
    z = np.random.default_rng(0).normal(size=(4, 2))
    with pytest.warns(UserWarning, match="factor 'f0' has 0 pair"):
        out = omes(z, factors, factor_names=["f0", "f1"], random_state=0)
    assert out["omes.factor.f0"] == 0.0
    assert out.details["pairs"] == {"f0": 0, "f1": 3}


# ------------------------------------------------------------------ the reference numbers
def test_reference_example_pairs_association_and_scores(reference_dir):
    folder = reference_dir / "omes_example"
    codes, factors, names = load_representations(
        folder / "representations.npz", folder / "classes.csv", "mean"
    )
    out = omes(codes, factors, factor_names=names, random_state=0)
    d = out.details
    assert list(d["pairs"].values()) == [6601, 6669, 6615, 5459, 892, 5077]
    assert d["association"] == {
        "floor_hue": 0, "wall_hue": 1, "object_hue": 2, "scale": 6, "shape": 4, "orientation": 5
    }
    assert d["inactive"] == []
    assert out["omes.alpha_0.5.max"] == pytest.approx(0.730, abs=0.004)
    assert out["omes.alpha_0.5.avg"] == pytest.approx(0.635, abs=0.004)
    assert out["omes.score"] == out["omes.alpha_0.5.avg"]
