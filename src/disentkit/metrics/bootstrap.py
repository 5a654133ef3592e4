"""Bootstrap confidence intervals for the metric suite (percentile method, 95% by default).

None of the peer libraries reports uncertainty, yet a metric computed on 15,008 samples with
random pairs and random classifiers moves from run to run (the paper reports OMES ± its pairing
noise, §4). Rows are resampled with replacement *within* the training part and *within* the test
part, so a resample keeps the paper's split and no training row leaks into the test rows.

Two computations of the same resamples:

* :func:`bootstrap_intervals` is the definition: every metric recomputed, every classifier
  refitted, on every resample (B × the whole suite; 18+ CPU-minutes for B = 200 on the paper's
  15,008 rows);
* :func:`fast_intervals` resamples *what the statistic is made of* instead. Accuracy-type numbers
  (DCI informativeness, SAP, explicitness, downstream, BetaVAE/FactorVAE) keep the classifier fitted
  once on the original training rows and resample its per-row predictions (a weighted mean, or a
  weighted Mann-Whitney AUC); OMES, MIG and modularity have no fit and are recomputed on the
  resampled rows exactly as the definition does (same rows, same seeds: identical numbers). Only
  the DCI importances are *defined* by a fit (disentanglement, completeness): they are refitted on
  the first ``refits`` resamples, and ``details["bootstrap"]["refits"]`` says how many. What the
  fit-once intervals leave out is the variance of refitting the classifier, which is small when
  the classifier is stable; ``tests/test_metrics_bootstrap.py`` checks both agree on a small case.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np

from disentkit.metrics._resample import (
    dense_labels,
    discretize,
    mig_score,
    mutual_information_fast,
    row_counts,
    weighted_auc,
    weighted_mean,
)
from disentkit.progress import Progress, track


#: DCI disentanglement/completeness refits when the caller does not say (each is a full DCI fit)
DEFAULT_REFITS = 5


def resample_rows(n: int, n_train: int, rng: np.random.Generator) -> np.ndarray:
    """Row indices: n_train drawn from [0, n_train), then n − n_train drawn from [n_train, n)."""
    train = rng.integers(0, n_train, size=n_train)
    test = rng.integers(n_train, n, size=n - n_train)
    return np.concatenate([train, test])


def resample_generator(seed: int, b: int) -> np.random.Generator:
    """The generator of resample ``b`` (shared by both computations, so they see the same rows)."""
    return np.random.default_rng([seed, 0xB007, b])


def _check(num_resamples: int, level: float) -> None:
    if num_resamples < 2:
        raise ValueError(f"bootstrap needs at least 2 resamples; found {num_resamples}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must lie in (0, 1); found {level}")


def percentile_intervals(values: dict, level: float) -> dict[str, tuple[float, float]]:
    """``{key: (low, high)}`` percentiles of each key's resample values (NaN ignored)."""
    tail = 100.0 * (1.0 - level) / 2.0
    out = {}
    for key, v in values.items():
        v = np.asarray(v, dtype=np.float64)
        if np.isnan(v).all():
            out[key] = (float("nan"), float("nan"))
            continue
        out[key] = (float(np.nanpercentile(v, tail)), float(np.nanpercentile(v, 100.0 - tail)))
    return out


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
    """The definition: ``compute(codes, factors, b)`` (a flat dict) refitted on every resample.

    Keys missing from some resamples use the resamples that have them.
    """
    _check(num_resamples, level)
    values: dict[str, list[float]] = {}
    for b in track(range(num_resamples), desc="bootstrap", unit="resamples"):
        idx = resample_rows(len(codes), n_train, resample_generator(seed, b))
        with warnings.catch_warnings():  # a resample may lose a rare class: expected, not news
            warnings.simplefilter("ignore")
            out = compute(codes[idx], factors[idx], b)
        for key, v in out.items():
            values.setdefault(key, []).append(float(v))
    return percentile_intervals(values, level)


def progress_total(names, num_resamples: int, refits: int) -> int:
    """Ticks :func:`fast_intervals` makes: one per resample, one per DCI refit."""
    return num_resamples + (min(refits, num_resamples) if "dci" in names else 0)


@contextmanager
def progress_ticks(total: int, desc: str = "bootstrap") -> Iterator[Callable[[int], None]]:
    """A ``tick(n)`` callback on the one progress facility (:mod:`disentkit.progress`: a bar on
    a terminal, a line with rate and ETA every ~10 s when piped), closed on exit."""
    with Progress(total, desc, "steps") as bar:
        yield bar.update


# ---------------------------------------------------------------------------- fast intervals
class _Context:
    """What every resampler reads: arrays, resample indices and the point estimate's details."""

    def __init__(self, codes, factors, names, n_train, idx, details, seed_for, options, scores):
        self.scores = scores
        self.codes, self.factors, self.names = codes, factors, tuple(names)
        self.n_train, self.idx, self.details = n_train, idx, details
        self.seed_for, self.options = seed_for, options
        self.labels, self.sizes = dense_labels(factors)
        n = len(codes)
        self.tr_counts = row_counts(idx[:, :n_train], 0, n_train)
        self.te_counts = row_counts(idx[:, n_train:], n_train, n - n_train)

    def predictions(self, name: str) -> dict:
        return self.details[name]["predictions"]


