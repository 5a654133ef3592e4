"""Does this run reproduce the paper's findings? Decided from the run's own numbers.

Dapueto et al. 2024 (§4–5) claim, in their words:

* F0 — weak supervision gives a *disentangled* source (read beside an untrained network);
* F1 — "fine-tuning almost always helps explicitness (classification accuracy) and rarely harms";
* F2 — fine-tuning keeps *modularity/compactness* (OMES, DCI-D) on targets close to the source;
  "it can cost modularity/compactness when the target has hidden factors";
* F3 — "disentanglement transfers when source and target share FoVs of similar granularity; it
  degrades with a large semantic gap or hidden factors in the target";
* F4 — the OMES-pruned code keeps the explicitness of the full code, before and after fine-tuning.

Each finding is tested on paired per-seed differences (trained − floor, after − before, pruned −
full …) against a stated threshold. The verdict is ``holds`` when the mean difference clears the
threshold by more than its spread across seeds (std, ddof 1), ``does not hold`` when it misses by
more than the spread, and ``inconclusive`` otherwise — always with one seed, since a spread cannot
be measured — together with what would decide it. Factor correspondence (F2, F3) comes from the
factor kinds and nuisances each dataset declares (:mod:`disentkit.data.kinds`), recorded in
``results.json``; names are never matched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from disentkit.report.tables import SourceGroup, TransferGroup

HOLDS, FAILS, OPEN = "holds", "does not hold", "inconclusive"
#: F0: how far above its untrained floor a source must score (absolute)
FLOOR_MARGIN = 0.1
#: F1: zero-shot GBT accuracy at or above which a target has no room to rise
SATURATED_ACCURACY = 0.98
#: F2, F4: the largest loss (absolute) that still counts as "keeps"
KEEP_TOLERANCE = 0.05
#: F3: sizes of two corresponding factors within this ratio have a "similar granularity"
GRANULARITY_RATIO = 4.0
#: F3: a source factor must gain this much over its floor for a retention to be defined
MIN_GAIN = 0.05
ONE_SEED = "one seed: repeat with 3 or more seeds so that the spread across seeds can be measured"
IN_SPREAD = "the difference lies inside its spread across seeds: more seeds (or a larger n) decide it"


@dataclass
class Finding:
    """One finding: the paper's claim, how it is tested, the verdict and the rows read."""

    code: str
    claim: str
    statistic: str
    threshold: str
    verdict: str
    evidence: list[str] = field(default_factory=list)
    decide: str = ""


def judge_difference(values, threshold: float) -> tuple[str, str]:
    """(verdict, what would decide it) for per-seed differences ``values`` against ``threshold``."""
    vals = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if vals.size == 0:
        return OPEN, "no evaluation to read"
    if vals.size == 1:
        return OPEN, ONE_SEED
    mean, spread = float(vals.mean()), float(vals.std(ddof=1))
    if mean - threshold > spread:
        return HOLDS, ""
    if threshold - mean > spread:
        return FAILS, ""
    return OPEN, IN_SPREAD


def _combine(verdicts: list[tuple[str, str]], empty: str) -> tuple[str, str]:
    """All rows hold -> holds; any row fails -> does not hold; else inconclusive (first reason)."""
    if not verdicts:
        return OPEN, empty
    if any(v == FAILS for v, _ in verdicts):
        return FAILS, ""
    if all(v == HOLDS for v, _ in verdicts):
        return HOLDS, ""
    return OPEN, next(d for v, d in verdicts if v == OPEN)


def _text(values) -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "—"
    if len(vals) == 1:
        return f"{vals[0]:+.3f} (1 seed)"
    return f"{np.mean(vals):+.3f} ± {np.std(vals, ddof=1):.3f} ({len(vals)} seeds)"


def _mean(d: dict) -> float | None:
    return float(np.mean(list(d.values()))) if d else None


