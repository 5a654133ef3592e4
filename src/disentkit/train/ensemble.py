"""Train many models as one: M runs that differ only in seed and β, one batched network.

The paper's grid trains, per source dataset, 10 seeds × 2 βs of the same network, method and
step count (Dapueto et al. 2024, §4.1). One conv64 VAE at batch 64 leaves a GPU mostly idle
(kernel launches, not arithmetic, bound it), so the members are stacked
(:func:`torch.func.stack_module_state`) and one :func:`torch.func.vmap` of the loss runs all of
them in one forward/backward — the convolutions become grouped convolutions over M groups.
vmap was chosen over hand-written grouped convolutions: the networks stay the ordinary modules
(:mod:`disentkit.models`), BatchNorm running statistics included.

Each member keeps everything a single run has: its own parameters and Adam moments (Adam is
elementwise, so one Adam over the stacked tensors is M Adams), its own data generator and batch
stream (:func:`disentkit.train.batches.batch_stream`), its own reparameterisation generator (its
noise is drawn with the single run's call, outside vmap), its own β and its own gradient-norm
clip. Each member writes its own run folder — ``config.json``, ``log.jsonl``,
``checkpoint/checkpoint.safetensors`` — in the format of :func:`disentkit.train.train`, so
evaluate, transfer, report, sweep state and resume work unchanged; a member's folder can even be
resumed alone with ``train``. Its weights equal the single run's up to floating-point
reassociation (grouped vs plain convolutions; ``tests/test_ensemble.py`` states the tolerance).

No host synchronisation per step: the loss terms accumulate on the device and the finiteness
guard is read every ``log_every`` steps and before every checkpoint. A member whose loss or
gradient turns non-finite stops being saved (its last good checkpoint is kept, its log gets the
error), the others continue, and :class:`NonFiniteLossError` is raised at the end.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.func import functional_call, stack_module_state, vmap

from disentkit.config import TrainConfig, save, to_dict
from disentkit.methods.base import (
    Batch,
    NonFiniteLossError,
    autocast_context,
    bernoulli_reconstruction,
    gaussian_kl,
)
from disentkit.train import checkpoint as ckpt
from disentkit.train import prepare
from disentkit.train.batches import batch_stream
from disentkit.train.logging import Progress, RunLog
from disentkit.train.loop import _check_method_fits, _get_dataset

#: settings in which the members of one ensemble may differ
MEMBER_FIELDS = ("run.seed", "method.beta")


def ensemble_key(cfg: TrainConfig) -> str:
    """Configs with equal keys can train as one ensemble (all but seed and β agree)."""
    d = to_dict(cfg)
    for name in MEMBER_FIELDS:
        section, key = name.split(".")
        d[section].pop(key)
    return repr(d)


def check_members(cfgs: Sequence[TrainConfig], out_dirs: Sequence) -> None:
    """Refuse an empty ensemble, a folder count that differs, or members that differ in more
    than seed and β (naming the first such setting)."""
    if not cfgs:
        raise ValueError("an ensemble needs at least one member config; found none")
    if len(cfgs) != len(out_dirs):
        raise ValueError(f"an ensemble needs one output folder per member; found {len(cfgs)} "
                         f"configs and {len(out_dirs)} folders")
    if len({str(Path(d).resolve()) for d in out_dirs}) != len(out_dirs):
        raise ValueError("ensemble members need distinct output folders")
    for i, cfg in enumerate(cfgs[1:], 1):
        diffs = prepare.config_differences(cfgs[0], cfg, ignore=MEMBER_FIELDS)
        if diffs:
            raise ValueError(f"ensemble member {i} differs from member 0 in more than "
                             f"{' and '.join(MEMBER_FIELDS)}: {'; '.join(diffs)}")
    if cfgs[0].optim.trainable != "all":
        raise ValueError(f"ensembles train every parameter (optim.trainable='all'); found "
                         f"{cfgs[0].optim.trainable!r}: train such runs one by one")


class _MemberLoss(torch.nn.Module):
    """The loss of one member as a module, so :func:`functional_call` can swap its weights.

    The template of :meth:`disentkit.methods.base.Method.loss` with the noise ``eps`` given
    (drawn outside vmap by the member's own generator) and β a tensor (one per member).
    """

    def __init__(self, net: torch.nn.Module, method):
        super().__init__()
        self.net, self.method = net, method

    def forward(self, x1, x2, changed, eps, beta):
        x = x1 if x2 is None else torch.cat([x1, x2])
        mu, logvar = self.net.encode(x)
        mu, logvar = self.method.aggregate(mu.float(), logvar.float(), Batch(x1, x2, changed))
        z = mu + torch.exp(0.5 * logvar) * eps
        reconstruction = bernoulli_reconstruction(self.net.decode(z), x).mean()
        kl = gaussian_kl(mu, logvar).mean()
        return torch.stack([reconstruction + beta * kl, reconstruction, kl])


class Stack:
    """M networks as stacked tensors, one Adam over them, and per-member state dicts."""

    def __init__(self, models: list[torch.nn.Module], method, lr: float, device):
        self.size, self.latent_dim = len(models), int(models[0].latent_dim)
        self.names = [n for n, _ in models[0].named_parameters()]
        self.state_keys = list(models[0].state_dict())
        params, buffers = stack_module_state(models)
        self.params = {k: v.detach().to(device).requires_grad_(True) for k, v in params.items()}
        self.buffers = {k: v.to(device) for k, v in buffers.items()}
        self.optimizer = torch.optim.Adam(list(self.params.values()), lr=lr)
        template = _MemberLoss(copy.deepcopy(models[0]).to("meta"), method)

        def one(p, b, x1, x2, changed, eps, beta):
            weights = {f"net.{k}": v for k, v in {**p, **b}.items()}
            return functional_call(template, weights, (x1, x2, changed, eps, beta))

        self.loss = vmap(one, in_dims=(0, 0, 0, 0, 0, 0, 0))
        self.loss_single = vmap(one, in_dims=(0, 0, 0, None, None, 0, 0))

    def member_model(self, m: int) -> dict[str, torch.Tensor]:
        both = {**self.params, **self.buffers}
        return {k: both[k][m].detach() for k in self.state_keys}

    def member_optimizer(self, m: int) -> dict:
        sd = self.optimizer.state_dict()
        state = {i: {k: (v[m] if v.dim() > 0 else v.clone()) for k, v in entry.items()}
                 for i, entry in sd["state"].items()}
        return {"state": state, "param_groups": sd["param_groups"]}

    def load_optimizers(self, states: list[dict]) -> None:
        """Stack M single-run optimiser state dicts into the ensemble's Adam."""
        first = states[0]
        state = {}
        for i, entry in first["state"].items():
            state[i] = {k: (torch.stack([s["state"][i][k] for s in states]) if v.dim() > 0
                            else v.clone()) for k, v in entry.items()}
        self.optimizer.load_state_dict({"state": state, "param_groups": first["param_groups"]})

    def clip_(self, max_norm: float | None) -> torch.Tensor:
        """Clip each member's gradient to ``max_norm`` (as ``clip_grad_norm_`` does for one
        network); returns each member's gradient norm [M] (all finite when not clipping)."""
        grads = [p.grad for p in self.params.values()]
        norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads], 1)
        total = torch.linalg.vector_norm(norms, dim=1)
        if max_norm is not None:
            coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
            for g in grads:
                g.mul_(coef.view((-1,) + (1,) * (g.dim() - 1)))
        return total