def _sap(ctx: _Context) -> dict:
    s = weighted_mean(ctx.te_counts, ctx.predictions("sap")["test_correct"])  # [B, D, K]
    top = np.sort(s, axis=1)
    gap = top[:, -1] - (top[:, -2] if s.shape[1] > 1 else 0.0)
    return {"sap.score": gap.mean(axis=1)}


def _dci(ctx: _Context) -> dict:
    p = ctx.predictions("dci")
    return {
        "dci.informativeness_train": weighted_mean(ctx.tr_counts, p["train_correct"]).mean(1),
        "dci.informativeness_test": weighted_mean(ctx.te_counts, p["test_correct"]).mean(1),
    }


def _macro_auc(proba, y, classes, counts) -> np.ndarray:
    aucs = np.stack([weighted_auc(proba[:, j], y == c, counts) for j, c in enumerate(classes)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN: no class with both sides
        return np.nanmean(aucs, axis=0)


def _modularity(ctx: _Context) -> dict:
    n_train, b = ctx.n_train, ctx.idx.shape[0]
    train, test = np.empty((ctx.factors.shape[1], b)), np.empty((ctx.factors.shape[1], b))
    for k, fit in enumerate(ctx.predictions("modularity")["probabilities"]):
        if fit is None:
            train[k], test[k] = 0.5, 0.5
            continue
        p_tr, p_te, classes = fit
        train[k] = _macro_auc(p_tr, ctx.factors[:n_train, k], classes, ctx.tr_counts)
        test[k] = _macro_auc(p_te, ctx.factors[n_train:, k], classes, ctx.te_counts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return {
            "explicitness.score_train": np.nanmean(train, axis=0),
            "explicitness.score_test": np.nanmean(test, axis=0),
        }


def _downstream(ctx: _Context) -> dict:
    out = {}
    dci_test = ctx.details.get("dci", {}).get("predictions", {}).get("test_correct")
    for model, per in ctx.predictions("downstream")["test_correct"].items():
        cols = [dci_test[:, k] if c is None else c for k, c in enumerate(per)]
        acc = weighted_mean(ctx.te_counts, np.stack(cols, axis=1))  # [B, K]
        out[f"{model}.mean_test_accuracy"] = acc.mean(axis=1)
        out[f"{model}.min_test_accuracy"] = acc.min(axis=1)
        for k, name in enumerate(ctx.names):
            out[f"{model}.test_accuracy.{name}"] = acc[:, k]
    return out


def _omes_b(ctx: _Context, b: int) -> dict:
    from disentkit.metrics.omes import omes

    rows = ctx.idx[b]
    return dict(omes(ctx.codes[rows], ctx.factors[rows], factor_names=ctx.names,
                     random_state=ctx.seed_for(b, "omes")))


def _mig_b(ctx: _Context, b: int) -> dict:
    rows = ctx.idx[b]
    return {"mig.score": mig_score(ctx.codes[rows], ctx.labels[rows], ctx.sizes)}


def _modularity_b(ctx: _Context, b: int) -> dict:
    from disentkit.metrics.modularity import modularity_score

    rows = ctx.idx[b, : ctx.n_train]
    codes = ctx.codes[rows].astype(np.float64)
    mi = mutual_information_fast(discretize(codes), ctx.labels[rows], ctx.sizes)
    return {"modularity.score": modularity_score(mi)}


def _beta_vae(ctx: _Context) -> dict:
    """Fit once; each point's correctness is Bernoulli, so resampling the points with
    replacement is a binomial draw around the observed accuracy."""
    p, rng, b = ctx.predictions("beta_vae"), ctx.seed_for(0, "beta_vae.points"), ctx.idx.shape[0]
    out = {}
    for key, num in (("train", p["num_train"]), ("eval", p["num_eval"])):
        acc = ctx.scores[f"beta_vae.{key}_accuracy"]
        out[f"beta_vae.{key}_accuracy"] = rng.binomial(num, acc, size=b) / num
    return out


def _factor_vae(ctx: _Context) -> dict:
    """Vote classifier fixed; the points of each vote table are resampled (a multinomial)."""
    p, b = ctx.predictions("factor_vae"), ctx.idx.shape[0]
    rng = ctx.seed_for(0, "factor_vae.points")
    if p["classifier"] is None:
        return {}
    out = {}
    for key in ("train", "eval"):
        votes = np.asarray(p[f"{key}_votes"])
        total = int(votes.sum())
        draws = rng.multinomial(total, votes.ravel() / total, size=b).reshape((b,) + votes.shape)
        cols = np.arange(votes.shape[1])
        out[f"factor_vae.{key}_accuracy"] = draws[:, p["classifier"], cols].sum(axis=1) / total
    return out


#: keys whose intervals come from refits (few: a Student-t interval, not percentiles)
REFIT_KEYS = ("dci.disentanglement", "dci.completeness")


def t_interval(point: float, refits, level: float) -> tuple[float, float]:
    """``point ± t(level, R−1)·sd(refits)``: the normal bootstrap interval, with Student's t
    because R is small (a 2.5 % percentile of 5-10 values is the minimum, too narrow)."""
    from scipy.stats import t

    v = np.asarray(refits, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return float("nan"), float("nan")
    half = float(t.ppf(0.5 + level / 2.0, len(v) - 1) * np.std(v, ddof=1))
    return point - half, point + half


def _dci_refit_b(ctx: _Context, b: int) -> dict:
    from disentkit.metrics.dci import dci

    rows = ctx.idx[b]
    out = dci(ctx.codes[rows], ctx.factors[rows], factor_names=ctx.names,
              random_state=ctx.seed_for(b, "dci"), **ctx.options)
    return {k: out[k] for k in ("dci.disentanglement", "dci.completeness")}


def _refits(ctx: _Context, refits: int, tick) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for b in range(refits):
            for key, v in _dci_refit_b(ctx, b).items():
                out.setdefault(key, []).append(float(v))
            if tick is not None:
                tick(1)
    return out


#: metric → (vectorised resampler over all B, per-resample resampler)
RESAMPLERS = {
    "omes": (None, _omes_b),
    "dci": (_dci, None),
    "mig": (None, _mig_b),
    "sap": (_sap, None),
    "modularity": (_modularity, _modularity_b),
    "beta_vae": (_beta_vae, None),
    "factor_vae": (_factor_vae, None),
    "downstream": (_downstream, None),
}

#: how each metric's interval is obtained (recorded in the output)
METHODS = {
    "omes": "recomputed on each resample (no fit)",
    "dci": "informativeness: fit once, resampled predictions; disentanglement/completeness: "
    "refitted on the first resamples, point ± t·sd of the refits",
    "mig": "recomputed on each resample (no fit)",
    "sap": "fit once, resampled test predictions",
    "modularity": "modularity recomputed (no fit); explicitness: fit once, resampled AUC",
    "beta_vae": "fit once, resampled points (binomial)",
    "factor_vae": "vote classifier fitted once, resampled votes (multinomial)",
    "downstream": "fit once, resampled test predictions",
}


def fast_intervals(
    names, codes, factors, factor_names, scores, details, *, n_train, num_resamples, seed_for,
    options, seed=0, level=0.95, refits=DEFAULT_REFITS, tick=None,
) -> tuple[dict[str, tuple[float, float]], dict]:
    """Intervals of the metrics ``names`` whose point estimate gave ``scores`` and ``details`` (with
    ``predictions``, see ``keep_predictions`` of each metric), from ``num_resamples`` row
    resamples — the same rows as :func:`bootstrap_intervals`. ``seed_for(b, metric)`` gives a
    resample's generator; ``options`` (backend, n_jobs, train_fraction) go to the DCI refits.
    ``tick(1)`` is called after each resample and each refit (``num_resamples`` + refits
    ticks in all, see :func:`progress_total`). Returns ``(intervals, info)``.
    """
    _check(num_resamples, level)
    refits = min(int(refits), num_resamples) if "dci" in names else 0
    if "dci" in names and refits < 2:
        raise ValueError(f"DCI intervals need at least 2 refits; found {refits}")
    idx = np.stack([resample_rows(len(codes), n_train, resample_generator(seed, b))
                    for b in range(num_resamples)])
    ctx = _Context(codes, factors, factor_names, n_train, idx, details, seed_for, options, scores)
    values: dict[str, list] = {}
    with warnings.catch_warnings():  # a resample may lose a rare class: expected, not news
        warnings.simplefilter("ignore")
        for name in names:
            whole = RESAMPLERS[name][0]
            if whole is not None:
                values.update({k: list(v) for k, v in whole(ctx).items()})
        per_b = [RESAMPLERS[n][1] for n in names if RESAMPLERS[n][1] is not None]
        # the refits (LightGBM, mostly outside the GIL) run beside the numpy loop: 2 cores busy
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(_refits, ctx, refits, tick)
            for b in range(num_resamples):
                for step in per_b:
                    for key, v in step(ctx, b).items():
                        values.setdefault(key, []).append(float(v))
                if tick is not None:
                    tick(1)
            for key, v in pending.result().items():
                values[key] = v
    intervals = percentile_intervals(values, level)
    for key in [k for k in REFIT_KEYS if k in values]:
        intervals[key] = t_interval(scores[key], values.pop(key), level)
    info = {
        "methods": {n: METHODS[n] for n in names},
        "refits": {"dci.disentanglement": refits, "dci.completeness": refits} if refits else {},
    }
    return intervals, info
