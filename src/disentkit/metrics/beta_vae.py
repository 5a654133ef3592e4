"""BetaVAE score (Higgins et al., ICLR 2017) and FactorVAE score (Kim & Mnih, ICML 2018) on arrays.

Both metrics are defined with interventions: fix one factor, resample the others, and see which
code dimensions stay put. On a fixed table of encoded samples the paper's code simulates the
intervention by drawing *rows that share the fixed factor's value* (Dapueto et al. 2024,
``beta_vae_score.py`` / ``factor_vae_score.py`` of their repository); so do we, vectorised.

* BetaVAE: a point is (k, mean over a batch of 64 of |z(x1) − z(x2)|) where x1 is a random row and
  x2 a random row with the same value of factor k; a logistic regression predicts k from the
  point. 10,000 training points from the training rows, 5,000 evaluation points from the test
  rows; the score is the classifier's accuracy.
* FactorVAE: a point is (k, argmin_d Var_batch(z_d) / Var_global(z_d)) over the *active*
  dimensions (global std ≥ 0.05, global variances from 10,000 rows), for a batch of 64 rows sharing
  the value of factor k; a majority-vote classifier maps dimensions to factors.
"""

from __future__ import annotations

import numpy as np

from disentkit.metrics.classifiers import _quiet_fit
from disentkit.metrics._common import (
    DEFAULT_TRAIN_FRACTION,
    MetricResult,
    as_generator,
    check_inputs,
    int_seeds,
    result,
    split_rows,
)


