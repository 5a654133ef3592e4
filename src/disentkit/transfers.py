"""Transfer a source model to a target dataset: zero-shot, fine-tuning, and both evaluations.

The experiment of Dapueto et al. 2024 (§4.2): encode the target with the source model and
evaluate ("before"); fine-tune the whole VAE unsupervised on the target (β-VAE objective, 50,000
steps, batch 64, Adam 1e-4) and evaluate again ("after"). Where disentkit departs from the
reference code, on purpose (docs/science.md, pitfalls):

* fine-tuning starts from a *fresh* Adam optimiser with this transfer's own seed and β, stated in
  ``transfer.json`` (the reference silently forced β = 1, seed 0 and reloaded the source's
  optimiser state);
* evaluation images come from a held-out part of the target's factor combinations that
  fine-tuning never sees (the reference evaluated on its training images);
* ``compat=True`` reproduces the reference (β = 1, seed 0, the source's optimiser state and step,
  evaluation on the training images) for users who need the old numbers; reports flag it.

Channels: a 1-channel source meets a 3-channel target (and back) by rewriting the first
convolution and the last transposed convolution (:func:`disentkit.models.channels.adapt_channels`),
never by failing.

Folder layout (docs/architecture.md, "Contracts")::

    OUT/transfer.json        the resolved TransferConfig (a different config in OUT is an error)
    OUT/source_adapted/      only when channels differ: the adapted source as a run folder
    OUT/before/              representations.npz, classes.csv, results.json, figures/
    OUT/floor/               the source's untrained network on the same rows as before/
    OUT/finetune/            the fine-tuning run folder (config.json, checkpoint/, log.jsonl)
    OUT/after/               as before/, for the fine-tuned model

Every stage whose output exists is skipped, so re-running a finished transfer costs nothing and
an interrupted one resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from disentkit.progress import StageProgress  # noqa: F401  (re-exported: callers import it here)
from disentkit import runfolder
from disentkit.config import PRECISIONS, TRANSFER_SMOKE, differences, to_dict, validate
from disentkit.data.base import FactorDataset
from disentkit.data.kinds import kinds_of
from disentkit.data.views import CombinationSubset
from disentkit.errors import DisentkitError
from disentkit.evaluate import (EvalInfo, EvalSettings, evaluate_model, is_complete, model_info,
                                untrained_network)
from disentkit.io import read_json, write_json
from disentkit.models.channels import CHANNEL_RULE, adapt_channels

FINETUNE_MODES = ("all", "encoder", "decoder", "none")
#: settings that may change between a run and its re-run without changing any result
RUNTIME_FIELDS = ("device", "precision", "threads", "log_every", "data_root", "data_workers",
                  "eval.n_jobs", "eval.batch_size")


class SourceRunError(DisentkitError):
    """The source run folder cannot be used (missing, corrupt or foreign files)."""


# ---------------------------------------------------------------------------- config
@dataclass
class TransferConfig:
    """One transfer. Defaults are the paper's fine-tuning (§4.2 and its code): all weights,
    50,000 steps, batch 64, Adam 1e-4, β 1, no gradient clipping; evaluation on 15,008
    held-out samples. Parsed, coerced and validated by :mod:`disentkit.config`."""

    source: str = ""
    target: str = ""
    finetune: str = "all"
    steps: int = 50000
    beta: float = 1.0
    lr: float = 1e-4
    batch_size: int = 64
    #: global gradient-norm clip while fine-tuning; None (the paper's code) disables it
    grad_clip: float | None = None
    seed: int = 0
    compat: bool = False
    heldout_fraction: float = 0.25
    split_seed: int = 0
    data_root: str | None = None
    #: constructor options of the target dataset, e.g. ``{"depth_mode": "normalised"}`` for
    #: RGB-D depth (docs/datasets.md); used for the zero-shot, floor, fine-tuning and after data
    target_options: dict = field(default_factory=dict)
    device: str = "auto"
    precision: str = "auto"
    threads: int | None = None
    #: threads rendering the fine-tuning batches of a real target (``run.data_workers``)
    data_workers: int = 1
    log_every: int = 100
    eval: EvalSettings = field(default_factory=EvalSettings)

    def check(self):
        """Range checks, as ``(field, ok, expected, found)`` rows (see :func:`disentkit.config.require`)."""
        tune = self.finetune != "none"
        return [
            ("source", bool(self.source), "a source run folder", self.source),
            ("target", bool(self.target), "a target dataset name", self.target),
            ("finetune", self.finetune in FINETUNE_MODES, f"one of {FINETUNE_MODES}", self.finetune),
            ("steps", self.steps >= (1 if tune else 0), ">= 1 (or finetune 'none')", self.steps),
            ("beta", self.beta >= 0, ">= 0", self.beta),
            ("lr", self.lr > 0, "> 0", self.lr),
            ("batch_size", self.batch_size >= 1, ">= 1", self.batch_size),
            ("grad_clip", self.grad_clip is None or self.grad_clip > 0, "> 0 or null", self.grad_clip),
            ("heldout_fraction", 0.0 < self.heldout_fraction < 1.0, "in (0, 1)",
             self.heldout_fraction),
            ("precision", self.precision in PRECISIONS, f"one of {PRECISIONS}", self.precision),
            ("threads", self.threads is None or self.threads >= 1, ">= 1 or null", self.threads),
            ("data_workers", self.data_workers >= 1, ">= 1", self.data_workers),
            ("log_every", self.log_every >= 1, ">= 1", self.log_every),
            _options_row(self.target, self.target_options),
        ] + [(f"eval.{name}", ok, exp, found) for name, ok, exp, found in self.eval.check()]

    def validate(self) -> "TransferConfig":
        """Raise :class:`~disentkit.config.ConfigError` naming the first bad field; return self."""
        return validate(self)

    def smoke(self) -> "TransferConfig":
        """Seconds-long sizes (:data:`disentkit.config.TRANSFER_SMOKE`), smoke evaluation."""
        sizes = {**TRANSFER_SMOKE, "steps": TRANSFER_SMOKE["steps"] if self.finetune != "none" else 0}
        return dataclasses.replace(self, **sizes, eval=self.eval.smoke())

    def resolved(self) -> "TransferConfig":
        """With ``compat`` the reference's forced settings: β = 1, seed 0, all weights."""
        if not self.compat:
            return self
        return dataclasses.replace(self, beta=1.0, seed=0, finetune="all" if self.finetune != "none" else "none")


