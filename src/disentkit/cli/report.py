"""``disentkit report DIR [--out FILE.html]``: rebuild the report from the results on disk."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="build report.html, report.md and results.csv from the results.json files under DIR",
        description="Read every results.json under DIR (one `disentkit run` folder or a sweep of "
        "runs) and write the paper's tables, the figures and the verdicts on its findings.",
    )
    p.add_argument("dir", help="folder holding run results (searched recursively)")
    p.add_argument("--out", default=None, help="HTML file to write (default: DIR/report.html)")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from disentkit.report import build_report
    from disentkit.report.html import summarise
    from disentkit.report.findings import findings
    from disentkit.report.collect import collect_results
    from disentkit.report.tables import source_groups, transfer_groups

    rep = build_report(args.dir, args.out)
    results = collect_results(args.dir)
    print(summarise(findings(transfer_groups(results), source_groups(results))))
    print(f"report: {rep.html}")
    print(f"        {rep.markdown}")
    print(f"        {rep.csv}")
    return 0
