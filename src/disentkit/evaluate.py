"""Evaluate one model on one dataset and write an evaluation folder (docs/architecture.md, "Contracts" run folder).

The paper evaluates every model — a source on its own data, a source zero-shot on a target
("before"), the same after fine-tuning ("after") — on 15,008 encoded samples with OMES, DCI, MIG
and GBT/MLP accuracy on the full and the OMES-pruned code (Dapueto et al. 2024, §4). One call here
does that for one (model, dataset) and writes, atomically:

* ``representations.npz`` (``mean``, ``sampled``) and ``classes.csv``: the interchange format;
* ``results.json``: flat metrics, the OMES relation matrix and association, what was evaluated
  (``kind``, dataset, model, transfer settings), versions, backend, seed and elapsed time;
* ``figures/``: reconstructions, latent traversals labelled with OMES's factor, relation heat map.

A folder whose ``results.json`` is complete is skipped (``evaluate_model`` returns it as is).
"""

from __future__ import annotations

import dataclasses
import platform
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from disentkit.data.base import FactorDataset
from disentkit.io import read_json, write_json
from disentkit.report.collect import KINDS, SCHEMA

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
    train_fraction: float = 2.0 / 3.0
    bootstrap: int = 0
    batch_size: int = 256
    figures: bool = True
    #: threads for the classifiers of the metrics (None: the metrics' own default)
    n_jobs: int | None = None
    #: "lines" (default): short lines of samples that differ in one factor, so that OMES finds its
    #: intervention pairs on large grids (see :class:`LineSampled`); "uniform": i.i.d. samples
    sampling: str = "lines"
    #: samples per line with ``sampling="lines"``
    line_length: int = 4
    #: classifiers of the downstream metric (None: all, i.e. gbt, mlp, their pruned variants and
    #: gbt_single); the paper's transfer tables need gbt and gbt_pruned only
    downstream_models: tuple[str, ...] | None = None


@dataclass
class EvalInfo:
    """What is evaluated, recorded in ``results.json`` for the report to group by."""

    kind: str
    model: dict[str, Any] = field(default_factory=dict)
    transfer: dict[str, Any] | None = None
    split: str = "all combinations"
    log: str | None = None  # log.jsonl of the training that produced the model, relative path


