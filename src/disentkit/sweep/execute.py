"""Run one planned run, whatever the executor: the single place where the sweep meets the
training, evaluation and transfer code.

:func:`execute_run` is what a local worker process or a Slurm job calls. It claims the run folder
(:class:`~disentkit.sweep.state.RunLock`), calls :func:`dispatch`, and records the outcome:
``done.json`` on success, ``error.json`` with the traceback on failure. Errors never escape to
the pool unless ``reraise`` is set (a Slurm job re-raises so that Slurm itself marks the job as
failed; the error is on disk either way). Re-running a run that was interrupted resumes it: the
training entry point continues from its last checkpoint, and the transfer skips finished stages.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
import traceback
from pathlib import Path
from typing import Callable

from disentkit.io import write_json
from disentkit.sweep.state import (DONE, FAILED, RUNNING, SPEC_FILE, RunLock, record_done, record_error,
                                  slurm_job_id)
from disentkit.sweep.study import RunSpec

#: the run's stdout and stderr (progress lines, warnings), appended on every attempt
LOG_FILE = "run.log"



@dataclasses.dataclass(frozen=True)
class Runtime:
    """Where and how a run executes; not part of its id (the results do not depend on it).

    ``data_root``: folder holding the real datasets (itself or a sub-folder named after each
    dataset), as for ``disentkit run --data-root``.
    """

    threads: int | None = None
    device: str = "auto"
    data_root: str | None = None


#: signature of a dispatch function: (spec, run_dir, source_dir or None, runtime) -> None
Dispatch = Callable[[RunSpec, Path, "Path | None", Runtime], None]


def execute_run(
    spec: RunSpec | dict,
    out: str | Path,
    *,
    runtime: Runtime | None = None,
    dispatch: Dispatch | None = None,
    reraise: bool = False,
) -> str:
    """Run ``spec`` inside ``out/spec.folder`` and return its final state (done/failed/running).

    ``running`` means another live process holds the run; nothing was done. ``runtime.threads``
    sets torch's CPU threads for this run (the executor splits the machine's cores fairly).
    """
    runtime = runtime or Runtime()
    if isinstance(spec, dict):
        spec = RunSpec.from_dict(spec)
    out = Path(out).resolve()
    run_dir = out / spec.folder
    dispatch = dispatch or default_dispatch
    lock = RunLock(run_dir)
    if not lock.acquire():
        return RUNNING
    started = time.time()
    try:
        write_json(run_dir / SPEC_FILE, {**spec.to_dict(), "started": started})
        source_dir = _source_dir(spec, out)
        # the run's own output (progress, warnings) goes to its folder, not the sweep's console
        with open(run_dir / LOG_FILE, "a", encoding="utf-8") as log, \
                contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            dispatch(spec, run_dir, source_dir, runtime)
        record_done(run_dir, id=spec.id, elapsed_s=time.time() - started, threads=runtime.threads)
        return DONE
    except KeyboardInterrupt:
        raise  # interrupted, not failed: the lock goes, the run stays todo and resumes next time
    except BaseException as exc:  # noqa: BLE001 - a failed run is recorded, the sweep goes on
        record_error(
            run_dir,
            type(exc).__name__,
            str(exc),
            traceback.format_exc(),
            id=spec.id,
            elapsed_s=time.time() - started,
            host=os.uname().nodename,
            slurm_job_id=slurm_job_id(),
        )
        if reraise or not isinstance(exc, Exception):
            raise
        return FAILED
    finally:
        lock.release()


def _source_dir(spec: RunSpec, out: Path) -> Path | None:
    """A transfer's source run folder, found from the source id in its config."""
    if spec.kind != "transfer":
        return None
    matches = sorted((out / "sources").glob(f"*.{spec.config['source_id'][:8]}"))
    if not matches:
        raise FileNotFoundError(
            f"transfer {spec.name}: its source run {spec.config['source_id']} has no folder under {out / 'sources'}"
        )
    return matches[0]


def set_threads(threads: int | None) -> None:
    """Pin this process's CPU threads (torch intra-op, OpenMP, MKL) to ``threads``."""
    if threads is None:
        return
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    import torch

    torch.set_num_threads(threads)


def default_dispatch(spec: RunSpec, run_dir: Path, source_dir: Path | None, runtime: Runtime) -> None:
    """Call the real entry point for ``spec.kind``: train + evaluate a source, or transfer."""
    set_threads(runtime.threads)
    if spec.kind == "source":
        run_source(spec, run_dir, runtime)
    elif spec.kind == "transfer":
        if source_dir is None:
            raise ValueError(f"transfer {spec.name}: no source run folder")
        run_transfer(spec, run_dir, source_dir, runtime)
    else:
        raise ValueError(f"run {spec.id}: kind must be 'source' or 'transfer', found {spec.kind!r}")


