"""The report's sections that keep a reader from misreading it (issue 13, point 6): figure
captions that say what a heat map's colour and boxes are and why a traversal row is missing,
fine-tuning health beside each transfer table, a glossary of every key the tables show, and the
provenance of every stage. :mod:`disentkit.report.html` places them on the page.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

from disentkit.report.collect import Result
from disentkit.report.glossary import glossary
from disentkit.report.health import RULE as HEALTH_RULE
from disentkit.report.health import group_health
from disentkit.report.provenance import provenance
from disentkit.report.tables import TransferGroup

STAGE_COLUMNS = ["stage", "folder", "device", "precision", "wall time"]


RELATION_CAPTION = (
    "OMES relation matrix. Colour and numbers: M[d, k] = 1 − |corr(z_d(x1), z_d(x2))| over pairs "
    "of rows that differ in factor k only (high = dimension d moves with k). Boxes: the OMES "
    "association, for each factor the active dimension with the highest overlap score OS(d, k) "
    "= 1 − (1/K)·Σ_j |[j = k] − M[d, j]| — it rewards a dimension that moves with k and not "
    "with the other factors, so it need not be the column's largest M (dashed box: M < 0.1, the "
    "chosen dimension hardly moves with k); no box: OS = 0. Rows: active dimensions only (std "
    "of the posterior mean ≥ 0.05)."
)


def traversal_caption(r: Result) -> str:
    """Caption of a traversal figure, naming the dimensions that have no row and why."""
    omes = r.data.get("omes") or {}
    shown = [int(d) for d in omes.get("dims", [])]
    latent = r.model.get("latent_dim")
    text = "latent traversals (row label: the factor OMES associates with the dimension, – none)"
    if omes and not shown:
        return text + ("; every dimension is inactive (std of the posterior mean < 0.05), so all "
                       "are shown and none carries a factor")
    if shown and isinstance(latent, int):
        missing = [d for d in range(latent) if d not in shown]
        if missing:
            text += ("; no row for " + ", ".join(f"z{d}" for d in missing) + ": inactive "
                     "(std of the posterior mean < 0.05 over the evaluated rows, OMES's rule)")
    return text


def missing_traversal(r: Result) -> str | None:
    """Why an evaluation has no traversal figure (None when it has one)."""
    if r.figure("traversals") is not None:
        return None
    if not r.data.get("figures"):
        return "no figures: the evaluation ran with figures off"
    if not r.data.get("omes"):
        return "no traversals: OMES was not computed, so no dimension is labelled"
    return "no traversals: the figure file is missing from the evaluation folder"


def health_lines(g: TransferGroup) -> list[tuple[bool, str]]:
    """(flagged, text) per fine-tuned seed of a group: the health shown beside its table."""
    out = []
    for key, h in group_health(g.before, g.after).items():
        seed = f"source seed {key[0]}, transfer seed {key[1]}"
        out.append((h.flag, f"fine-tuning health ({seed}): {h.text()}"))
    return out


def glossary_keys(src_rows: list[dict], groups: list[TransferGroup]) -> tuple[list[str], list[str]]:
    """Every metric key and column header the report's tables show, and the factor names."""
    keys = [row["metric"] for row in src_rows]
    factors: list[str] = []
    for g in groups:
        keys += [c for c in g.columns if c not in keys]
        factors += [f for f in g.factor_names if f not in factors]
    return keys, factors


@dataclass
class Extras:
    """What these sections need, computed once per report."""

    prov: list[str]
    stages: list[dict]
    terms: list[tuple[str, str]]
    undefined: list[str]
    notes: list[tuple[str, str]] = field(default_factory=list)
    health: dict[str, list[tuple[bool, str]]] = field(default_factory=dict)


def build_extras(results: list[Result], root: Path, src_rows: list[dict],
                 groups: list[TransferGroup], notes: list[tuple[str, str]]) -> Extras:
    prov, stages = provenance(results, root)
    keys, factors = glossary_keys(src_rows, groups)
    terms, undefined = glossary(keys, factors)
    health = {g.title: health_lines(g) for g in groups}
    return Extras(prov, stages, terms, undefined, notes, health)


def _table(columns: list[str], rows: list[dict]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in columns)
                   + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_health(extra: Extras, title: str) -> list[str]:
    out = []
    for flagged, text in extra.health.get(title, []):
        cls = "fails" if flagged else "note"
        mark = "⚠ " if flagged else ""
        out.append(f'<p class="{cls}"><strong>{mark}</strong>{html.escape(text)}</p>')
    return out


def html_notes(extra: Extras, section: str) -> list[str]:
    return [f'<p class="note">{html.escape(text)}</p>'
            for sec, text in extra.notes if sec == section]


def html_glossary(extra: Extras) -> list[str]:
    rows = [{"key": t, "definition": d} for t, d in extra.terms]
    out = ["<h2>Glossary</h2>", '<p class="note">Every metric key and column of the tables above, '
           "in one line. Fine-tuning health: " + html.escape(HEALTH_RULE) + ".</p>",
           _table(["key", "definition"], rows)]
    if extra.undefined:
        out.append('<p class="fails">No definition yet for: '
                   + html.escape(", ".join(extra.undefined)) + "</p>")
    return out


def html_provenance(extra: Extras) -> list[str]:
    out = ["<h2>Provenance</h2><ul>"] + [f"<li>{html.escape(p)}</li>" for p in extra.prov]
    out.append("</ul>")
    out.append(_table(STAGE_COLUMNS, extra.stages))
    return out


def _md_rows(columns: list[str], rows: list[dict]) -> list[str]:
    esc = lambda v: str(v).replace("|", "\\|")  # noqa: E731
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return out + ["| " + " | ".join(esc(r.get(c, "")) for c in columns) + " |" for r in rows]


def md_health(extra: Extras, title: str) -> list[str]:
    return [("**⚠ " + text + "**") if flagged else text
            for flagged, text in extra.health.get(title, [])]


def md_glossary(extra: Extras) -> list[str]:
    out = ["## Glossary", "", f"Fine-tuning health: {HEALTH_RULE}.", ""]
    out += _md_rows(["key", "definition"], [{"key": t, "definition": d} for t, d in extra.terms])
    if extra.undefined:
        out += ["", "No definition yet for: " + ", ".join(extra.undefined)]
    return out + [""]


def md_provenance(extra: Extras) -> list[str]:
    return ["## Provenance", ""] + [f"- {p}" for p in extra.prov] + [""] + _md_rows(
        STAGE_COLUMNS, extra.stages)