class _SameValueSampler:
    """Draws rows that share a factor's value with given anchor rows, in O(log N) per draw."""

    def __init__(self, factors: np.ndarray):
        self.factors = factors
        self.groups = []
        for k in range(factors.shape[1]):
            order = np.argsort(factors[:, k], kind="stable")
            values, starts, counts = np.unique(
                factors[order, k], return_index=True, return_counts=True
            )
            self.groups.append((order, values, starts, counts))

    def draw(self, k: int, anchors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One row per anchor, uniform among the rows whose factor ``k`` equals the anchor's."""
        order, values, starts, counts = self.groups[k]
        g = np.searchsorted(values, self.factors[anchors, k])
        return order[starts[g] + (rng.random(anchors.shape) * counts[g]).astype(np.int64)]


def _beta_vae_points(codes, factors, num_points, batch_size, rng):
    sampler = _SameValueSampler(factors)
    labels = rng.integers(0, factors.shape[1], size=num_points)
    points = np.empty((num_points, codes.shape[1]))
    for k in range(factors.shape[1]):
        which = np.flatnonzero(labels == k)
        first = rng.integers(0, len(codes), size=(len(which), batch_size))
        second = sampler.draw(k, first, rng)
        points[which] = np.abs(codes[first] - codes[second]).mean(axis=1)
    return points, labels


def beta_vae(
    codes,
    factors,
    *,
    factor_names=None,
    train_fraction: float = DEFAULT_TRAIN_FRACTION,
    batch_size: int = 64,
    num_train: int = 10_000,
    num_eval: int = 5_000,
    random_state=None,
    keep_predictions: bool = False,
) -> MetricResult:
    """BetaVAE score. Keys ``beta_vae.train_accuracy``, ``beta_vae.eval_accuracy``.

    ``keep_predictions=True`` adds ``details["predictions"]``: the number of training and
    evaluation points (``num_train``, ``num_eval``), whose correctness the bootstrap resamples.
    """
    from sklearn.linear_model import LogisticRegression

    inputs = check_inputs(codes, factors, factor_names)
    rng = as_generator(random_state)
    codes, factors = inputs.codes.astype(np.float64), inputs.factors
    n_train = split_rows(inputs.n, train_fraction)
    x_tr, y_tr = _beta_vae_points(codes[:n_train], factors[:n_train], num_train, batch_size, rng)
    x_ev, y_ev = _beta_vae_points(codes[n_train:], factors[n_train:], num_eval, batch_size, rng)
    if len(np.unique(y_tr)) < 2:
        train_acc = eval_acc = float(np.mean(y_ev == y_tr[0]))
    else:
        model = _quiet_fit(LogisticRegression(random_state=int_seeds(rng, 1)[0]), x_tr, y_tr)
        train_acc, eval_acc = model.score(x_tr, y_tr), model.score(x_ev, y_ev)
    scores = {"beta_vae.train_accuracy": train_acc, "beta_vae.eval_accuracy": eval_acc}
    extra = {}
    if keep_predictions:
        extra["predictions"] = {"num_train": num_train, "num_eval": num_eval}
    return result(scores, backend="numpy+sklearn", inputs=inputs, **extra)


def _factor_vae_votes(codes, factors, num_points, batch_size, rng, global_var, active):
    sampler = _SameValueSampler(factors)
    labels = rng.integers(0, factors.shape[1], size=num_points)
    votes = np.zeros((factors.shape[1], codes.shape[1]), dtype=np.int64)
    active_index = np.flatnonzero(active)
    for k in range(factors.shape[1]):
        which = np.flatnonzero(labels == k)
        for chunk in np.array_split(which, max(1, len(which) // 2048)):
            anchors = rng.integers(0, len(codes), size=(len(chunk), 1))
            rows = sampler.draw(k, np.repeat(anchors, batch_size, axis=1), rng)
            local = codes[rows][:, :, active_index].var(axis=1, ddof=1)
            best = active_index[np.argmin(local / global_var[active_index], axis=1)]
            np.add.at(votes, (k, best), 1)
    return votes


def factor_vae(
    codes,
    factors,
    *,
    factor_names=None,
    train_fraction: float = DEFAULT_TRAIN_FRACTION,
    batch_size: int = 64,
    num_train: int = 10_000,
    num_eval: int = 5_000,
    num_variance_estimate: int = 10_000,
    active_threshold: float = 0.05,
    random_state=None,
    keep_predictions: bool = False,
) -> MetricResult:
    """FactorVAE score. Keys ``factor_vae.train_accuracy``, ``factor_vae.eval_accuracy``,
    ``factor_vae.num_active_dims``; ``details["votes"]`` is the [K, D] training vote table.
    ``keep_predictions=True`` adds ``details["predictions"]``: ``classifier`` (factor per
    dimension; None when no dimension is active) and the vote tables ``train_votes`` and
    ``eval_votes`` [K, D], whose points the bootstrap resamples."""
    inputs = check_inputs(codes, factors, factor_names)
    rng = as_generator(random_state)
    codes, factors = inputs.codes.astype(np.float64), inputs.factors
    n_train = split_rows(inputs.n, train_fraction)
    sample = codes[rng.integers(0, len(codes), size=num_variance_estimate)]
    global_var = sample.var(axis=0, ddof=1)
    active = np.sqrt(global_var) >= active_threshold
    if not active.any():
        scores = {
            "factor_vae.train_accuracy": 0.0,
            "factor_vae.eval_accuracy": 0.0,
            "factor_vae.num_active_dims": 0,
        }
        extra = {"predictions": {"classifier": None}} if keep_predictions else {}
        return result(scores, backend="numpy", inputs=inputs, **extra)
    train_votes = _factor_vae_votes(
        codes[:n_train], factors[:n_train], num_train, batch_size, rng, global_var, active
    )
    eval_votes = _factor_vae_votes(
        codes[n_train:], factors[n_train:], num_eval, batch_size, rng, global_var, active
    )
    classifier = np.argmax(train_votes, axis=0)  # the factor each dimension votes for most
    cols = np.arange(train_votes.shape[1])
    scores = {
        "factor_vae.train_accuracy": train_votes[classifier, cols].sum() / train_votes.sum(),
        "factor_vae.eval_accuracy": eval_votes[classifier, cols].sum() / eval_votes.sum(),
        "factor_vae.num_active_dims": int(active.sum()),
    }
    extra = {}
    if keep_predictions:
        extra["predictions"] = {
            "classifier": classifier, "train_votes": train_votes, "eval_votes": eval_votes
        }
    return result(scores, backend="numpy", inputs=inputs, votes=train_votes.tolist(), **extra)
