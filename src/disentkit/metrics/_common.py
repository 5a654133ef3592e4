"""What every metric shares: input validation, the train/test split, discretisation, mutual
information, random generators and the choice of classifier backend (docs/architecture.md, "Contracts", "Metrics").

Metrics are pure functions ``metric(codes [N, D], factors [N, K], *, options, random_state)``
returning a :class:`MetricResult` — a flat ``{namespaced key: float}`` dict that also carries
``details`` (matrices, associations, the backend used) which do not belong in a results table.

The paper evaluates every model on 15,008 encoded samples, training classifiers on the first
two thirds of the rows and testing on the rest (Dapueto et al. 2024, §4 "Evaluation"; the
protocol of Locatello et al. 2019). :func:`split_rows` reproduces that split exactly.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

BACKENDS = ("reference", "fast")

#: the paper's train fraction (2/3 of the rows for training, the rest for testing)
DEFAULT_TRAIN_FRACTION = 2.0 / 3.0


class MetricResult(dict):
    """A flat ``{key: float}`` dict of scores plus ``details`` (not meant for tables).

    ``details`` always holds ``backend`` (which implementation produced the numbers) and, when
    factors were skipped, ``skipped_factors``.
    """

    def __init__(self, scores: dict | None = None, details: dict | None = None):
        super().__init__(scores or {})
        self.details: dict = dict(details or {})


@dataclass(frozen=True)
class Inputs:
    """Validated metric inputs: float codes, int64 factors, and the factors kept."""

    codes: np.ndarray  # float32 or float64 [N, D] (other numbers become float64)
    factors: np.ndarray  # int64 [N, K'] — only the factors with more than one value
    factor_names: tuple[str, ...]  # names of the kept factors
    skipped: tuple[str, ...]  # names of single-valued factors that were dropped

    @property
    def n(self) -> int:
        return int(self.codes.shape[0])


def check_inputs(
    codes,
    factors,
    factor_names: Sequence[str] | None = None,
    *,
    min_rows: int = 2,
) -> Inputs:
    """Validate ``codes`` [N, D] and integer ``factors`` [N, K]; drop single-valued factors.

    Raises ``ValueError`` naming what was expected and what was found for: non-2-D arrays, NaN
    or inf in codes, a row-count mismatch, non-integer factor values, a wrong number of names,
    or too few rows. A factor with a single value carries no information for any metric; it is
    skipped with a ``UserWarning`` (never silently).
    """
    codes = np.asarray(codes)
    factors = np.asarray(factors)
    if codes.ndim != 2:
        raise ValueError(f"codes must be a 2-D array [N, D]; found shape {codes.shape}")
    if factors.ndim != 2:
        raise ValueError(f"factors must be a 2-D array [N, K]; found shape {factors.shape}")
    if codes.shape[0] != factors.shape[0]:
        raise ValueError(
            f"codes and factors must have the same number of rows; found {codes.shape[0]} "
            f"code rows and {factors.shape[0]} factor rows"
        )
    if codes.shape[0] < min_rows:
        raise ValueError(f"need at least {min_rows} rows; found {codes.shape[0]}")
    if codes.shape[1] < 1 or factors.shape[1] < 1:
        raise ValueError(
            "need at least one code dimension and one factor; "
            f"found codes {codes.shape}, factors {factors.shape}"
        )
    if not np.issubdtype(codes.dtype, np.number) or np.issubdtype(codes.dtype, np.complexfloating):
        raise ValueError(f"codes must be real numbers; found dtype {codes.dtype}")
    if codes.dtype not in (np.float32, np.float64):
        codes = codes.astype(np.float64)
    if not np.isfinite(codes).all():
        bad = ~np.isfinite(codes)
        row, col = np.argwhere(bad)[0]
        raise ValueError(
            f"codes must be finite; found {int(bad.sum())} NaN/inf values "
            f"(first at row {row}, dimension {col}: {codes[row, col]})"
        )
    factors = as_integer_factors(factors)
    names = _factor_names(factor_names, factors.shape[1])
    single = factors.min(axis=0) == factors.max(axis=0)
    skipped = tuple(n for n, s in zip(names, single) if s)
    if skipped:
        warnings.warn(
            f"skipping single-valued factor(s) {', '.join(skipped)}: a constant factor carries "
            "no information to measure",
            UserWarning,
            stacklevel=3,
        )
    if single.all():
        raise ValueError(
            "every factor has a single value; metrics need at least one varying factor"
        )
    keep = ~single
    return Inputs(
        codes=codes,
        factors=np.ascontiguousarray(factors[:, keep]),
        factor_names=tuple(n for n, k in zip(names, keep) if k),
        skipped=skipped,
    )


def as_integer_factors(factors) -> np.ndarray:
    """Factors as int64, refusing values that are not integers (e.g. 0.5, NaN)."""
    factors = np.asarray(factors)
    if np.issubdtype(factors.dtype, np.integer):
        return factors.astype(np.int64, copy=False)
    if np.issubdtype(factors.dtype, np.bool_) or not np.issubdtype(factors.dtype, np.number):
        raise ValueError(f"factors must hold integer classes; found dtype {factors.dtype}")
    finite = np.isfinite(factors)
    integral = finite & (factors == np.round(np.where(finite, factors, 0)))
    if not integral.all():
        row, col = np.argwhere(~integral)[0]
        raise ValueError(
            "factors must hold integer classes; found non-integer value "
            f"{factors[row, col].item()!r} at row {row}, factor {col}"
        )
    return factors.astype(np.int64)


def _factor_names(names: Sequence[str] | None, k: int) -> tuple[str, ...]:
    if names is None:
        return tuple(f"factor_{i}" for i in range(k))
    names = tuple(str(n) for n in names)
    if len(names) != k:
        raise ValueError(f"expected {k} factor names (one per column); found {len(names)}: {names}")
    if len(set(names)) != k:
        raise ValueError(f"factor names must be distinct; found {names}")
    return names


def result(scores: dict, *, backend: str, inputs: Inputs, **details) -> MetricResult:
    """Wrap ``scores`` (cast to float) with the backend and any skipped factors in details."""
    out = MetricResult({k: float(v) for k, v in scores.items()})
    out.details["backend"] = backend
    if inputs.skipped:
        out.details["skipped_factors"] = list(inputs.skipped)
    out.details.update(details)
    return out


# ---------------------------------------------------------------------------- split and RNG
def split_rows(n: int, train_fraction: float = DEFAULT_TRAIN_FRACTION) -> int:
    """Number of training rows: the first ⌈f·N⌉ rows train, the rest test (file order).

    This is disentanglement_lib's ``split_train_test`` and the paper's protocol (f = 2/3).
    """
    if not 0.0 < float(train_fraction) < 1.0:
        raise ValueError(
            f"train_fraction must lie strictly between 0 and 1; found {train_fraction}"
        )
    n_train = int(math.ceil(n * float(train_fraction)))
    if n_train >= n or n_train < 1:
        raise ValueError(
            f"train_fraction {train_fraction} leaves an empty train or test part for {n} rows"
        )
    return n_train


def as_generator(random_state) -> np.random.Generator:
    """``None``/int/Generator → a ``numpy.random.Generator`` (no global RNG, docs/architecture.md, principle 9)."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None or isinstance(random_state, (int, np.integer)):
        return np.random.default_rng(random_state)
    raise ValueError(
        "random_state must be None, an int or a numpy Generator; "
        f"found {type(random_state).__name__}"
    )