# ---------------------------------------------------------------------------- F0
def source_disentangled(sources: list[SourceGroup]) -> Finding:
    """F0 (§4.1): the weakly-supervised source is disentangled — DCI-D and MIG above the untrained
    network of the same architecture, evaluated on the same rows."""
    verdicts, evidence = [], []
    for g in sources:
        for label, key in (("DCI-D", "dci.disentanglement"), ("MIG", "mig.score")):
            diffs = g.paired(key)
            if not diffs:
                continue
            v = judge_difference(diffs, FLOOR_MARGIN)
            verdicts.append(v)
            evidence.append(f"{g.source}: {label} trained − untrained = {_text(diffs)} → {v[0]} "
                            f"(rows: source eval/ and floor/)")
    verdict, decide = _combine(verdicts, "needs a source evaluation and its untrained floor")
    return Finding("F0", "The source model is disentangled (weak supervision).",
                   "trained − untrained floor of DCI-D and MIG, per seed",
                   f"> {FLOOR_MARGIN:g} by more than the spread across seeds", verdict, evidence, decide)


# ---------------------------------------------------------------------------- F1
def finetuning_raises_explicitness(groups: list[TransferGroup]) -> Finding:
    """F1 (§4.2, Tables 1–3): fine-tuning raises explicitness — Δ (after − before) of the mean
    GBT test accuracy on the full code, per target. A target read at ≥ SATURATED_ACCURACY
    zero-shot cannot show a rise; with its floor that high too it is too easy to tell."""
    key = "gbt.mean_test_accuracy"
    verdicts, evidence = [], []
    for g in groups:
        diffs = g.paired(key)
        if not diffs:
            continue
        before, floor = _mean(g.values(key, "before")), _mean(g.values(key, "floor"))
        line = (f"{g.title}: zero-shot {before:.2f} (untrained floor "
                f"{'—' if floor is None else f'{floor:.2f}'}), Δ after − before = {_text(diffs)}")
        if before >= SATURATED_ACCURACY:
            why = ("the untrained floor reads it as well: the target is too easy to tell"
                   if floor is not None and floor >= SATURATED_ACCURACY - 0.05
                   else "no room to rise")
            verdicts.append((OPEN, f"{g.target}: saturated zero-shot ({why}); a harder target decides it"))
            evidence.append(f"{line} → inconclusive ({why})")
            continue
        v = judge_difference(diffs, 0.0)
        verdicts.append(v)
        evidence.append(f"{line} → {v[0]}")
    verdict, decide = _combine(verdicts, "needs transfers evaluated before and after fine-tuning")
    return Finding("F1", "Fine-tuning almost always helps explicitness (classification accuracy) and rarely harms.",
                   "after − before of the mean GBT test accuracy, per seed and target",
                   "> 0 by more than the spread across seeds, on every target", verdict, evidence, decide)


# ---------------------------------------------------------------------------- correspondence
@dataclass
class Correspondence:
    """Target factors paired with source factors of the same kind, and the target's hidden ones."""

    pairs: list[tuple[str, str, bool]]  # (target factor, source factor, similar granularity)
    hidden: list[str]  # target nuisances and backgrounds the source never saw
    unmatched: list[str]  # target factors of a kind the source lacks (not backgrounds)

    def text(self) -> str:
        pairs = ", ".join(f"{t}↔{s}" + ("" if same else " (granularity differs)") for t, s, same in self.pairs)
        return (f"corresponding: {pairs or 'none'}; hidden: {', '.join(self.hidden) or 'none'}"
                + (f"; no counterpart: {', '.join(self.unmatched)}" if self.unmatched else ""))


def correspondence(source: dict, target: dict) -> Correspondence:
    """Pair factors by declared kind, one to one, in factor order (``other`` pairs with nothing).

    ``source``/``target``: {"names", "sizes", "kinds", "nuisances"}. Hidden: every target
    nuisance the source's images lacked, and every target factor of kind ``background`` with no
    source counterpart (a background the source never saw, Dapueto et al. 2024 §5).
    """
    free = [(n, s, k) for n, s, k in zip(source["names"], source["sizes"], source["kinds"]) if k != "other"]
    pairs, hidden, unmatched = [], [], []
    for name, size, kind in zip(target["names"], target["sizes"], target["kinds"]):
        match = next((f for f in free if f[2] == kind), None) if kind != "other" else None
        if match is None:
            (hidden if kind == "background" else unmatched).append(name)
            continue
        free.remove(match)
        ratio = max(size, match[1]) / max(min(size, match[1]), 1)
        pairs.append((name, match[0], ratio <= GRANULARITY_RATIO))
    hidden += [f"{n} (nuisance)" for n in target["nuisances"] if n not in source["nuisances"]]
    return Correspondence(pairs, hidden, unmatched)