def _restore(stack: Stack, run_dirs, states, noises) -> tuple[int, list]:
    """Load the members' checkpoints (all at one step) into the stack; their data generators."""
    steps = {s.step for s in states}
    if len(steps) != 1:
        raise ValueError("--resume of an ensemble needs every member at the same step; found "
                         + ", ".join(f"{d}: {s.step}" for d, s in zip(run_dirs, states)))
    for d, s in zip(run_dirs, states):
        if s.optimizer is None or s.torch_rng is None or s.numpy_rng is None:
            raise ckpt.CheckpointError(f"{ckpt.checkpoint_path(d)} holds weights only (no "
                                       "optimiser or generator state): it cannot be resumed")
    with torch.no_grad():
        for name, t in {**stack.params, **stack.buffers}.items():
            t.copy_(torch.stack([s.model[name] for s in states]).to(t.device))
    stack.load_optimizers([s.optimizer for s in states])
    for noise, s in zip(noises, states):
        noise.set_state(s.torch_rng)
    return steps.pop(), [ckpt.restore_numpy_rng(s.numpy_rng) for s in states]


def _batch(parts: list[dict], device, pin: bool) -> dict:
    """Stack the members' NumPy batches [M, n, ...] and move them (pinned, non-blocking on CUDA)."""
    out = {}
    for key in parts[0]:
        t = torch.from_numpy(np.ascontiguousarray(np.stack([p[key] for p in parts])))
        t = t.float() if key != "changed" else t
        out[key] = (t.pin_memory() if pin else t).to(device, non_blocking=pin)
    return out


