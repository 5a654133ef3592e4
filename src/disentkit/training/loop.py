"""The training loop: plain PyTorch, step-based, readable top to bottom (docs/architecture.md, principle 6).

One step = draw a batch from the dataset with the run's NumPy generator (pairs for the
weakly-supervised methods, single images for β-VAE; rendered one step ahead in a background
thread, see :mod:`disentkit.training.batches`), then the method's template step (loss, backward,
optional clipping, Adam). Every ``log_every`` steps a line goes to ``log.jsonl``; every
``checkpoint_every`` steps and at the end a checkpoint is written atomically. Because weights,
optimiser, step and both generators are saved, a resumed run continues bit for bit (on CPU).

Defaults follow the paper (Dapueto et al. 2024 §4.1): Adam, lr 1e-4, batch 64 pairs, β 1.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from disentkit import runfolder
from disentkit.config import TrainConfig, save
from disentkit.methods import build_method
from disentkit.methods.base import NonFiniteLossError
from disentkit.training import checkpoint as ckpt
from disentkit.training import prepare
from disentkit.training.batches import batch_stream
from disentkit.training.logging import Progress, RunLog, TensorBoardLog


def train(cfg: TrainConfig, out_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
          progress: bool | None | Callable[[int, int], None] = None, dataset=None) -> Path:
    """Train ``cfg`` into the run folder ``out_dir`` and return its path (see :func:`_train`).

    The folder is held by an exclusive lock while the run writes it, and a non-empty folder that
    disentkit did not make is refused before anything is written (:mod:`disentkit.runfolder`).
    """
    cfg.validate()
    run_dir = Path(out_dir)
    runfolder.check_output(run_dir, overwrite,
                           allow_unmarked=resume or (prepare.is_run_folder(run_dir) and not overwrite))
    with runfolder.hold(run_dir), prepare.flush_denormals(prepare.resolve_device(cfg.run.device)):
        return _train(cfg, run_dir, resume=resume, overwrite=overwrite, progress=progress,
                      dataset=dataset)


def _train(cfg: TrainConfig, out_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
           progress: bool | None | Callable[[int, int], None] = None, dataset=None) -> Path:
    """Train ``cfg`` into the run folder ``out_dir`` and return its path. ``resume`` continues
    up to ``cfg.run.steps``; ``overwrite`` replaces a run; ``dataset`` replaces the lookup of
    ``cfg.data`` (any FactorDataset); ``progress``: see :class:`.logging.Progress`. A non-finite
    loss raises :class:`~disentkit.methods.base.NonFiniteLossError`, keeping the last checkpoint.
    """
    run_dir = Path(out_dir)  # cfg was validated by train()
    prepare.prepare_run_dir(run_dir, cfg, resume, overwrite)
    tb = TensorBoardLog(run_dir) if cfg.run.logger == "tensorboard" else None  # fails early
    state = ckpt.load_checkpoint(run_dir) if resume and ckpt.checkpoint_path(run_dir).is_file() else None

    device, precision, channels_last = prepare.compute_setup(cfg, state)

    # --- data, method, model, optimiser, generators (all seeded from the run seed)
    dataset = dataset if dataset is not None else prepare.build_dataset(cfg)
    seeds = prepare.seeds(cfg.run.seed)
    method, model, optimizer = _build(cfg, dataset, seeds["init"], device, channels_last)
    data_rng = np.random.default_rng(seeds["data"])
    noise = torch.Generator(device=device).manual_seed(seeds["noise"])
    step = 0
    if state is not None:  # resume: restore every piece of state
        data_rng, step = prepare.restore_state(state, run_dir, model, optimizer, noise, cfg.run.steps)
    info = {"arch": cfg.model.arch, "in_channels": int(dataset.image_shape[0]),
            "latent_dim": cfg.model.latent_dim, "device": str(device), "precision": precision,
            "torch": torch.__version__, "flush_denormals": prepare.flushes(device)}

    def save_checkpoint(at_step: int, data_rng_state: dict) -> None:
        ckpt.save_checkpoint(run_dir, ckpt.TrainingState(
            step=at_step, model=model.state_dict(), optimizer=optimizer.state_dict(),
            torch_rng=noise.get_state(), numpy_rng=data_rng_state, info=info))

    save(cfg, run_dir / "config.json")
    log = RunLog(run_dir, keep_until=step)
    bar = Progress(progress, cfg.run.steps, step)
    tally = _Tally(device, lazy=device.type not in EAGER_GUARD_DEVICES, step=step)
    last_checkpoint = state.step if state is not None else None

    def stop(exc: NonFiniteLossError, at: int) -> NonFiniteLossError:
        err = _stopped(exc, at, last_checkpoint, run_dir)  # 1-based, as logged
        log.write({"step": at, "error": str(err)})
        tally.failed = True
        return err

    # --- the loop
    stream = batch_stream(dataset, method.uses_pairs, cfg.optim.batch_size, data_rng, cfg.data.k,
                          count=max(cfg.run.steps - step, 0), prefetch=cfg.run.prefetch,
                          workers=cfg.run.data_workers)
    try:
        for arrays, data_rng_state in stream:
            batch = prepare.to_device(arrays, device, channels_last)
            try:
                terms = method.training_step(model, optimizer, batch, step, noise,
                                             cfg.optim.grad_clip, precision, lazy_guard=tally.lazy)
            except NonFiniteLossError as exc:
                raise stop(exc, step + 1) from None
            step += 1
            tally.add(terms, step)
            record = None
            log_now = step % cfg.run.log_every == 0 or step == cfg.run.steps
            save_now = step % cfg.run.checkpoint_every == 0 or step == cfg.run.steps
            if (log_now or save_now) and tally.first_bad() is not None:
                raise stop(NonFiniteLossError(tally.first_bad(), "loss or gradient norm",
                                              float("nan")), tally.first_bad()) from None
            if log_now:
                record = tally.record(step, terms.beta, batch.num_images)
                log.write(record)
                if tb is not None:
                    tb.write(record)
            if save_now:
                save_checkpoint(step, data_rng_state)  # the data stream as of this step
                last_checkpoint = step
            bar.update(step, cfg.run.steps, record)
    finally:
        stream.close()
        bar.close()
        _close_tensorboard(tb, model, dataset, -1 if tally.failed else step, cfg.run.steps, device)
    if state is None and cfg.run.steps == 0:  # a zero-step run leaves a loadable untrained model
        save_checkpoint(0, ckpt.numpy_rng_state(data_rng))
    return run_dir


#: devices whose step checks finiteness eagerly (a host read costs nothing there); elsewhere the
#: guard is lazy: no host synchronisation per step (see :meth:`Method.training_step`)
EAGER_GUARD_DEVICES = ("cpu",)


class _Tally:
    """The loss sums since the last log line, kept on the device, and the lazy finiteness
    guard (the first bad 1-based step), both read only every ``log_every`` steps and before a
    checkpoint: a step needs no host synchronisation. Sums are float64 in step order, so the
    logged means equal those of a loop that read every value on the host."""

    def __init__(self, device: torch.device, lazy: bool, step: int):
        self.lazy, self.failed = lazy, False
        self.last_time, self.last_step = time.perf_counter(), step
        self.started = self.last_time  # wall time of this process's part, logged as elapsed_s
        self.sums = torch.zeros(3, dtype=torch.float64, device=device)
        self.bad = torch.full((), -1, dtype=torch.int64, device=device) if lazy else None

    def add(self, terms, step: int) -> None:
        self.sums += torch.stack([t.detach().double() for t in
                                  (terms.loss, terms.reconstruction, terms.kl)])
        if self.lazy:
            self.bad = torch.where(~terms.finite & (self.bad < 0), step, self.bad)

    def first_bad(self) -> int | None:
        """The first step whose loss or gradient was not finite (one host read), or None."""
        if not self.lazy:
            return None
        bad = int(self.bad)
        return bad if bad >= 0 else None

    def take(self) -> np.ndarray:
        """The sums (one host read), reset to zero."""
        out = self.sums.cpu().numpy().copy()
        self.sums.zero_()
        return out

    def record(self, step: int, beta: float, images: int) -> dict:
        """The ``log.jsonl`` line of ``step`` (means since the last line, rate, elapsed)."""
        now = time.perf_counter()
        rec = _record(step, step - self.last_step, self.take(), beta,
                      images / max(now - self.last_time, 1e-9), now - self.started)
        self.last_time, self.last_step = now, step
        return rec


def _build(cfg: TrainConfig, dataset, init_seed: int, device, channels_last: bool):
    """The method (checked against the dataset), the network on ``device`` and its Adam."""
    method = build_method(cfg.method.name, beta=cfg.method.beta,
                          warmup_steps=cfg.method.warmup_steps, **cfg.method.options)
    prepare.check_fits(cfg, method, dataset)
    model = prepare.build_network(cfg, dataset.image_shape[0], init_seed).to(device)
    model = (model.to(memory_format=torch.channels_last) if channels_last else model).train()
    params = prepare.trainable_parameters(model, cfg.optim.trainable)
    return method, model, torch.optim.Adam(params, lr=cfg.optim.lr)


def _record(step: int, n: int, totals: np.ndarray, beta: float, batches_per_s: float,
            elapsed: float) -> dict:
    """One ``log.jsonl`` line: the means over the ``n`` steps since the last line, and the
    seconds since this process started training (the report's wall time per stage)."""
    return {"step": step, "loss": totals[0] / n, "reconstruction": totals[1] / n,
            "kl": totals[2] / n, "beta": beta, "images_per_s": n * batches_per_s,
            "elapsed_s": round(elapsed, 3)}


def _stopped(exc: NonFiniteLossError, step: int, last_checkpoint: int | None,
             run_dir: Path) -> NonFiniteLossError:
    """The error a non-finite step raises, saying which checkpoint is kept."""
    kept = (f"the last good checkpoint (step {last_checkpoint}) is kept in "
            f"{ckpt.checkpoint_path(run_dir)}" if last_checkpoint is not None
            else "no checkpoint had been written yet")
    return NonFiniteLossError(step, exc.term, exc.value, kept)


def _close_tensorboard(tb, model, dataset, step: int, steps: int, device) -> None:
    """A finished run ends its TensorBoard log with a reconstruction/traversal image."""
    if tb is None:
        return
    if step > 0 and step == steps:
        tb.add_final_image(model, dataset, step, device)
    tb.close()
