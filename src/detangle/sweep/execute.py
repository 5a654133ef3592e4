"""Run one planned run, whatever the executor: the single place where the sweep meets the
training, evaluation and transfer code.

:func:`execute_run` is what a local worker process or a Slurm job calls. It claims the run folder
(:class:`~detangle.sweep.state.RunLock`), calls :func:`dispatch`, and records the outcome:
``done.json`` on success, ``error.json`` with the traceback on failure. Errors never escape to
the pool unless ``reraise`` is set (a Slurm job re-raises so that Slurm itself marks the job as
failed; the error is on disk either way). Re-running a run that was interrupted resumes it: the
training entry point continues from its last checkpoint, and the transfer skips finished stages.
"""

from __future__ import annotations

import os
import time
import traceback
from pathlib import Path
from typing import Callable

from detangle.io import write_json
from detangle.sweep.state import DONE, FAILED, RUNNING, SPEC_FILE, RunLock, record_done, record_error
from detangle.sweep.study import RunSpec

#: signature of a dispatch function: (spec, run_dir, source_dir or None, threads) -> None
Dispatch = Callable[[RunSpec, Path, "Path | None", "int | None"], None]


def execute_run(
    spec: RunSpec | dict,
    out: str | Path,
    *,
    threads: int | None = None,
    dispatch: Dispatch | None = None,
    reraise: bool = False,
) -> str:
    """Run ``spec`` inside ``out/spec.folder`` and return its final state (done/failed/running).

    ``running`` means another live process holds the run; nothing was done. ``threads`` sets
    torch's CPU threads for this run (the executor splits the machine's cores fairly).
    """
    if isinstance(spec, dict):
        spec = RunSpec.from_dict(spec)
    out = Path(out)
    run_dir = out / spec.folder
    dispatch = dispatch or default_dispatch
    lock = RunLock(run_dir)
    if not lock.acquire():
        return RUNNING
    started = time.time()
    try:
        write_json(run_dir / SPEC_FILE, {**spec.to_dict(), "started": started})
        source_dir = _source_dir(spec, out)
        dispatch(spec, run_dir, source_dir, threads)
        record_done(run_dir, id=spec.id, elapsed_s=time.time() - started, threads=threads)
        return DONE
    except BaseException as exc:  # noqa: BLE001 - a failed run is recorded, the sweep goes on
        record_error(
            run_dir,
            type(exc).__name__,
            str(exc),
            traceback.format_exc(),
            id=spec.id,
            elapsed_s=time.time() - started,
            host=os.uname().nodename,
            slurm_job_id=os.environ.get("SLURM_JOB_ID"),
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


def default_dispatch(spec: RunSpec, run_dir: Path, source_dir: Path | None, threads: int | None) -> None:
    """Call the real entry point for ``spec.kind``: train + evaluate a source, or transfer."""
    set_threads(threads)
    if spec.kind == "source":
        run_source(spec, run_dir)
    elif spec.kind == "transfer":
        run_transfer(spec, run_dir, source_dir)
    else:
        raise ValueError(f"run {spec.id}: kind must be 'source' or 'transfer', found {spec.kind!r}")


def run_source(spec: RunSpec, run_dir: Path) -> None:
    raise NotImplementedError("training entry point not wired yet")


def run_transfer(spec: RunSpec, run_dir: Path, source_dir: Path | None) -> None:
    raise NotImplementedError("transfer entry point not wired yet")
