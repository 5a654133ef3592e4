"""The paper's tables, computed from evaluation results (Dapueto et al. 2024, §4, Tables 1–3).

Transfer table: one block per source → target, rows ``full`` and ``pruned`` (the code restricted
to the dimensions OMES associates with a factor), columns one per target factor (GBT test
accuracy), ``All`` (their mean), then OS, MES, OMES (α = 0.5), DCI-D and MIG. Each cell reads
"before (+Δ after)" as in the paper: the zero-shot value, then what fine-tuning added. With
several seeds, each number is mean ± std over seeds and Δ is averaged per seed.

Source table: every headline metric of every source model beside the same metric for an
untrained network of the same architecture — the floor that proves learning happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from disentkit.report.collect import Result

#: disentanglement columns of the transfer table: (header, flat metric key)
SCORE_COLUMNS = (
    ("OS", "omes.os"),
    ("MES", "omes.mes"),
    ("OMES", "omes.score"),
    ("DCI-D", "dci.disentanglement"),
    ("MIG", "mig.score"),
)
#: the metrics of the source table, in display order (keys absent everywhere are dropped)
SOURCE_METRICS = (
    "omes.score",
    "omes.os",
    "omes.mes",
    "dci.disentanglement",
    "dci.completeness",
    "dci.informativeness_test",
    "mig.score",
    "sap.score",
    "modularity.score",
    "explicitness.score_test",
    "beta_vae.eval_accuracy",
    "factor_vae.eval_accuracy",
    "gbt.mean_test_accuracy",
    "gbt_pruned.mean_test_accuracy",
    "mlp.mean_test_accuracy",
    "mlp_pruned.mean_test_accuracy",
)


@dataclass
class Stat:
    """Mean and standard deviation (ddof 0) of one metric over ``n`` seeds."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values) -> "Stat | None":
        vals = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
        if vals.size == 0:
            return None
        return cls(float(vals.mean()), float(vals.std()), int(vals.size))

    def text(self, signed: bool = False) -> str:
        fmt = "{:+.2f}" if signed else "{:.2f}"
        mean = 0.0 if round(self.mean, 2) == 0 else self.mean  # no "-0.00" for a tiny loss
        out = fmt.format(mean)
        if self.n > 1:
            out += " ± {:.2f}".format(self.std)
        return out


def cell_text(before: Stat | None, delta: Stat | None) -> str:
    """A paper cell: ``"0.62 (+0.10)"``; ``"0.62"`` without fine-tuning; ``""`` when absent."""
    if before is None:
        return ""
    if delta is None:
        return before.text()
    return f"{before.text()} ({delta.text(signed=True)})"


