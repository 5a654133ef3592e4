"""Views of a dataset: the same images over a part of its factor combinations, or drawn in lines.

A view delegates everything (names, factors, images, factor kinds) to the dataset it wraps and
changes only *which combinations* it offers (:class:`CombinationSubset`) or *how they are drawn*
(:class:`LineSampled`). Both serve the evaluation protocol of Dapueto et al. 2024 (§4): the
transfer evaluates on target combinations that fine-tuning never saw, and OMES (§3.2) reads pairs
of samples that differ in one factor, which lines provide.

:func:`draw_lines` is the one place evaluation rows are drawn (docs/metrics.md, "evaluation"):
it never repeats a factor combination — *combinations*, not images, define a duplicate, so
datasets whose images carry per-image randomness (noise, scream patches) follow the same rule —
and where the part holds fewer combinations than asked it returns all of them, so the caller
records the smaller ``n``. :func:`draw_rows` orders those rows for the metrics, whose
classifiers train on the first ⌈2/3·n⌉ rows (:func:`disentkit.metrics._common.split_rows`): the
boundary falls between two lines, so no test row shares a line — let alone a combination — with
a training row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from disentkit.data.base import FactorDataset
from disentkit.metrics._common import DEFAULT_TRAIN_FRACTION, split_rows

log = logging.getLogger(__name__)

#: how evaluation rows are drawn (one setting for encode, evaluate, transfer, run and sweep)
SAMPLINGS = ("lines", "uniform")

#: a complete grid up to this many combinations is listed, so a small part is used whole
ENUMERATE_LIMIT = 1 << 21
#: rounds in a row that add no new row before a draw concludes that the part is exhausted
STALL_ROUNDS = 64


class DatasetView(FactorDataset):
    """A dataset seen through a view: every attribute and the images come from ``base``."""

    def __init__(self, base: FactorDataset):
        self.base = base
        self.name = base.name
        self.factor_names = tuple(base.factor_names)
        self.factor_sizes = tuple(base.factor_sizes)
        self.image_shape = tuple(base.image_shape)
        self.synthetic = getattr(base, "synthetic", True)
        self.source = getattr(base, "source", "")
        self.combinations = getattr(base, "combinations", None)
        self.factor_kinds = getattr(base, "factor_kinds", None)
        self.nuisances = getattr(base, "nuisances", ())
        self.thread_safe_images = getattr(base, "thread_safe_images", False)

    def images(self, factors, rng=None):
        return self.base.images(factors, rng)

    def factor_values(self):
        return self.base.factor_values()

    def contains(self, factors):
        return self.base.contains(factors)

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.base.sample_factors(n, rng)


# ---------------------------------------------------------------------------- held-out split
def _unit_hash(codes: np.ndarray, seed: int) -> np.ndarray:
    """A fixed pseudo-random number in [0, 1) per integer code (splitmix64 finaliser)."""
    with np.errstate(over="ignore"):
        x = np.asarray(codes, dtype=np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(2**53)


def is_heldout(dataset: FactorDataset, factors: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean [n]: which factor combinations belong to the held-out part.

    Each combination of the *full* grid is held out when a seeded hash of its grid code falls
    below ``fraction``: deterministic, independent of sampling order, and never materialised
    (Color-dSprites has 5.2 M combinations), so every factor value appears in both parts while
    no held-out *combination* is ever seen in fine-tuning.
    """
    return _unit_hash(dataset.grid_code(factors), seed) < fraction


