"""Everything the training loop needs before its first step: device and precision, seeds, the
run folder guard, the model (fresh or initialised from another run), and moving a batch to the
device.

Kept apart from :mod:`disentkit.training.loop` so that the loop itself reads top to bottom.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch

from disentkit import runfolder
from disentkit.config import TrainConfig, differences, from_dict, to_dict
from disentkit.data.pairs import check_pairs
from disentkit.data.registry import get_dataset
from disentkit.models import build_model
from disentkit.training.checkpoint import (CheckpointError, checkpoint_path, load_checkpoint,
                                           load_model_weights, restore_numpy_rng)
from disentkit.errors import DisentkitError
from disentkit.io import read_json
from disentkit.methods.base import Batch

#: run settings that may change when a run is resumed (the rest must match the saved config)
RESUMABLE_CHANGES = ("run.steps", "run.log_every", "run.checkpoint_every", "run.threads",
                     "run.device", "run.precision", "run.prefetch", "run.logger",
                     "run.data_workers")


class RunExistsError(DisentkitError, FileExistsError):
    """The output folder already holds a run and neither resume nor overwrite was asked for."""


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU (docs/architecture.md, principle 8: resolved at run start)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but this torch build sees no CUDA device")
    return torch.device(name)


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> bf16 on a CUDA device that supports it, else fp32 (public torch API only).
    CPUs train in fp32: the paper trained in fp32, and bf16 is an explicit opt-in there."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "fp32"


def compute_setup(cfg: TrainConfig, state) -> tuple[torch.device, str, bool]:
    """Threads, device, precision and memory format of a run (a resumed ``state`` keeps its
    arithmetic when the precision is ``auto``)."""
    if cfg.run.threads is not None:
        torch.set_num_threads(cfg.run.threads)
    device = resolve_device(cfg.run.device)
    precision = resolve_precision(cfg.run.precision, device)
    if state is not None and cfg.run.precision == "auto":
        precision = state.info.get("precision", precision)
    return device, precision, use_channels_last(device, precision)


def restore_state(state, run_dir: Path, model, optimizer, noise: torch.Generator, steps: int):
    """Restore weights, optimiser and both generators from a checkpoint; return the data
    generator and the step to continue from."""
    path = checkpoint_path(run_dir)
    if state.optimizer is None or state.torch_rng is None or state.numpy_rng is None:
        raise CheckpointError(f"{path} holds weights only (no optimiser or generator state): "
                              "it cannot be resumed")
    load_model_weights(model, state.model, path)
    optimizer.load_state_dict(state.optimizer)
    noise.set_state(state.torch_rng)
    if state.step > steps:
        raise ValueError(f"--steps {steps} is below the checkpoint's step {state.step} in {run_dir}")
    return restore_numpy_rng(state.numpy_rng), state.step


def use_channels_last(device: torch.device, precision: str) -> bool:
    """Channels-last (NHWC) where it pays: always on CPU, where oneDNN's convolutions run faster
    on it in fp32 as well as bf16 (measured: 1.1-1.8x for both networks on an AVX2 EPYC, see the
    report of issue 4), and with bf16 on CUDA (tensor cores)."""
    return device.type == "cpu" or precision == "bf16"


#: flush subnormal floats to zero while training on CPU (see :func:`flush_denormals`)
FLUSH_DENORMALS = True


@contextlib.contextmanager
def flush_denormals(device: torch.device):
    """Treat subnormal floats as zero on CPU for the duration of a training run.

    Adam's first moments of weights whose gradient is zero decay into the subnormal range
    (measured on the quick preset's source: half of the encoder's fully-connected ``exp_avg``
    after 1,000 steps), and x86 arithmetic on subnormals is many times slower: the step rate fell
    from 930 to 515 images/s over the first 1,000 steps, and flushing brought it back to 900
    (2 threads; 1.95x on 1 thread). Values below 1.2e-38 are zero for every purpose of this
    model, and the runs stay a function of (config, seed).

    The switch (x86 FTZ/DAZ) is per thread, so it is set on the calling thread and on every
    thread of the OpenMP team PyTorch computes with (:func:`_on_openmp_threads`), and turned off
    again on all of them when the run ends (PyTorch's default). GPUs need nothing here."""
    if not flushes(device):
        yield
        return
    _set_flush_everywhere(True)
    try:
        yield
    finally:
        _set_flush_everywhere(False)


def flushes(device: torch.device) -> bool:
    """Whether training on ``device`` treats subnormals as zero (recorded in checkpoints)."""
    return device.type == "cpu" and FLUSH_DENORMALS


def _set_flush_everywhere(on: bool) -> None:
    torch.set_flush_denormal(on)
    _on_openmp_threads(lambda: torch.set_flush_denormal(on))


def _on_openmp_threads(fn) -> bool:
    """Call ``fn`` once on each thread of PyTorch's OpenMP team (GNU libgomp, the runtime of
    PyTorch's Linux wheels), via ``GOMP_parallel``; False when that runtime is not loaded (the
    calling thread alone was then set, which is all there is with one thread)."""
    import ctypes

    lib = _torch_libgomp()
    if lib is None or torch.get_num_threads() < 2:
        return False
    callback = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(lambda _data: fn())
    lib.GOMP_parallel.restype = None
    lib.GOMP_parallel.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
    lib.GOMP_parallel(ctypes.cast(callback, ctypes.c_void_p), None, torch.get_num_threads(), 0)
    return True


def _torch_libgomp():
    """The libgomp this process loaded for PyTorch (preferring the copy in torch's folder)."""
    import ctypes

    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:  # not Linux
        return None
    paths = sorted({line.split()[-1] for line in maps if "libgomp" in line.split()[-1]},
                   key=lambda p: "torch" not in p)
    try:
        return ctypes.CDLL(paths[0]) if paths else None
    except OSError:
        return None


def seeds(seed: int) -> dict[str, int]:
    """Independent seeds for weight initialisation, data and noise, derived from the run seed."""
    children = np.random.SeedSequence(seed).spawn(3)
    names = ("init", "data", "noise")
    return {n: int(c.generate_state(1, np.uint32)[0]) for n, c in zip(names, children)}


def is_run_folder(run_dir: Path) -> bool:
    return (run_dir / "config.json").is_file() or (run_dir / "checkpoint").is_dir()


def prepare_run_dir(run_dir: Path, cfg: TrainConfig, resume: bool, overwrite: bool) -> None:
    """Guard an existing run: refuse to clobber it unless ``overwrite``; on ``resume`` check that
    only run settings (steps, logging, device…) differ from the saved config. ``overwrite``
    removes only what disentkit wrote, and only in a folder carrying our marker
    (:mod:`disentkit.runfolder`). The folder is marked as ours on the way out; the temporary
    files of a save that was killed are removed."""
    from disentkit.training.checkpoint import remove_temporaries

    remove_temporaries(run_dir)
    if overwrite and not runfolder.is_empty(run_dir):
        runfolder.clear(run_dir)
    elif is_run_folder(run_dir):
        _check_existing(run_dir, cfg, resume)
    if overwrite or not runfolder.is_ours(run_dir):  # a resumed run keeps its marker
        runfolder.write_marker(run_dir, "train", to_dict(cfg))


def _check_existing(run_dir: Path, cfg: TrainConfig, resume: bool) -> None:
    saved = _saved_config(run_dir)
    if not resume:
        step = load_checkpoint(run_dir).step if checkpoint_path(run_dir).is_file() else 0
        done = step >= saved.run.steps
        state = f"a finished run (step {step})" if done else f"an unfinished run (step {step} of {saved.run.steps})"
        raise RunExistsError(
            f"{run_dir} already holds {state}; pass --resume to continue it "
            f"(with a larger --steps to train longer) or --overwrite to replace it"
        )
    diffs = differences(saved, cfg, ignore=RESUMABLE_CHANGES)
    if diffs:
        raise ValueError(f"--resume: the config differs from the saved run in {'; '.join(diffs)}")


def _saved_config(run_dir: Path) -> TrainConfig:
    path = run_dir / "config.json"
    if not path.is_file():
        raise DisentkitError(f"{run_dir} has a checkpoint but no config.json; it is not a disentkit run")
    try:
        return from_dict(TrainConfig, read_json(path))
    except (ValueError, TypeError) as exc:
        raise DisentkitError(f"{path} is not a disentkit training config: {exc}") from exc


def build_network(cfg: TrainConfig, in_channels: int, init_seed: int):
    """The network with seeded initialisation, or the weights of ``cfg.model.init_from``."""
    with torch.random.fork_rng(devices=[]):  # seed initialisation without touching global state
        torch.manual_seed(init_seed)
        model = build_model(cfg.model.arch, in_channels, cfg.model.latent_dim)
    if cfg.model.init_from:
        source = Path(cfg.model.init_from)
        load_model_weights(model, load_checkpoint(source).model, checkpoint_path(source))
    return model


def trainable_parameters(model, which: str) -> list[torch.nn.Parameter]:
    """Parameters optimised for ``which`` in all|encoder|decoder, as the network itself divides
    them (``encoder_modules()`` / ``decoder_modules()``); the others are frozen and their modules
    kept in eval mode (a frozen encoder's BatchNorm statistics do not drift)."""
    if which == "all":
        return list(model.parameters())
    if not (hasattr(model, "encoder_modules") and hasattr(model, "decoder_modules")):
        raise ValueError(f"{type(model).__name__} does not say which modules are its encoder and "
                         "decoder (encoder_modules() / decoder_modules()); fine-tune 'all'")
    encoder, decoder = model.encoder_modules(), model.decoder_modules()
    train, frozen = (encoder, decoder) if which == "encoder" else (decoder, encoder)
    for module in frozen:
        module.eval()
        module.requires_grad_(False)
    return [p for m in train for p in m.parameters()]


def build_dataset(cfg: TrainConfig):
    """The dataset ``cfg.data`` describes (name or ``module:Class`` path, root, options)."""
    kwargs = dict(cfg.data.options)
    if cfg.data.root is not None:
        kwargs["root"] = cfg.data.root
    return get_dataset(cfg.data.dataset, **kwargs)


def to_device(arrays: dict, device: torch.device, channels_last: bool) -> Batch:
    """A NumPy batch as tensors on ``device``. On CUDA the host copy is pinned and the transfer
    non-blocking, so the copy overlaps the previous step instead of stalling the host."""
    pin = device.type == "cuda"

    def move(t: torch.Tensor) -> torch.Tensor:
        return t.pin_memory().to(device, non_blocking=True) if pin else t.to(device)

    def image(a):
        t = move(torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)))
        return t.contiguous(memory_format=torch.channels_last) if channels_last else t

    changed = arrays.get("changed")
    return Batch(
        x1=image(arrays["x1"]),
        x2=image(arrays["x2"]) if "x2" in arrays else None,
        changed=move(torch.from_numpy(changed)) if changed is not None else None,
    )


def check_fits(cfg: TrainConfig, method, dataset) -> None:
    """Before the first step: the method's own constraints (:meth:`Method.check`) and, for the
    weakly-supervised methods, that the dataset holds pairs at all (a sparse grid once hung)."""
    method.check(dataset, cfg.model.latent_dim)
    if method.uses_pairs:
        check_pairs(dataset, cfg.data.k)