def int_seeds(rng: np.random.Generator, n: int) -> list[int]:
    """``n`` independent integer seeds for libraries that want an int (sklearn, LightGBM)."""
    return [int(s) for s in rng.integers(0, 2**31 - 1, size=n)]


# ---------------------------------------------------------------------------- information
def histogram_discretize(codes: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """Each column into ``num_bins`` equal-width bins over its own range (int [N, D]).

    Exactly disentanglement_lib's ``_histogram_discretize``: ``np.digitize`` against the
    histogram's left edges, so labels run 1..num_bins. Used by MIG (Chen et al. 2018) and
    modularity (Ridgeway & Zemel 2018).
    """
    out = np.empty(codes.shape, dtype=np.int64)
    for d in range(codes.shape[1]):
        edges = np.histogram(codes[:, d], num_bins)[1][:-1]
        out[:, d] = np.digitize(codes[:, d], edges)
    return out


def _dense_labels(x: np.ndarray) -> tuple[np.ndarray, int]:
    values, inverse = np.unique(x, return_inverse=True)
    return inverse.ravel(), len(values)


def mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """Mutual information (nats) of two discrete label vectors (sklearn's ``mutual_info_score``)."""
    ia, na = _dense_labels(a)
    ib, nb = _dense_labels(b)
    joint = np.bincount(ia * nb + ib, minlength=na * nb).reshape(na, nb).astype(np.float64)
    n = joint.sum()
    pa = joint.sum(axis=1, keepdims=True) / n
    pb = joint.sum(axis=0, keepdims=True) / n
    pj = joint / n
    nz = pj > 0
    mi = float(np.sum(pj[nz] * np.log(pj[nz] / (pa @ pb)[nz])))
    return max(mi, 0.0)


def mutual_information_matrix(discrete_codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """MI[d, k] between discretised code column d and factor k (nats), float [D, K]."""
    d, k = discrete_codes.shape[1], factors.shape[1]
    return np.array(
        [
            [mutual_information(discrete_codes[:, i], factors[:, j]) for j in range(k)]
            for i in range(d)
        ]
    )


def entropy(labels: np.ndarray) -> float:
    """Entropy (nats) of a discrete label vector; equals ``mutual_information(x, x)``."""
    _, counts = np.unique(labels, return_counts=True)
    p = counts / counts.sum()
    return float(-np.sum(p * np.log(p)))


def encode_labels(y: np.ndarray) -> np.ndarray:
    """Labels as 0..C-1 (LightGBM and torch need contiguous classes)."""
    return _dense_labels(y)[0]


# ---------------------------------------------------------------------------- backends
def check_backend(backend: str) -> str:
    """``reference`` (scikit-learn, the literature's numbers) or ``fast`` (LightGBM/torch)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    if backend == "fast":
        import_lightgbm()
    return backend


def import_lightgbm():
    """LightGBM, imported lazily (a heavy import); a core dependency: the ``fast`` trees."""
    try:
        import lightgbm
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ValueError(
            "backend 'fast' needs LightGBM, a dependency of disentkit missing from this "
            "environment: pip install 'lightgbm>=4.0' (or use --backend reference)"
        ) from exc
    return lightgbm


def default_jobs(n_jobs: int | None) -> int:
    """Worker count for per-factor parallelism (``None`` → all CPUs this process may use)."""
    if n_jobs is None:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - non-Linux
            return max(1, os.cpu_count() or 1)
    if n_jobs < 1:
        raise ValueError(f"n_jobs must be >= 1; found {n_jobs}")
    return int(n_jobs)


def parallel_map(fn: Callable, items: Sequence, n_jobs: int) -> list:
    """``[fn(i) for i in items]`` on ``n_jobs`` threads (LightGBM and BLAS release the GIL).

    Results keep the order of ``items``, so the output does not depend on scheduling.
    """
    items = list(items)
    if n_jobs <= 1 or len(items) <= 1:
        return [fn(i) for i in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(n_jobs, len(items))) as pool:
        return list(pool.map(fn, items))


def library_versions() -> dict[str, str]:
    """Versions of the libraries that produce metric numbers (recorded with every result)."""
    import platform
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in ("disentkit", "numpy", "scipy", "scikit-learn", "lightgbm", "torch"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out