def eval_settings(config: dict):
    """The study's evaluation section as :class:`disentkit.evaluate.EvalSettings`."""
    from disentkit.evaluate import EvalSettings

    ev = config["evaluation"]
    metrics = tuple(ev["metrics"]) if ev.get("metrics") else None
    return EvalSettings(n=int(ev["n_samples"]), metrics=metrics, figures=bool(ev.get("figures", True)))


def dataset_root(name: str, data_root: str | None) -> str | None:
    """The ``root`` for dataset ``name``: ``data_root/name`` when that folder exists; else
    ``data_root`` itself for a dataset that cannot be built without files (its constructor
    requires ``root``); else None (generated or built-in data). A dataset that needs files
    without ``data_root`` is an error that says so, not a missing-argument message."""
    import inspect

    from disentkit.data.registry import dataset_class

    param = inspect.signature(dataset_class(name)).parameters.get("root")
    if param is None:
        return None
    required = param.default is inspect.Parameter.empty
    if data_root and (Path(data_root) / name).is_dir():
        return str(Path(data_root) / name)
    if required and not data_root:
        raise ValueError(
            f"dataset {name!r} is read from files: pass --data-root DIR (holding them, "
            "or a sub-folder named after the dataset)"
        )
    return str(data_root) if required else None


def train_config(spec: RunSpec, runtime: Runtime):
    """The :class:`~disentkit.config.TrainConfig` of a source run (study values + ``set``)."""
    from disentkit.config import (DataConfig, MethodConfig, ModelConfig, OptimConfig, RunConfig,
                                 TrainConfig, apply_overrides)

    c = spec.config
    cfg = TrainConfig(
        data=DataConfig(dataset=c["dataset"], root=dataset_root(c["dataset"], runtime.data_root)),
        model=ModelConfig(arch=c["arch"], latent_dim=c["latent_dim"]),
        method=MethodConfig(name=c["method"], beta=c["beta"], warmup_steps=c["warmup"]),
        optim=OptimConfig(lr=c["lr"], batch_size=c["batch_size"]),
        run=RunConfig(steps=c["steps"], seed=c["seed"], device=runtime.device, threads=runtime.threads,
                      checkpoint_every=max(c["steps"] // 10, 1)),
    )
    overrides = [f"{k}={json.dumps(v)}" for k, v in sorted(c.get("set", {}).items())]
    return apply_overrides(cfg, overrides).validate()


def run_source(spec: RunSpec, run_dir: Path, runtime: Runtime) -> None:
    """Train (resuming from the folder's checkpoint if any), then evaluate the source on its own
    data beside its untrained floor (``eval/``, ``floor/``): the source table of the paper."""
    from disentkit.evaluate import evaluate_source
    from disentkit.train import train

    train(train_config(spec, runtime), run_dir, resume=True, progress=False)
    floor = bool(spec.config["evaluation"].get("floor", True))
    evaluate_source(run_dir, eval_settings(spec.config), floor=floor)
    _check_complete(spec, run_dir, ("eval", "floor") if floor else ("eval",))


def run_transfer(spec: RunSpec, run_dir: Path, source_dir: Path, runtime: Runtime) -> None:
    """Zero-shot evaluation, fine-tuning and evaluation after (disentkit.transfer); finished
    stages skip, so an interrupted transfer resumes."""
    from disentkit.transfer import TransferConfig, transfer

    c = spec.config
    cfg = TransferConfig(
        source=str(source_dir), target=c["target"], finetune=c["finetune"], steps=c["finetune_steps"],
        beta=c["beta"], lr=c["lr"], batch_size=c["batch_size"], seed=c["seed"],
        data_root=dataset_root(c["target"], runtime.data_root), device=runtime.device,
        threads=runtime.threads, eval=eval_settings(c),
    )
    for key, value in c.get("set", {}).items():
        if not hasattr(cfg, key):
            raise ValueError(f"transfer {spec.name}: 'set' key {key!r} is not a TransferConfig field")
        setattr(cfg, key, value)
    transfer(cfg, run_dir)
    _check_complete(spec, run_dir, ("before",) if cfg.finetune == "none" else ("before", "after"))


def _check_complete(spec: RunSpec, run_dir: Path, parts: tuple[str, ...]) -> None:
    """A run is done only when its results are on disk (docs/architecture.md, "Contracts": complete results.json)."""
    from disentkit.evaluate import is_complete

    missing = [p for p in parts if not is_complete(run_dir / p)]
    if missing:
        raise RuntimeError(f"run {spec.name} returned without complete results in {missing} under {run_dir}")