def train_ensemble(
    cfgs: Sequence[TrainConfig],
    out_dirs: Sequence[str | Path],
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | None | Callable[[int, int], None] = None,
    dataset=None,
) -> list[Path]:
    """Train the member configs ``cfgs`` (equal but for seed and β) into ``out_dirs`` at once.

    Arguments as :func:`disentkit.train.train`; returns the run folders. Each folder is what
    ``train(cfgs[m], out_dirs[m])`` writes, up to floating-point reassociation of the weights.
    """
    from disentkit.methods import build_method

    cfgs = list(cfgs)
    check_members(cfgs, out_dirs)
    for c in cfgs:
        c.validate()
    run_dirs = [Path(d) for d in out_dirs]
    for d, c in zip(run_dirs, cfgs):
        prepare.prepare_run_dir(d, c, resume, overwrite)
    cfg = cfgs[0]
    if cfg.run.threads is not None:
        torch.set_num_threads(cfg.run.threads)
    device = prepare.resolve_device(cfg.run.device)
    states = [ckpt.load_checkpoint(d) for d in run_dirs] if resume and all(
        ckpt.checkpoint_path(d).is_file() for d in run_dirs) else None
    precision = prepare.resolve_precision(cfg.run.precision, device)
    if states is not None and cfg.run.precision == "auto":
        precision = states[0].info.get("precision", precision)
    dataset = dataset if dataset is not None else _get_dataset(cfg)
    methods = [build_method(c.method.name, beta=c.method.beta,
                            warmup_steps=c.method.warmup_steps, **c.method.options) for c in cfgs]
    _check_method_fits(cfg, methods[0], dataset)
    seeds = [prepare.seeds(c.run.seed) for c in cfgs]
    models = [prepare.build_network(c, dataset.image_shape[0], s["init"]).train()
              for c, s in zip(cfgs, seeds)]
    stack = Stack(models, methods[0], cfg.optim.lr, device)
    noises = [torch.Generator(device=device).manual_seed(s["noise"]) for s in seeds]
    rngs = [np.random.default_rng(s["data"]) for s in seeds]
    step = 0
    if states is not None:
        step, rngs = _restore(stack, run_dirs, states, noises)
        if step > cfg.run.steps:
            raise ValueError(f"--steps {cfg.run.steps} is below the checkpoints' step {step}")
    info = {"arch": cfg.model.arch, "in_channels": int(dataset.image_shape[0]),
            "latent_dim": cfg.model.latent_dim, "device": str(device), "precision": precision,
            "torch": torch.__version__}
    for d, c in zip(run_dirs, cfgs):
        save(c, d / "config.json")
    loop = _Loop(cfgs, run_dirs, stack, methods, noises, info, device, precision, step)
    streams = [batch_stream(dataset, methods[0].uses_pairs, cfg.optim.batch_size, r, cfg.data.k,
                            count=max(cfg.run.steps - step, 0), prefetch=cfg.run.prefetch)
               for r in rngs]
    bar = Progress(progress, cfg.run.steps, step)
    try:
        for items in zip(*streams):
            loop.step([a for a, _ in items], [s for _, s in items])
            bar.update(loop.at, cfg.run.steps, loop.last_record)
    finally:
        for s in streams:
            s.close()
        bar.close()
    if states is None and cfg.run.steps == 0:
        loop.save_all(0, [ckpt.numpy_rng_state(r) for r in rngs])
    loop.raise_failures()
    return run_dirs


