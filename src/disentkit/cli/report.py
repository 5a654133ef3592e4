"""``disentkit report DIR [--out FILE.html]``: rebuild the report from the results on disk."""

from __future__ import annotations

import argparse
import dataclasses

from disentkit.cli.common import add_json_argument, write_json_result


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="rebuild report.html/.md and results.csv from the results on disk",
        description="Read every results.json under DIR (one `disentkit run` folder or a sweep of "
        "runs) and write the paper's tables, the figures and the verdicts on its findings.",
    )
    p.add_argument("dir", help="folder holding run results (searched recursively)")
    p.add_argument("--out", default=None, help="HTML file to write (default: DIR/report.html)")
    add_json_argument(p, "the findings' verdicts and the files written")
    p.add_argument("--skip-broken", action="store_true",
                   help="leave out truncated or malformed results.json files (listed in the report) "
                   "instead of refusing them")
    p.set_defaults(func=cmd_report)


def findings_json(found) -> list[dict]:
    """The findings as plain records (code, claim, statistic, verdict, evidence ...)."""
    return [dataclasses.asdict(f) for f in found]


def cmd_report(args: argparse.Namespace) -> int:
    from disentkit.report import build_report
    from disentkit.report.collect import collect_results
    from disentkit.report.findings import findings
    from disentkit.report.html import summarise
    from disentkit.report.tables import source_groups, transfer_groups

    rep = build_report(args.dir, args.out, skip_broken=args.skip_broken)
    results = collect_results(args.dir, skip_broken=args.skip_broken)
    for path, why in results.skipped:
        print(f"skipped (--skip-broken): {path}: {why}")
    found = findings(transfer_groups(results), source_groups(results))
    print(summarise(found))
    print(f"report: {rep.html}")
    print(f"        {rep.markdown}")
    print(f"        {rep.csv}")
    write_json_result(args.json, {"html": str(rep.html), "markdown": str(rep.markdown),
                                  "csv": str(rep.csv), "findings": findings_json(found)})
    return 0