class CombinationSubset(DatasetView):
    """The training or the held-out part of a dataset's factor combinations.

    :meth:`sample_factors` draws uniformly over the part's combinations (rejection from the base,
    so it works on complete and incomplete grids alike); :meth:`contains` answers for the part.
    On an incomplete base, ``combinations`` is the part of its table. On a complete grid the table
    is not materialised, so weak-supervision *pairs* may reach outside the part: fine-tuning here
    is unsupervised (single images), which is not affected.
    """

    def __init__(self, base: FactorDataset, part: str, fraction: float, seed: int):
        if part not in ("train", "heldout"):
            raise ValueError(f"part must be 'train' or 'heldout', found {part!r}")
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"held-out fraction must be in (0, 1), found {fraction}")
        super().__init__(base)
        self.part, self.fraction, self.seed = part, float(fraction), int(seed)
        if self.combinations is not None:
            table = np.asarray(self.combinations)
            self.combinations = table[self._member(table)]
            if len(self.combinations) == 0:
                raise ValueError(f"{base.name}: the {part} part of its combinations is empty")

    def _member(self, factors: np.ndarray) -> np.ndarray:
        held = is_heldout(self.base, factors, self.fraction, self.seed)
        return held if self.part == "heldout" else ~held

    def contains(self, factors):
        factors = np.asarray(factors, dtype=np.int64)
        inside = self.base.contains(factors)
        out = np.zeros(len(factors), dtype=bool)
        if inside.any():
            out[inside] = self._member(factors[inside])
        return out

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.combinations is not None:
            return self.combinations[rng.integers(0, len(self.combinations), size=n)]
        share = self.fraction if self.part == "heldout" else 1.0 - self.fraction
        chunks, need = [], int(n)
        for _ in range(1000):
            if need <= 0:
                break
            cand = self.base.sample_factors(int(need / share * 1.2) + 16, rng)
            keep = cand[self._member(cand)][:need]
            chunks.append(keep)
            need -= len(keep)
        else:
            raise ValueError(f"{self.name}: could not draw {n} samples from the {self.part} part")
        return np.concatenate(chunks) if chunks else np.zeros((0, self.num_factors), np.int64)

    def __len__(self) -> int:
        if self.combinations is not None:
            return int(len(self.combinations))
        total = int(np.prod(self.factor_sizes, dtype=np.int64))
        count = 0
        for start in range(0, total, 1 << 20):  # chunks keep memory flat on large grids
            idx = np.arange(start, min(total, start + (1 << 20)))
            count += int(self._member(self.base.index_to_factors(idx)).sum())
        return count


# ---------------------------------------------------------------------------- lines
@dataclass
class Lines:
    """Rows drawn as lines: ``rows`` [T, K] grouped line after line, ``lengths`` [M] (sum T).

    Every member of a line differs from the others in one factor only; no combination appears
    twice in ``rows``. ``available`` is the number of combinations the part holds when it was
    listed (small parts), else ``None``.
    """

    rows: np.ndarray
    lengths: np.ndarray
    available: int | None = None

    @property
    def line_ids(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.lengths)), self.lengths)