def _file_sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_same_config(out: Path, cfg: TransferConfig, source_sha256: str) -> None:
    """Refuse to mix two transfers in one folder. The source counts as the same when its path
    matches, or when a moved or copied folder of the same name holds the same checkpoint
    (re-running a job in its new place must not redo its finished transfers)."""
    path = out / "transfer.json"
    if not path.is_file():
        return
    record = read_json(path)
    saved = record.get("config", {})
    moved = (Path(str(saved.get("source", ""))).name == Path(cfg.source).name
             and record.get("source_checkpoint_sha256") == source_sha256)
    ignore = RUNTIME_FIELDS + (("source",) if moved else ())
    diffs = differences(saved, cfg, ignore)
    if diffs:
        raise ValueError(f"{out} holds a different transfer: {'; '.join(diffs)}; "
                         "choose another --out or delete the folder")


# ---------------------------------------------------------------------------- the transfer
def load_source(run_dir: str | Path):
    """(model, TrainConfig) of a source run; any problem raises :class:`SourceRunError`."""
    from disentkit.training.checkpoint import load_run

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SourceRunError(f"source run folder {run_dir} does not exist")
    try:
        return load_run(run_dir, device="cpu")
    except DisentkitError as exc:
        raise SourceRunError(f"source run folder {run_dir} is not usable: {exc}") from exc


