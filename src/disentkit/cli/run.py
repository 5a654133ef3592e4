"""``disentkit run``: the main job — train a source, evaluate it, transfer it, write the report.

The experiment of Dapueto et al. 2024 as one command on built-in data: the packaged study
``quick`` (a weakly-supervised source on ``color-dsprites``, its evaluation beside an untrained
network of the same architecture, zero-shot evaluation and fine-tuning on ``noisy-color-dsprites``,
``shapes3d`` and ``coins-augmented``, plus ``coil100-augmented`` and ``rgbd-objects`` when
``--data-root`` holds them) run on this machine, then the report. A preset is a packaged study
(``quick``, ``paper``) or a study file: ``--show-preset`` prints one to copy and edit.

Every stage whose output exists is skipped: re-running finishes an interrupted job and costs
seconds on a finished one. The pipeline itself is :func:`disentkit.experiment.engine.run_study`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path

from disentkit.cli.common import (
    add_data_root_argument,
    add_ensemble_argument,
    add_json_argument,
    add_threads_argument,
    apply_cache_dir,
    apply_ensemble,
    apply_threads,
    check_device,
    write_json_result,
)

log = logging.getLogger("disentkit.cli")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="the main job: train a source, transfer it to the targets, write the report",
        description=__doc__.split("\n\n")[1].replace("``", ""),
    )
    p.add_argument("--preset", default="quick",
                   help="quick (<= 30 min on 2 CPU cores), paper (the paper's grid, for GPUs) "
                        "or a study file (YAML/JSON) copied from one of them")
    p.add_argument("--out", default="disentkit-run", help="output folder")
    add_data_root_argument(p)
    p.add_argument("--smoke", action="store_true",
                   help="tiny sizes: the whole job in seconds (wins over the preset's sizes)")
    p.add_argument("--show-preset", action="store_true",
                   help="print the resolved study as JSON (a file to copy and edit) and exit")
    p.add_argument("--device", default=None,
                   help="auto (CUDA when available, else CPU), cpu, cuda or cuda:N "
                        "(default: auto, or the execution.device of a study file that sets another)")
    add_threads_argument(p)
    add_ensemble_argument(p)
    add_json_argument(p, "the source scores, the findings' verdicts and the report's files")
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from disentkit.cli.report import findings_json
    from disentkit.config import to_dict
    from disentkit.experiment.engine import run_study
    from disentkit.experiment.stages import Runtime
    from disentkit.experiment.study import load_study
    from disentkit.report.collect import collect_results
    from disentkit.report.findings import findings
    from disentkit.report.html import summarise
    from disentkit.report.tables import source_groups, transfer_groups

    study = apply_ensemble(load_study(args.preset, smoke=args.smoke), args.ensemble)
    if args.device is not None:
        check_device(args.device)
        study.execution = dataclasses.replace(study.execution, device=args.device)
    if args.show_preset:
        print(json.dumps(to_dict(study), indent=2))
        return 0
    apply_threads(args.threads)
    apply_cache_dir(args)
    data_root = str(Path(args.data_root).resolve()) if args.data_root else None
    log.info("disentkit run: preset %s%s -> %s", study.name, " (smoke)" if args.smoke else "",
             args.out)
    done = run_study(study, args.out, executor="inline",
                     runtime=Runtime(threads=args.threads, data_root=data_root))
    report = done["report"]
    results = collect_results(args.out)
    scores = []
    for g in source_groups(results):
        for key in ("dci.disentanglement", "mig.score"):
            trained, floor = g.stat(key), g.stat(key, "floor")
            if trained and floor:
                print(f"{g.source}: {key} {trained.text()} (untrained {floor.text()})")
                scores.append({"source": g.source, "metric": key, "trained": trained.text(),
                               "untrained": floor.text()})
    found = findings(transfer_groups(results), source_groups(results))
    print(summarise(found))
    print(f"report: {report.html}")
    write_json_result(args.json, {"out": str(args.out), "report": str(report.html),
                                  "sources": scores, "findings": findings_json(found)})
    return 0
