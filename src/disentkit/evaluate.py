"""Evaluate one model on one dataset and write an evaluation folder (docs/architecture.md, "Contracts").

The paper evaluates every model — a source on its own data, a source zero-shot on a target
("before"), the same after fine-tuning ("after") — on 15,008 encoded samples with OMES, DCI, MIG
and GBT/MLP accuracy on the full and the OMES-pruned code (Dapueto et al. 2024, §4). This module
owns the two steps and the file between them and the report:

* :func:`encode` — (model, dataset, n, sampling, seed) → codes and factor classes. The rows never
  repeat a factor combination, and the classifiers' train/test split (the first 2/3 of the rows,
  :func:`disentkit.metrics._common.split_rows`) falls between whole lines, so no test combination
  (nor a line a test row belongs to) is seen in training (docs/metrics.md, "evaluation"). Where the
  evaluated part holds fewer combinations than ``n``, all are used and the smaller ``n`` recorded.
* :func:`evaluate_model` — encode, compute the metrics and write, atomically,
  ``representations.npz`` + ``classes.csv`` (the interchange format), ``results.json`` (schema
  :data:`SCHEMA`: metrics, the OMES block, what was evaluated and how — ``evaluation``: n,
  distinct combinations, ``test_rows_seen_in_train`` — versions, backend, seed, time) and
  ``figures/``. A folder whose ``results.json`` is complete is skipped.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from disentkit.config import EVAL_SMOKE
from disentkit.data.base import FactorDataset
from disentkit.data.kinds import kinds_of
from disentkit.data.views import SAMPLINGS, draw_rows  # noqa: F401 (SAMPLINGS: the setting's values)
from disentkit.io import read_json, write_json
from disentkit.metrics._common import DEFAULT_TRAIN_FRACTION, library_versions
from disentkit.metrics.representations import save_representations
from disentkit.progress import track

log = logging.getLogger(__name__)

#: the schema tag of ``results.json``; :mod:`disentkit.report` reads files with this tag only
SCHEMA = "disentkit.results/1"
#: what an evaluation is of: a trained source on its data, the untrained network of the same
#: architecture (on the source's data, or on a transfer's target when ``transfer`` is set), the
#: source zero-shot on a target, and the same after fine-tuning
KINDS = ("source", "floor", "before", "after")

#: images in the reconstruction figure and steps of each traversal row
N_RECON = 8
N_TRAVERSAL = 9


@dataclass
class EvalSettings:
    """How to evaluate: the paper's protocol is n = 15,008, train fraction 2/3, every metric."""

    n: int = 15008
    seed: int = 0
    metrics: tuple[str, ...] | None = None  # None: every metric the library offers
    backend: str = "fast"
    train_fraction: float = DEFAULT_TRAIN_FRACTION
    bootstrap: int = 0
    batch_size: int = 256
    figures: bool = True
    #: threads for the classifiers of the metrics (None: the metrics' own default)
    n_jobs: int | None = None
    #: "lines" (default): short lines of samples that differ in one factor, so that OMES finds its
    #: intervention pairs on large grids (see :class:`disentkit.data.views.LineSampled`);
    #: "uniform": samples drawn uniformly; both without repeating a combination
    sampling: str = "lines"
    #: samples per line with ``sampling="lines"``
    line_length: int = 4
    #: classifiers of the downstream metric (None: all, i.e. gbt, mlp, their pruned variants and
    #: gbt_single); the paper's transfer tables need gbt and gbt_pruned only
    downstream_models: tuple[str, ...] | None = None
    #: smoke sizes (seconds-long tests; set by :meth:`smoke`): recorded as ``meta.smoke``, so a
    #: report built from them says its verdicts mean nothing
    smoke_sizes: bool = False

    def check(self):
        """Range checks, as ``(field, ok, expected, found)`` rows (:func:`disentkit.config.require`)."""
        return [
            ("n", self.n >= 2, ">= 2", self.n),
            ("backend", self.backend in ("reference", "fast"), "one of ('reference', 'fast')",
             self.backend),
            ("train_fraction", 0.0 < self.train_fraction < 1.0, "in (0, 1)", self.train_fraction),
            ("bootstrap", self.bootstrap >= 0, ">= 0", self.bootstrap),
            ("batch_size", self.batch_size >= 1, ">= 1", self.batch_size),
            ("n_jobs", self.n_jobs is None or self.n_jobs >= 1, ">= 1 or null", self.n_jobs),
            ("sampling", self.sampling in SAMPLINGS, f"one of {SAMPLINGS}", self.sampling),
            ("line_length", self.line_length >= 2, ">= 2", self.line_length),
        ]

    def smoke(self) -> "EvalSettings":
        """Seconds-long evaluation (:data:`disentkit.config.EVAL_SMOKE`): 160 samples, the metrics
        the report's tables read (OMES, DCI, MIG, GBT on the full and pruned code), fast backend."""
        return dataclasses.replace(self, **EVAL_SMOKE)


