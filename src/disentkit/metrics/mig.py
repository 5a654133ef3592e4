"""MIG, the mutual information gap (Chen et al., NeurIPS 2018), as in disentanglement_lib.

Each code dimension is discretised into 20 equal-width bins; I[d, k] is the mutual information
(nats) between discretised dimension d and factor k; MIG = mean_k (I₁ − I₂) / H(v_k), where I₁ and
I₂ are the largest and second-largest I[:, k]. It measures modularity *and* compactness in one
number, which is why the paper reports it beside OMES (Dapueto et al. 2024, §4). All rows are
used, as in the paper's evaluation.
"""

from __future__ import annotations

import numpy as np

from disentkit.metrics._common import (
    MetricResult,
    check_inputs,
    entropy,
    histogram_discretize,
    mutual_information_matrix,
    result,
)


def mig(
    codes, factors, *, factor_names=None, num_bins: int = 20, random_state=None
) -> MetricResult:
    """MIG of ``codes`` [N, D] for integer ``factors`` [N, K]. Key ``mig.score``.

    Deterministic; ``random_state`` is accepted (and unused) for the common metric signature.

    ``details["mutual_information"]`` is I [D, K]. With a single code dimension the gap is
    I₁ − 0 (there is no second dimension to compete).
    """
    inputs = check_inputs(codes, factors, factor_names)
    mi = mutual_information_matrix(histogram_discretize(inputs.codes, num_bins), inputs.factors)
    h = np.array([entropy(inputs.factors[:, k]) for k in range(inputs.factors.shape[1])])
    top = np.sort(mi, axis=0)[::-1]
    second = top[1] if len(top) > 1 else np.zeros(mi.shape[1])
    per_factor = (top[0] - second) / h
    scores = {"mig.score": float(np.mean(per_factor))}
    return result(
        scores,
        backend="numpy",
        inputs=inputs,
        mutual_information=mi.tolist(),
        per_factor=dict(zip(inputs.factor_names, per_factor.tolist())),
    )