def group_correspondence(g: TransferGroup) -> Correspondence | None:
    """The correspondence of a transfer group, from what its results recorded."""
    r = next(iter(g.before.values()), None)
    t = (r.transfer or {}) if r else {}
    ds = r.data["dataset"] if r else {}
    if not t.get("source_factor_kinds") or not ds.get("factor_kinds"):
        return None
    return correspondence(
        {"names": t["source_factor_names"], "sizes": t["source_factor_sizes"],
         "kinds": t["source_factor_kinds"], "nuisances": t.get("source_nuisances", [])},
        {"names": ds["factor_names"], "sizes": ds["factor_sizes"], "kinds": ds["factor_kinds"],
         "nuisances": ds.get("nuisances", [])})


# ---------------------------------------------------------------------------- F2
def finetuning_keeps_disentanglement(groups: list[TransferGroup]) -> Finding:
    """F2 (§4.2): fine-tuning keeps OMES and DCI-D on targets without hidden factors (Δ above
    −KEEP_TOLERANCE); targets with hidden factors may lose them, so they are listed, not counted."""
    verdicts, evidence = [], []
    for g in groups:
        corr = group_correspondence(g)
        hidden = corr is None or bool(corr.hidden)
        for label, key in (("OMES", "omes.score"), ("DCI-D", "dci.disentanglement")):
            diffs = g.paired(key)
            if not diffs:
                continue
            line = f"{g.title}: {label} Δ after − before = {_text(diffs)}"
            if hidden:
                why = "correspondence not recorded" if corr is None else f"hidden: {', '.join(corr.hidden)}"
                evidence.append(f"{line} (not counted: {why})")
                continue
            v = judge_difference(diffs, -KEEP_TOLERANCE)
            verdicts.append(v)
            evidence.append(f"{line} → {v[0]}")
    verdict, decide = _combine(verdicts, "every target has hidden factors: a target close to the "
                               "source (e.g. white-dsprites or dsprites for a Color-dSprites source) decides it")
    return Finding("F2", "Fine-tuning keeps modularity and compactness (OMES, DCI-D) on targets close "
                   "to the source; it can cost them when the target has hidden factors.",
                   "after − before of OMES and DCI-D, per seed, on targets without hidden factors",
                   f"> −{KEEP_TOLERANCE:g} by more than the spread across seeds", verdict, evidence, decide)


# ---------------------------------------------------------------------------- F3
def _retention(g: TransferGroup, src: SourceGroup, corr: Correspondence) -> tuple[dict, list[str]]:
    """{replicate: mean floor-normalised retention over the corresponding factors of similar
    granularity}, and the per-factor lines. Retention of a factor pair (t, s), zero-shot:
    (before[t] − target floor[t]) / (source[s] − source floor[s]) with OMES's per-factor score."""
    per_seed: dict[tuple, list[float]] = {}
    lines = []
    for t, s, similar in corr.pairs:
        if not similar:
            continue
        before, floor = g.values(f"omes.factor.{t}", "before"), g.values(f"omes.factor.{t}", "floor")
        trained, sfloor = src.values(f"omes.factor.{s}"), src.values(f"omes.factor.{s}", "floor")
        kept = []
        for rep in before:
            seed = rep[0]
            if rep not in floor or seed not in trained or seed not in sfloor:
                continue
            gain = trained[seed] - sfloor[seed]
            if gain < MIN_GAIN:
                continue
            value = (before[rep] - floor[rep]) / gain
            per_seed.setdefault(rep, []).append(value)
            kept.append(value)
        lines.append(f"{t}↔{s} {_text(kept) if kept else '— (source gained < %g on it)' % MIN_GAIN}")
    return {rep: float(np.mean(v)) for rep, v in per_seed.items()}, lines


