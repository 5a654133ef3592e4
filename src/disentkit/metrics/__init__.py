"""Disentanglement metrics: pure functions on arrays (docs/architecture.md, "Contracts", "Metrics").

``metric(codes [N, D], factors [N, K], *, options, random_state) -> MetricResult`` — a flat dict
of namespaced scores (``omes.score``, ``dci.disentanglement`` …) with ``details`` beside it.
:data:`METRICS` maps the public names (the CLI values) to the functions; :func:`score` runs a
selection of them with one seed, backend and train fraction, optionally with bootstrap intervals;
:func:`compute` is the Python API's shorthand (codes object in, flat dict out).

OMES is the paper's metric (Dapueto et al. 2024, §3.2); DCI, MIG, SAP, modularity/explicitness,
BetaVAE, FactorVAE and downstream GBT/MLP accuracies are the established ones it is compared with
(§4).
"""

from __future__ import annotations

import inspect
import time
import zlib
from typing import Callable, Sequence

import numpy as np

from disentkit.metrics._common import (
    BACKENDS,
    DEFAULT_TRAIN_FRACTION,
    MetricResult,
    check_backend,
    check_inputs,
    split_rows,
)
from disentkit.metrics.beta_vae import beta_vae, factor_vae
from disentkit.metrics.bootstrap import (
    DEFAULT_REFITS,
    fast_intervals,
    progress_total,
    progress_ticks,
)
from disentkit.metrics.dci import dci
from disentkit.metrics.downstream import downstream
from disentkit.metrics.mig import mig
from disentkit.metrics.modularity import modularity
from disentkit.metrics.omes import omes
from disentkit.metrics.sap import sap
from disentkit.progress import track

#: public name -> metric function; the order is the order of :func:`score`'s output
METRICS = {
    "omes": omes,
    "dci": dci,
    "mig": mig,
    "sap": sap,
    "modularity": modularity,
    "beta_vae": beta_vae,
    "factor_vae": factor_vae,
    "downstream": downstream,
}

__all__ = [
    "BACKENDS",
    "METRICS",
    "MetricResult",
    "beta_vae",
    "dci",
    "downstream",
    "score",
    "compute",
    "factor_vae",
    "mig",
    "modularity",
    "omes",
    "resolve_metrics",
    "sap",
]


def resolve_metrics(metrics: str | Sequence[str] | None) -> list[str]:
    """Metric names from a list or a comma-separated string (``None`` → all), validated."""
    if metrics is None:
        return list(METRICS)
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise ValueError(
            f"unknown metric(s) {unknown or metrics!r}; valid metrics: {', '.join(METRICS)}"
        )
    return list(dict.fromkeys(metrics))


def metric_seed(seed: int, name: str) -> np.random.Generator:
    """Each metric's generator depends on the seed and its name only, so adding or removing
    metrics from a selection never changes another metric's numbers."""
    return np.random.default_rng([int(seed), zlib.crc32(name.encode())])


def _run(names, codes, factors, factor_names, common, keep=False, show=False) -> tuple[dict, dict]:
    """Run ``names`` in order; ``keep`` asks each metric for its per-row predictions
    (``details[name]["predictions"]``, what :func:`fast_intervals` resamples); ``show``: one
    progress unit per metric (:mod:`disentkit.progress`)."""
    flat, details, timing = {}, {}, {}
    for name in track(names, desc="metrics", unit="metrics", mode="auto" if show else "off"):
        start = time.perf_counter()
        fn = METRICS[name]
        accepted = inspect.signature(fn).parameters
        kwargs = {k: v for k, v in common.items() if k in accepted and k != "seed"}
        if keep and "keep_predictions" in accepted:
            kwargs["keep_predictions"] = True
        if "random_state" in accepted:
            kwargs["random_state"] = metric_seed(common["seed"], name)
        if name == "downstream" and "omes" in details:
            kwargs["association"] = details["omes"]["association"]
            kwargs["inactive"] = details["omes"]["inactive"]
        if name == "downstream" and "dci" in details:
            kwargs["gbt_accuracies"] = details["dci"]["test_accuracy"]
        out = fn(codes, factors, factor_names=factor_names, **kwargs)
        flat.update(out)
        details[name] = out.details
        timing[name] = round(time.perf_counter() - start, 4)
    details["timing_s"] = timing
    return flat, details


