"""Dataset views and evaluation rows: no factor combination twice, a classifier split on whole
lines (test_rows_seen_in_train = 0), small parts used whole with the smaller n recorded, and
encode() — (model, dataset, n, sampling, seed) -> codes, factors — deterministic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from disentkit.data.views import (
    CombinationSubset,
    DatasetView,
    LineSampled,
    combination_pool,
    draw_lines,
    draw_rows,
    is_heldout,
)
from disentkit.evaluate import encode
from disentkit.metrics._common import split_rows


def _check_rows(ds, rows, n_asked):
    """The protocol's invariants on one draw (docs/metrics.md, "evaluation")."""
    f, rec = rows.factors, rows.record
    codes = ds.grid_code(f)
    assert len(np.unique(codes)) == len(f) == rec["n"] == rec["distinct_combinations"]
    assert rows.n_train == split_rows(len(f)) == rec["n_train"]  # the metrics' own split
    assert not np.isin(codes[rows.n_train:], codes[: rows.n_train]).any()
    assert rec["test_rows_seen_in_train"] == 0 and rec["lines_across_split"] == 0
    assert ds.contains(f).all() and rec["n_requested"] == n_asked


@pytest.mark.parametrize("sampling", ["lines", "uniform"])
def test_small_heldout_part_is_used_whole_without_overlap(toy_dataset_cls, sampling):
    grid = toy_dataset_cls(sizes=(24, 18, 9))  # coins-augmented's grid
    held = CombinationSubset(grid, "heldout", 0.25, 0)
    available = int(is_heldout(grid, combination_pool(grid), 0.25, 0).sum())
    assert 800 < available < 1200 and len(held) == available
    rows = draw_rows(held, 15008, sampling=sampling, seed=0)
    _check_rows(grid, rows, 15008)
    assert is_heldout(grid, rows.factors, 0.25, 0).all()
    assert rows.record["available_combinations"] == available
    assert available - 4 <= rows.record["n"] <= available  # all, less a cut line's tail


@pytest.mark.parametrize("sampling", ["lines", "uniform"])
def test_shapes3d_sized_heldout_part_never_repeats(toy_dataset_cls, sampling):
    grid = toy_dataset_cls(sizes=(10, 10, 10, 8, 4, 15))
    held = CombinationSubset(grid, "heldout", 0.25, 0)
    rows = draw_rows(held, 15008, sampling=sampling, seed=0)
    _check_rows(grid, rows, 15008)
    assert rows.record["n"] == 15008 and is_heldout(grid, rows.factors, 0.25, 0).all()


def test_rows_on_a_grid_too_large_to_list(toy_dataset_cls):
    big = toy_dataset_cls(sizes=(7, 3, 6, 40, 32, 32))  # color-dsprites: 5.2 M combinations
    assert combination_pool(big) is None
    rows = draw_rows(CombinationSubset(big, "heldout", 0.25, 0), 3000, seed=1)
    _check_rows(big, rows, 3000)
    assert rows.record["available_combinations"] is None and rows.record["n"] == 3000


def test_lines_differ_in_one_factor_and_give_omes_pairs(toy_dataset_cls):
    from disentkit.metrics.omes import factor_pairs

    big = toy_dataset_cls(sizes=(1, 30, 40, 50, 60))  # 3.6 M combinations, one constant factor
    lines = draw_lines(big, 2000, np.random.default_rng(0), 4)
    rows = lines.rows[:2000]
    uniform = big.sample_factors(2000, np.random.default_rng(0))
    for k in range(1, 5):
        n_lines = len(factor_pairs(rows, k, np.random.default_rng(0))[0])
        assert n_lines > 500 and n_lines > 5 * len(factor_pairs(uniform, k, np.random.default_rng(0))[0])
        assert np.bincount(rows[:, k], minlength=big.factor_sizes[k]).min() > 0
    start = 0
    for length in lines.lengths[:50]:  # members of a line differ from its first in one factor
        line = lines.rows[start: start + length]
        assert set((line[1:] != line[0]).sum(axis=1).tolist()) <= {1}
        start += length
    assert LineSampled(big, 4).sample_factors(100, np.random.default_rng(0)).shape == (100, 5)
    with pytest.raises(ValueError, match="line_length"):
        LineSampled(big, 1)


def test_draw_is_deterministic_and_checks_its_input(toy_dataset_cls):
    ds = toy_dataset_cls(sizes=(5, 6, 7))
    a = draw_rows(ds, 100, seed=3)
    assert np.array_equal(a.factors, draw_rows(ds, 100, seed=3).factors)
    assert not np.array_equal(a.factors, draw_rows(ds, 100, seed=4).factors)
    with pytest.raises(ValueError, match="sampling must be one of"):
        draw_rows(ds, 100, sampling="grid")
    with pytest.raises(ValueError, match="n must be >= 3"):
        draw_rows(ds, 2)