class LineSampled(FactorDataset):
    """Evaluation samples drawn as short *lines*: a uniform base combination, then up to
    ``line_length`` members that differ from it in one factor only (the factor cycles over the
    varying ones; values distinct, uniform; only combinations the dataset contains).

    Why: OMES (Dapueto et al. 2024, §3.2) reads pairs of samples that differ in exactly one
    factor. Drawn i.i.d. from Color-dSprites' 5.2 M combinations, 6,000 samples hold almost no
    such pair (the reference code found some only because its index bug shrank the grid). Lines
    give every factor thousands of pairs while each factor's marginal stays uniform. Lines are
    contiguous, so the classifiers' train/test split (first 2/3 of the rows) keeps whole lines
    apart, except the one line cut by the boundary.
    """

    def __init__(self, base: FactorDataset, line_length: int = 4):
        if line_length < 2:
            raise ValueError(f"line_length must be >= 2, found {line_length}")
        self.base, self.line_length = base, int(line_length)
        self.name = base.name
        self.factor_names = tuple(base.factor_names)
        self.factor_sizes = tuple(base.factor_sizes)
        self.image_shape = tuple(base.image_shape)
        self.combinations = getattr(base, "combinations", None)

    def images(self, factors, rng=None):
        return self.base.images(factors, rng)

    def contains(self, factors):
        return self.base.contains(factors)

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        sizes = np.asarray(self.factor_sizes, dtype=np.int64)
        varying = np.flatnonzero(sizes > 1)
        if varying.size == 0:
            return self.base.sample_factors(n, rng)
        chunks, have, turn = [], 0, 0
        while have < n:
            m = max((n - have) // 2, 8)  # lines this round (each keeps >= 1 member, the base)
            base = self.base.sample_factors(m, rng)
            k = varying[(turn + np.arange(m)) % varying.size]
            turn += m
            # distinct values of factor k per line, uniform: ranks of random keys
            keys = rng.random((m, int(sizes.max())))
            keys[np.arange(int(sizes.max()))[None, :] >= sizes[k][:, None]] = np.inf
            values = np.argsort(keys, axis=1)[:, : self.line_length - 1]
            lines = np.repeat(base[:, None, :], self.line_length, axis=1)
            lines[np.arange(m)[:, None], 1 + np.arange(values.shape[1])[None, :], k[:, None]] = values
            keep = np.ones((m, self.line_length), dtype=bool)
            if values.shape[1] < self.line_length - 1:
                keep[:, 1 + values.shape[1]:] = False
            keep[:, 1:] &= values < sizes[k][:, None]
            keep[:, 1:] &= values != base[np.arange(m), k][:, None]  # not the base again
            flat, flat_keep = lines.reshape(-1, len(sizes)), keep.reshape(-1)
            flat_keep &= self.base.contains(flat)
            rows = flat[flat_keep]
            chunks.append(rows)
            have += len(rows)
        return np.concatenate(chunks)[:n]


def versions() -> dict[str, str]:
    """Library versions that change numbers (recorded with every result, docs/architecture.md, principle 9)."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("disentkit", "numpy", "torch", "scikit-learn", "lightgbm", "scipy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            continue
    return out


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
    from disentkit.report import figures as F

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
    """:func:`disentkit.metrics.evaluate` with the settings' selection; when
    ``downstream_models`` narrows the downstream classifiers, that metric runs on its own with
    the same seed derivation and OMES association as inside ``evaluate``."""
    from disentkit.metrics import evaluate, metric_seed, resolve_metrics
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
    flat, details = evaluate(codes, factors, first, bootstrap=settings.bootstrap, **common)
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
    """Encode ``settings.n`` samples of ``dataset`` with ``model``, compute the metrics, write
    the evaluation folder, and return the results dict. Skips (returns the saved results) when
    ``folder`` already holds a complete evaluation.

    The model must take the dataset's channels (see :func:`disentkit.transfer.adapt_channels`).
    """
    from disentkit.metrics.representations import encode_dataset, save_representations

    folder = Path(folder)
    if info.kind not in KINDS:
        raise ValueError(f"evaluation kind must be one of {KINDS}, found {info.kind!r}")
    if is_complete(folder):
        return read_json(folder / "results.json")
    settings = settings or EvalSettings()
    model.eval()
    if model.in_channels != dataset.image_shape[0]:
        raise ValueError(
            f"the model takes {model.in_channels}-channel images, dataset {dataset.name!r} has "
            f"{dataset.image_shape[0]}; adapt the model first (disentkit.transfer.adapt_channels)"
        )
    start = time.perf_counter()
    names = list(dataset.factor_names)
    if settings.sampling not in ("lines", "uniform"):
        raise ValueError(f"sampling must be 'lines' or 'uniform', found {settings.sampling!r}")
    drawn = LineSampled(dataset, settings.line_length) if settings.sampling == "lines" else dataset
    mean, sampled, factors = encode_dataset(model, drawn, settings.n, settings.seed,
                                            batch_size=settings.batch_size)
    save_representations(folder, mean, sampled, factors, names)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        flat, details = compute_all_metrics(mean, factors, names, settings)
    notes = sorted({str(w.message) for w in caught})
    if notes:  # one line on the console; every message kept in results.json
        print(f"note: {dataset.name}: {len(notes)} metric warning(s), listed in "
              f"{folder / 'results.json'}; first: {notes[0]}", file=sys.stderr)
    omes = omes_block(details, names)
    figs = {}
    if settings.figures:
        figs = write_figures(model, dataset, factors, mean, omes, folder, dataset.name)
    results = {
        "schema": SCHEMA,
        "kind": info.kind,
        "dataset": {"name": dataset.name, "factor_names": names,
                    "factor_sizes": list(dataset.factor_sizes),
                    "image_shape": list(dataset.image_shape), "split": info.split,
                    "n": int(settings.n), "sampling": settings.sampling},
        "model": info.model,
        "transfer": info.transfer,
        "metrics": {k: float(v) for k, v in flat.items()},
        "omes": omes,
        "figures": figs,
        "log": info.log,
        "warnings": notes,
        "meta": {"versions": versions(), "backend": settings.backend, "seed": settings.seed,
                 "train_fraction": settings.train_fraction, "n": int(settings.n),
                 "elapsed_s": round(time.perf_counter() - start, 3),
                 "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
    }
    write_json(folder / "results.json", results)
    return results


def evaluate_source(run_dir: str | Path, settings: EvalSettings | None = None, *, dataset=None,
                    floor: bool = True) -> dict:
    """Evaluate a trained source run on its own dataset (``RUN/eval``) and, with ``floor``, the
    same network at its initialisation (``RUN/floor``): the untrained floor that shows what
    training added (an untrained encoder scores DCI-D ≈ 0.03, MIG ≈ 0.01 on dSprites).

    Returns ``{"source": results, "floor": results or None}``; finished folders are skipped.
    """
    from disentkit.data.registry import get_dataset
    from disentkit.train.checkpoint import load_run
    from disentkit.train.prepare import build_network, seeds

    run_dir = Path(run_dir)
    model, cfg = load_run(run_dir, device="cpu")
    if dataset is None:
        kwargs = dict(cfg.data.options)
        if cfg.data.root:
            kwargs["root"] = cfg.data.root
        dataset = get_dataset(cfg.data.dataset, **kwargs)
    info = {"run_dir": str(run_dir), "source_dataset": cfg.data.dataset, "method": cfg.method.name,
            "arch": cfg.model.arch, "beta": cfg.method.beta, "latent_dim": cfg.model.latent_dim,
            "seed": cfg.run.seed, "steps": cfg.run.steps}
    out = {"source": evaluate_model(model, dataset, run_dir / "eval",
                                    EvalInfo("source", info, log="../log.jsonl"), settings)}
    out["floor"] = None
    if floor:
        untrained_cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, init_from=None))
        untrained = build_network(untrained_cfg, model.in_channels, seeds(cfg.run.seed)["init"])
        floor_settings = dataclasses.replace(settings or EvalSettings(), figures=False)
        out["floor"] = evaluate_model(untrained, dataset, run_dir / "floor",
                                      EvalInfo("floor", {**info, "steps": 0}), floor_settings)
    return out
