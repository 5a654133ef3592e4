"""The Python API behind ``import disentkit as dk`` (docs/python-api.md).

A short script trains a source, encodes a dataset with it, scores the codes and transfers it::

    import disentkit as dk
    ds = dk.datasets.get("color-dsprites")                     # a torch Dataset
    run = dk.train(dataset=ds, method="ada-gvae", steps=3000, out="runs/src")
    codes = run.encode(dk.datasets.get("shapes3d"), n=15008)  # codes + factors
    scores = dk.metrics.compute(codes, metrics=["omes", "dci", "mig"])
    tr = dk.transfer(run, target="coins-augmented", finetune_steps=500)

Everything here calls the library's own entry points (:func:`disentkit.training.train`,
:func:`disentkit.transfers.transfer`, :mod:`disentkit.evaluate`), so a run made from Python is
the same run folder the CLI makes, and the CLI reads it. A dataset object or a network class of
your own plugs in without registration: it is recorded by its ``module:Class`` path.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from disentkit._registry import class_path
from disentkit.config import TrainConfig, apply_overrides, require
from disentkit.data.base import FactorDataset
from disentkit.data.registry import get_dataset
from disentkit.evaluate import EvalSettings, encode
from disentkit.training import train as train_run
from disentkit.training.checkpoint import load_run
from disentkit.training.logging import read_log
from disentkit.transfers import TransferConfig, transfer as transfer_run

__all__ = ["Codes", "Run", "TransferResult", "train", "transfer"]


@dataclass(frozen=True)
class Codes:
    """What a model makes of ``n`` samples: posterior means and samples [n, D], the samples'
    factor classes [n, K] and the factor names (the interchange format's content)."""

    mean: np.ndarray
    sampled: np.ndarray
    factors: np.ndarray
    factor_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.mean)


class Run:
    """A training run folder (``config.json``, ``checkpoint/``, ``log.jsonl``) as an object."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not (self.path / "config.json").is_file():
            raise FileNotFoundError(f"{self.path} is not a run folder: expected {self.path / 'config.json'}")

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def config(self) -> TrainConfig:
        """The run's resolved :class:`~disentkit.config.TrainConfig`."""
        return load_run(self.path, device="cpu")[1]

    def model(self, device: str = "cpu"):
        """The trained network (eval mode) on ``device``."""
        return load_run(self.path, device=device)[0]

    def log(self) -> list[dict]:
        """The training log: one dict per logged step (loss, reconstruction, kl, beta, ...)."""
        return read_log(self.path)

    def encode(self, dataset: FactorDataset | str | None = None, n: int = 15008, *,
               sampling: str = "lines", seed: int = 0, batch_size: int = 256,
               device: str = "cpu") -> Codes:
        """Encode ``n`` samples of ``dataset`` (default: the training dataset) with this run's
        model, drawn exactly as the evaluation draws them (:func:`disentkit.evaluate.encode`:
        ``sampling`` "lines" or "uniform", no repeated combination; fewer rows when the dataset
        holds fewer combinations) with ``seed``."""
        settings = EvalSettings(n=n, seed=seed, batch_size=batch_size, sampling=sampling)
        require([row for row in settings.check() if row[0] in ("n", "sampling", "batch_size")],
                "encode")
        if dataset is None:
            dataset = self.config.data.dataset
        if isinstance(dataset, str):
            dataset = get_dataset(dataset)
        rows = encode(self.model(device=device), dataset, n, sampling=sampling, seed=seed,
                      line_length=settings.line_length, batch_size=batch_size, device=device)
        return Codes(rows.mean, rows.sampled, rows.factors, tuple(dataset.factor_names))


def train(dataset: FactorDataset | str, method: str = "ada-gvae", steps: int = 1000,
          out: str | Path = "disentkit-train", *, arch: str | type = "locatello",
          latent_dim: int = 10, beta: float = 1.0, lr: float = 1e-4, batch_size: int = 64,
          seed: int = 0, device: str = "auto", overrides: dict[str, Any] | None = None,
          resume: bool = False, overwrite: bool = False, progress=None) -> Run:
    """Train ``method`` on ``dataset`` (an object or a registered name) into the run folder ``out``.

    ``arch`` is a registered network name or your own ``nn.Module`` class built as
    ``Class(in_channels, latent_dim)`` with ``encode(x) -> (mu, logvar)`` and ``decode(z) ->
    logits``; ``overrides`` sets any other :class:`TrainConfig` field by dotted path
    (``{"optim.grad_clip": None}``). Returns the :class:`Run`.
    """
    data = dataset if isinstance(dataset, str) else class_path(dataset)
    network = arch if isinstance(arch, str) else class_path(arch)
    cfg = apply_overrides(TrainConfig(), {
        "data.dataset": data, "model.arch": network, "model.latent_dim": latent_dim,
        "method.name": method, "method.beta": beta, "optim.lr": lr,
        "optim.batch_size": batch_size, "run.steps": steps, "run.seed": seed,
        "run.device": device, "run.checkpoint_every": max(steps // 10, 1)})
    cfg = apply_overrides(cfg, overrides or {}).validate()
    obj = None if isinstance(dataset, str) else dataset
    path = train_run(cfg, out, resume=resume, overwrite=overwrite, progress=progress, dataset=obj)
    return Run(path)


@dataclass(frozen=True)
class TransferResult:
    """A transfer folder and the flat metrics of its evaluations (``after`` is None without
    fine-tuning)."""

    path: Path
    before: dict[str, float]
    after: dict[str, float] | None


def transfer(run: Run | str | Path, target: FactorDataset | str, finetune_steps: int = 50000,
             out: str | Path | None = None, *, evaluation: EvalSettings | None = None,
             **options: Any) -> TransferResult:
    """Evaluate ``run``'s model zero-shot on ``target`` (an object or a registered name),
    fine-tune it there for ``finetune_steps``, evaluate again (Dapueto et al. 2024, §4.2).

    ``options`` are further :class:`~disentkit.transfers.TransferConfig` fields (``finetune``,
    ``beta``, ``lr``, ``batch_size``, ``seed``, ``grad_clip``, ``data_root`` ...); the defaults
    are the paper's. ``out`` defaults to ``<run>--<target>`` beside the run folder.
    """
    source = run.path if isinstance(run, Run) else Path(run)
    name = target if isinstance(target, str) else class_path(target)
    folder = Path(out) if out is not None else source.parent / f"{source.name}--{name.split(':')[-1]}"
    if finetune_steps == 0:
        options.setdefault("finetune", "none")
    cfg = TransferConfig(source=str(source), target=name, steps=finetune_steps,
                         eval=evaluation or EvalSettings())
    cfg = dataclasses.replace(cfg, **options) if options else cfg
    results = transfer_run(cfg.validate(), folder, dataset=None if isinstance(target, str) else target)
    after = results["after"]["metrics"] if results["after"] is not None else None
    return TransferResult(folder, results["before"]["metrics"], after)
