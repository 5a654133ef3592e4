"""``disentkit sweep plan|run STUDY`` and ``disentkit aggregate DIR``."""

from __future__ import annotations

import argparse
import csv
from collections import Counter
from pathlib import Path

from disentkit.cli.common import (
    add_data_root_argument,
    add_ensemble_argument,
    add_json_argument,
    apply_cache_dir,
    apply_ensemble,
    format_table,
    write_json_result,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="plan or run a study (a grid of sources and transfers)")
    ssub = p.add_subparsers(dest="sweep_command", metavar="ACTION", required=True)

    p_plan = ssub.add_parser("plan", help="check the study and list its runs with their state")
    _study_arguments(p_plan)
    p_plan.add_argument("--summary", action="store_true", help="print only the counts")
    add_json_argument(p_plan, "every run's id, kind, name and state")
    p_plan.set_defaults(func=cmd_plan)

    p_run = ssub.add_parser("run", help="run what is not done (finished runs skip; failed ones retry)")
    _study_arguments(p_run)
    p_run.add_argument("--executor", choices=("local", "slurm"), default="local",
                       help="where runs execute")
    p_run.add_argument("--workers", type=int, default=1, help="local: parallel runs")
    p_run.add_argument(
        "--threads", type=int, default=None,
        help="CPU threads per run (default: local cores // workers; slurm: --slurm-cpus-per-task)",
    )
    p_run.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                       help="auto (CUDA when available, else CPU), cpu or cuda")
    p_run.add_argument("--no-retry-failed", action="store_true", help="leave failed runs failed")
    p_run.add_argument("--slurm-partition", default=None,
                       help="Slurm partition (default: the cluster's default)")
    p_run.add_argument("--slurm-gpus-per-task", type=int, default=None,
                       help="GPUs per run (default: none)")
    p_run.add_argument("--slurm-cpus-per-task", type=int, default=1, help="CPUs per run")
    p_run.add_argument("--slurm-time", default="24:00:00",
                       help="time limit per run: minutes, H:MM:SS or D-HH:MM:SS (>= 2 min)")
    p_run.add_argument("--slurm-mem", default=None,
                       help="memory per run, e.g. 16G (default: the cluster's default)")
    p_run.add_argument("--max-parallel", type=int, default=32,
                       help="slurm: array elements running at once")
    add_json_argument(p_run, "every run's final state")
    p_run.set_defaults(func=cmd_run)

    p_agg = sub.add_parser(
        "aggregate", help="one table over a sweep: mean ± std over seeds, 95%% interval"
    )
    p_agg.add_argument("dir", help="a sweep's output folder (or any folder of run folders)")
    p_agg.add_argument("--out", default=None, help="CSV to write (default: DIR/aggregate.csv)")
    p_agg.add_argument("--bootstrap", type=int, default=2000,
                       help="bootstrap resamples of the 95%% interval over seeds")
    p_agg.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    p_agg.add_argument("--no-report", action="store_true", help="skip report.html (tables only)")
    add_json_argument(p_agg, "the aggregate table's rows")
    p_agg.add_argument("--skip-broken", action="store_true",
                       help="leave out truncated or malformed results.json files (listed in "
                       "aggregate.md and the report) instead of refusing them")
    p_agg.set_defaults(func=cmd_aggregate)


def _study_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("study", help="a packaged study (quick, paper) or a study file (.yaml or .json)")
    p.add_argument("--out", default=None, help="output folder (default: runs/<study name>, "
                                               "runs/<study name>-smoke with --smoke)")
    p.add_argument("--smoke", action="store_true", help="shrink every run to seconds (tiny steps and eval)")
    add_data_root_argument(p)
    add_ensemble_argument(p)


def _runtime(args, threads=None, device=None):
    from disentkit.experiment.stages import Runtime

    data_root = str(Path(args.data_root).resolve()) if args.data_root else None
    return Runtime(threads=threads, device=device, data_root=data_root)


def _load(args):
    """The study, validated and checked (backend, datasets) exactly as ``sweep run`` would,
    planned under ``--out``."""
    from disentkit.experiment.engine import prepare
    from disentkit.experiment.study import load_study

    study = apply_ensemble(load_study(args.study, smoke=args.smoke), args.ensemble)
    out = args.out or Path("runs") / (f"{study.name}-smoke" if args.smoke else study.name)
    return study, prepare(study, out, _runtime(args))


def cmd_plan(args: argparse.Namespace) -> int:
    from disentkit.sweep.state import run_state

    _, study = _load(args)
    rows = []
    for r in study.runs:
        st = run_state(study.out / r.folder)
        rows.append(
            {
                "id": r.id,
                "kind": r.kind,
                "name": r.name,
                "state": st.state,
                "after": ",".join(d[:8] for d in r.depends_on),
                "detail": st.detail[:60],
            }
        )
    if not args.summary:
        print(format_table(rows))
    write_json_result(args.json, rows)
    kinds = Counter(r.kind for r in study.runs)
    states = Counter(row["state"] for row in rows)
    print(
        f"study {study.name}: {kinds['source']} sources, {kinds['transfer']} transfers "
        f"({len(study.runs)} runs) in {study.out}; "
        + ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from disentkit.experiment.engine import run_study
    from disentkit.experiment.study import load_study
    from disentkit.sweep.state import DONE

    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, found {args.threads}")
    apply_cache_dir(args)  # the workers inherit the environment
    study = apply_ensemble(load_study(args.study, smoke=args.smoke), args.ensemble)
    out = args.out or Path("runs") / (f"{study.name}-smoke" if args.smoke else study.name)
    device = None if args.device == "auto" else args.device
    options = None
    if args.executor == "slurm":
        from disentkit.sweep.slurm import SlurmOptions, parse_time_minutes

        options = SlurmOptions(
            partition=args.slurm_partition,
            gpus_per_task=args.slurm_gpus_per_task,
            cpus_per_task=args.threads or args.slurm_cpus_per_task,
            time_min=parse_time_minutes(args.slurm_time),
            max_parallel=args.max_parallel,
            mem=args.slurm_mem,
        )
    done = run_study(study, out, executor=args.executor, runtime=_runtime(args, args.threads, device),
                     workers=args.workers, slurm_options=options,
                     retry_failed=not args.no_retry_failed)
    not_done = [s for s in done["states"].values() if s != DONE]
    if not_done:
        print(f"{len(not_done)} run(s) not done: see `disentkit sweep plan {args.study}"
              f"{' --smoke' if args.smoke else ''} --out {out}`; re-run this command to retry")
    print(f"tables: disentkit aggregate {out}")
    write_json_result(args.json, {"out": str(out), "states": done["states"]})
    return 1 if not_done else 0


def cmd_aggregate(args: argparse.Namespace) -> int:
    from disentkit.sweep.aggregate import aggregate

    if args.bootstrap < 1:
        raise ValueError(f"--bootstrap must be >= 1, found {args.bootstrap}")
    paths = aggregate(args.dir, out=args.out, n_boot=args.bootstrap, seed=args.seed,
                      report=not args.no_report, skip_broken=args.skip_broken)
    for p in paths:
        print(f"wrote {p}")
    if args.json:
        csv_file = next((Path(p) for p in paths if str(p).endswith(".csv")), None)
        rows = list(csv.DictReader(csv_file.open(encoding="utf-8"))) if csv_file else []
        write_json_result(args.json, {"files": [str(p) for p in paths], "rows": rows})
    return 0
