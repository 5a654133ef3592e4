"""Weak-supervision pairs (Locatello et al. 2020; Dapueto et al. 2024 §3).

A pair is two images whose factors differ in exactly ``k`` factors (k = 1 by default). Unlike
the reference code, a changed factor always takes a *different* value and constant factors are
never chosen, so no pair is two copies of one image (docs/science.md, pitfalls). On incomplete grids
(RGB-D Objects) the partner is always a combination that exists.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from disentkit.data.base import FactorDataset

logger = logging.getLogger(__name__)


@dataclass
class PairBatch:
    """A batch of pairs: images [n, C, H, W], factors [n, K] and the changed-factor mask [n, K]."""

    x1: np.ndarray
    x2: np.ndarray
    factors1: np.ndarray
    factors2: np.ndarray
    changed: np.ndarray

    @property
    def changed_index(self) -> np.ndarray:
        """Index of the changed factor per pair; -1 where more than one factor changed."""
        single = self.changed.sum(axis=1) == 1
        return np.where(single, self.changed.argmax(axis=1), -1)


def _resolve_k(k: int | tuple[int, int], n_varying: int, n: int, rng: np.random.Generator):
    lo, hi = (k, k) if np.isscalar(k) else (int(k[0]), int(k[1]))
    if lo < 1 or hi < lo:
        raise ValueError(f"k must be >= 1 or a range (lo, hi) with 1 <= lo <= hi, found {k}")
    if hi > n_varying:
        raise ValueError(f"cannot change {hi} factors: the dataset has only {n_varying} that vary")
    return rng.integers(lo, hi + 1, size=n) if hi > lo else np.full(n, lo)


def _choose_factors(kk: np.ndarray, varying: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Boolean [n, K]: ``kk[i]`` distinct varying factors per row, uniformly at random."""
    n, K = len(kk), len(varying)
    keys = rng.random((n, K))
    keys[:, ~varying] = np.inf
    rank = np.argsort(np.argsort(keys, axis=1), axis=1)
    return rank < kk[:, None]


def _change_values(f1: np.ndarray, mask: np.ndarray, sizes: np.ndarray, rng) -> np.ndarray:
    """Move each masked factor to a different value, uniform over the other values."""
    shift = rng.integers(1, np.maximum(sizes, 2), size=f1.shape)
    return np.where(mask, (f1 + shift) % sizes, f1)


