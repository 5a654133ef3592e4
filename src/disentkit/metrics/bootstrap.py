"""Bootstrap confidence intervals for any metric (percentile method, 95% by default).

None of the peer libraries reports uncertainty, yet a metric computed on 15,008 samples with
random pairs and random classifiers moves from run to run (the paper reports OMES ± its pairing
noise, §4). Rows are resampled with replacement *within* the training part and *within* the test
part, so a resample keeps the paper's split and no training row leaks into the test rows.
"""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np


def resample_rows(n: int, n_train: int, rng: np.random.Generator) -> np.ndarray:
    """Row indices: n_train drawn from [0, n_train), then n − n_train drawn from [n_train, n)."""
    train = rng.integers(0, n_train, size=n_train)
    test = rng.integers(n_train, n, size=n - n_train)
    return np.concatenate([train, test])


def bootstrap_intervals(
    compute: Callable[[np.ndarray, np.ndarray, int], dict],
    codes: np.ndarray,
    factors: np.ndarray,
    *,
    n_train: int,
    num_resamples: int,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """``{key: (low, high)}`` percentile intervals of ``compute`` over row resamples.

    ``compute(codes, factors, b)`` returns a flat dict of floats for resample ``b`` (its own
    seed). Keys missing from some resamples use the resamples that have them.
    """
    if num_resamples < 2:
        raise ValueError(f"bootstrap needs at least 2 resamples; found {num_resamples}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must lie in (0, 1); found {level}")
    values: dict[str, list[float]] = {}
    for b in range(num_resamples):
        rng = np.random.default_rng([seed, 0xB007, b])
        idx = resample_rows(len(codes), n_train, rng)
        with warnings.catch_warnings():  # a resample may lose a rare class: expected, not news
            warnings.simplefilter("ignore")
            out = compute(codes[idx], factors[idx], b)
        for key, v in out.items():
            values.setdefault(key, []).append(float(v))
    tail = 100.0 * (1.0 - level) / 2.0
    return {
        key: (float(np.nanpercentile(v, tail)), float(np.nanpercentile(v, 100.0 - tail)))
        for key, v in values.items()
    }
