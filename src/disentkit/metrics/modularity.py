"""Modularity and explicitness (Ridgeway & Zemel, NeurIPS 2018), as in disentanglement_lib.

* Modularity: from the mutual information I[d, k] of the training rows (each dimension in 20
  equal-width bins), a dimension is modular when it shares information with one factor only:
  δ_d = (Σ_k I[d,k]² − max_k I[d,k]²) / (max_k I[d,k]² · (K − 1)); modularity = mean_d (1 − δ_d),
  with 0 for a dimension that shares no information at all.
* Explicitness: a logistic regression per factor on codes standardised with the training rows'
  mean and standard deviation; the macro ROC-AUC of its class probabilities on the training and
  test rows says how linearly the factor can be read off the code (the paper's "explicitness"
  property, Dapueto et al. 2024, §3.1).
"""

from __future__ import annotations

import warnings

import numpy as np

from disentkit.metrics._common import (
    DEFAULT_TRAIN_FRACTION,
    MetricResult,
    check_inputs,
    default_jobs,
    histogram_discretize,
    mutual_information_matrix,
    parallel_map,
    result,
    split_rows,
)


def modularity_score(mutual_information: np.ndarray) -> float:
    """Mean over dimensions of 1 − δ_d for a mutual-information matrix [D, K]."""
    sq = np.square(mutual_information)
    top = sq.max(axis=1)
    k = sq.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = (sq.sum(axis=1) - top) / (top * (k - 1.0)) if k > 1 else np.zeros_like(top)
    per_dim = np.where(top == 0.0, 0.0, 1.0 - delta)
    return float(np.mean(per_dim))


def macro_auc(y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    """Macro one-vs-rest ROC-AUC over the classes that have both positives and negatives in y."""
    from sklearn.metrics import roc_auc_score

    aucs = []
    for j, c in enumerate(classes):
        positive = y == c
        if positive.all() or not positive.any():
            continue
        aucs.append(roc_auc_score(positive, proba[:, j]))
    return float(np.mean(aucs)) if aucs else float("nan")


def _explicitness(x_tr, y_tr, x_te, y_te) -> tuple[float, float, tuple | None]:
    """Train and test macro AUC, and (train probabilities, test probabilities, classes)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(y_tr)) < 2:
        return 0.5, 0.5, None  # a constant predictor ranks nothing: chance AUC
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LogisticRegression().fit(x_tr, y_tr)
    p_tr, p_te = clf.predict_proba(x_tr), clf.predict_proba(x_te)
    return (
        macro_auc(y_tr, p_tr, clf.classes_),
        macro_auc(y_te, p_te, clf.classes_),
        (p_tr, p_te, clf.classes_),
    )


def modularity(
    codes,
    factors,
    *,
    factor_names=None,
    train_fraction: float = DEFAULT_TRAIN_FRACTION,
    num_bins: int = 20,
    n_jobs: int | None = 1,
    random_state=None,
    keep_predictions: bool = False,
) -> MetricResult:
    """Modularity and explicitness of ``codes`` [N, D] for integer ``factors`` [N, K].

    Keys ``modularity.score``, ``explicitness.score_train``, ``explicitness.score_test``.
    LogisticRegression (lbfgs) is deterministic: no random state is needed
    (``random_state`` is accepted for the common signature). ``keep_predictions=True`` adds
    ``details["predictions"]["probabilities"]``: per factor (train proba, test proba, classes),
    or None for a factor with a single training class.
    """
    inputs = check_inputs(codes, factors, factor_names)
    codes, factors = inputs.codes.astype(np.float64), inputs.factors
    n_train = split_rows(inputs.n, train_fraction)
    mi = mutual_information_matrix(
        histogram_discretize(codes[:n_train], num_bins), factors[:n_train]
    )
    mean = codes[:n_train].mean(axis=0)
    std = codes[:n_train].std(axis=0)
    std = np.where(std > 0, std, 1.0)  # a constant dimension stays 0 instead of NaN
    z = (codes - mean) / std

    def fit(k):
        return _explicitness(z[:n_train], factors[:n_train, k], z[n_train:], factors[n_train:, k])

    fits = parallel_map(fit, range(factors.shape[1]), default_jobs(n_jobs))
    scores = {
        "modularity.score": modularity_score(mi),
        "explicitness.score_train": float(np.nanmean([f[0] for f in fits])),
        "explicitness.score_test": float(np.nanmean([f[1] for f in fits])),
    }
    extra = {"predictions": {"probabilities": [f[2] for f in fits]}} if keep_predictions else {}
    return result(
        scores, backend="sklearn", inputs=inputs, mutual_information=mi.tolist(), **extra
    )