def sample_pair_factors(
    dataset: FactorDataset,
    n: int,
    rng: np.random.Generator,
    k: int | tuple[int, int] = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw ``n`` pairs of factor tuples: (factors1, factors2, changed mask [n, K])."""
    sizes = np.asarray(dataset.factor_sizes, dtype=np.int64)
    varying = sizes > 1
    kk = _resolve_k(k, int(varying.sum()), n, rng)
    f1 = dataset.sample_factors(n, rng)
    if dataset.combinations is None:
        mask = _choose_factors(kk, varying, rng)
        return f1, _change_values(f1, mask, sizes, rng), mask
    if np.all(kk == 1):
        return _pairs_on_table_single(dataset, f1, rng)
    return _pairs_on_table_rejection(dataset, f1, kk, varying, rng)


@dataclass
class PairIndex:
    """Built once per incomplete grid: for each factor j, the table rows sorted by *line* (rows
    that agree on every factor but j), and which rows have a partner on some line.

    With it the sampler never searches: a first image is drawn among rows that have a partner,
    so no loop can run unbounded on a sparse grid (issue 14: a cut of dSprites hung forever).
    """

    table: np.ndarray
    line_keys: list[np.ndarray]
    line_codes: list[np.ndarray]
    line_order: list[np.ndarray]
    pairable_rows: np.ndarray  # indices of rows with at least one partner
    factors_with_pairs: np.ndarray  # bool [K]


def pair_index(dataset: FactorDataset) -> PairIndex:
    """The :class:`PairIndex` of ``dataset``'s combination table (cached on the dataset).

    Warns once about factors that no two combinations differ in (they are never changed) and
    raises ``ValueError`` naming the dataset when no factor has a pair at all.
    """
    table = np.asarray(dataset.combinations, dtype=np.int64)
    cached = getattr(dataset, "_pair_index_cache", None)
    if cached is not None and cached[0] is dataset.combinations:
        return cached[1]
    radix = dataset.radix
    codes = table @ radix
    keys_, codes_, order_ = [], [], []
    has = np.zeros(table.shape, dtype=bool)
    for j in range(table.shape[1]):
        keys = codes - table[:, j] * radix[j]
        order = np.lexsort((codes, keys))  # by line, then by code within the line
        sk = keys[order]
        _, inverse, counts = np.unique(sk, return_inverse=True, return_counts=True)
        has[order, j] = counts[inverse] > 1
        keys_.append(sk)
        codes_.append(codes[order])
        order_.append(order)
    with_pairs = has.any(axis=0)
    if not with_pairs.any():
        raise ValueError(
            f"{dataset.name}: no two of its {len(table)} factor combinations differ in exactly one "
            f"factor, so weak-supervision pairs cannot be drawn; use a denser subset of the grid "
            f"or a method without pairs (beta-vae)")
    varying = np.asarray(dataset.factor_sizes) > 1
    missing = [n for n, v, w in zip(dataset.factor_names, varying, with_pairs) if v and not w]
    if missing:
        logger.warning("%s: no two combinations differ only in factor(s) %s; pairs never change "
                       "them", dataset.name, ", ".join(missing))
    index = PairIndex(table, keys_, codes_, order_, np.flatnonzero(has.any(axis=1)), with_pairs)
    dataset._pair_index_cache = (dataset.combinations, index)
    return index


def check_pairs(dataset: FactorDataset, k: int | tuple[int, int] = 1) -> None:
    """Refuse, before any training, a dataset on which pairs changing ``k`` factors cannot be
    drawn (raises ``ValueError`` naming the dataset)."""
    sizes = np.asarray(dataset.factor_sizes, dtype=np.int64)
    _resolve_k(k, int((sizes > 1).sum()), 1, np.random.default_rng(0))
    if dataset.combinations is not None:
        pair_index(dataset)


def _line_positions(index: PairIndex, f1: np.ndarray, radix: np.ndarray):
    n, K = f1.shape
    code1 = f1 @ radix
    starts = np.zeros((n, K), dtype=np.int64)
    others = np.zeros((n, K), dtype=np.int64)
    for j in range(K):
        k1 = code1 - f1[:, j] * radix[j]
        lo = np.searchsorted(index.line_keys[j], k1, side="left")
        hi = np.searchsorted(index.line_keys[j], k1, side="right")
        starts[:, j], others[:, j] = lo, hi - lo - 1  # members other than f1 itself
    return code1, starts, others


def _pairs_on_table_single(dataset: FactorDataset, f1: np.ndarray, rng: np.random.Generator):
    """k = 1 on an incomplete grid: the partner is drawn among existing rows of the same line.

    A "line" for factor j is the set of table rows that agree with f1 on every factor but j.
    The changed factor is drawn uniformly among those whose line has another member, and the
    partner uniformly among that line's other members. A first image without any partner is
    replaced by one drawn uniformly among the rows that have one (the distribution a rejection
    loop would give, without its risk of never ending).
    """
    index = pair_index(dataset)
    n, K = f1.shape
    radix = dataset.radix
    code1, starts, others = _line_positions(index, f1, radix)
    stuck = ~(others > 0).any(axis=1)
    if stuck.any():
        f1 = f1.copy()
        pick = rng.integers(0, len(index.pairable_rows), size=int(stuck.sum()))
        f1[stuck] = index.table[index.pairable_rows[pick]]
        code1, starts, others = _line_positions(index, f1, radix)
    j = np.where(others > 0, rng.random((n, K)), np.inf).argmin(axis=1)
    rows = np.arange(n)
    r = rng.integers(0, others[rows, j])
    f2 = np.empty_like(f1)
    for jj in np.unique(j):
        sel = rows[j == jj]
        pos = starts[sel, jj] + r[sel]
        # members sorted by code: skip f1 itself by shifting picks at or after its position
        pos = pos + (index.line_codes[jj][pos] >= code1[sel])
        f2[sel] = index.table[index.line_order[jj][pos]]
    mask = np.zeros((n, K), dtype=bool)
    mask[rows, j] = True
    return f1, f2, mask


def _pairs_on_table_rejection(dataset, f1, kk, varying, rng, max_rounds: int = 1000):
    """k > 1 on an incomplete grid: propose changes until the partner exists."""
    sizes = np.asarray(dataset.factor_sizes, dtype=np.int64)
    n = len(f1)
    f2 = np.empty_like(f1)
    mask = np.zeros(f1.shape, dtype=bool)
    todo = np.arange(n)
    for _ in range(max_rounds):
        m = _choose_factors(kk[todo], varying, rng)
        cand = _change_values(f1[todo], m, sizes, rng)
        ok = dataset.contains(cand)
        f2[todo[ok]], mask[todo[ok]] = cand[ok], m[ok]
        todo = todo[~ok]
        if todo.size == 0:
            return f1, f2, mask
    raise ValueError(
        f"{dataset.name}: could not find partners that change {kk.max()} factors for "
        f"{todo.size} pairs; the grid may be too sparse for that k"
    )


def sample_pairs(
    dataset: FactorDataset,
    n: int,
    rng: np.random.Generator,
    k: int | tuple[int, int] = 1,
) -> PairBatch:
    """Draw ``n`` weak-supervision pairs and render both images with the same generator."""
    f1, f2, mask = sample_pair_factors(dataset, n, rng, k)
    both = dataset.images(np.concatenate([f1, f2]), rng)
    return PairBatch(x1=both[:n], x2=both[n:], factors1=f1, factors2=f2, changed=mask)