def shared_factors_transfer(groups: list[TransferGroup], sources: list[SourceGroup]) -> Finding:
    """F3 (§5): transfer works where source and target share factors at a similar granularity.
    Per target, the zero-shot floor-normalised retention of OMES per factor, averaged over the
    corresponding factors of similar granularity; targets without hidden factors must retain more
    than targets with hidden ones (per seed: min over the first − max over the second)."""
    by_source = {s.source: s for s in sources}
    verdicts, evidence = [], []
    for label in sorted({g.source for g in groups}):
        src = by_source.get(label)
        close, far = {}, {}
        for g in (h for h in groups if h.source == label):
            corr = group_correspondence(g)
            if corr is None or src is None or not g.floor:
                evidence.append(f"{g.title}: not read (needs the source's evaluation and floor, "
                                "the target floor and recorded factor kinds)")
                continue
            kept, lines = _retention(g, src, corr)
            evidence.append(f"{g.title}: {corr.text()}; retention per factor: {'; '.join(lines) or 'none'}"
                            f"; mean {_text(list(kept.values()))}")
            if kept:
                (far if corr.hidden else close)[g.target] = kept
        if not close or not far:
            verdicts.append((OPEN, f"{label}: needs targets both without hidden factors "
                                   f"({sorted(close) or 'none here'}) and with them ({sorted(far) or 'none here'})"))
            continue
        reps = set.intersection(*(set(v) for v in [*close.values(), *far.values()]))
        diffs = [min(v[r] for v in close.values()) - max(v[r] for v in far.values()) for r in sorted(reps, key=str)]
        v = judge_difference(diffs, 0.0)
        verdicts.append(v)
        evidence.append(f"{label}: min retention without hidden factors − max with them = {_text(diffs)} → {v[0]}")
    verdict, decide = _combine(verdicts, "needs transfers with their target floors")
    return Finding("F3", "Disentanglement transfers when source and target share FoVs of similar "
                   "granularity; it degrades with a large semantic gap or hidden factors in the target.",
                   "zero-shot (target − target floor) / (source − source floor) of OMES per "
                   "corresponding factor (declared kinds), averaged per target",
                   "targets without hidden factors retain more than targets with them (> 0 by more "
                   "than the spread across seeds)", verdict, evidence, decide)


# ---------------------------------------------------------------------------- F4
def pruned_code_keeps_explicitness(groups: list[TransferGroup], sources: list[SourceGroup]) -> Finding:
    """F4 (§4.2, "pruned" rows of Tables 1–3): the code restricted to the dimensions OMES
    associates with a factor reads the factors about as well as the full code: gbt_pruned − gbt
    above −KEEP_TOLERANCE, on the source and before and after fine-tuning."""
    full, pruned = "gbt.mean_test_accuracy", "gbt_pruned.mean_test_accuracy"
    verdicts, evidence = [], []
    rows = [(f"{s.source} (source)", s.paired_keys(pruned, full)) for s in sources]
    for g in groups:
        for stage in ("before", "after"):
            p, f = g.values(pruned, stage), g.values(full, stage)
            rows.append((f"{g.title}, {stage}", [p[r] - f[r] for r in sorted(p, key=str) if r in f]))
    for label, diffs in rows:
        if not diffs:
            continue
        v = judge_difference(diffs, -KEEP_TOLERANCE)
        verdicts.append(v)
        evidence.append(f"{label}: pruned − full GBT = {_text(diffs)} → {v[0]}")
    verdict, decide = _combine(verdicts, "needs GBT on the full and the pruned code")
    return Finding("F4", "The OMES-pruned code keeps the explicitness of the full code, before "
                   "and after fine-tuning.", "gbt_pruned − gbt mean test accuracy, per seed",
                   f"> −{KEEP_TOLERANCE:g} by more than the spread across seeds", verdict, evidence, decide)


def findings(groups: list[TransferGroup], sources: list[SourceGroup]) -> list[Finding]:
    """F0–F4 in order."""
    return [
        source_disentangled(sources),
        finetuning_raises_explicitness(groups),
        finetuning_keeps_disentanglement(groups),
        shared_factors_transfer(groups, sources),
        pruned_code_keeps_explicitness(groups, sources),
    ]
