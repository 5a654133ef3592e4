"""SAP, the separated attribute predictability (Kumar et al., ICLR 2018), discrete factors.

As in disentanglement_lib (``evaluation/metrics/sap_score.py``, ``continuous_factors=False``):
S[d, k] = test accuracy of a linear SVM (C = 0.01, balanced class weights) trained on dimension d
alone to predict factor k; SAP = mean_k (largest − second-largest S[:, k]). A factor read well
from one dimension only scores high: a compactness measure.
"""

from __future__ import annotations

import warnings

import numpy as np

from disentkit.metrics._common import (
    DEFAULT_TRAIN_FRACTION,
    MetricResult,
    check_inputs,
    default_jobs,
    parallel_map,
    result,
    split_rows,
)


def _svm_correct(x_tr, y_tr, x_te, y_te) -> np.ndarray:
    """Boolean [test rows]: the SVM on one dimension predicts the test row's class."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    if len(np.unique(y_tr)) < 2:  # nothing to separate: predict the only class
        return y_te == y_tr[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LinearSVC(C=0.01, class_weight="balanced").fit(x_tr[:, None], y_tr)
    return clf.predict(x_te[:, None]) == y_te


def sap(
    codes,
    factors,
    *,
    factor_names=None,
    train_fraction: float = DEFAULT_TRAIN_FRACTION,
    n_jobs: int | None = 1,
    random_state=None,
    keep_predictions: bool = False,
) -> MetricResult:
    """SAP of ``codes`` [N, D] for integer ``factors`` [N, K]. Key ``sap.score``.

    ``details["score_matrix"]`` is S [D, K]. LinearSVC (liblinear) is deterministic, so no
    random state is needed (``random_state`` is accepted for the common signature);
    ``n_jobs`` fits the D·K classifiers on threads. ``keep_predictions=True`` adds
    ``details["predictions"]["test_correct"]``, boolean [test rows, D, K].
    """
    inputs = check_inputs(codes, factors, factor_names)
    codes, factors = inputs.codes, inputs.factors
    n_train = split_rows(inputs.n, train_fraction)
    d_count, k_count = codes.shape[1], factors.shape[1]

    def cell(i):
        d, k = divmod(i, k_count)
        return _svm_correct(
            codes[:n_train, d], factors[:n_train, k], codes[n_train:, d], factors[n_train:, k]
        )

    correct = parallel_map(cell, range(d_count * k_count), default_jobs(n_jobs))
    s = np.array([c.mean() for c in correct]).reshape(d_count, k_count)
    top = np.sort(s, axis=0)
    gap = top[-1] - (top[-2] if d_count > 1 else 0.0)
    extra = {}
    if keep_predictions:
        ok = np.stack(correct, axis=1).reshape(-1, d_count, k_count)
        extra["predictions"] = {"test_correct": ok}
    return result(
        {"sap.score": float(np.mean(gap))},
        backend="sklearn-liblinear",
        inputs=inputs,
        **extra,
        score_matrix=s.tolist(),
    )
