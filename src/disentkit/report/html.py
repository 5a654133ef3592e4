"""Write the report: ``report.html`` (one self-contained page, figures embedded as base64 PNG),
``report.md`` (the same tables, figures linked) and ``results.csv`` (every metric of every
evaluation, one row each), all built from the ``results.json`` files under a folder.

The page leads with the verdicts on the paper's findings, then the source table with its
untrained floor, the transfer tables in the paper's "before (+Δ after)" layout (each with its
fine-tuning health: a collapsed model is flagged beside its numbers), the figures, a glossary
defining every key the tables show, and provenance (device, precision actually used, versions,
wall time per stage, the preset's text), so that a reader can cite it as is.
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import html
import io
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from disentkit.io import write_text
from disentkit.progress import Progress
from disentkit.viz import figures as F
from disentkit.report.collect import Result, collect_results, skipped_note
from disentkit.report.findings import Finding, findings
from disentkit.report import sections as S
from disentkit.report.tables import (
    SourceGroup,
    TransferGroup,
    results_rows,
    source_groups,
    source_table,
    transfer_groups,
)

log = logging.getLogger(__name__)

FIGURE_DIR = "report_figures"
STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1200px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.4}
table{border-collapse:collapse;margin:.6em 0 1.4em;font-size:.85em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
th{background:#f2f2f2}
.holds{color:#116611}.partly{color:#996600}.fails{color:#aa1111}.untested{color:#666}
figure{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top}
figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:.8em;color:#555}
.note{font-size:.85em;color:#555}
.banner{background:#fff3cd;border:2px solid #aa1111;padding:.6em 1em;font-weight:bold}
"""


@dataclass
class FigureRef:
    """A figure on disk and where in the report it goes."""

    section: str
    caption: str
    path: Path


@dataclass
class Report:
    html: Path
    markdown: Path
    csv: Path
    figures: list[FigureRef]


# ---------------------------------------------------------------------------- figures
def _first(results: dict[tuple, Result]) -> Result | None:
    return results[sorted(results, key=str)[0]] if results else None


def _read_log(path: Path | None) -> list[dict]:
    if path is None:
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a kill: the rest of the log is still good
    return out


def _slug(text: str) -> str:
    keep = [c if c.isascii() and c.isalnum() else "-" for c in text.lower()]
    return "-".join(p for p in "".join(keep).split("-") if p)[:80]


def _relation(r: Result, fig_dir: Path, stem: str) -> Path | None:
    """The evaluation's relation heat map; drawn from its OMES block when not on disk."""
    found = r.figure("relation")
    if found is not None:
        return found
    omes = r.data.get("omes")
    if not omes or not omes.get("relation"):
        return None
    try:
        fig = F.relation_figure(
            np.asarray(omes["relation"]), omes["dims"], omes["factor_names"],
            omes["association"], f"OMES relation: {r.dataset}",
        )
    except ValueError as exc:  # an inconsistent OMES block: no figure rather than a wrong one
        log.warning("%s: no relation heat map (%s)", r.path, exc)
        return None
    return F.save_figure(fig, fig_dir / f"{stem}-relation.png")


def _curves(series: dict[str, list[dict]], fig_dir: Path, stem: str, title: str) -> Path | None:
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    try:
        fig = F.curves_figure(series, title)
    except ValueError:
        return None
    return F.save_figure(fig, fig_dir / f"{stem}-curves.png")


def gather_figures(
    sources: list[SourceGroup], groups: list[TransferGroup], fig_dir: Path
) -> tuple[list[FigureRef], list[tuple[str, str]]]:
    """The figures of the first seed of every source and transfer (curves drawn now), and
    (section, reason) notes for the traversal figures that are missing."""
    refs: list[FigureRef] = []
    bar = Progress(len(sources) + len(groups), "report figures", "groups")
    notes: list[tuple[str, str]] = []

    def add(section, caption, path):
        if path is not None:
            refs.append(FigureRef(section, caption, path))

    def evaluation(sec, tag, r, stem):
        add(sec, f"{tag}reconstructions on {r.dataset}", r.figure("reconstructions"))
        add(sec, tag + S.traversal_caption(r), r.figure("traversals"))
        why = S.missing_traversal(r)
        if why:
            notes.append((sec, tag + why))
        add(sec, tag + S.RELATION_CAPTION, _relation(r, fig_dir, stem))

    for g in sources:
        bar.update(1)
        if not g.trained:
            continue
        r = sorted(g.trained, key=lambda x: str(x.replicate()))[0]
        sec, stem = f"Source: {g.source}", "source-" + _slug(g.source)
        evaluation(sec, "", r, stem)
        add(sec, "training curves", _curves({"training": _read_log(r.log_path())}, fig_dir, stem,
                                            f"training: {g.source}"))
    for g in groups:
        bar.update(1)
        sec, stem = g.title, "transfer-" + _slug(g.title)
        b, a = _first(g.before), _first(g.after)
        for tag, r in (("before", b), ("after", a)):
            if r is not None:
                evaluation(sec, f"{tag}: ", r, f"{stem}-{tag}")
        if a is not None:
            add(sec, "fine-tuning curves", _curves({"fine-tuning": _read_log(a.log_path())},
                                                   fig_dir, stem, f"fine-tuning: {g.title}"))
    bar.close()
    return refs, notes