def _options_row(target: str, options: dict) -> tuple:
    """The ``target_options`` check row: every key is a constructor option of the target."""
    import inspect

    from disentkit.data.registry import dataset_class

    try:
        params = inspect.signature(dataset_class(target)).parameters
    except (ValueError, KeyError, TypeError, ImportError):  # an unknown target fails its own row
        return ("target_options", True, "", options)
    names = sorted(n for n, p in params.items() if n not in ("self", "root")
                   and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    unknown = sorted(set(options) - set(names))
    return ("target_options", takes_any or not unknown,
            f"options of {target}: {', '.join(names) or 'none'}", options)


def target_dataset(name: str, root: str | None, options: dict | None = None):
    """The target dataset ``name`` (files under ``root`` for real data) with its ``options``."""
    from disentkit.data.registry import get_dataset

    kwargs = dict(options or {})
    return get_dataset(name, root=root, **kwargs) if root else get_dataset(name, **kwargs)


def _source_factors(name: str) -> dict:
    """A registered dataset's factor names, sizes, kinds and nuisances without building it (empty
    when unknown): what the report pairs target factors with (disentkit.data.kinds)."""
    from disentkit.data.registry import dataset_class

    try:
        cls = dataset_class(name)
    except (KeyError, ValueError, ImportError, AttributeError):
        return {"source_factor_names": []}
    return {"source_factor_names": list(cls.factor_names),
            "source_factor_sizes": list(cls.factor_sizes),
            "source_factor_kinds": kinds_of(cls),
            "source_nuisances": list(getattr(cls, "nuisances", ()))}


def _init_folder(model, src_cfg, source: Path, out: Path, source_channels: int) -> Path:
    """The run folder fine-tuning starts from: the source, or its channel-adapted copy."""
    channels = int(model.in_channels)
    if source_channels == channels:
        return source
    from disentkit.config import save
    from disentkit.training.checkpoint import (TrainingState, checkpoint_path, remove_temporaries,
                                               save_checkpoint)

    folder = out / "source_adapted"
    remove_temporaries(folder)  # a save killed earlier left its temporary file
    if not checkpoint_path(folder).is_file():
        info = {"arch": model.arch, "in_channels": int(channels), "latent_dim": model.latent_dim,
                "adapted_from": str(source)}
        save(src_cfg, folder / "config.json")
        save_checkpoint(folder, TrainingState(step=0, model=model.state_dict(), info=info))
    return folder


def _finetune_config(cfg: TransferConfig, src_cfg, init_from: Path):
    from disentkit.config import DataConfig, MethodConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig

    return TrainConfig(
        data=DataConfig(dataset=cfg.target, root=cfg.data_root, options=dict(cfg.target_options)),
        model=ModelConfig(arch=src_cfg.model.arch, latent_dim=src_cfg.model.latent_dim,
                          init_from=None if cfg.compat else str(init_from)),
        method=MethodConfig(name="beta-vae", beta=cfg.beta, warmup_steps=0),
        optim=OptimConfig(lr=cfg.lr, batch_size=cfg.batch_size, grad_clip=cfg.grad_clip,
                          trainable=cfg.finetune),
        run=RunConfig(steps=cfg.steps, seed=cfg.seed, device=cfg.device, precision=cfg.precision,
                      threads=cfg.threads, log_every=cfg.log_every, data_workers=cfg.data_workers,
                      checkpoint_every=max(cfg.steps // 10, 1)),
    ).validate()


def _finetune(cfg: TransferConfig, src_cfg, init_from: Path, out: Path, train_set,
              progress: StageProgress) -> Path:
    """Fine-tune into ``out/finetune``; skip when finished, resume when interrupted."""
    from disentkit.config import save
    from disentkit.training import train
    from disentkit.training.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
    from disentkit.training.prepare import is_run_folder

    run_dir = out / "finetune"
    tcfg = _finetune_config(cfg, src_cfg, init_from)
    have = checkpoint_path(run_dir).is_file()
    if cfg.compat:
        # The reference reloads the source's whole training state (weights, Adam moments, step):
        # seed the fine-tuning folder with the source checkpoint and resume it for `steps` more.
        state = load_checkpoint(init_from)
        tcfg.run.steps = state.step + cfg.steps
        tcfg.run.checkpoint_every = max(cfg.steps // 10, 1)
        if not have:
            save(tcfg, run_dir / "config.json")
            save_checkpoint(run_dir, state)
            have = True
    done = have and load_checkpoint(run_dir).step >= tcfg.run.steps
    progress.stage(f"fine-tuning ({cfg.finetune}, {cfg.steps} steps, β={cfg.beta:g}, seed {cfg.seed})"
                   + (" (skipped: done)" if done else " (resumed)" if have and not cfg.compat else ""))
    if done:
        return run_dir
    # a folder killed before its first checkpoint resumes too (from step 0)
    return train(tcfg, run_dir, resume=is_run_folder(run_dir), progress=progress,
                 dataset=train_set)


@dataclass
class _Setup:
    """What every stage of a transfer reads: the source model, its config and folder, the
    target's channels and splits, and the records that describe them."""

    source: Path
    model: Any
    src_cfg: Any
    channels: int
    rule: Any
    train_set: Any
    eval_set: Any
    split: str


def _setup(cfg: TransferConfig, out: Path, dataset: FactorDataset | None) -> _Setup:
    """Load the source, check that ``out`` holds this transfer or nothing, split the target, then
    claim ``out`` and write ``transfer.json``: everything before the first evaluation."""
    from disentkit.training.checkpoint import checkpoint_path

    source = Path(cfg.source)
    model, src_cfg = load_source(source)
    source_sha256 = _file_sha256(checkpoint_path(source))
    _check_same_config(out, cfg, source_sha256)
    target = (dataset if dataset is not None
              else target_dataset(cfg.target, cfg.data_root, cfg.target_options))
    channels = int(target.image_shape[0])
    if cfg.compat and model.in_channels != channels and cfg.finetune != "none":
        raise ValueError("--compat reloads the source's optimiser state, which does not fit a network "
                         f"whose channels are adapted ({model.in_channels} -> {channels}); drop --compat")
    rule = CHANNEL_RULE.get((model.in_channels, channels))
    if cfg.compat:
        train_set = eval_set = target
        split = "training images (--compat)"
    else:
        train_set = CombinationSubset(target, "train", cfg.heldout_fraction, cfg.split_seed)
        eval_set = CombinationSubset(target, "heldout", cfg.heldout_fraction, cfg.split_seed)
        split = f"held-out combinations ({cfg.heldout_fraction:.0%} of the grid, split seed {cfg.split_seed})"
    runfolder.claim(out, "transfer", to_dict(cfg), resuming=(out / "transfer.json").is_file())
    write_json(out / "transfer.json", {"config": to_dict(cfg), "channel_rule": rule,
                                       "eval_split": split, "source_config": to_dict(src_cfg),
                                       "source_checkpoint_sha256": source_sha256})
    return _Setup(source, model, src_cfg, channels, rule, train_set, eval_set, split)


def prepare_finetune(cfg: TransferConfig, out_dir: str | Path, *,
                     dataset: FactorDataset | None = None):
    """Everything a transfer does before its fine-tuning trains, for a caller that trains several
    fine-tunings at once (an ensemble's leader, :mod:`disentkit.experiment.ensembles`): the folder
    claimed and ``transfer.json`` written, the folder fine-tuning starts from (the source or its
    channel-adapted copy). Returns (the fine-tuning's TrainConfig, its run folder ``out/finetune``,
    the target's training split); :func:`transfer` then finds that fine-tuning finished and
    skips it. Not for ``finetune='none'`` or ``compat`` (which resumes the source's own state)."""
    cfg = cfg.validate().resolved()
    if cfg.finetune == "none" or cfg.compat:
        raise ValueError(f"transfer to {cfg.target}: prepare_finetune needs a fine-tuning without "
                         f"--compat; found finetune={cfg.finetune!r}, compat={cfg.compat}")
    out = Path(out_dir)
    s = _setup(cfg, out, dataset)
    init_from = _init_folder(adapt_channels(s.model, s.channels), s.src_cfg, s.source, out,
                             int(s.model.in_channels))
    return _finetune_config(cfg, s.src_cfg, init_from), out / "finetune", s.train_set


def transfer(cfg: TransferConfig, out_dir: str | Path, *,
             progress: StageProgress | None = None, dataset: FactorDataset | None = None) -> dict:
    """Run one transfer into ``out_dir``; return ``{"before": results, "floor": results,
    "after": results|None}`` (``floor``: the untrained network on the same rows as ``before``).

    ``dataset`` overrides the registry lookup of ``cfg.target`` (a dataset built in code).

    Raises :class:`SourceRunError` for an unusable source folder and ``ValueError`` for bad
    settings or a folder holding a different transfer.
    """
    from disentkit.training.checkpoint import load_run

    cfg = cfg.validate().resolved()
    out = Path(out_dir)
    progress = progress or StageProgress(prefix=f"[{Path(cfg.source).name} -> {cfg.target}] ")
    s = _setup(cfg, out, dataset)
    model, src_cfg, channels, split = s.model, s.src_cfg, s.channels, s.split
    info_t = {"source_dataset": src_cfg.data.dataset, "target": cfg.target, "finetune": cfg.finetune,
              "steps": cfg.steps, "beta": cfg.beta, "lr": cfg.lr, "seed": cfg.seed,
              "compat": cfg.compat, "eval_split": split, "channel_rule": s.rule,
              **_source_factors(src_cfg.data.dataset)}
    model_info_ = model_info(src_cfg, s.source)
    adapted = adapt_channels(model, channels)

    progress.stage("zero-shot evaluation" + (" (skipped: done)" if is_complete(out / "before") else ""))
    before = evaluate_model(adapted, s.eval_set, out / "before",
                            EvalInfo("before", model_info_, info_t, split), cfg.eval)
    progress.stage("untrained floor on the target" + (" (skipped: done)" if is_complete(out / "floor") else ""))
    floor = _target_floor(src_cfg, int(model.in_channels), channels, s.eval_set, out,
                          EvalInfo("floor", {**model_info_, "steps": 0}, info_t, split), cfg.eval)
    if cfg.finetune == "none":
        return {"before": before, "floor": floor, "after": None}

    init_from = _init_folder(adapted, src_cfg, s.source, out, int(model.in_channels))
    run_dir = _finetune(cfg, src_cfg, init_from, out, s.train_set, progress)
    progress.stage("evaluation after fine-tuning" + (" (skipped: done)" if is_complete(out / "after") else ""))
    tuned, _ = load_run(run_dir, device="cpu")
    after = evaluate_model(tuned, s.eval_set, out / "after",
                           EvalInfo("after", model_info_, info_t, split, log="../finetune/log.jsonl"),
                           cfg.eval)
    return {"before": before, "floor": floor, "after": after}


def _target_floor(src_cfg, src_channels: int, channels: int, eval_set, out: Path, info: EvalInfo,
                  settings: EvalSettings) -> dict:
    """The untrained network of the source's architecture and initialisation, channels adapted by
    the same rule as the source, evaluated on the same rows as ``before``: what an encoder that
    learned nothing scores on this target (docs/metrics.md, "evaluation"), so that a zero-shot 1.00
    is never read without it."""
    if is_complete(out / "floor"):
        return evaluate_model(None, eval_set, out / "floor", info, settings)
    untrained = adapt_channels(untrained_network(src_cfg, src_channels), channels)
    return evaluate_model(untrained, eval_set, out / "floor", info,
                          dataclasses.replace(settings, figures=False))


