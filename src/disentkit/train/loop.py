"""The training loop: plain PyTorch, step-based, readable top to bottom (docs/architecture.md, principle 6).

One step = draw a batch from the dataset with the run's NumPy generator (pairs for the
weakly-supervised methods, single images for β-VAE; rendered one step ahead in a background
thread, see :mod:`disentkit.train.batches`), then the method's template step (loss, backward,
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
from disentkit.methods.base import NonFiniteLossError
from disentkit.train import checkpoint as ckpt
from disentkit.train import prepare
from disentkit.train.batches import batch_stream
from disentkit.train.logging import Progress, RunLog, TensorBoardLog


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


def _train(
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | None | Callable[[int, int], None] = None,
    dataset=None,
) -> Path:
    """Train ``cfg`` into the run folder ``out_dir`` and return its path.

    ``resume`` continues from the folder's checkpoint up to ``cfg.run.steps`` (which may exceed the
    earlier target); ``overwrite`` replaces an existing run; ``dataset`` overrides the registry
    lookup of ``cfg.data`` (e.g. a held-out subset for fine-tuning). ``progress``: see
    :class:`~disentkit.train.logging.Progress`. A non-finite loss raises
    :class:`~disentkit.methods.base.NonFiniteLossError` and keeps the last good checkpoint.
    """
    from disentkit.methods import build_method

    cfg.validate()
    run_dir = Path(out_dir)
    prepare.prepare_run_dir(run_dir, cfg, resume, overwrite)
    tb = TensorBoardLog(run_dir) if cfg.run.logger == "tensorboard" else None  # fails early
    state = ckpt.load_checkpoint(run_dir) if resume and ckpt.checkpoint_path(run_dir).is_file() else None

    # --- where and how to compute
    if cfg.run.threads is not None:
        torch.set_num_threads(cfg.run.threads)
    device = prepare.resolve_device(cfg.run.device)
    precision = prepare.resolve_precision(cfg.run.precision, device)
    if state is not None and cfg.run.precision == "auto":
        precision = state.info.get("precision", precision)  # a resumed run keeps its arithmetic
    channels_last = prepare.use_channels_last(device, precision)

    # --- data, method, model, optimiser, generators (all seeded from the run seed)
    dataset = dataset if dataset is not None else _get_dataset(cfg)
    method = build_method(cfg.method.name, beta=cfg.method.beta,
                          warmup_steps=cfg.method.warmup_steps, **cfg.method.options)
    _check_method_fits(cfg, method, dataset)
    seeds = prepare.seeds(cfg.run.seed)
    model = prepare.build_network(cfg, dataset.image_shape[0], seeds["init"]).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    params = prepare.trainable_parameters(model, cfg.optim.trainable)
    optimizer = torch.optim.Adam(params, lr=cfg.optim.lr)
    data_rng = np.random.default_rng(seeds["data"])
    noise = torch.Generator(device=device).manual_seed(seeds["noise"])
    step = 0
    if state is not None:  # resume: restore every piece of state
        if state.optimizer is None or state.torch_rng is None or state.numpy_rng is None:
            raise ckpt.CheckpointError(f"{ckpt.checkpoint_path(run_dir)} holds weights only "
                                       "(no optimiser or generator state): it cannot be resumed")
        ckpt.load_model_weights(model, state.model, ckpt.checkpoint_path(run_dir))
        optimizer.load_state_dict(state.optimizer)
        noise.set_state(state.torch_rng)
        data_rng = ckpt.restore_numpy_rng(state.numpy_rng)
        step = state.step
        if step > cfg.run.steps:
            raise ValueError(f"--steps {cfg.run.steps} is below the checkpoint's step {step} in {run_dir}")
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
                kept = (f"the last good checkpoint (step {last_checkpoint}) is kept in "
                        f"{ckpt.checkpoint_path(run_dir)}" if last_checkpoint is not None
                        else "no checkpoint had been written yet")
                err = NonFiniteLossError(step + 1, exc.term, exc.value, kept)  # 1-based, as logged
                log.write({"step": step + 1, "error": str(err)})
                raise err from None
            step += 1
            totals += (terms.loss.item(), terms.reconstruction.item(), terms.kl.item())
            record = None
            if step % cfg.run.log_every == 0 or step == cfg.run.steps:
                now = time.perf_counter()
                n = step - last_step
                record = {"step": step, "loss": totals[0] / n, "reconstruction": totals[1] / n,
                          "kl": totals[2] / n, "beta": terms.beta,
                          "images_per_s": n * batch.num_images / max(now - last_time, 1e-9),
                          "elapsed_s": round(now - started, 3)}
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
        if tb is not None:
            if step > 0 and step == cfg.run.steps:
                tb.add_final_image(model, dataset, step, device)
            tb.close()
    if state is None and cfg.run.steps == 0:  # a zero-step run leaves a loadable untrained model
        save_checkpoint(0, ckpt.numpy_rng_state(data_rng))
    return run_dir


def _get_dataset(cfg: TrainConfig):
    from disentkit.data.registry import get_dataset

    kwargs = dict(cfg.data.options)
    if cfg.data.root is not None:
        kwargs["root"] = cfg.data.root
    return get_dataset(cfg.data.dataset, **kwargs)


def _check_method_fits(cfg: TrainConfig, method, dataset) -> None:
    if method.uses_pairs:  # pairs must exist before the first step (issue 14: a sparse grid hung)
        from disentkit.data.pairs import check_pairs

        check_pairs(dataset, cfg.data.k)
    if method.name == "gvae-labels" and cfg.model.latent_dim < dataset.num_factors:
        raise ValueError(
            f"gvae-labels ties factor k to latent dimension k: latent_dim must be >= the "
            f"{dataset.num_factors} factors of {dataset.name!r}, found {cfg.model.latent_dim}"
        )
