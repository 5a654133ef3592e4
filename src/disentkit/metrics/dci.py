"""DCI: disentanglement, completeness, informativeness (Eastwood & Williams, ICLR 2018).

As in disentanglement_lib (``evaluation/metrics/dci.py``), which the paper uses for its DCI
columns (Dapueto et al. 2024, §4): one gradient-boosted classifier per factor on the training
rows; the importance matrix R[d, k] = |feature importance of dimension d for factor k|;

* disentanglement D = Σ_d ρ_d (1 − H_K(R[d, :] / Σ_k R[d, k])), ρ_d ∝ Σ_k R[d, k];
* completeness C = Σ_k ρ_k (1 − H_D(R[:, k] / Σ_d R[d, k])), ρ_k ∝ Σ_d R[d, k];
* informativeness = mean train / test accuracy of the classifiers.

Entropies are in base K (per dimension) and D (per factor), with disentanglement_lib's 1e-11
added to every entry. ``backend="fast"`` uses LightGBM; its importances are by default
scikit-learn's squared-error decrease recomputed from the LightGBM trees (``fast_importance=
"variance"``, within 0.02 of the reference), or LightGBM's own gain (``"gain"``), see
:func:`disentkit.metrics.classifiers.feature_importances`.
"""

from __future__ import annotations

import numpy as np

from disentkit.metrics._common import (
    DEFAULT_TRAIN_FRACTION,
    MetricResult,
    as_generator,
    check_backend,
    check_inputs,
    default_jobs,
    int_seeds,
    parallel_map,
    result,
    split_rows,
)
from disentkit.metrics.classifiers import feature_importances, fit_classifier


def _entropy(p: np.ndarray, base: int, axis: int) -> np.ndarray:
    """``scipy.stats.entropy(p, base=base)`` along ``axis`` (p normalised there)."""
    p = p / p.sum(axis=axis, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.sum(np.where(p > 0, p * np.log(p), 0.0), axis=axis)
    return h / np.log(base) if base > 1 else np.zeros_like(h)


def disentanglement(importance: np.ndarray) -> float:
    """Σ_d ρ_d (1 − H_K(R[d, :])) of an importance matrix R [D, K]."""
    per_code = 1.0 - _entropy(importance + 1e-11, importance.shape[1], axis=1)
    if importance.sum() == 0.0:
        importance = np.ones_like(importance)
    weights = importance.sum(axis=1) / importance.sum()
    return float(np.sum(per_code * weights))


def completeness(importance: np.ndarray) -> float:
    """Σ_k ρ_k (1 − H_D(R[:, k])) of an importance matrix R [D, K]."""
    per_factor = 1.0 - _entropy(importance + 1e-11, importance.shape[0], axis=0)
    if importance.sum() == 0.0:
        importance = np.ones_like(importance)
    weights = importance.sum(axis=0) / importance.sum()
    return float(np.sum(per_factor * weights))


def dci(
    codes,
    factors,
    *,
    factor_names=None,
    train_fraction: float = DEFAULT_TRAIN_FRACTION,
    backend: str = "reference",
    n_jobs: int | None = None,
    fast_importance: str = "variance",
    random_state=None,
    keep_predictions: bool = False,
) -> MetricResult:
    """DCI of ``codes`` [N, D] for integer ``factors`` [N, K].

    Keys ``dci.disentanglement``, ``dci.completeness``, ``dci.informativeness_train``,
    ``dci.informativeness_test``; ``details["importance"]`` is R [D, K] and
    ``details["test_accuracy"]`` the per-factor test accuracies (the downstream ``gbt`` numbers,
    which :func:`disentkit.metrics.score` reuses instead of fitting the same models twice).
    ``keep_predictions=True`` adds ``details["predictions"]``: boolean [rows, K] arrays
    ``train_correct`` / ``test_correct`` (what the bootstrap resamples instead of refitting).
    """
    inputs = check_inputs(codes, factors, factor_names)
    backend = check_backend(backend)
    rng = as_generator(random_state)
    codes, factors = inputs.codes, inputs.factors
    n_train = split_rows(inputs.n, train_fraction)
    x_tr, x_te = codes[:n_train], codes[n_train:]
    seeds = int_seeds(rng, factors.shape[1])

    def fit(k):
        y_tr, y_te = factors[:n_train, k], factors[n_train:, k]
        model = fit_classifier("gbt", backend, x_tr, y_tr, seeds[k])
        imp = np.abs(feature_importances(model, codes.shape[1], fast_importance))
        ok_tr, ok_te = model.predict(x_tr) == y_tr, model.predict(x_te) == y_te
        return imp, float(np.mean(ok_tr)), float(np.mean(ok_te)), ok_tr, ok_te

    jobs = 1 if backend == "reference" else default_jobs(n_jobs)
    fits = parallel_map(fit, range(factors.shape[1]), jobs)
    importance = np.stack([f[0] for f in fits], axis=1)
    scores = {
        "dci.disentanglement": disentanglement(importance),
        "dci.completeness": completeness(importance),
        "dci.informativeness_train": float(np.mean([f[1] for f in fits])),
        "dci.informativeness_test": float(np.mean([f[2] for f in fits])),
    }
    extra = {}
    if keep_predictions:
        extra["predictions"] = {
            "train_correct": np.stack([f[3] for f in fits], axis=1),
            "test_correct": np.stack([f[4] for f in fits], axis=1),
        }
    return result(
        scores,
        backend=backend,
        **extra,
        importance_kind="sklearn" if backend == "reference" else fast_importance,
        inputs=inputs,
        importance=importance.tolist(),
        test_accuracy=dict(zip(inputs.factor_names, [f[2] for f in fits])),
    )
