"""Run a study on this machine: a process pool, one run per worker, sources before transfers.

Each worker is a fresh (spawned) process pinned to ``cores // workers`` CPU threads, set
explicitly so that N workers share the machine fairly instead of each grabbing every core
(torch's default), which on a small machine makes N parallel runs slower than one. A run is
submitted once everything it depends on is done; a transfer whose source failed (or an ensemble
member whose leader failed) is reported ``blocked`` and not attempted. A failed run is recorded
and the others go on. Re-running the same sweep skips done runs, retries failed ones, and resumes
interrupted ones from their checkpoints.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import logging
import multiprocessing
import os
import signal
import sys
from typing import Callable

from disentkit.progress import Progress
from disentkit.sweep.execute import Dispatch, Runtime, execute_run, set_threads
from disentkit.sweep.state import DONE, FAILED, LOCK_FILE, RUNNING, TODO, record_error, run_state
from disentkit.experiment.study import Plan, RunSpec

_log = logging.getLogger(__name__)

BLOCKED = "blocked"


def available_cores() -> int:
    """CPU cores this process may use (respects taskset / cgroup affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Fair share of the cores for each of ``workers`` processes (at least 1)."""
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, found {workers}")
    cores = available_cores() if cores is None else cores
    return max(1, cores // workers)


def pending_runs(study: Plan, *, retry_failed: bool = True) -> tuple[list[RunSpec], dict[str, str]]:
    """Runs still to do, and the current state of every run (by id)."""
    states = {r.id: run_state(study.out / r.folder).state for r in study.runs}
    todo = [
        r
        for r in study.runs
        if states[r.id] == TODO or (retry_failed and states[r.id] == FAILED)
    ]
    return todo, states


def run_local(
    study: Plan,
    *,
    workers: int = 1,
    runtime: Runtime | None = None,
    dispatch: Dispatch | None = None,
    retry_failed: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, str]:
    """Run every run of ``study`` that is not done; return the final state of each run by id.

    ``runtime.threads`` overrides the fair share ``cores // workers``. ``dispatch`` replaces the
    real entry points (tests); it must be a picklable top-level function.
    """
    runtime = runtime or Runtime()
    log = log or _log.info
    threads = runtime.threads or threads_per_worker(workers)
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, found {workers}")
    runtime = dataclasses.replace(runtime, threads=threads)
    todo, states = pending_runs(study, retry_failed=retry_failed)
    skipped = sum(1 for s in states.values() if s == DONE)
    log(
        f"sweep {study.name}: {len(study.runs)} runs, {skipped} done, {len(todo)} to run "
        f"on {workers} worker(s) × {threads} thread(s) -> {study.out}"
    )
    for r in todo:
        states[r.id] = TODO
    waiting = list(todo)
    in_flight: dict[cf.Future, tuple[RunSpec, int]] = {}
    # one single-worker pool per slot: a worker that dies (killed, out of memory) breaks only
    # its own pool, so only the run it held fails and the other slots' runs go on
    pools = [_new_pool(1, threads) for _ in range(workers)]
    free = list(range(workers))
    bar = Progress(len(todo), f"sweep {study.name}", "runs")
    try:
        while waiting or in_flight:
            for r in list(waiting):
                dep_states = [states.get(d, DONE) for d in r.depends_on]
                if any(s in (FAILED, BLOCKED) for s in dep_states):
                    states[r.id] = BLOCKED
                    waiting.remove(r)
                    log(f"  blocked  {r.name}: {blocked_reason(r, states, study.by_id())}")
                elif all(s == DONE for s in dep_states) and free:
                    waiting.remove(r)
                    states[r.id] = RUNNING
                    slot = free.pop(0)
                    fut = pools[slot].submit(execute_run, r.to_dict(), str(study.out),
                                             runtime=runtime, dispatch=dispatch)
                    in_flight[fut] = (r, slot)
            if not in_flight:
                if waiting:  # dependencies held by another live sweep: nothing we can start
                    for r in waiting:
                        log(f"  waiting  {r.name}: a run it depends on is running elsewhere")
                    break
                continue
            finished, _ = cf.wait(in_flight, return_when=cf.FIRST_COMPLETED)
            for fut in finished:
                r, slot = in_flight.pop(fut)
                try:
                    states[r.id] = fut.result()
                except cf.process.BrokenProcessPool:
                    states[r.id] = _record_crash(study, r)
                    pools[slot].shutdown(wait=True, cancel_futures=True)
                    pools[slot] = _new_pool(1, threads)
                free.append(slot)
                log(_line(study, r, states[r.id]))
                bar.update(1)
    finally:
        bar.close()
        for pool in pools:
            pool.shutdown(wait=True, cancel_futures=True)
    counts = {s: sum(1 for v in states.values() if v == s) for s in (DONE, FAILED, BLOCKED, RUNNING, TODO)}
    log("sweep finished: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    return states


def blocked_reason(r: RunSpec, states: dict[str, str], runs: dict[str, RunSpec]) -> str:
    """Which dependency stopped ``r``: its source, or the run that trains its ensemble."""
    d = next(d for d in r.depends_on if states.get(d) in (FAILED, BLOCKED))
    name, what = (runs[d].name if d in runs else d), "failed" if states[d] == FAILED else "is blocked"
    if d == r.config.get("source_id"):
        return f"its source {name} {what}"
    whose = "its ensemble" if d in r.ensemble else "its ensemble's sources"
    return f"{name}, which trains {whose}, {what} (--ensemble 1 runs it alone)"


def _line(study: Plan, r: RunSpec, state: str) -> str:
    """One console line per finished run; a failure shows its error and where the details are."""
    line = f"  {state:<8} {r.name}"
    if state == FAILED:
        detail = run_state(study.out / r.folder).detail
        line += f": {detail[:200]} (see {study.out / r.folder / 'error.json'})"
    return line


def _record_crash(study: Plan, r: RunSpec) -> str:
    folder = study.out / r.folder
    state = run_state(folder).state
    if state in (DONE, FAILED):
        return state
    record_error(folder, "WorkerDied", "the worker process running this run died (killed or out of memory)", "")
    with contextlib.suppress(FileNotFoundError):  # its claim died with it
        (folder / LOCK_FILE).unlink()
    return FAILED


def _new_pool(workers: int, threads: int) -> cf.ProcessPoolExecutor:
    # spawn: a fresh interpreter per worker, never a fork of a process holding torch's threads
    ctx = multiprocessing.get_context("spawn")
    return cf.ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(threads,)
    )


def _init_worker(threads: int) -> None:
    """Worker setup: die with the parent (no orphan keeps training after Ctrl-C or a kill),
    and pin CPU threads before torch starts its pools."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    if "torch" in sys.modules:
        set_threads(threads)
