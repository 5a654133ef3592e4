"""Aggregate a sweep: glob every evaluation under a folder into the paper's tables, with
uncertainty over seeds.

Dapueto et al. 2024 (§4, Tables 1–3) report each transfer as "before (+Δ after)" averaged over
the 10 seeds of each β. A mean over 10 seeds hides how much it moves between seeds, so besides
mean ± std (the paper's convention, ddof 0 as in :class:`disentkit.report.tables.Stat`) this adds
a 95 % percentile-bootstrap interval of the mean (resampling seeds with replacement; Efron &
Tibshirani 1993, ch. 13), for before, after and the paired difference Δ = after − before.

The grouping and the paper-layout cells come from :mod:`disentkit.report.tables`, so the sweep's
table and the single-run report are the same table. Outputs, written atomically beside each other:

* ``aggregate.csv``: long format, one row per (source model incl. β, target, fine-tuning,
  full|pruned, metric): n, then mean, std, ci_low, ci_high for before, after and delta;
  source models' own metrics follow with ``target`` = their dataset and stage ``source``.
* ``aggregate.md``: the transfer table in the paper's layout (one block per source → target,
  rows full and pruned, cells "before (+Δ after)" as mean ± std) and the source table;
* unless ``report=False``: ``report.html``, ``report.md`` and ``results.csv`` from
  :func:`disentkit.report.build_report` (figures and the verdicts on the paper's findings).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from disentkit.io import write_text

CSV_COLUMNS = [
    "source", "beta", "target", "finetune", "compat", "code", "metric", "n",
    "before_mean", "before_std", "before_ci_low", "before_ci_high",
    "after_mean", "after_std", "after_ci_low", "after_ci_high",
    "delta_mean", "delta_std", "delta_ci_low", "delta_ci_high",
]


def bootstrap_ci(values, *, n_boot: int = 2000, level: float = 0.95, rng: np.random.Generator) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of ``values`` (NaN/None dropped).

    One value gives a zero-width interval (nothing to resample); no value gives (nan, nan).
    """
    vals = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if vals.size == 0:
        return float("nan"), float("nan")
    if vals.size == 1:
        return float(vals[0]), float(vals[0])
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, found {n_boot}")
    idx = rng.integers(0, vals.size, size=(n_boot, vals.size))
    means = vals[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def summarize(values, *, n_boot: int, rng: np.random.Generator) -> dict[str, float]:
    """mean, std (ddof 0), 95 % bootstrap interval and count of the finite ``values``."""
    vals = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if vals.size == 0:
        return {"n": 0, "mean": float("nan"), "std": float("nan"), "ci_low": float("nan"), "ci_high": float("nan")}
    lo, hi = bootstrap_ci(vals, n_boot=n_boot, rng=rng)
    return {"n": int(vals.size), "mean": float(vals.mean()), "std": float(vals.std()), "ci_low": lo, "ci_high": hi}


def _metric_keys(group) -> list[tuple[str, str]]:
    """(code, metric key) pairs of a transfer group, in the paper's column order."""
    from disentkit.report.tables import SCORE_COLUMNS

    keys = []
    for code, prefix in (("full", "gbt"), ("pruned", "gbt_pruned")):
        keys += [(code, f"{prefix}.test_accuracy.{name}") for name in group.factor_names]
        keys.append((code, f"{prefix}.mean_test_accuracy"))
    keys += [("full", key) for _, key in SCORE_COLUMNS]
    return keys


def transfer_rows(groups, *, n_boot: int, rng: np.random.Generator) -> list[dict]:
    """Long-format rows for every transfer group, metric and stage (before, after, Δ)."""
    rows = []
    for g in groups:
        any_result = next(iter(g.before.values()), None) or next(iter(g.after.values()), None)
        beta = (any_result.model.get("beta") if any_result else None)
        for code, key in _metric_keys(g):
            paired = [s for s in g.after if s in g.before]
            before = [r.metrics.get(key) for r in g.before.values()]
            after = [r.metrics.get(key) for r in g.after.values()]
            delta = [
                g.after[s].metrics[key] - g.before[s].metrics[key]
                for s in paired
                if g.after[s].metrics.get(key) is not None and g.before[s].metrics.get(key) is not None
            ]
            if all(v is None for v in before + after):
                continue
            row = {
                "source": g.source, "beta": beta, "target": g.target, "finetune": g.finetune,
                "compat": g.compat, "code": code, "metric": key,
            }
            stats = {name: summarize(vals, n_boot=n_boot, rng=rng) for name, vals in
                     (("before", before), ("after", after), ("delta", delta))}
            row["n"] = stats["before"]["n"]
            for name, st in stats.items():
                for field in ("mean", "std", "ci_low", "ci_high"):
                    row[f"{name}_{field}"] = st[field]
            rows.append(row)
    return rows


def source_rows(groups, *, n_boot: int, rng: np.random.Generator) -> list[dict]:
    """Long-format rows of the source models' own metrics (stage ``before`` = trained)."""
    from disentkit.report.tables import SOURCE_METRICS

    rows = []
    for g in groups:
        beta = g.trained[0].model.get("beta") if g.trained else None
        for key in SOURCE_METRICS:
            vals = [r.metrics.get(key) for r in g.trained]
            if all(v is None for v in vals):
                continue
            st = summarize(vals, n_boot=n_boot, rng=rng)
            row = {"source": g.source, "beta": beta, "target": g.dataset, "finetune": "source",
                   "compat": "", "code": "full", "metric": key, "n": st["n"]}
            for field in ("mean", "std", "ci_low", "ci_high"):
                row[f"before_{field}"] = st[field]
            rows.append(row)
    return rows


def markdown_tables(t_groups, s_groups) -> str:
    """The paper-layout transfer table (and the source table) as Markdown."""
    from disentkit.report.tables import source_table

    lines = ["# Sweep results", "",
             "Cells: before (+Δ after), mean ± std over seeds; 95 % bootstrap intervals are in aggregate.csv.", ""]
    for g in t_groups:
        n = len(g.before)
        lines += [f"## {g.title} — {n} seed(s)", ""]
        lines += _md_table(g.columns, g.rows())
        lines.append("")
    if s_groups:
        columns, rows = source_table(s_groups)
        lines += ["## Source models (trained vs untrained floor)", ""]
        lines += _md_table(columns, rows)
        lines.append("")
    return "\n".join(lines)


def _md_table(columns, rows) -> list[str]:
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    return out


def aggregate(
    root: str | Path, *, out: str | Path | None = None, n_boot: int = 2000, seed: int = 0, report: bool = True,
    skip_broken: bool = False,
) -> list[Path]:
    """Aggregate every evaluation under ``root``; return the files written.

    With ``report``, also build the HTML/Markdown report of :func:`disentkit.report.build_report`
    (figures, findings) in ``root``.

    Raises ``ValueError`` when ``root`` holds no transfer or source evaluation at all (an empty
    table would look like a result).
    """
    from disentkit.report.collect import collect_results, skipped_note
    from disentkit.report.tables import source_groups, transfer_groups

    root = Path(root)
    results = collect_results(root, skip_broken=skip_broken)  # a broken file is refused
    t_groups, s_groups = transfer_groups(results), source_groups(results)
    if not t_groups and not s_groups:
        raise ValueError(
            f"no evaluation results under {root}: expected run folders holding results.json "
            "(run `disentkit sweep run` first, or check the folder)"
        )
    rng = np.random.default_rng(seed)
    rows = transfer_rows(t_groups, n_boot=n_boot, rng=rng) + source_rows(s_groups, n_boot=n_boot, rng=rng)
    csv_path = Path(out) if out else root / "aggregate.csv"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, restval="")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    write_text(csv_path, buf.getvalue())
    md_path = csv_path.with_suffix(".md")
    note = skipped_note(results).strip()
    write_text(md_path, markdown_tables(t_groups, s_groups) + (f"\n{note}\n" if note else ""))
    written = [csv_path, md_path]
    if report:
        from disentkit.report import build_report

        rep = build_report(root, skip_broken=skip_broken)
        written += [Path(rep.html), Path(rep.markdown), Path(rep.csv)]
    return written