@dataclass
class EvalInfo:
    """What is evaluated, recorded in ``results.json`` for the report to group by."""

    kind: str
    model: dict[str, Any] = field(default_factory=dict)
    transfer: dict[str, Any] | None = None
    split: str = "all combinations"
    log: str | None = None  # log.jsonl of the training that produced the model, relative path


# ---------------------------------------------------------------------------- rows and codes
@dataclass
class Encoding:
    """What a model makes of an evaluation's rows: posterior means and samples [n, D] (float32),
    factor classes [n, K] (int64) and the rows' record (see :func:`draw_rows`)."""

    mean: np.ndarray
    sampled: np.ndarray
    factors: np.ndarray
    record: dict[str, Any]


def encode(model, dataset: FactorDataset, n: int, *, sampling: str = "lines", seed: int = 0,
           line_length: int = 4, train_fraction: float = DEFAULT_TRAIN_FRACTION,
           batch_size: int = 256, device="cpu") -> Encoding:
    """Encode ``n`` rows of ``dataset`` (:func:`draw_rows`) with ``model``.

    ``model.encode(x) -> (mu, logvar)`` gives the posterior mean and a sample mu + exp(logvar/2)·ε,
    ε from a ``torch.Generator`` seeded by ``seed`` and drawn for all rows at once (so
    ``batch_size`` does not change the samples); images are rendered a batch at a time with the
    generator that drew the rows (their nuisances: noise backgrounds, crops). The same arguments
    give the same numbers, which is what lets ``disentkit encode`` reproduce ``run``'s rows.
    """
    import torch

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; found {batch_size}")
    channels = getattr(model, "in_channels", None)
    if channels is not None and channels != dataset.image_shape[0]:
        raise ValueError(
            f"the model takes {channels}-channel images; dataset {dataset.name!r} has "
            f"{dataset.image_shape[0]} (adapt the model: disentkit.transfers.adapt_channels)")
    rng = np.random.default_rng(seed)
    rows = draw_rows(dataset, n, sampling=sampling, seed=seed, line_length=line_length,
                     train_fraction=train_fraction, rng=rng)
    factors, total = rows.factors, len(rows.factors)
    gen = torch.Generator().manual_seed(int(seed))
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    means, samples, eps = [], [], None
    try:
        with torch.no_grad():
            for start in track(range(0, total, batch_size), desc="encode", unit="batches"):
                x = dataset.images(factors[start: start + batch_size], rng=rng)
                mu, logvar = model.encode(torch.as_tensor(x, dtype=torch.float32, device=device))
                mu, logvar = mu.float().cpu(), logvar.float().cpu()
                if eps is None:  # all the noise at once: samples do not depend on batch_size
                    eps = torch.randn((total, mu.shape[1]), generator=gen)
                means.append(mu.numpy())
                samples.append((mu + torch.exp(0.5 * logvar) * eps[start: start + len(mu)]).numpy())
    finally:
        if was_training and hasattr(model, "train"):
            model.train()
    return Encoding(np.concatenate(means).astype(np.float32),
                    np.concatenate(samples).astype(np.float32), factors, rows.record)


def is_complete(folder: str | Path) -> bool:
    """True when ``folder/results.json`` is a finished disentkit evaluation."""
    path = Path(folder) / "results.json"
    if not path.is_file():
        return False
    try:
        data = read_json(path)
    except (ValueError, OSError):
        return False
    return isinstance(data, dict) and data.get("schema") == SCHEMA and "metrics" in data


def omes_block(details: dict, factor_names: list[str]) -> dict | None:
    """The OMES relation matrix restricted to active dimensions, their original indices, the
    factor names and the association — what the heat map and the traversal labels need."""
    d = details.get("omes") if isinstance(details, dict) else None
    if not d or "relation" not in d:
        return None
    relation = np.asarray(d["relation"], dtype=float)
    inactive = set(int(i) for i in d.get("inactive", []))
    dims = [i for i in range(relation.shape[0]) if i not in inactive]
    return {
        "relation": relation[dims].tolist(),
        "dims": dims,
        "factor_names": list(d.get("factor_names", factor_names)),
        "association": {k: (None if v is None else int(v)) for k, v in d.get("association", {}).items()},
    }


