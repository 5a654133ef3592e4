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
    with runfolder.hold(run_dir):
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
    method = build_method(cfg.method.name, beta=cfg.method.beta,
                          warmup_steps=cfg.method.warmup_steps, **cfg.method.options)
    prepare.check_fits(cfg, method, dataset)
    seeds = prepare.seeds(cfg.run.seed)
    model = prepare.build_network(cfg, dataset.image_shape[0], seeds["init"]).to(device)
    model = (model.to(memory_format=torch.channels_last) if channels_last else model).train()
    params = prepare.trainable_parameters(model, cfg.optim.trainable)
    optimizer = torch.optim.Adam(params, lr=cfg.optim.lr)
    data_rng = np.random.default_rng(seeds["data"])
    noise = torch.Generator(device=device).manual_seed(seeds["noise"])
    step = 0
    if state is not None:  # resume: restore every piece of state
        data_rng, step = prepare.restore_state(state, run_dir, model, optimizer, noise, cfg.run.steps)
    info = {"arch": cfg.model.arch, "in_channels": int(dataset.image_shape[0]),
            "latent_dim": cfg.model.latent_dim, "device": str(device), "precision": precision,
            "torch": torch.__version__}

    def save_checkpoint(at_step: int, data_rng_state: dict) -> None:
        ckpt.save_checkpoint(run_dir, ckpt.TrainingState(
            step=at_step, model=model.state_dict(), optimizer=optimizer.state_dict(),
            torch_rng=noise.get_state(), numpy_rng=data_rng_state, info=info))

    save(cfg, run_dir / "config.json")
    log = RunLog(run_dir, keep_until=step)
    bar = Progress(progress, cfg.run.steps, step)
    totals, last_time, last_step = np.zeros(3), time.perf_counter(), step
    started = last_time  # wall time of this process's part of the run, logged as elapsed_s
    last_checkpoint = state.step if state is not None else None

    # --- the loop
    stream = batch_stream(dataset, method.uses_pairs, cfg.optim.batch_size, data_rng, cfg.data.k,
                          count=max(cfg.run.steps - step, 0), prefetch=cfg.run.prefetch)
    try:
        for arrays, data_rng_state in stream:
            batch = prepare.to_device(arrays, device, channels_last)
            try:
                terms = method.training_step(model, optimizer, batch, step, noise,
                                             cfg.optim.grad_clip, precision)
            except NonFiniteLossError as exc:
                err = _stopped(exc, step + 1, last_checkpoint, run_dir)  # 1-based, as logged
                log.write({"step": step + 1, "error": str(err)})
                raise err from None
            step += 1
            totals += (terms.loss.item(), terms.reconstruction.item(), terms.kl.item())
            record = None
            if step % cfg.run.log_every == 0 or step == cfg.run.steps:
                now = time.perf_counter()
                record = _record(step, step - last_step, totals, terms.beta,
                                 batch.num_images / max(now - last_time, 1e-9), now - started)
                log.write(record)
                if tb is not None:
                    tb.write(record)
                totals[:], last_time, last_step = 0.0, now, step
            if step % cfg.run.checkpoint_every == 0 or step == cfg.run.steps:
                save_checkpoint(step, data_rng_state)  # the data stream as of this step
                last_checkpoint = step
            bar.update(step, cfg.run.steps, record)
    finally:
        stream.close()
        bar.close()
        _close_tensorboard(tb, model, dataset, step, cfg.run.steps, device)
    if state is None and cfg.run.steps == 0:  # a zero-step run leaves a loadable untrained model
        save_checkpoint(0, ckpt.numpy_rng_state(data_rng))
    return run_dir


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