def combination_pool(dataset: FactorDataset) -> np.ndarray | None:
    """Every combination ``dataset`` offers, when there are few enough to list; else ``None``.

    An incomplete grid (or a part of one) lists its table; a complete grid of at most
    :data:`ENUMERATE_LIMIT` combinations is enumerated and filtered by ``contains`` (so a
    :class:`CombinationSubset` of it lists its part).
    """
    sizes = np.asarray(dataset.factor_sizes, dtype=np.int64)
    if getattr(dataset, "combinations", None) is not None:
        table = np.asarray(dataset.combinations, dtype=np.int64)
    elif int(np.prod(sizes)) <= ENUMERATE_LIMIT:
        radix = np.concatenate([np.cumprod(sizes[::-1])[::-1][1:], [1]]).astype(np.int64)
        idx = np.arange(int(np.prod(sizes)), dtype=np.int64)
        table = (idx[:, None] // radix) % sizes
    else:
        return None
    table = table[dataset.contains(table)]
    _, first = np.unique(dataset.grid_code(table), return_index=True)
    return table[np.sort(first)]


def _line_candidates(base: np.ndarray, sizes: np.ndarray, varying: np.ndarray, turn: int,
                     line_length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Candidate lines [m, L, K] from ``base`` rows, and which members are valid [m, L]: the
    base, then up to L-1 distinct other values of one factor (cycling over ``varying``)."""
    m = len(base)
    lines = np.repeat(base[:, None, :], line_length, axis=1)
    keep = np.ones((m, line_length), dtype=bool)
    if line_length == 1 or varying.size == 0:
        return lines, keep
    k = varying[(turn + np.arange(m)) % varying.size]
    width = int(sizes.max())
    keys = rng.random((m, width))  # distinct values of factor k per line: ranks of random keys
    keys[np.arange(width)[None, :] >= sizes[k][:, None]] = np.inf
    keys[np.arange(m), base[np.arange(m), k]] = np.inf  # never the base's own value again
    values = np.argsort(keys, axis=1)[:, : line_length - 1]
    lines[np.arange(m)[:, None], 1 + np.arange(values.shape[1])[None, :], k[:, None]] = values
    if values.shape[1] < line_length - 1:
        keep[:, 1 + values.shape[1]:] = False
    taken = np.take_along_axis(keys, values, axis=1)
    keep[:, 1: 1 + values.shape[1]] &= np.isfinite(taken)
    return lines, keep


def draw_lines(dataset: FactorDataset, n: int, rng: np.random.Generator,
               line_length: int = 4) -> Lines:
    """At least ``n`` rows (all the part's combinations when it holds fewer) drawn as lines of up
    to ``line_length`` members, never repeating a combination. ``line_length=1`` is uniform
    sampling without replacement.

    Line bases are uniform over the combinations not yet drawn (listed parts) or over the part
    (large grids, where a repeat is rejected); members that fall outside the part, or on a
    combination already drawn, are dropped, so a line may be shorter.
    """
    if n < 1 or line_length < 1:
        raise ValueError(f"need n >= 1 and line_length >= 1; found n={n}, line_length={line_length}")
    sizes = np.asarray(dataset.factor_sizes, dtype=np.int64)
    varying = np.flatnonzero(sizes > 1)
    pool = combination_pool(dataset)
    pool_codes = free = None
    if pool is not None:
        order = np.argsort(dataset.grid_code(pool), kind="stable")
        pool = pool[order]
        pool_codes, free = dataset.grid_code(pool), np.ones(len(pool), dtype=bool)
    target = int(n) if pool is None else min(int(n), len(pool))
    used = np.zeros(0, dtype=np.int64)
    rows, lengths, have, turn, stall = [], [], 0, 0, 0
    while have < target and stall < STALL_ROUNDS:
        m = max((target - have) // line_length + 1, 8)
        if pool is not None:
            free_idx = np.flatnonzero(free)
            if free_idx.size == 0:
                break
            base = pool[rng.choice(free_idx, size=min(m, free_idx.size), replace=False)]
        else:
            base = np.asarray(dataset.sample_factors(m, rng), dtype=np.int64)
        lines, keep = _line_candidates(base, sizes, varying, turn, line_length, rng)
        turn += len(base)
        flat, flat_keep = lines.reshape(-1, len(sizes)), keep.reshape(-1)
        flat_keep &= dataset.contains(flat)
        codes = np.full(len(flat), -1, dtype=np.int64)
        codes[flat_keep] = dataset.grid_code(flat[flat_keep])
        flat_keep &= ~np.isin(codes, used)
        first = np.zeros(len(flat), dtype=bool)  # the first occurrence of a code in this round
        first[np.unique(codes, return_index=True)[1]] = True
        flat_keep &= first
        keep = flat_keep.reshape(keep.shape)
        counts = keep.sum(axis=1)
        added = flat[flat_keep]
        stall = 0 if len(added) else stall + 1
        rows.append(added)
        lengths.append(counts[counts > 0])
        used = np.concatenate([used, codes[flat_keep]])
        if pool is not None:
            free[np.searchsorted(pool_codes, codes[flat_keep])] = False
        have += len(added)
    k = len(sizes)
    return Lines(rows=np.concatenate(rows) if rows else np.zeros((0, k), np.int64),
                 lengths=np.concatenate(lengths) if lengths else np.zeros(0, np.int64),
                 available=None if pool is None else len(pool))


class LineSampled(DatasetView):
    """Evaluation samples drawn as short *lines*: a uniform base combination, then up to
    ``line_length`` members that differ from it in one factor only (the factor cycles over the
    varying ones; values distinct, uniform; only combinations the dataset contains), never
    repeating a combination (:func:`draw_lines`).

    Why: OMES (Dapueto et al. 2024, §3.2) reads pairs of samples that differ in exactly one
    factor. Drawn i.i.d. from Color-dSprites' 5.2 M combinations, 6,000 samples hold almost no
    such pair (the reference code found some only because its index bug shrank the grid). Lines
    give every factor thousands of pairs while each factor's marginal stays uniform.
    """

    def __init__(self, base: FactorDataset, line_length: int = 4):
        if line_length < 2:
            raise ValueError(f"line_length must be >= 2, found {line_length}")
        super().__init__(base)
        self.line_length = int(line_length)

    def sample_lines(self, n: int, rng: np.random.Generator) -> Lines:
        return draw_lines(self.base, n, rng, self.line_length)

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` rows in lines (fewer when the dataset holds fewer combinations)."""
        return self.sample_lines(n, rng).rows[:n]


# ---------------------------------------------------------------------------- evaluation rows
@dataclass
class EvalRows:
    """The rows of one evaluation: factor classes [n, K] in file order, the first ``n_train``
    for the classifiers' training, and the record of how they were drawn."""

    factors: np.ndarray
    n_train: int
    record: dict[str, Any]


def _split_on_lines(lengths: np.ndarray, n: int, train_fraction: float) -> tuple[np.ndarray, int]:
    """Row mask keeping at most ``n`` rows such that the first ``split_rows(kept)`` rows are whole
    lines: the line cut by the boundary loses its members past it (they would share all factors
    but one with a training row). Returns (mask over the rows, n_train)."""
    ends = np.cumsum(lengths)
    rows = int(ends[-1])
    total = min(int(n), rows)
    while True:  # ends: each failed pass lowers ``total``
        n_train = split_rows(total, train_fraction)
        train_end = int(ends[np.searchsorted(ends, n_train)])  # end of the line of row n_train-1
        test_have = rows - train_end
        if test_have >= total - n_train:
            keep = np.zeros(rows, dtype=bool)
            keep[:n_train] = True
            keep[train_end: train_end + total - n_train] = True
            return keep, n_train
        total = n_train + test_have  # too few rows left after the cut: shrink and cut again


def draw_rows(dataset: FactorDataset, n: int, *, sampling: str = "lines", seed: int = 0,
              line_length: int = 4, train_fraction: float = DEFAULT_TRAIN_FRACTION,
              rng: np.random.Generator | None = None) -> EvalRows:
    """The rows an evaluation encodes: ``n`` distinct factor combinations of ``dataset`` (all of
    them when it holds fewer), drawn as lines or uniformly, ordered so that the positional
    train/test split of the metrics separates whole lines.

    ``rng`` (default ``default_rng(seed)``) is advanced by the draw; :func:`encode` renders the
    images with it afterwards. ``record`` holds what ``results.json`` states about the rows.
    """
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}, found {sampling!r}")
    if n < 3:
        raise ValueError(f"n must be >= 3 samples (a train and a test part); found {n}")
    rng = np.random.default_rng(seed) if rng is None else rng
    length = int(line_length) if sampling == "lines" else 1
    if length < 2 and sampling == "lines":
        raise ValueError(f"line_length must be >= 2 with sampling 'lines', found {line_length}")
    lines = draw_lines(dataset, n + length - 1, rng, length)  # slack for the cut line
    if lines.rows.shape[0] < 3:
        raise ValueError(f"{dataset.name}: only {lines.rows.shape[0]} combinations to evaluate on")
    keep, n_train = _split_on_lines(lines.lengths, n, train_fraction)
    factors, ids = lines.rows[keep], lines.line_ids[keep]
    codes = dataset.grid_code(factors)
    record = {
        "n": int(len(factors)), "n_requested": int(n), "n_train": int(n_train),
        "n_test": int(len(factors) - n_train), "sampling": sampling,
        "line_length": length, "train_fraction": float(train_fraction),
        "distinct_combinations": int(len(np.unique(codes))),
        "available_combinations": lines.available,
        "test_rows_seen_in_train": int(np.isin(codes[n_train:], codes[:n_train]).sum()),
        "lines_across_split": int(len(np.intersect1d(ids[:n_train], ids[n_train:]))),
    }
    if record["n"] < n:
        log.info("%s: %d combinations available, evaluating on all of them (asked for %d)",
                 dataset.name, record["n"], n)
    return EvalRows(factors=factors, n_train=n_train, record=record)