@dataclass
class TransferGroup:
    """All repeats (seeds) of one source → target transfer with one fine-tuning setting."""

    source: str
    target: str
    finetune: str
    compat: bool
    eval_split: str
    factor_names: list[str]
    channel_rule: str | None = None
    before: dict[tuple, Result] = field(default_factory=dict)
    after: dict[tuple, Result] = field(default_factory=dict)
    #: the untrained network of the source's architecture on the same rows (the target's floor)
    floor: dict[tuple, Result] = field(default_factory=dict)

    @property
    def title(self) -> str:
        tail = f"fine-tune: {self.finetune}"
        if self.compat:
            tail += ", --compat"
        return f"{self.source} → {self.target} ({tail})"

    def stats(self, key: str) -> tuple[Stat | None, Stat | None]:
        """(before, Δ) over seeds; Δ only over the seeds that have both evaluations."""
        before = Stat.of(r.metrics.get(key) for r in self.before.values())
        deltas = [
            self.after[s].metrics.get(key) - self.before[s].metrics.get(key)
            for s in self.after
            if s in self.before
            and self.after[s].metrics.get(key) is not None
            and self.before[s].metrics.get(key) is not None
        ]
        return before, Stat.of(deltas)

    def values(self, key: str, which: str) -> dict[tuple, float]:
        """{replicate: value} of ``key`` in the ``which`` evaluations (before, after, floor)."""
        return {s: r.metrics[key] for s, r in getattr(self, which).items() if key in r.metrics}

    def paired(self, key: str, a: str = "after", b: str = "before") -> list[float]:
        """``a − b`` of ``key`` per replicate that has both (e.g. Δ of fine-tuning)."""
        va, vb = self.values(key, a), self.values(key, b)
        return [va[s] - vb[s] for s in sorted(va, key=str) if s in vb]

    def rows(self) -> list[dict[str, str]]:
        """The block's rows (full, pruned, and the untrained floor's full code) as
        {column: cell text}."""
        out = []
        for row, prefix in (("full", "gbt"), ("pruned", "gbt_pruned"), ("untrained floor", "gbt")):
            cells = {"code": row}
            floor = row == "untrained floor"
            if floor and not self.floor:
                continue

            def cell(key):
                return _floor_text(self, key) if floor else cell_text(*self.stats(key))

            for name in self.factor_names:
                cells[name] = cell(f"{prefix}.test_accuracy.{name}")
            cells["All"] = cell(f"{prefix}.mean_test_accuracy")
            for header, key in SCORE_COLUMNS:
                # OMES, DCI and MIG do not depend on pruning: shown on the full and floor rows
                cells[header] = cell(key) if row != "pruned" else ""
            out.append(cells)
        return out

    def sizes(self) -> str:
        """``n`` of the evaluations read (rows, distinct combinations, train/test, rows of the
        test part seen in training), e.g. for the table's note."""
        return evaluation_sizes([*self.before.values(), *self.after.values(), *self.floor.values()])

    @property
    def columns(self) -> list[str]:
        return ["code", *self.factor_names, "All", *(h for h, _ in SCORE_COLUMNS)]


def _floor_text(g: TransferGroup, key: str) -> str:
    stat = Stat.of(g.values(key, "floor").values())
    return stat.text() if stat else ""


def evaluation_sizes(results: list[Result]) -> str:
    """One phrase for the ``n`` of some evaluations, e.g. "n = 973 rows (973 distinct
    combinations; 649 train / 324 test; 0 test rows seen in training)"; several phrases when
    they differ; "n unknown" for results written before the protocol recorded it."""
    phrases = []
    for r in results:
        ev = r.data.get("evaluation")
        if not ev:
            text = f"n = {r.data['dataset'].get('n', '?')} rows (sampling not recorded)"
        else:
            text = (f"n = {ev['n']} rows ({ev['distinct_combinations']} distinct combinations, "
                    f"sampling {ev['sampling']}; {ev['n_train']} train / {ev['n_test']} test; "
                    f"{ev['test_rows_seen_in_train']} test rows seen in training)")
            if ev["n"] < ev["n_requested"]:
                text += f", all the part holds (asked for {ev['n_requested']})"
        if text not in phrases:
            phrases.append(text)
    return "; ".join(phrases) if phrases else "n unknown"


def transfer_groups(results: list[Result]) -> list[TransferGroup]:
    """Group ``before``/``after`` evaluations, and the target's untrained ``floor``, by (source
    model, target, fine-tuning setting)."""
    groups: dict[tuple, TransferGroup] = {}
    for r in results:
        if r.kind not in ("before", "after", "floor") or not r.transfer:
            continue
        t = r.transfer
        key = (r.source_label(), r.dataset, t.get("finetune", "all"), bool(t.get("compat")))
        if key not in groups:
            groups[key] = TransferGroup(
                source=key[0],
                target=r.dataset,
                finetune=key[2],
                compat=key[3],
                eval_split=t.get("eval_split", "?"),
                factor_names=r.factor_names,
                channel_rule=t.get("channel_rule"),
            )
        getattr(groups[key], r.kind)[r.replicate()] = r
    return [groups[k] for k in sorted(groups)]