def score(
    codes,
    factors,
    metrics: str | Sequence[str] | None = None,
    *,
    factor_names: Sequence[str] | None = None,
    backend: str = "reference",
    seed: int = 0,
    train_fraction: float = DEFAULT_TRAIN_FRACTION,
    bootstrap: int = 0,
    bootstrap_refits: int = DEFAULT_REFITS,
    n_jobs: int | None = None,
    progress: bool | Callable[[int], None] = True,
) -> tuple[dict[str, float], dict]:
    """Run ``metrics`` (default: all) and return ``(flat scores, details per metric)``.

    Inputs are validated once (single-valued factors are skipped with one warning and listed in
    ``details["skipped_factors"]``); ``details["timing_s"]`` holds each metric's seconds.
    With ``bootstrap=B`` (B ≥ 2) every key also gets
    ``<key>.ci_low`` / ``<key>.ci_high``, the 95% percentile interval over B row resamples
    (within the train and within the test rows). Classifiers are fitted once and their per-row
    predictions resampled; only DCI disentanglement/completeness are refitted, on the first
    ``bootstrap_refits`` resamples (:mod:`disentkit.metrics.bootstrap`);
    ``details["bootstrap"]`` records the method of each metric and the refits. ``progress``:
    True reports through :mod:`disentkit.progress` (a bar on a terminal, lines when piped, silent
    unless logging shows INFO), False is silent, a callable is called with 1 after each resample.
    """
    names = resolve_metrics(metrics)
    backend = check_backend(backend)
    inputs = check_inputs(codes, factors, factor_names)
    n_train = split_rows(inputs.n, train_fraction)
    if bootstrap < 0 or bootstrap == 1:
        raise ValueError(f"bootstrap must be 0 (off) or at least 2 resamples; found {bootstrap}")
    common = {
        "backend": backend,
        "train_fraction": train_fraction,
        "n_jobs": n_jobs,
        "seed": seed,
    }
    flat, details = _run(
        names, inputs.codes, inputs.factors, inputs.factor_names, common, keep=bool(bootstrap),
        show=True,
    )
    details["skipped_factors"] = list(inputs.skipped)
    if bootstrap:
        intervals, info = _intervals(
            names, inputs, flat, details, common, n_train, bootstrap, bootstrap_refits, progress
        )
        for key in list(flat):
            if key in intervals:
                flat[f"{key}.ci_low"], flat[f"{key}.ci_high"] = intervals[key]
        details["bootstrap"] = {"resamples": int(bootstrap), "level": 0.95, **info}
    for name in names:
        details[name].pop("predictions", None)  # arrays: for the resampling, not the output
    return flat, details


def _intervals(names, inputs, flat, details, common, n_train, resamples, refits, progress):
    """Fast intervals (:func:`fast_intervals`) with resample ``b`` seeded like a rerun of the
    suite with seed ``seed + 1 + b`` (the refit-everything definition's seeds)."""
    seed = common["seed"]
    options = {k: common[k] for k in ("backend", "n_jobs", "train_fraction")}

    def seed_for(b: int, name: str) -> np.random.Generator:
        return metric_seed(seed + 1 + b, name)

    kwargs = dict(
        n_train=n_train, num_resamples=resamples, seed_for=seed_for, options=options,
        seed=seed, refits=bootstrap_refits_checked(refits),
    )
    args = (names, inputs.codes, inputs.factors, inputs.factor_names, flat, details)
    if progress is True:
        with progress_ticks(progress_total(names, resamples, refits)) as tick:
            return fast_intervals(*args, tick=tick, **kwargs)
    return fast_intervals(*args, tick=progress or None, **kwargs)


def bootstrap_refits_checked(refits: int) -> int:
    """The DCI refit count, refused below 2 (a percentile of one value is no interval)."""
    if int(refits) < 2:
        raise ValueError(f"bootstrap_refits must be at least 2; found {refits}")
    return int(refits)
def compute(codes, metrics: str | Sequence[str] | None = None, **options) -> dict[str, float]:
    """The flat scores of ``codes``: an object with ``mean``, ``factors`` and ``factor_names``
    (what ``Run.encode`` returns) or a ``(codes [N, D], factors [N, K])`` pair. ``options`` are
    :func:`score`'s (``backend``, ``seed``, ``train_fraction``, ``bootstrap``, ``n_jobs``); the
    backend defaults to ``fast``."""
    if isinstance(codes, tuple) and len(codes) == 2:
        values, factors, names = codes[0], codes[1], options.pop("factor_names", None)
    else:
        values, factors = codes.mean, codes.factors
        names = options.pop("factor_names", getattr(codes, "factor_names", None))
    options.setdefault("backend", "fast")
    return score(values, factors, metrics, factor_names=names, **options)[0]