# ---------------------------------------------------------------------------- text
def _html_table(columns: list[str], rows: list[dict]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in columns) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _md_table(columns: list[str], rows: list[dict]) -> str:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    out = ["| " + " | ".join(esc(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(esc(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(out)


_VERDICT_CLASS = {"holds": "holds", "inconclusive": "partly", "does not hold": "fails"}
#: evaluations smaller than this make classifier accuracies, and so every verdict, meaningless
SMOKE_N = 1000


def smoke_banner(results: list[Result]) -> str | None:
    """The banner of a report built from smoke sizes (``meta.smoke``) or from evaluations of
    fewer than :data:`SMOKE_N` rows; ``None`` otherwise."""
    smoke = any(r.data.get("meta", {}).get("smoke") for r in results)
    sizes = [int((r.data.get("evaluation") or r.data["dataset"]).get("n", 0) or 0) for r in results]
    small = [n for n in sizes if 0 < n < SMOKE_N]
    if not smoke and not small:
        return None
    why = "built from --smoke sizes" if smoke else f"built from evaluations of as few as {min(small)} rows"
    return (f"This report was {why}: its numbers and verdicts mean nothing; they only show that "
            "the pipeline runs. Run the quick or paper preset for numbers to read.")


def _finding_lines(f: Finding) -> tuple[str, list[str]]:
    """(headline, detail lines) of a finding: claim, verdict, statistic, threshold, rows read."""
    head = f"{f.code}: {f.claim}"
    details = [f"statistic: {f.statistic}; threshold: {f.threshold}"]
    if f.decide:
        details.append(f"what would decide it: {f.decide}")
    return head, details + list(f.evidence)


def _group_note(g: TransferGroup) -> str:
    seeds = len(g.before)
    note = f"{seeds} seed{'s' if seeds != 1 else ''}; evaluation images: {g.eval_split}; {g.sizes()}."
    if not g.floor:
        note += " No untrained floor was evaluated on this target."
    if g.channel_rule:
        note += f" Channels adapted ({g.channel_rule})."
    if g.compat:
        note += (" --compat: reproduces the reference code (β = 1, seed 0, the source's optimiser"
                 " state) and evaluates on the images fine-tuning trained on.")
    return note


def _embed(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def render_html(title, facts, found, src_cols, src_rows, groups, refs, extra, base: Path,
                banner: str | None = None) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        f'<head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{STYLE}</style></head>',
        "<body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">{html.escape(facts)}</p>',
    ]
    if banner:
        parts.append(f'<p class="banner" role="alert">{html.escape(banner)}</p>')
    parts += ["<h2>Do the paper's findings hold here?</h2>", "<ul>"]
    for f in found:
        cls = _VERDICT_CLASS.get(f.verdict, "untested")
        head, details = _finding_lines(f)
        ev = "".join(f"<li>{html.escape(e)}</li>" for e in details)
        parts.append(
            f'<li>{html.escape(head)} <strong class="{cls}">{html.escape(f.verdict)}</strong>'
            + (f"<ul>{ev}</ul>" if ev else "") + "</li>"
        )
    parts.append("</ul>")
    parts.append("<h2>Source models and their untrained floor</h2>")
    if src_rows:
        parts.append(_html_table(src_cols, src_rows))
    else:
        parts.append('<p class="note">No source evaluation found.</p>')
    parts.append("<h2>Transfer: before (+Δ after fine-tuning)</h2>")
    parts.append(
        '<p class="note">Factor columns and All: GBT test accuracy on the full code and on the '
        "OMES-pruned code; OS, MES, OMES (α = 0.5), DCI-D and MIG on the full row. The untrained "
        "floor row: the source's network at its initialisation, channels adapted alike, on the "
        "same rows — what an encoder that learned nothing scores on this target.</p>"
    )
    for g in groups:
        parts.append(f"<h3>{html.escape(g.title)}</h3>")
        parts.append(_html_table(g.columns, g.rows()))
        parts += S.html_health(extra, g.title)
        parts.append(f'<p class="note">{html.escape(_group_note(g))}</p>')
    if not groups:
        parts.append('<p class="note">No transfer evaluation found.</p>')
    parts.append("<h2>Figures</h2>")
    parts.append('<p class="note">Figures of the first seed of each experiment; every run folder '
                 "holds its own under figures/.</p>")
    section = None
    for ref in refs:
        if ref.section != section:
            section = ref.section
            parts.append(f"<h3>{html.escape(section)}</h3>")
            parts += S.html_notes(extra, section)
        rel = _relpath(ref.path, base)
        parts.append(
            f'<figure><img src="data:image/png;base64,{_embed(ref.path)}" '
            f'alt="{html.escape(ref.caption)}" title="{html.escape(rel)}" data-file="{html.escape(rel)}">'
            f"<figcaption>{html.escape(ref.caption)}</figcaption></figure>"
        )
    parts += S.html_glossary(extra) + S.html_provenance(extra)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def render_markdown(title, facts, found, src_cols, src_rows, groups, refs, extra, base,
                    banner: str | None = None) -> str:
    out = [f"# {title}", "", facts, ""]
    if banner:
        out += [f"> **{banner}**", ""]
    out += ["## Do the paper's findings hold here?", ""]
    for f in found:
        head, details = _finding_lines(f)
        out.append(f"- {head} **{f.verdict}**")
        out += [f"  - {e}" for e in details]
    out += ["", "## Source models and their untrained floor", ""]
    out.append(_md_table(src_cols, src_rows) if src_rows else "No source evaluation found.")
    out += ["", "## Transfer: before (+Δ after fine-tuning)", ""]
    for g in groups:
        out += [f"### {g.title}", "", _md_table(g.columns, g.rows()), ""]
        out += S.md_health(extra, g.title) + [_group_note(g), ""]
    out += ["## Figures", ""]
    for ref in refs:
        out.append(f"- {ref.section}: ![{ref.caption}]({_relpath(ref.path, base)})")
    out += [f"- {sec}: {text}" for sec, text in extra.notes]
    out += [""] + S.md_glossary(extra) + S.md_provenance(extra)
    return "\n".join(out) + "\n"


def _relpath(path: Path, base: Path) -> str:
    return os.path.relpath(Path(path).resolve(), Path(base).resolve())


def _csv_text(columns: list[str], rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


# ---------------------------------------------------------------------------- entry point
def build_report(root: str | Path, out: str | Path | None = None, title: str | None = None,
                 skip_broken: bool = False) -> Report:
    """Build ``report.html``, ``report.md`` and ``results.csv`` from the results under ``root``.

    ``out`` is the HTML file (default ``root/report.html``); the Markdown, CSV and the figures
    drawn at report time (curves, missing heat maps) go beside it. Raises ``ValueError`` when
    ``root`` holds no disentkit results.
    """
    root = Path(root)
    results = collect_results(root, skip_broken=skip_broken)
    if not results:
        raise ValueError(f"no disentkit results.json found under {root}; run `disentkit run` or "
                         "`disentkit transfer` first")
    out = Path(out) if out is not None else root / "report.html"
    if out.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"--out must name an .html file, found {out}")
    base = out.parent
    fig_dir = base / FIGURE_DIR
    sources, groups = source_groups(results), transfer_groups(results)
    refs, notes = gather_figures(sources, groups, fig_dir)
    found = findings(groups, sources)
    src_cols, src_rows = source_table(sources)
    extra = S.build_extras(results, root, src_rows, groups, notes)
    title = title or "disentkit report: transferring disentangled representations"
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    facts = (f"Built {now} from {root.resolve()}. Method after Dapueto, Noceti & Odone, "
             "NeurIPS 2024 (arXiv 2409.18017).") + skipped_note(results)
    args = (title, facts, found, src_cols, src_rows, groups, refs, extra, base)
    banner = smoke_banner(results)
    html_path, md_path, csv_path = out, out.with_suffix(".md"), base / "results.csv"
    write_text(html_path, render_html(*args, banner=banner))
    write_text(md_path, render_markdown(*args, banner=banner))
    write_text(csv_path, _csv_text(*results_rows(results)))
    return Report(html=html_path, markdown=md_path, csv=csv_path, figures=refs)


def summarise(found: list[Finding]) -> str:
    """One line per finding, for the terminal."""
    return "\n".join(f"- {f.code}: {f.claim} -> {f.verdict}" for f in found)
