"""The one engine: a validated study, checked before any work, planned into runs, run on an
executor, and (for ``disentkit run``) reported.

* ``inline`` — this process, one run after the other, progress on the console, then the report:
  ``disentkit run --preset quick`` is the packaged study ``quick`` on this executor;
* ``local`` — a process pool (:mod:`disentkit.sweep.local`), ``disentkit sweep run``;
* ``slurm`` — an array job through submitit (:mod:`disentkit.sweep.slurm`).

Every executor calls :func:`disentkit.sweep.execute.execute_run` per run (lock, outcome records)
and so :func:`disentkit.experiment.stages.dispatch`: a run computes the same numbers wherever it
runs. With ``execution.ensemble`` > 1 (``--ensemble M``) the plan groups compatible runs and
makes each member depend on its group's leader, whose run trains the whole group in the members'
folders (:mod:`disentkit.experiment.ensembles`); no executor needs to know. Output folder::

    study.json                                   the resolved study and the runtime
    sources/<source>.b<β>.s<seed>.<id8>/         training run folder, eval/ and floor/
    transfers/<source>--<target>.b<β>.s<seed>.<id8>/   before/, finetune/, after/
    report.html  report.md  results.csv  report_figures/   (inline; ``aggregate`` for a sweep)
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Callable

from disentkit import runfolder
from disentkit.config import to_dict
from disentkit.errors import DisentkitError
from disentkit.evaluate import is_complete
from disentkit.experiment.stages import (Runtime, evaluate_source_run, preflight, run_transfer,
                                         source_dir_of, train_source)
from disentkit.experiment.study import Plan, RunSpec, Study, plan
from disentkit.io import write_json
from disentkit.report import build_report
from disentkit.sweep.execute import execute_run, set_threads
from disentkit.sweep.local import run_local
from disentkit.sweep.state import DONE, RUNNING, run_state
from disentkit.transfers import StageProgress

log = logging.getLogger(__name__)

EXECUTORS = ("inline", "local", "slurm")


def prepare(study: Study, out: str | Path | None, runtime: Runtime) -> Plan:
    """Validate ``study``, check its backend and datasets (:func:`preflight`) and plan it under
    ``out``: every check runs before any state is written or any training starts."""
    study.validate()
    optional = preflight(study, runtime.data_root)
    return plan(study, out, optional=optional)


def run_study(study: Study, out: str | Path | None = None, *, executor: str = "inline",
              runtime: Runtime | None = None, workers: int = 1, slurm_options=None,
              retry_failed: bool = True, report: bool | None = None) -> dict:
    """Run every run of ``study`` that is not done into ``out`` on ``executor``.

    Returns ``{"plan": Plan, "states": {run id: state}, "report": Report | None}``; the report
    is built by default for the inline executor (``disentkit aggregate`` builds a sweep's).
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, found {executor!r}")
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, found {workers}")
    runtime = runtime or Runtime()
    the_plan = prepare(study, out, runtime)
    # refuse a foreign non-empty folder before anything is written (disentkit.runfolder)
    runfolder.claim(the_plan.out, "run" if executor == "inline" else "sweep", to_dict(study),
                    resuming=(the_plan.out / "study.json").is_file())
    write_json(the_plan.out / "study.json", {"study": to_dict(study), "data_root": runtime.data_root,
                                             "runs": [r.to_dict() for r in the_plan.runs]})
    if executor == "inline":
        states = run_inline(the_plan, runtime)
    elif executor == "local":
        states = run_local(the_plan, workers=workers, runtime=runtime, retry_failed=retry_failed)
    else:
        from disentkit.sweep.slurm import SlurmOptions, run_slurm  # submitit: optional

        states = run_slurm(the_plan, slurm_options or SlurmOptions(), runtime=runtime,
                           retry_failed=retry_failed)
    built = None
    if report if report is not None else executor == "inline":
        built = build_report(the_plan.out)
    return {"plan": the_plan, "states": states, "report": built}


def run_inline(the_plan: Plan, runtime: Runtime) -> dict[str, str]:
    """Run the plan in this process, in order, with stage headers and an estimate of the time
    left; a failed run stops the job (its error is raised, and recorded in its folder)."""
    progress = StageProgress()  # stage headers and steps through disentkit.progress
    clock = JobClock(the_plan)
    set_threads(runtime.threads)
    states = {}
    for spec in the_plan.runs:
        run_dir = the_plan.out / spec.folder
        if run_state(run_dir).state == DONE:
            clock.header(progress, f"{spec.kind} {spec.name} (skipped: done)")
            clock.skip(spec)
            states[spec.id] = DONE
            continue
        states[spec.id] = execute_run(spec, the_plan.out, runtime=runtime,
                                      dispatch=_inline_dispatch(progress, clock),
                                      reraise=True, capture=False)
        if states[spec.id] == RUNNING:
            raise DisentkitError(f"{run_dir} is being run by another live process (see its "
                                 "running.json); wait for it to finish, then run this again")
    return states


def _inline_dispatch(progress: StageProgress, clock: "JobClock") -> Callable:
    def dispatch(spec: RunSpec, run_dir: Path, source_dir: Path | None, runtime: Runtime) -> None:
        def say(text: str) -> None:
            clock.header(progress, text)

        if spec.kind == "source":
            with clock.measure() as counted:  # a skipped training says nothing about the rate
                trained = train_source(spec, run_dir, runtime, progress, say)  # > 1: an ensemble
                counted["images"] = clock.images[spec.id] * trained
            with clock.measure() as counted:
                counted["evals"] = evaluate_source_run(spec, run_dir, runtime, say)
        else:
            say(f"transfer {spec.name}")
            finished = is_complete(run_dir / "after") or is_complete(run_dir / "before") and \
                spec.config["transfer"]["finetune"] == "none"
            with clock.measure(transfer=not finished):
                run_transfer(spec, run_dir, source_dir or source_dir_of(spec, run_dir.parents[1]),
                             runtime, progress)
    return dispatch


class JobClock:
    """Stage headers with the elapsed time and, once a source has been trained and evaluated,
    an estimate of the time left: seconds per training image and per evaluation, as measured in
    this job, times the training images and evaluations still to come. Once a transfer has run,
    the transfers still to come count its measured time instead (they may use fewer
    classifiers than the source's evaluation)."""

    def __init__(self, the_plan: Plan):
        self.images: dict[str, int] = {}
        self.plan: list[tuple[int, int, bool]] = []  # (training images, evaluations, transfer)
        for spec in the_plan.runs:
            if spec.kind == "source":
                t = spec.config["train"]
                pairs = 1 if t["method"]["name"] == "beta-vae" else 2
                self.images[spec.id] = t["run"]["steps"] * t["optim"]["batch_size"] * pairs
                # an ensemble's leader trains every member; the others then skip their training
                runs = len(spec.ensemble) if spec.leads else 0 if spec.ensemble else 1
                self.plan += [(self.images[spec.id] * runs, 0, False), (0, 2, False)]
            else:
                t = spec.config["transfer"]
                tune = t["finetune"] != "none"
                # zero-shot, the target's untrained floor and, when fine-tuned, after
                self.plan.append((t["steps"] * t["batch_size"] if tune else 0, 3 if tune else 2, True))
        self.plan.append((0, 0, False))  # the report
        self.total = len(self.plan)
        self.t0 = time.perf_counter()
        self.spent = {"images": [0.0, 0], "evals": [0.0, 0]}
        self.transfer_seconds: list[float] = []  # transfers that ran (not skipped)

    def text(self, text: str) -> str:
        """The header line of the next stage (which it consumes from the plan)."""
        stage = self.total - len(self.plan) + 1
        left = self.left()  # this stage included
        if self.plan:
            self.plan.pop(0)
        el = int(time.perf_counter() - self.t0)
        out = f"[stage {stage}/{self.total}, {el // 60}:{el % 60:02d} elapsed"
        if left is not None:
            out += f", about {int(left) // 60}:{int(left) % 60:02d} left"
        return out + f"] {text}"

    def header(self, progress: StageProgress, text: str) -> None:
        progress.stage(self.text(text))

    def skip(self, spec: RunSpec) -> None:
        """A finished source also skips its evaluation stage."""
        if spec.kind == "source" and self.plan:
            self.plan.pop(0)

    def left(self) -> float | None:
        """Seconds the stages still planned will take (None until both rates are measured)."""
        (ti, ni), (te, ne) = self.spent["images"], self.spent["evals"]
        if not ni or not ne:
            return None
        per_transfer = (sum(self.transfer_seconds) / len(self.transfer_seconds)
                        if self.transfer_seconds else None)
        return sum(per_transfer if transfer and per_transfer is not None
                   else images * ti / ni + evals * te / ne
                   for images, evals, transfer in self.plan)

    @contextlib.contextmanager
    def measure(self, images: int = 0, evals: int = 0, transfer: bool = False):
        """Time the block: ``images`` trained, ``evals`` evaluations, or (``transfer``) one
        whole transfer that ran; a stage skipped as finished passes nothing and counts nothing.
        The block may set the counts it learns while running in the yielded dict."""
        start = time.perf_counter()
        counted = {"images": images, "evals": evals}
        yield counted
        took = time.perf_counter() - start
        if transfer:
            self.transfer_seconds.append(took)
            return
        images, evals = counted["images"], counted["evals"]
        key, amount = ("images", images) if images else ("evals", evals)
        if amount:
            self.spent[key][0] += took
            self.spent[key][1] += amount
