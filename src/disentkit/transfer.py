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
* ``compat=True`` reproduces the reference behaviour for users who need the old numbers: β = 1,
  seed 0, the source's optimiser state (and step) carried over, evaluation on the training images.
  Reports flag such runs.

Channels: a 1-channel source meets a 3-channel target (and back) by rewriting the first
convolution and the last transposed convolution (:func:`adapt_channels`), never by failing.

Folder layout (docs/architecture.md, "Contracts")::

    OUT/transfer.json        the resolved TransferConfig (a different config in OUT is an error)
    OUT/source_adapted/      only when channels differ: the adapted source as a run folder
    OUT/before/              representations.npz, classes.csv, results.json, figures/
    OUT/finetune/            the fine-tuning run folder (config.json, checkpoint/, log.jsonl)
    OUT/after/               as before/, for the fine-tuned model

Every stage whose output exists is skipped, so re-running a finished transfer costs nothing and
an interrupted one resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from disentkit.config import to_dict
from disentkit.data.base import FactorDataset
from disentkit.errors import DisentkitError
from disentkit.evaluate import EvalInfo, EvalSettings, evaluate_model, is_complete
from disentkit.io import read_json, write_json

FINETUNE_MODES = ("all", "encoder", "decoder", "none")
#: settings that may change between a run and its re-run without changing any result
RUNTIME_FIELDS = ("device", "precision", "threads", "log_every", "data_root", "eval.n_jobs",
                  "eval.batch_size")


class SourceRunError(DisentkitError):
    """The source run folder cannot be used (missing, corrupt or foreign files)."""


