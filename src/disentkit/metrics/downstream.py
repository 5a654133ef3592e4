"""Downstream classification: can each factor be read off the code? (explicitness)

The paper's explicitness columns (Dapueto et al. 2024, §4 and Tables 1-4): per factor, a
gradient-boosted tree classifier (scikit-learn defaults) and an MLP with hidden layers
(256, 256), trained on the first 2/3 of the rows and scored by test accuracy, on

* the full code (``gbt``, ``mlp``);
* the paper's *pruned* code: inactive dimensions dropped, then only the dimensions OMES associates
  with some factor (``gbt_pruned``, ``mlp_pruned``) — does the code's factor-aligned part suffice?
* each factor's own associated dimension alone (``gbt_single``) — is the factor really *in* the
  dimension OMES names?

Keys ``<model>.mean_test_accuracy``, ``<model>.min_test_accuracy`` and
``<model>.test_accuracy.<factor>``. A factor with no associated dimension, or an empty pruned
code, is classified from a constant feature, i.e. at the majority-class rate.
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
from disentkit.metrics.classifiers import fit_classifier

MODELS = ("gbt", "mlp", "gbt_pruned", "mlp_pruned", "gbt_single")


def pruned_dimensions(association: dict, inactive) -> list[int]:
    """Active dimensions that OMES associates with at least one factor, sorted."""
    inactive = set(int(i) for i in inactive)
    return sorted({int(d) for d in association.values() if d is not None} - inactive)


def _columns(codes: np.ndarray, dims) -> np.ndarray:
    if len(dims) == 0:
        return np.zeros((len(codes), 1))
    return codes[:, list(dims)]


def _jobs(models, names, n_dims: int, pruned, association, inactive, gbt_accuracies) -> list:
    """(model name, factor index, column indices) per classifier to fit; columns ``None`` where
    DCI's GBT accuracy is reused instead of refitting the same classifier."""
    jobs = []
    for model in models:
        for k, name in enumerate(names):
            if model == "gbt" and gbt_accuracies is not None and name in gbt_accuracies:
                dims = None  # reused, not refitted
            elif model.endswith("_pruned"):
                dims = pruned
            elif model.endswith("_single"):
                d = association.get(name)
                dims = [] if d is None or d in set(inactive) else [int(d)]
            else:
                dims = list(range(n_dims))
            jobs.append((model, k, dims))
    return jobs


def downstream(
    codes,
    factors,
    *,
    factor_names=None,
    train_fraction: float = DEFAULT_TRAIN_FRACTION,
    backend: str = "reference",
    models=MODELS,
    association: dict | None = None,
    inactive=None,
    gbt_accuracies: dict | None = None,
    n_jobs: int | None = None,
    random_state=None,
    keep_predictions: bool = False,
) -> MetricResult:
    """Test accuracies of per-factor classifiers on the full, pruned and single-dimension codes.

    ``association`` ({factor name: dimension or None}) and ``inactive`` (dimension indices) are
    OMES's details; when absent they are computed here with OMES's defaults.
    ``gbt_accuracies`` ({factor name: test accuracy}) are reused for ``gbt`` when given: DCI
    fits exactly those classifiers (same split, same backend). ``keep_predictions=True`` adds
    ``details["predictions"]["test_correct"]``: {model: [boolean test-row array, or None where the
    accuracy was reused, per factor]}.
    """
    inputs = check_inputs(codes, factors, factor_names)
    backend = check_backend(backend)
    rng = as_generator(random_state)
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ValueError(f"unknown downstream model(s) {unknown}; valid: {', '.join(MODELS)}")
    codes, factors, names = inputs.codes, inputs.factors, inputs.factor_names
    n_train = split_rows(inputs.n, train_fraction)
    omes_seed = int_seeds(rng, 1)[0]
    if any(m != "gbt" and m != "mlp" for m in models) and (association is None or inactive is None):
        from disentkit.metrics.omes import omes

        details = omes(codes, factors, factor_names=names, random_state=omes_seed).details
        association, inactive = details["association"], details["inactive"]
    pruned = pruned_dimensions(association, inactive) if association is not None else []

    jobs = _jobs(models, names, codes.shape[1], pruned, association, inactive, gbt_accuracies)
    seeds = int_seeds(rng, len(jobs))

    def run(i):
        model, k, dims = jobs[i]
        if dims is None:
            return float(gbt_accuracies[names[k]]), None
        x = _columns(codes, dims)
        y = factors[:, k]
        clf = fit_classifier(model.split("_")[0], backend, x[:n_train], y[:n_train], seeds[i])
        correct = clf.predict(x[n_train:]) == y[n_train:]
        return (float(np.mean(correct)) if len(correct) else float("nan")), correct

    workers = 1 if backend == "reference" else default_jobs(n_jobs)
    outs = parallel_map(run, range(len(jobs)), workers)
    accs = [o[0] for o in outs]
    scores = {}
    for model in models:
        per = [a for (m, _, _), a in zip(jobs, accs) if m == model]
        scores[f"{model}.mean_test_accuracy"] = float(np.mean(per))
        scores[f"{model}.min_test_accuracy"] = float(np.min(per))
        for name, a in zip(names, per):
            scores[f"{model}.test_accuracy.{name}"] = a
    extra = {}
    if keep_predictions:
        extra["predictions"] = {
            "test_correct": {m: [o[1] for (j, o) in zip(jobs, outs) if j[0] == m] for m in models}
        }
    return result(scores, backend=backend, inputs=inputs, pruned_dimensions=pruned, **extra)