def ensemble_step(stack: Stack, methods, noises, batch: dict, step: int,
                  grad_clip: float | None, precision: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One update of every member on ``batch`` (tensors [M, n, ...] on the device) at 0-based
    ``step``: returns the loss terms [M, 3] (loss, reconstruction, KL) and the non-finite flags
    [M], both on the device (no synchronisation). A flagged member's gradient is zeroed."""
    x1 = batch["x1"]
    images = x1.shape[1] * (2 if "x2" in batch else 1)
    eps = torch.stack([torch.randn((images, stack.latent_dim), generator=g, device=x1.device)
                       for g in noises])
    betas = torch.tensor([m.beta_at(step) for m in methods], device=x1.device)
    p, b = stack.params, stack.buffers
    with autocast_context(x1.device.type, precision):
        if "x2" in batch:
            terms = stack.loss(p, b, x1, batch["x2"], batch["changed"], eps, betas)
        else:
            terms = stack.loss_single(p, b, x1, None, None, eps, betas)
    stack.optimizer.zero_grad(set_to_none=True)
    terms[:, 0].sum().backward()
    norm = stack.clip_(grad_clip)
    bad = ~torch.isfinite(terms).all(dim=1) | ~torch.isfinite(norm)
    for t in p.values():  # a failing member does not move (nor does any other)
        t.grad.masked_fill_(bad.view((-1,) + (1,) * (t.dim() - 1)), 0.0)
    stack.optimizer.step()
    return terms, bad


class _Loop:
    """One ensemble step at a time; logs and checkpoints per member, failures read lazily."""

    def __init__(self, cfgs, run_dirs, stack, methods, noises, info, device, precision, step):
        self.cfg, self.cfgs, self.run_dirs, self.stack = cfgs[0], cfgs, run_dirs, stack
        self.methods, self.noises, self.info = methods, noises, info
        self.device, self.precision, self.at = device, precision, step
        self.logs = [RunLog(d, keep_until=step) for d in run_dirs]
        m = stack.size
        self.totals = torch.zeros(m, 3, dtype=torch.float64, device=device)
        self.first_bad = torch.full((m,), -1, dtype=torch.int64, device=device)
        self.dead = [False] * m
        self.last_checkpoint = [step if step else None] * m
        self.last_time, self.last_step, self.last_record = time.perf_counter(), step, None

    def step(self, arrays: list[dict], data_states: list[dict]) -> None:
        b = _batch(arrays, self.device, pin=self.device.type == "cuda")
        images = b["x1"].shape[1] * (2 if "x2" in b else 1)
        terms, bad = ensemble_step(self.stack, self.methods, self.noises, b, self.at,
                                   self.cfg.optim.grad_clip, self.precision)
        self.first_bad = torch.where(bad & (self.first_bad < 0), self.at + 1, self.first_bad)
        self.totals += terms.detach().double()
        self.at += 1
        self.last_record = None
        run = self.cfg.run
        if self.at % run.log_every == 0 or self.at == run.steps:
            self._log(images)
        if self.at % run.checkpoint_every == 0 or self.at == run.steps:
            self._check_failures()
            self.save_all(self.at, data_states)

    def _log(self, images: int) -> None:
        self._check_failures()
        now = time.perf_counter()
        n = self.at - self.last_step
        totals = (self.totals / n).cpu().tolist()
        rate = n * images / max(now - self.last_time, 1e-9)
        for m, (log, t) in enumerate(zip(self.logs, totals)):
            if not self.dead[m]:
                record = {"step": self.at, "loss": t[0], "reconstruction": t[1], "kl": t[2],
                          "beta": self.methods[m].beta_at(self.at - 1), "images_per_s": rate}
                log.write(record)
                self.last_record = self.last_record or record
        self.totals.zero_()
        self.last_time, self.last_step = now, self.at

    def _check_failures(self) -> None:
        """Read the device-side guard (one synchronisation) and retire newly failed members."""
        for m, first in enumerate(self.first_bad.cpu().tolist()):
            if first >= 0 and not self.dead[m]:
                self.dead[m] = True
                self.logs[m].write({"step": first, "error": f"non-finite loss or gradient norm "
                                    f"at step {first} (ensemble member {m})"})

    def save_all(self, at: int, data_states: list[dict]) -> None:
        for m, d in enumerate(self.run_dirs):
            if self.dead[m]:
                continue
            ckpt.save_checkpoint(d, ckpt.TrainingState(
                step=at, model=self.stack.member_model(m),
                optimizer=self.stack.member_optimizer(m), torch_rng=self.noises[m].get_state(),
                numpy_rng=data_states[m], info=self.info))
            self.last_checkpoint[m] = at

    def raise_failures(self) -> None:
        self._check_failures()
        failed = [m for m, dead in enumerate(self.dead) if dead]
        if not failed:
            return
        steps = self.first_bad.cpu().tolist()
        kept = "; ".join(
            f"{self.run_dirs[m]}: first at step {steps[m]}, last good checkpoint "
            f"{self.last_checkpoint[m] if self.last_checkpoint[m] is not None else 'none'}"
            for m in failed)
        raise NonFiniteLossError(min(steps[m] for m in failed), "loss or gradient norm",
                                 float("nan"), f"ensemble members failed ({kept}); "
                                 "the other members finished")