# ---------------------------------------------------------------------------- held-out split
def _unit_hash(codes: np.ndarray, seed: int) -> np.ndarray:
    """A fixed pseudo-random number in [0, 1) per integer code (splitmix64 finaliser)."""
    with np.errstate(over="ignore"):
        x = np.asarray(codes, dtype=np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(2**53)


def is_heldout(dataset: FactorDataset, factors: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean [n]: which factor combinations belong to the held-out part.

    Each combination of the *full* grid is held out when a seeded hash of its grid code falls
    below ``fraction``: deterministic, independent of sampling order, and never materialised
    (Color-dSprites has 5.2 M combinations), so every factor value appears in both parts while
    no held-out *combination* is ever seen in fine-tuning.
    """
    return _unit_hash(dataset.grid_code(factors), seed) < fraction


class CombinationSubset(FactorDataset):
    """The training or the held-out part of a dataset's factor combinations.

    It keeps the base dataset's name, factors and images; :meth:`sample_factors` draws uniformly
    over the part's combinations (rejection from the base, so it works on complete and incomplete
    grids alike); :meth:`contains` answers for the part. On an incomplete base, ``combinations``
    is the part of its table. On a complete grid the table is not materialised, so weak-supervision
    *pairs* may reach outside the part: fine-tuning here is unsupervised (single images), which
    is not affected.
    """

    def __init__(self, base: FactorDataset, part: str, fraction: float, seed: int):
        if part not in ("train", "heldout"):
            raise ValueError(f"part must be 'train' or 'heldout', found {part!r}")
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"held-out fraction must be in (0, 1), found {fraction}")
        self.base, self.part, self.fraction, self.seed = base, part, float(fraction), int(seed)
        self.name = base.name
        self.factor_names = tuple(base.factor_names)
        self.factor_sizes = tuple(base.factor_sizes)
        self.image_shape = tuple(base.image_shape)
        self.synthetic = base.synthetic
        self.source = base.source
        if base.combinations is not None:
            table = np.asarray(base.combinations)
            self.combinations = table[self._member(table)]
            if len(self.combinations) == 0:
                raise ValueError(f"{base.name}: the {part} part of its combinations is empty")

    def _member(self, factors: np.ndarray) -> np.ndarray:
        held = is_heldout(self.base, factors, self.fraction, self.seed)
        return held if self.part == "heldout" else ~held

    def images(self, factors, rng=None):
        return self.base.images(factors, rng)

    def factor_values(self):
        return self.base.factor_values()

    def contains(self, factors):
        factors = np.asarray(factors, dtype=np.int64)
        inside = self.base.contains(factors)
        out = np.zeros(len(factors), dtype=bool)
        if inside.any():
            out[inside] = self._member(factors[inside])
        return out

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.combinations is not None:
            return self.combinations[rng.integers(0, len(self.combinations), size=n)]
        share = self.fraction if self.part == "heldout" else 1.0 - self.fraction
        chunks, need = [], int(n)
        for _ in range(1000):
            if need <= 0:
                break
            cand = self.base.sample_factors(int(need / share * 1.2) + 16, rng)
            keep = cand[self._member(cand)][:need]
            chunks.append(keep)
            need -= len(keep)
        else:
            raise ValueError(f"{self.name}: could not draw {n} samples from the {self.part} part")
        return np.concatenate(chunks) if chunks else np.zeros((0, self.num_factors), np.int64)

    def __len__(self) -> int:
        if self.combinations is not None:
            return int(len(self.combinations))
        total = int(np.prod(self.factor_sizes, dtype=np.int64))
        count = 0
        for start in range(0, total, 1 << 20):  # chunks keep memory flat on large grids
            idx = np.arange(start, min(total, start + (1 << 20)))
            count += int(self._member(self.base.index_to_factors(idx)).sum())
        return count


# ---------------------------------------------------------------------------- channels
def _channel_layers(model, channels: int):
    """Names of the input convolution (first Conv2d reading ``channels``) and the output
    transposed convolution (last ConvTranspose2d writing ``channels``)."""
    from torch import nn

    first = last = None
    for name, module in model.named_modules():
        if first is None and isinstance(module, nn.Conv2d) and module.in_channels == channels:
            first = name
        if isinstance(module, nn.ConvTranspose2d) and module.out_channels == channels:
            last = name
    if first is None or last is None:
        raise ValueError(
            f"cannot adapt channels of a {type(model).__name__}: expected a Conv2d reading "
            f"{channels} channels and a ConvTranspose2d writing {channels}"
        )
    return first, last


def adapt_channels(model, channels: int):
    """A copy of ``model`` that takes and produces ``channels``-channel images.

    The rule (documented in ``transfer.json`` and the report) keeps the zero-shot model's
    behaviour on grey content:

    * 1 → 3 channels: the input kernel is replicated over R, G, B and divided by 3, so the model
      sees an RGB image through its grey mean exactly as the source saw grey images; the output
      kernel and bias are replicated, so every colour channel reconstructs the grey logit.
    * 3 → 1 channel: the input kernels are summed over R, G, B, so a grey image gives exactly the
      response the source gave to the same grey image as RGB; the output kernel and bias are
      averaged over R, G, B (the grey logit is the mean of the colour logits).

    Other channel changes raise ``ValueError``. The model itself is not modified.
    """
    import torch

    from disentkit.models import build_model

    src = int(model.in_channels)
    if src == channels:
        return model
    if {src, channels} != {1, 3}:
        raise ValueError(f"channel adaptation handles 1 <-> 3 channels, found {src} -> {channels}")
    first, last = _channel_layers(model, src)
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    w_in, w_out, b_out = weights[f"{first}.weight"], weights[f"{last}.weight"], weights.get(f"{last}.bias")
    if channels == 3:
        weights[f"{first}.weight"] = w_in.repeat(1, 3, 1, 1) / 3.0
        weights[f"{last}.weight"] = w_out.repeat(1, 3, 1, 1)
        if b_out is not None:
            weights[f"{last}.bias"] = b_out.repeat(3)
    else:
        weights[f"{first}.weight"] = w_in.sum(dim=1, keepdim=True)
        weights[f"{last}.weight"] = w_out.mean(dim=1, keepdim=True)
        if b_out is not None:
            weights[f"{last}.bias"] = b_out.mean().reshape(1)
    with torch.random.fork_rng(devices=[]):
        adapted = build_model(model.arch, channels, model.latent_dim)
    adapted.load_state_dict(weights)
    return adapted.to(next(model.parameters()).device).eval()


CHANNEL_RULE = {
    (1, 3): "1->3: input kernel replicated over RGB /3 (grey mean); output kernel+bias replicated",
    (3, 1): "3->1: input kernels summed over RGB; output kernel+bias averaged over RGB",
}


# ---------------------------------------------------------------------------- config
@dataclass
class TransferConfig:
    """One transfer. Defaults are the paper's fine-tuning (§4.2): all weights, 50,000 steps,
    batch 64, Adam 1e-4, β 1; evaluation on 15,008 held-out samples."""

    source: str = ""
    target: str = ""
    finetune: str = "all"
    steps: int = 50000
    beta: float = 1.0
    lr: float = 1e-4
    batch_size: int = 64
    seed: int = 0
    compat: bool = False
    heldout_fraction: float = 0.25
    split_seed: int = 0
    data_root: str | None = None
    device: str = "auto"
    precision: str = "auto"
    threads: int | None = None
    log_every: int = 100
    eval: EvalSettings = field(default_factory=EvalSettings)

    def validate(self) -> "TransferConfig":
        if not self.source or not self.target:
            raise ValueError("a transfer needs a source run folder and a target dataset name")
        if self.finetune not in FINETUNE_MODES:
            raise ValueError(f"finetune must be one of {FINETUNE_MODES}, found {self.finetune!r}")
        if self.steps < 0 or (self.finetune != "none" and self.steps == 0):
            raise ValueError(f"fine-tuning steps must be >= 1 (or finetune 'none'), found {self.steps}")
        if not 0.0 < self.heldout_fraction < 1.0:
            raise ValueError(f"heldout_fraction must be in (0, 1), found {self.heldout_fraction}")
        if self.beta < 0 or self.lr <= 0 or self.batch_size < 1:
            raise ValueError(f"need beta >= 0, lr > 0, batch_size >= 1; found {self.beta}, "
                             f"{self.lr}, {self.batch_size}")
        return self

    def resolved(self) -> "TransferConfig":
        """With ``compat`` the reference's forced settings: β = 1, seed 0, all weights."""
        if not self.compat:
            return self
        return dataclasses.replace(self, beta=1.0, seed=0, finetune="all" if self.finetune != "none" else "none")


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


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
    saved, given = _flat(record.get("config", {})), _flat(to_dict(cfg))
    moved = (Path(str(saved.get("source", ""))).name == Path(cfg.source).name
             and record.get("source_checkpoint_sha256") == source_sha256)
    ignore = RUNTIME_FIELDS + (("source",) if moved else ())
    diffs = [f"{k} (saved {saved.get(k)!r}, given {given[k]!r})" for k in given
             if k not in ignore and saved.get(k) != given[k]]
    if diffs:
        raise ValueError(f"{out} holds a different transfer: {'; '.join(diffs)}; "
                         "choose another --out or delete the folder")


# ---------------------------------------------------------------------------- progress
class StageProgress:
    """Prints the stage and, while training, the step and ETA at most every ``every`` seconds
    (plain lines, so logs of non-interactive runs show progress too)."""

    def __init__(self, prefix: str = "", stream=None, every: float = 10.0):
        self.prefix, self.stream, self.every = prefix, stream or sys.stderr, every
        self._t0 = self._last = 0.0
        self._first_step = None

    def stage(self, text: str) -> None:
        print(f"{self.prefix}{text}", file=self.stream, flush=True)
        self._t0 = self._last = time.perf_counter()
        self._first_step = None

    def __call__(self, step: int, steps: int) -> None:
        now = time.perf_counter()
        if self._first_step is None:
            self._first_step, self._t0 = step - 1, now - 1e-9 if step == 1 else now
        if now - self._last < self.every and step < steps:
            return
        self._last = now
        done = max(step - self._first_step, 1)
        eta = (now - self._t0) / done * (steps - step)
        print(f"{self.prefix}  step {step}/{steps} ({100 * step / max(steps, 1):.0f}%), "
              f"ETA {int(eta) // 60}:{int(eta) % 60:02d}", file=self.stream, flush=True)


# ---------------------------------------------------------------------------- the transfer
def load_source(run_dir: str | Path):
    """(model, TrainConfig) of a source run; any problem raises :class:`SourceRunError`."""
    from disentkit.train.checkpoint import load_run

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SourceRunError(f"source run folder {run_dir} does not exist")
    try:
        return load_run(run_dir, device="cpu")
    except DisentkitError as exc:
        raise SourceRunError(f"source run folder {run_dir} is not usable: {exc}") from exc


def target_dataset(name: str, root: str | None):
    from disentkit.data.registry import get_dataset

    return get_dataset(name, root=root) if root else get_dataset(name)


def _factor_names(name: str) -> list[str]:
    """A registered dataset's factor names without building it ([] when unknown)."""
    from disentkit.data.registry import dataset_class

    try:
        return list(dataset_class(name).factor_names)
    except (KeyError, ImportError, AttributeError):
        return []


def _source_info(src_cfg, run_dir: Path) -> dict:
    return {"run_dir": str(run_dir), "source_dataset": src_cfg.data.dataset,
            "method": src_cfg.method.name, "arch": src_cfg.model.arch,
            "beta": src_cfg.method.beta, "latent_dim": src_cfg.model.latent_dim,
            "seed": src_cfg.run.seed, "steps": src_cfg.run.steps}


def _init_folder(model, src_cfg, source: Path, out: Path, source_channels: int) -> Path:
    """The run folder fine-tuning starts from: the source, or its channel-adapted copy."""
    channels = int(model.in_channels)
    if source_channels == channels:
        return source
    from disentkit.config import save
    from disentkit.train.checkpoint import TrainingState, checkpoint_path, save_checkpoint

    folder = out / "source_adapted"
    if not checkpoint_path(folder).is_file():
        info = {"arch": model.arch, "in_channels": int(channels), "latent_dim": model.latent_dim,
                "adapted_from": str(source)}
        save(src_cfg, folder / "config.json")
        save_checkpoint(folder, TrainingState(step=0, model=model.state_dict(), info=info))
    return folder


def _finetune_config(cfg: TransferConfig, src_cfg, init_from: Path):
    from disentkit.config import DataConfig, MethodConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig

    return TrainConfig(
        data=DataConfig(dataset=cfg.target, root=cfg.data_root),
        model=ModelConfig(arch=src_cfg.model.arch, latent_dim=src_cfg.model.latent_dim,
                          init_from=None if cfg.compat else str(init_from)),
        method=MethodConfig(name="beta-vae", beta=cfg.beta, warmup_steps=0),
        optim=OptimConfig(lr=cfg.lr, batch_size=cfg.batch_size, grad_clip=src_cfg.optim.grad_clip,
                          trainable=cfg.finetune),
        run=RunConfig(steps=cfg.steps, seed=cfg.seed, device=cfg.device, precision=cfg.precision,
                      threads=cfg.threads, log_every=cfg.log_every,
                      checkpoint_every=max(cfg.steps // 10, 1)),
    ).validate()


def _finetune(cfg: TransferConfig, src_cfg, init_from: Path, out: Path, train_set,
              progress: StageProgress) -> Path:
    """Fine-tune into ``out/finetune``; skip when finished, resume when interrupted."""
    from disentkit.config import save
    from disentkit.train import train
    from disentkit.train.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint

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
    return train(tcfg, run_dir, resume=have, progress=progress, dataset=train_set)


def transfer(cfg: TransferConfig, out_dir: str | Path, *,
             progress: StageProgress | None = None, dataset: FactorDataset | None = None) -> dict:
    """Run one transfer into ``out_dir``; return ``{"before": results, "after": results|None}``.

    ``dataset`` overrides the registry lookup of ``cfg.target`` (a dataset built in code).

    Raises :class:`SourceRunError` for an unusable source folder and ``ValueError`` for bad
    settings or a folder holding a different transfer.
    """
    from disentkit.train.checkpoint import load_run

    cfg = cfg.validate().resolved()
    out = Path(out_dir)
    progress = progress or StageProgress(prefix=f"[{Path(cfg.source).name} -> {cfg.target}] ")
    source = Path(cfg.source)
    model, src_cfg = load_source(source)
    from disentkit.train.checkpoint import checkpoint_path

    source_sha256 = _file_sha256(checkpoint_path(source))
    _check_same_config(out, cfg, source_sha256)
    target = dataset if dataset is not None else target_dataset(cfg.target, cfg.data_root)
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
    write_json(out / "transfer.json", {"config": to_dict(cfg), "channel_rule": rule,
                                       "eval_split": split, "source_config": to_dict(src_cfg),
                                       "source_checkpoint_sha256": source_sha256})
    info_t = {"source_dataset": src_cfg.data.dataset, "target": cfg.target, "finetune": cfg.finetune,
              "steps": cfg.steps, "beta": cfg.beta, "lr": cfg.lr, "seed": cfg.seed,
              "compat": cfg.compat, "eval_split": split, "channel_rule": rule,
              "source_factor_names": _factor_names(src_cfg.data.dataset)}
    model_info = _source_info(src_cfg, source)
    adapted = adapt_channels(model, channels)

    progress.stage("zero-shot evaluation" + (" (skipped: done)" if is_complete(out / "before") else ""))
    before = evaluate_model(adapted, eval_set, out / "before",
                            EvalInfo("before", model_info, info_t, split), cfg.eval)
    if cfg.finetune == "none":
        return {"before": before, "after": None}

    init_from = _init_folder(adapted, src_cfg, source, out, int(model.in_channels))
    run_dir = _finetune(cfg, src_cfg, init_from, out, train_set, progress)
    progress.stage("evaluation after fine-tuning" + (" (skipped: done)" if is_complete(out / "after") else ""))
    tuned, _ = load_run(run_dir, device="cpu")
    after = evaluate_model(tuned, eval_set, out / "after",
                           EvalInfo("after", model_info, info_t, split, log="../finetune/log.jsonl"),
                           cfg.eval)
    return {"before": before, "after": after}