@dataclass
class SourceGroup:
    """All seeds of one source model, and the untrained floor of its architecture."""

    source: str
    dataset: str
    trained: list[Result] = field(default_factory=list)
    floor: list[Result] = field(default_factory=list)

    def stat(self, key: str, which: str = "trained") -> Stat | None:
        return Stat.of(r.metrics.get(key) for r in getattr(self, which))

    def values(self, key: str, which: str = "trained") -> dict:
        """{source seed: value} of ``key`` (``which``: trained or floor)."""
        return {r.model.get("seed"): r.metrics[key] for r in getattr(self, which) if key in r.metrics}

    def paired(self, key: str) -> list[float]:
        """trained − floor of ``key`` per seed that has both."""
        t, f = self.values(key), self.values(key, "floor")
        return [t[s] - f[s] for s in sorted(t, key=str) if s in f]

    def paired_keys(self, a: str, b: str) -> list[float]:
        """``a − b`` of the trained model per seed (e.g. pruned − full GBT)."""
        va, vb = self.values(a), self.values(b)
        return [va[s] - vb[s] for s in sorted(va, key=str) if s in vb]


def source_groups(results: list[Result]) -> list[SourceGroup]:
    groups: dict[str, SourceGroup] = {}
    for r in results:
        if r.kind not in ("source", "floor") or r.transfer:  # a floor with a transfer: a target's
            continue
        label = r.source_label()
        g = groups.setdefault(label, SourceGroup(source=label, dataset=r.dataset))
        (g.trained if r.kind == "source" else g.floor).append(r)
    return [groups[k] for k in sorted(groups)]


def source_table(groups: list[SourceGroup]) -> tuple[list[str], list[dict[str, str]]]:
    """Rows = metrics, two columns per source model: trained (mean ± std) and untrained floor."""
    columns = ["metric"]
    for g in groups:
        columns += [f"{g.source}", f"{g.source}: untrained"]
    present = {k for g in groups for r in g.trained + g.floor for k in r.metrics}
    rows = []
    for key in SOURCE_METRICS:
        if key not in present:
            continue
        row = {"metric": key}
        for g in groups:
            trained, floor = g.stat(key), g.stat(key, "floor")
            row[f"{g.source}"] = trained.text() if trained else ""
            row[f"{g.source}: untrained"] = floor.text() if floor else ""
        rows.append(row)
    if rows:
        row = {"metric": "n (rows evaluated)"}
        for g in groups:
            for col, rs in ((g.source, g.trained), (f"{g.source}: untrained", g.floor)):
                row[col] = ", ".join(sorted({str(r.data.get("evaluation", r.data["dataset"]).get("n", "?"))
                                             for r in rs}))
        rows.append(row)
    return columns, rows


def results_rows(results: list[Result]) -> tuple[list[str], list[dict]]:
    """One flat row per evaluation (every metric), for ``results.csv``."""
    base = ["kind", "source", "dataset", "finetune", "compat", "eval_split", "source_seed",
            "transfer_seed", "n", "distinct_combinations", "test_rows_seen_in_train", "sampling",
            "path"]
    keys: set[str] = set()
    rows = []
    for r in results:
        t = r.transfer or {}
        row = {
            "kind": r.kind,
            "source": r.source_label(),
            "dataset": r.dataset,
            "finetune": t.get("finetune", ""),
            "compat": t.get("compat", ""),
            "eval_split": t.get("eval_split", r.data["dataset"].get("split", "")),
            "source_seed": r.model.get("seed", ""),
            "transfer_seed": t.get("seed", ""),
            "path": str(r.path),
        }
        ev = r.data.get("evaluation") or {}
        row.update({k: ev.get(k, "") for k in ("distinct_combinations", "test_rows_seen_in_train",
                                                "sampling")})
        row["n"] = ev.get("n", r.data["dataset"].get("n", ""))
        row.update(r.metrics)
        keys.update(r.metrics)
        rows.append(row)
    return base + sorted(keys), rows