def test_incomplete_grid_and_views_delegate(toy_dataset_cls):
    full = toy_dataset_cls(sizes=(4, 5, 6))
    table = combination_pool(full)[::3]  # an incomplete grid: every third combination
    ds = toy_dataset_cls(sizes=(4, 5, 6), combinations=table)
    rows = draw_rows(ds, 10_000, seed=0)
    _check_rows(ds, rows, 10_000)
    assert rows.record["available_combinations"] == len(table)
    view = DatasetView(ds)
    assert view.factor_names == ds.factor_names and view.combinations is ds.combinations
    assert np.array_equal(view.images(table[:3]), ds.images(table[:3]))


class TinyEncoder(torch.nn.Module):
    """encode(x) -> (mu, logvar): mu reads the pixels that hold the factors."""

    def __init__(self, latent=3, logvar=-2.0):
        super().__init__()
        self.proj = torch.nn.Linear(16, latent)
        self.logvar = logvar

    def encode(self, x):
        mu = self.proj(x.flatten(1))
        return mu, torch.full_like(mu, self.logvar)


@pytest.mark.parametrize("sampling", ["lines", "uniform"])
def test_encode_shapes_determinism_and_sampling(toy_dataset_cls, sampling):
    torch.manual_seed(0)
    model, ds = TinyEncoder().train(), toy_dataset_cls()
    enc = encode(model, ds, 50, sampling=sampling, seed=3, batch_size=16)
    n = enc.record["n"]
    assert n == 50  # 60 combinations: enough for the 50 rows and the line cut by the split
    assert enc.mean.shape == enc.sampled.shape == (n, 3) and enc.factors.shape == (n, 4)
    assert enc.mean.dtype == enc.sampled.dtype == np.float32 and enc.factors.dtype == np.int64
    assert ds.contains(enc.factors).all() and enc.record["test_rows_seen_in_train"] == 0
    assert model.training  # the caller's mode is restored
    again = encode(model, ds, 50, sampling=sampling, seed=3, batch_size=7)
    for a, b in ((enc.mean, again.mean), (enc.sampled, again.sampled), (enc.factors, again.factors)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # mean is the encoder's mu; sampled = mu + exp(logvar/2)·eps with eps ~ N(0, 1)
    expected = model.encode(torch.as_tensor(ds.images(enc.factors)))[0].detach().numpy()
    np.testing.assert_allclose(enc.mean, expected, atol=1e-5)
    assert abs(((enc.sampled - enc.mean) / np.exp(-1.0)).std() - 1.0) < 0.25
    assert not np.array_equal(encode(model, ds, 50, sampling=sampling, seed=4).factors, enc.factors)


def test_encode_rejects_bad_input(toy_dataset_cls):
    with pytest.raises(ValueError, match="n must be >= 3"):
        encode(TinyEncoder(), toy_dataset_cls(), 0, seed=0)
    with pytest.raises(ValueError, match="batch_size"):
        encode(TinyEncoder(), toy_dataset_cls(), 5, seed=0, batch_size=0)
    rgb = TinyEncoder()
    rgb.in_channels = 3
    with pytest.raises(ValueError, match="3-channel images; dataset 'toy' has 1"):
        encode(rgb, toy_dataset_cls(), 5, seed=0)


@pytest.mark.parametrize("name", ["noisy-color-dsprites", "noisy-dsprites"])
def test_per_image_noise_does_not_make_a_repeat_distinct(name):
    """Noise drawn per image would make two renderings of one combination differ; the draw
    counts combinations, so no combination appears twice however its images vary."""
    from disentkit.data.registry import get_dataset

    ds = get_dataset(name)
    rows = draw_rows(CombinationSubset(ds, "heldout", 0.25, 0), 3000, seed=0)
    _check_rows(ds, rows, 3000)
    twice = np.repeat(rows.factors[:1], 2, axis=0)
    a = ds.images(twice, np.random.default_rng(0))
    assert not np.array_equal(a[0], a[1])  # the same combination, two different images


def test_split_falls_between_lines_for_any_line_lengths():
    from disentkit.data.views import _split_on_lines

    rng = np.random.default_rng(0)
    for _ in range(200):
        lengths = rng.integers(1, 5, size=int(rng.integers(2, 40)))
        n = int(rng.integers(3, lengths.sum() + 10))
        try:
            keep, n_train = _split_on_lines(lengths, n, 2 / 3)
        except ValueError:  # too few rows for a train and a test part
            assert lengths.sum() < 6 or n < 6
            continue
        ids = np.repeat(np.arange(len(lengths)), lengths)[keep]
        assert n_train == split_rows(len(ids)) and len(ids) <= n
        assert not set(ids[:n_train]) & set(ids[n_train:])  # no line on both sides
        if lengths.sum() >= n + 4:  # enough rows: exactly n kept
            assert len(ids) == n