def _decode_images(model, z: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        logits = model.decode(torch.as_tensor(z, dtype=torch.float32))
    return torch.sigmoid(logits.float()).numpy()


def _encode_mean(model, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        mu, _ = model.encode(torch.as_tensor(x, dtype=torch.float32))
    return mu.float().numpy()


def traversal_rows(model, mean: np.ndarray, dims: list[int], n_steps: int = N_TRAVERSAL):
    """For each dimension, decode the first sample's code with that dimension swept from the 2nd
    to the 98th percentile of its values over the evaluation set (its range in the data)."""
    base = mean[0].astype(np.float32)
    rows = []
    for d in dims:
        lo, hi = np.percentile(mean[:, d], [2, 98])
        z = np.repeat(base[None], n_steps, axis=0)
        z[:, d] = np.linspace(lo, hi, n_steps)
        rows.append((d, _decode_images(model, z)))
    return rows


def write_figures(model, dataset, factors, mean, omes, folder: Path, title: str) -> dict[str, str]:
    """Reconstructions, traversals and the relation heat map of one evaluation."""
    from disentkit.viz import figures as F

    out: dict[str, str] = {}
    fig_dir = folder / "figures"
    x = dataset.images(factors[:N_RECON], np.random.default_rng(0))
    recon = _decode_images(model, _encode_mean(model, x))
    F.save_figure(F.reconstruction_figure(x, recon, f"reconstructions: {title}"),
                  fig_dir / "reconstructions.png")
    out["reconstructions"] = "figures/reconstructions.png"
    if omes is not None:
        dims = omes["dims"] or list(range(mean.shape[1]))
        rows = traversal_rows(model, mean, dims)
        F.save_figure(F.traversal_figure(rows, omes["association"], f"latent traversals: {title}"),
                      fig_dir / "traversals.png")
        out["traversals"] = "figures/traversals.png"
        if omes["dims"]:
            fig = F.relation_figure(np.asarray(omes["relation"]), omes["dims"], omes["factor_names"],
                                    omes["association"], f"OMES relation: {title}")
            F.save_figure(fig, fig_dir / "relation.png")
            out["relation"] = "figures/relation.png"
    return out


def compute_all_metrics(codes, factors, names, settings: EvalSettings) -> tuple[dict, dict]:
    """:func:`disentkit.metrics.score` with the settings' selection; when
    ``downstream_models`` narrows the downstream classifiers, that metric runs on its own with
    the same seed derivation and OMES association as inside ``evaluate``."""
    from disentkit.metrics import metric_seed, resolve_metrics, score
    from disentkit.metrics.downstream import downstream

    names_m = resolve_metrics(settings.metrics)
    split = settings.downstream_models is not None and "downstream" in names_m
    common = dict(factor_names=names, backend=settings.backend, seed=settings.seed,
                  train_fraction=settings.train_fraction, n_jobs=settings.n_jobs)
    if split and settings.bootstrap:
        raise ValueError("downstream_models cannot be combined with bootstrap intervals")
    first = [m for m in names_m if not (split and m == "downstream")]
    if split and "omes" not in first:
        first.append("omes")  # the pruned code needs OMES's association
    flat, details = score(codes, factors, first, bootstrap=settings.bootstrap, **common)
    if split:
        out = downstream(codes, factors, factor_names=names, backend=settings.backend,
                         train_fraction=settings.train_fraction, n_jobs=settings.n_jobs,
                         models=tuple(settings.downstream_models),
                         association=details["omes"]["association"],
                         inactive=details["omes"]["inactive"],
                         random_state=metric_seed(settings.seed, "downstream"))
        flat.update(out)
        details["downstream"] = out.details
    return flat, details


def evaluate_model(model, dataset, folder: str | Path, info: EvalInfo,
                   settings: EvalSettings | None = None) -> dict:
    """Encode ``settings.n`` rows of ``dataset`` with ``model`` (:func:`encode`), compute the
    metrics, write the evaluation folder, and return the results dict. Skips (returns the saved
    results) when ``folder`` already holds a complete evaluation.

    The model must take the dataset's channels (see :func:`disentkit.models.channels.adapt_channels`).
    """
    folder = Path(folder)
    if info.kind not in KINDS:
        raise ValueError(f"evaluation kind must be one of {KINDS}, found {info.kind!r}")
    if is_complete(folder):
        return read_json(folder / "results.json")
    settings = settings or EvalSettings()
    model.eval()
    start = time.perf_counter()
    names = list(dataset.factor_names)
    enc = encode(model, dataset, settings.n, sampling=settings.sampling, seed=settings.seed,
                 line_length=settings.line_length, train_fraction=settings.train_fraction,
                 batch_size=settings.batch_size)
    if enc.record["test_rows_seen_in_train"]:  # pragma: no cover - draw_rows guarantees 0
        raise RuntimeError(f"{dataset.name}: test rows repeat training combinations")
    save_representations(folder, enc.mean, enc.sampled, enc.factors, names)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        flat, details = compute_all_metrics(enc.mean, enc.factors, names, settings)
    notes = sorted({str(w.message) for w in caught})
    if notes:  # one line in the log; every message kept in results.json
        log.warning("%s: %d metric warning(s), listed in %s; first: %s", dataset.name, len(notes),
                    folder / "results.json", notes[0])
    omes = omes_block(details, names)
    figs = {}
    if settings.figures:
        figs = write_figures(model, dataset, enc.factors, enc.mean, omes, folder, dataset.name)
    n = enc.record["n"]
    results = {
        "schema": SCHEMA,
        "kind": info.kind,
        "dataset": {"name": dataset.name, "factor_names": names,
                    "factor_sizes": list(dataset.factor_sizes),
                    "image_shape": list(dataset.image_shape), "split": info.split,
                    "n": n, "sampling": settings.sampling, "factor_kinds": kinds_of(dataset),
                    "nuisances": list(getattr(dataset, "nuisances", ()))},
        "evaluation": enc.record,
        "model": info.model,
        "transfer": info.transfer,
        "metrics": {k: float(v) for k, v in flat.items()},
        "omes": omes,
        "figures": figs,
        "log": info.log,
        "warnings": notes,
        "meta": {"versions": library_versions(), "backend": settings.backend, "seed": settings.seed,
                 "train_fraction": settings.train_fraction, "n": n, "smoke": bool(settings.smoke_sizes),
                 "elapsed_s": round(time.perf_counter() - start, 3),
                 "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
    }
    write_json(folder / "results.json", results)
    return results


def model_info(cfg, run_dir: str | Path) -> dict:
    """The source model's identity as ``results.json`` records it (``model``)."""
    return {"run_dir": str(run_dir), "source_dataset": cfg.data.dataset, "method": cfg.method.name,
            "arch": cfg.model.arch, "beta": cfg.method.beta, "latent_dim": cfg.model.latent_dim,
            "seed": cfg.run.seed, "steps": cfg.run.steps}


def untrained_network(cfg, in_channels: int):
    """The network of run config ``cfg`` at its initialisation (the same seed, no weights loaded):
    the floor every trained number is read beside (docs/metrics.md, "evaluation")."""
    from disentkit.training.prepare import build_network, seeds

    untrained_cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, init_from=None))
    return build_network(untrained_cfg, in_channels, seeds(cfg.run.seed)["init"])


def evaluate_source(run_dir: str | Path, settings: EvalSettings | None = None, *, dataset=None,
                    floor: bool = True) -> dict:
    """Evaluate a trained source run on its own dataset (``RUN/eval``) and, with ``floor``, the
    same network at its initialisation (``RUN/floor``) on the same rows: the untrained floor that
    shows what training added (an untrained encoder scores DCI-D ≈ 0.03, MIG ≈ 0.01 on dSprites).

    Returns ``{"source": results, "floor": results or None}``; finished folders are skipped.
    """
    from disentkit.data.registry import get_dataset
    from disentkit.training.checkpoint import load_run

    run_dir = Path(run_dir)
    model, cfg = load_run(run_dir, device="cpu")
    if dataset is None:
        kwargs = dict(cfg.data.options)
        if cfg.data.root:
            kwargs["root"] = cfg.data.root
        dataset = get_dataset(cfg.data.dataset, **kwargs)
    info = model_info(cfg, run_dir)
    out = {"source": evaluate_model(model, dataset, run_dir / "eval",
                                    EvalInfo("source", info, log="../log.jsonl"), settings)}
    out["floor"] = None
    if floor:
        floor_settings = dataclasses.replace(settings or EvalSettings(), figures=False)
        out["floor"] = evaluate_model(untrained_network(cfg, model.in_channels), dataset,
                                      run_dir / "floor", EvalInfo("floor", {**info, "steps": 0}),
                                      floor_settings)
    return out
