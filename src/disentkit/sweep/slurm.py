"""Run a study on a Slurm cluster through submitit job arrays.

The paper's grid is 400 runs (100 sources, 300 fine-tunings); clusters run such studies as job
arrays with a cap on how many elements run at once (``--max-parallel`` → ``#SBATCH --array=…%M``),
which keeps one study from taking the whole partition. Runs go in *waves*: every run whose
dependencies are done is submitted as one array (first the sources, then their transfers); the
submitting process waits for the wave, then submits the next. Each array element calls the same
:func:`~disentkit.sweep.execute.execute_run` as a local worker, so a run behaves identically on
both executors, and its state lives in its folder (shared file system).

A run that raises records ``error.json`` and re-raises, so Slurm marks its job FAILED; a job that
dies without a Python traceback (killed, timed out, node failure) is recorded here from
submitit's report. Interrupting the submitting process leaves submitted jobs running on the
cluster; re-running the command waits for nothing it did not submit and skips runs whose lock is
live. Either way the array's other elements finish, and re-running the same command
resubmits only what is not done. submitit learns job states from Slurm's accounting (``sacct``):
a cluster without accounting leaves it waiting forever on a job that died without a result.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from pathlib import Path
from typing import Callable

from disentkit.sweep.execute import Dispatch, Runtime, execute_run
from disentkit.sweep.local import BLOCKED, blocked_reason, pending_runs
from disentkit.sweep.state import DONE, FAILED, LOCK_FILE, RUNNING, record_error, run_state
from disentkit.experiment.study import Plan, RunSpec

_log = logging.getLogger(__name__)

#: submitit needs a job's time limit to leave room for its own bookkeeping; below 2 minutes
#: its timeout handling (signal + requeue) does not fit
MIN_TIME_MIN = 2


@dataclasses.dataclass(frozen=True)
class SlurmOptions:
    """Resources of one array element (one run)."""

    partition: str | None = None
    gpus_per_task: int | None = None
    cpus_per_task: int = 1
    time_min: int = 24 * 60
    max_parallel: int = 32
    mem: str | None = None
    poll_s: float = 5.0

    def __post_init__(self) -> None:
        if self.time_min < MIN_TIME_MIN:
            raise ValueError(f"--slurm-time must be at least {MIN_TIME_MIN} minutes, found {self.time_min}")
        if self.max_parallel < 1:
            raise ValueError(f"--max-parallel must be >= 1, found {self.max_parallel}")
        if self.cpus_per_task < 1:
            raise ValueError(f"--slurm-cpus-per-task must be >= 1, found {self.cpus_per_task}")


def parse_time_minutes(text: str | int) -> int:
    """Slurm-style time → minutes: ``90``, ``1:30:00``, ``2-00:00:00`` (days-hours:min:sec)."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not m:
        raise ValueError(f"--slurm-time: expected minutes, H:MM:SS or D-HH:MM:SS, found {text!r}")
    days, a, b, c = m.groups()
    if b is None:  # plain minutes (or D-HH)
        minutes = int(a) * 60 if days else int(a)
    elif c is None:  # H:MM
        minutes = int(a) * 60 + int(b)
    else:  # H:MM:SS, seconds rounded up
        minutes = int(a) * 60 + int(b) + (1 if int(c) else 0)
    return minutes + (int(days) * 24 * 60 if days else 0)


def make_executor(folder: Path, options: SlurmOptions, name: str):
    """A submitit ``SlurmExecutor`` writing its logs and pickles under ``folder``."""
    import submitit

    executor = submitit.SlurmExecutor(folder=str(folder / "%j"), max_num_timeout=0)
    params = dict(
        job_name=f"disentkit-{name}",
        time=options.time_min,
        cpus_per_task=options.cpus_per_task,
        array_parallelism=options.max_parallel,
        ntasks_per_node=1,
    )
    if options.partition:
        params["partition"] = options.partition
    if options.gpus_per_task:
        params["gpus_per_task"] = options.gpus_per_task
    if options.mem:
        params["mem"] = options.mem
    executor.update_parameters(**params)
    return executor


def _slurm_job(spec: dict, out: str, runtime: Runtime, dispatch: Dispatch | None) -> str:
    """Body of one array element; re-raises so Slurm records the job as FAILED."""
    return execute_run(spec, out, runtime=runtime, dispatch=dispatch, reraise=True)


def run_slurm(
    study: Plan,
    options: SlurmOptions,
    *,
    runtime: Runtime | None = None,
    dispatch: Dispatch | None = None,
    retry_failed: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, str]:
    """Submit every run of ``study`` that is not done, wave by wave; return final states by id.

    Each run gets ``options.cpus_per_task`` threads (``runtime.threads`` is set to it)."""
    log = log or _log.info
    runtime = dataclasses.replace(runtime or Runtime(), threads=options.cpus_per_task)
    folder = (study.out / ".submitit").resolve()
    out = str(study.out.resolve())
    attempted: set[str] = set()
    wave = 0
    while True:
        todo, states = pending_runs(study, retry_failed=retry_failed)
        ready = [
            r
            for r in todo
            if r.id not in attempted and all(states.get(d) == DONE for d in r.depends_on)
        ]
        if not ready:
            break
        wave += 1
        log(f"wave {wave}: submitting {len(ready)} run(s) as a Slurm array (at most {options.max_parallel} at once)")
        executor = make_executor(folder, options, study.name)
        specs = [r.to_dict() for r in ready]
        jobs = executor.map_array(
            _slurm_job, specs, [out] * len(ready), [runtime] * len(ready), [dispatch] * len(ready)
        )
        if jobs:
            log(f"  array job {jobs[0].job_id.split('_')[0]}")
        attempted.update(r.id for r in ready)
        _wait(jobs, ready, study, options.poll_s, log)
    # final report: runs never attempted because a dependency failed are "blocked"
    final = {r.id: run_state(study.out / r.folder).state for r in study.runs}
    for r in study.runs:
        if final[r.id] != DONE and any(final.get(d) in (FAILED, BLOCKED) for d in r.depends_on):
            if r.id not in attempted:
                final[r.id] = BLOCKED
                log(f"  blocked  {r.name}: {blocked_reason(r, final, study.by_id())}")
    counts = {s: sum(1 for v in final.values() if v == s) for s in (DONE, FAILED, BLOCKED, RUNNING)}
    log("sweep finished: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    return final


def _wait(jobs, ready: list[RunSpec], study: Plan, poll_s: float, log) -> None:
    """Wait for every job of a wave; record hard deaths (no error.json) as failures."""
    remaining = dict(zip(jobs, ready))
    while remaining:
        for job, r in list(remaining.items()):
            if not job.done():
                continue
            del remaining[job]
            folder = study.out / r.folder
            try:
                job.result()
            except Exception as exc:  # noqa: BLE001 - FailedJobError / UncompletedJobError
                if run_state(folder).state not in (DONE, FAILED):
                    # died without a Python traceback (time limit, node failure, scancel): its
                    # lock is certainly stale, so the next sweep may take the run at once
                    (folder / LOCK_FILE).unlink(missing_ok=True)
                    record_error(
                        folder, type(exc).__name__, str(exc).strip()[-2000:], "", slurm_job_id=job.job_id
                    )
            log(f"  {run_state(folder).state:<8} {r.name} (job {job.job_id})")
        if remaining:
            time.sleep(poll_s)

