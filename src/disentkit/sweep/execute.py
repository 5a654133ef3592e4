"""Run one planned run under a lock, whatever the executor (the inline loop of ``disentkit run``,
a local worker process, a Slurm job).

:func:`execute_run` claims the run folder (:class:`~disentkit.sweep.state.RunLock`), calls the
dispatch function (by default :func:`disentkit.experiment.stages.dispatch`: train + evaluate a
source, or transfer), and records the outcome: ``done.json`` on success, ``error.json`` with the
traceback on failure. Errors never escape to the pool unless ``reraise`` is set (a Slurm job
re-raises so that Slurm itself marks the job as failed; the error is on disk either way).
Re-running a run that was interrupted resumes it: training continues from its last checkpoint and
the transfer skips finished stages.
"""

from __future__ import annotations

import contextlib
import os
import time
import traceback
from pathlib import Path
from typing import Callable

import torch

from disentkit.experiment.stages import Runtime, dispatch as default_dispatch, source_dir_of
from disentkit.experiment.study import RunSpec
from disentkit.io import write_json
from disentkit.sweep.state import (DONE, FAILED, RUNNING, SPEC_FILE, RunLock, record_done, record_error,
                                  slurm_job_id)

__all__ = ["Dispatch", "Runtime", "execute_run", "set_threads", "LOG_FILE"]

#: the run's stdout and stderr (progress lines, warnings), appended on every attempt
LOG_FILE = "run.log"

#: signature of a dispatch function: (spec, run_dir, source_dir or None, runtime) -> None
Dispatch = Callable[[RunSpec, Path, "Path | None", Runtime], None]


def execute_run(
    spec: RunSpec | dict,
    out: str | Path,
    *,
    runtime: Runtime | None = None,
    dispatch: Dispatch | None = None,
    reraise: bool = False,
    capture: bool = True,
) -> str:
    """Run ``spec`` inside ``out/spec.folder`` and return its final state (done/failed/running).

    ``running`` means another live process holds the run; nothing was done. ``runtime.threads``
    sets torch's CPU threads for this run (the executor splits the machine's cores fairly).
    ``capture`` sends the run's output to its ``run.log`` (a pool's workers); without it the
    output stays on this process's console (``disentkit run``).
    """
    runtime = runtime or Runtime()
    if isinstance(spec, dict):
        spec = RunSpec.from_dict(spec)
    out = Path(out).resolve()
    run_dir = out / spec.folder
    dispatch = dispatch or _dispatch
    lock = RunLock(run_dir)
    if not lock.acquire():
        return RUNNING
    started = time.time()
    try:
        write_json(run_dir / SPEC_FILE, {**spec.to_dict(), "started": started})
        source_dir = source_dir_of(spec, out)
        if capture:  # the run's own output goes to its folder, not the sweep's console
            with open(run_dir / LOG_FILE, "a", encoding="utf-8") as log, \
                    contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                dispatch(spec, run_dir, source_dir, runtime)
        else:
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


def set_threads(threads: int | None) -> None:
    """Pin this process's CPU threads (torch intra-op, OpenMP, MKL) to ``threads``."""
    if threads is None:
        return
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    torch.set_num_threads(threads)


def _dispatch(spec: RunSpec, run_dir: Path, source_dir: Path | None, runtime: Runtime) -> None:
    set_threads(runtime.threads)
    default_dispatch(spec, run_dir, source_dir, runtime)
