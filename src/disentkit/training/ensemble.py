"""Train many models as one: M runs that differ only in seed, β (and, for fine-tunings, the
source run they start from), one batched network.

The paper's grid trains, per source dataset, 10 seeds × 2 βs of the same network, method and
step count, and fine-tunes each of them the same way (Dapueto et al. 2024, §4.1). One conv64 VAE at batch 64 leaves a GPU mostly idle
(kernel launches, not arithmetic, bound it), so the members are stacked
(:func:`torch.func.stack_module_state`) and one :func:`torch.func.vmap` of the loss runs all of
them in one forward/backward — the convolutions become grouped convolutions over M groups.
vmap was chosen over hand-written grouped convolutions: the networks stay the ordinary modules
(:mod:`disentkit.models`), BatchNorm running statistics included.

Each member keeps everything a single run has: its own parameters and Adam moments (Adam is
elementwise, so one Adam over the stacked tensors is M Adams), its own data generator and batch
stream (:func:`disentkit.training.batches.batch_stream`), its own reparameterisation generator (its
noise is drawn with the single run's call, outside vmap), its own β and its own gradient-norm
clip. Each member writes its own run folder — ``config.json``, ``log.jsonl``,
``checkpoint/checkpoint.safetensors`` — in the format of :func:`disentkit.training.train`, so
evaluate, transfer, report, sweep state and resume work unchanged; a member's folder can even be
resumed alone with ``train``. Its weights equal the single run's up to floating-point
reassociation (grouped vs plain convolutions; ``tests/test_ensemble.py`` states the tolerance).

No host synchronisation per step: the loss terms accumulate on the device and the finiteness
guard is read every ``log_every`` steps and before every checkpoint. A member whose loss or
gradient turns non-finite stops being saved (its last good checkpoint is kept, its log gets the
error), the others continue, and :class:`NonFiniteLossError` is raised at the end.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from disentkit import runfolder
from disentkit.config import TrainConfig, differences, save, to_dict
from disentkit.methods.base import NonFiniteLossError
from disentkit.training import checkpoint as ckpt
from disentkit.training import prepare
from disentkit.training._stack import Stack, ensemble_step
from disentkit.training.batches import batch_stream
from disentkit.training.logging import Progress, RunLog

#: settings in which the members of one ensemble may differ: the paper's grid varies seed and
#: β per source, and its fine-tunings start from different source runs (``init_from``)
MEMBER_FIELDS = ("run.seed", "method.beta", "model.init_from")


def ensemble_key(cfg: TrainConfig) -> str:
    """Configs with equal keys can train as one ensemble (all but seed, β, init_from agree)."""
    d = to_dict(cfg)
    for name in MEMBER_FIELDS:
        section, key = name.split(".")
        d[section].pop(key)
    return repr(d)


def group_members(cfgs: Sequence[TrainConfig], max_members: int) -> list[list[int]]:
    """Indices of ``cfgs`` grouped into ensembles: configs with one :func:`ensemble_key`, at most
    ``max_members`` per group, groups and members in the order of first appearance. What a
    sweep calls to train its grid as ensembles (``max_members=1``: every run alone)."""
    if int(max_members) < 1:
        raise ValueError(f"an ensemble holds at least 1 member; found max_members={max_members}")
    groups: dict[str, list[list[int]]] = {}
    order: list[list[int]] = []
    for i, cfg in enumerate(cfgs):
        chunks = groups.setdefault(ensemble_key(cfg), [])
        if not chunks or len(chunks[-1]) >= max_members:
            chunks.append([])
            order.append(chunks[-1])
        chunks[-1].append(i)
    return order


def check_members(cfgs: Sequence[TrainConfig], out_dirs: Sequence) -> None:
    """Refuse an empty ensemble, a folder count that differs, or members that differ in more
    than :data:`MEMBER_FIELDS` (naming the first such setting)."""
    if not cfgs:
        raise ValueError("an ensemble needs at least one member config; found none")
    if len(cfgs) != len(out_dirs):
        raise ValueError(f"an ensemble needs one output folder per member; found {len(cfgs)} "
                         f"configs and {len(out_dirs)} folders")
    if len({str(Path(d).resolve()) for d in out_dirs}) != len(out_dirs):
        raise ValueError("ensemble members need distinct output folders")
    for i, cfg in enumerate(cfgs[1:], 1):
        diffs = differences(cfgs[0], cfg, ignore=MEMBER_FIELDS)
        if diffs:
            raise ValueError(f"ensemble member {i} differs from member 0 in more than "
                             f"{' and '.join(MEMBER_FIELDS)}: {'; '.join(diffs)}")
    if cfgs[0].optim.trainable != "all":
        raise ValueError(f"ensembles train every parameter (optim.trainable='all'); found "
                         f"{cfgs[0].optim.trainable!r}: train such runs one by one")


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
    return steps.pop()


#: ``bit_generator`` tag of a data-generator state saved by on-device data (a torch generator)
TORCH_DATA = "torch"


class _CpuData:
    """Each member's NumPy generator and batch stream (the single run's, one thread each)."""

    def __init__(self, dataset, pairs: bool, cfg: TrainConfig, seeds: list[dict]):
        self.dataset, self.pairs, self.cfg = dataset, pairs, cfg
        self.rngs = [np.random.default_rng(s["data"]) for s in seeds]

    def restore(self, states: list[dict]) -> None:
        if any(s.get("bit_generator") == TORCH_DATA for s in states):
            raise ValueError("these runs drew their data on the device: resume them with "
                             "data_on_device=True")
        self.rngs = [ckpt.restore_numpy_rng(s) for s in states]

    def states(self) -> list[dict]:
        return [ckpt.numpy_rng_state(r) for r in self.rngs]

    def batches(self, count: int):
        """Yield (list of member batches as NumPy arrays, generator states after drawing)."""
        c = self.cfg
        streams = [batch_stream(self.dataset, self.pairs, c.optim.batch_size, r, c.data.k,
                                count=count, prefetch=c.run.prefetch, workers=c.run.data_workers)
                   for r in self.rngs]
        try:
            for items in zip(*streams):
                yield [a for a, _ in items], [s for _, s in items]
        finally:
            for stream in streams:
                stream.close()


class _DeviceData(_CpuData):
    """Each member's torch generator on the device and :class:`DeviceBatches` (no CPU work).

    Same distribution as the CPU stream, other draws; the generator state is saved in the
    checkpoint's data-generator slot, tagged ``bit_generator: "torch"``, so the ensemble resumes
    bit for bit (a member folder resumes only as an ensemble with on-device data).
    """

    def __init__(self, dataset, pairs: bool, cfg: TrainConfig, seeds: list[dict], device):
        from disentkit.data.render_torch import DeviceBatches

        self.pairs, self.cfg, self.device = pairs, cfg, device
        self.source = DeviceBatches(dataset, device)
        self.gens = [torch.Generator(device=device).manual_seed(s["data"]) for s in seeds]

    def restore(self, states: list[dict]) -> None:
        if any(s.get("bit_generator") != TORCH_DATA for s in states):
            raise ValueError("these runs drew their data on the CPU: resume them without "
                             "data_on_device")
        for g, s in zip(self.gens, states):
            g.set_state(torch.tensor(s["state"], dtype=torch.uint8))

    def states(self) -> list[dict]:
        return [{"bit_generator": TORCH_DATA, "state": g.get_state().tolist()} for g in self.gens]

    def batches(self, count: int):
        """Yield (stacked member batches on the device, generator states after drawing)."""
        n, k, src = self.cfg.optim.batch_size, self.cfg.data.k, self.source
        keys = ("x1", "x2", "changed") if self.pairs else ("x1",)
        for _ in range(count):
            parts = [src.pairs(n, g, k) if self.pairs
                     else {"x1": src.images(src.sample_factors(n, g), g)} for g in self.gens]
            yield {key: torch.stack([p[key] for p in parts]) for key in keys}, self.states()


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
    data_on_device: bool = False,
) -> list[Path]:
    """Train the member configs ``cfgs`` (equal but for seed, β and the run they fine-tune,
    ``model.init_from``) into ``out_dirs`` at once.

    Arguments as :func:`disentkit.training.train`; returns the run folders. Each folder is what
    ``train(cfgs[m], out_dirs[m])`` writes, up to floating-point reassociation of the weights.
    ``data_on_device`` draws the batches on the training device
    (:mod:`disentkit.data.render_torch`; generated dSprites family and Shapes3D only): the
    GPU path, where one CPU thread per member cannot keep up; other draws than the CPU's.
    Every member folder is held by its exclusive lock while the ensemble writes it, as
    :func:`~disentkit.training.train` holds its one (:mod:`disentkit.runfolder`).
    """
    cfgs = list(cfgs)
    check_members(cfgs, out_dirs)
    for c in cfgs:
        c.validate()
    run_dirs = [Path(d) for d in out_dirs]
    for d in run_dirs:  # every refusal before any folder is touched
        runfolder.check_output(d, overwrite, allow_unmarked=resume or (
            prepare.is_run_folder(d) and not overwrite))
    with contextlib.ExitStack() as held:
        for d in run_dirs:  # as train(): a folder another live process writes is refused
            held.enter_context(runfolder.hold(d))
        held.enter_context(prepare.flush_denormals(prepare.resolve_device(cfgs[0].run.device)))
        return _train_ensemble(cfgs, run_dirs, resume=resume, overwrite=overwrite,
                               progress=progress, dataset=dataset, data_on_device=data_on_device)


def _train_ensemble(cfgs: list[TrainConfig], run_dirs: list[Path], *, resume: bool,
                    overwrite: bool, progress, dataset, data_on_device: bool) -> list[Path]:
    """:func:`train_ensemble` once every member folder is checked and held."""
    from disentkit.methods import build_method

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
    dataset = dataset if dataset is not None else prepare.build_dataset(cfg)
    methods = [build_method(c.method.name, beta=c.method.beta,
                            warmup_steps=c.method.warmup_steps, **c.method.options) for c in cfgs]
    prepare.check_fits(cfg, methods[0], dataset)
    seeds = [prepare.seeds(c.run.seed) for c in cfgs]
    models = [prepare.build_network(c, dataset.image_shape[0], s["init"]).train()
              for c, s in zip(cfgs, seeds)]
    stack = Stack(models, methods[0], cfg.optim.lr, device)
    noises = [torch.Generator(device=device).manual_seed(s["noise"]) for s in seeds]
    pairs = methods[0].uses_pairs
    data = (_DeviceData(dataset, pairs, cfg, seeds, device) if data_on_device
            else _CpuData(dataset, pairs, cfg, seeds))
    step = 0
    if states is not None:
        step = _restore(stack, run_dirs, states, noises)
        data.restore([s.numpy_rng for s in states])
        if step > cfg.run.steps:
            raise ValueError(f"--steps {cfg.run.steps} is below the checkpoints' step {step}")
    info = {"arch": cfg.model.arch, "in_channels": int(dataset.image_shape[0]),
            "latent_dim": cfg.model.latent_dim, "device": str(device), "precision": precision,
            "torch": torch.__version__, "flush_denormals": prepare.flushes(device)}
    for d, c in zip(run_dirs, cfgs):
        save(c, d / "config.json")
    loop = _Loop(cfgs, run_dirs, stack, methods, noises, info, device, precision, step)
    bar = Progress(progress, cfg.run.steps, step)
    stream = data.batches(max(cfg.run.steps - step, 0))
    try:
        for arrays, data_states in stream:
            loop.step(arrays, data_states)
            bar.update(loop.at, cfg.run.steps, loop.last_record)
    finally:
        stream.close()
        bar.close()
    if states is None and cfg.run.steps == 0:
        loop.save_all(0, data.states())
    loop.raise_failures()
    return run_dirs


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
        self.started = self.last_time  # wall time of this process's part, logged as elapsed_s

    def step(self, arrays: list[dict], data_states: list[dict]) -> None:
        b = arrays if isinstance(arrays, dict) else _batch(arrays, self.device,
                                                          pin=self.device.type == "cuda")
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
                          "beta": self.methods[m].beta_at(self.at - 1), "images_per_s": rate,
                          "elapsed_s": round(now - self.started, 3)}
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
