"""Findings F0–F4 on hand-made results: each holds, does not hold, or is inconclusive exactly when
its statistic says so; factor correspondence comes from the declared kinds, not from names."""

from __future__ import annotations

import json

import pytest

from disentkit.io import write_json
from disentkit.report.collect import collect_results
from disentkit.report.findings import (
    HOLDS, FAILS, IN_SPREAD, ONE_SEED, OPEN, correspondence, findings, judge_difference,
)
from disentkit.report.tables import source_groups, transfer_groups

from test_report import TARGETS, declared, fabricate

CLOSE = {**TARGETS, "white-dsprites": TARGETS["noisy-color-dsprites"]}


def verdicts(root, **kw):
    results = collect_results(fabricate(root, **kw))
    return {f.code: f for f in findings(transfer_groups(results), source_groups(results))}


def test_judging_a_difference():
    assert judge_difference([0.3, 0.31, 0.29], 0.1) == (HOLDS, "")
    assert judge_difference([0.0, 0.01, -0.01], 0.1) == (FAILS, "")
    assert judge_difference([0.0, 0.3], 0.1) == (OPEN, IN_SPREAD)  # inside the spread
    assert judge_difference([0.9], 0.1) == (OPEN, ONE_SEED)  # one seed decides nothing
    assert judge_difference([], 0.1)[0] == OPEN


def test_every_finding_holds_on_numbers_that_support_it(tmp_path):
    f = verdicts(tmp_path, targets=CLOSE)
    assert [f[c].verdict for c in ("F0", "F1", "F2", "F3", "F4")] == [HOLDS] * 5
    for finding in f.values():  # each states its statistic, threshold and the rows it read
        assert finding.statistic and finding.threshold and finding.evidence
    assert "trained − untrained = +0.680 ± 0.014 (2 seeds)" in f["F0"].evidence[0]
    # F2 counts only the target without hidden factors; the others are listed, not counted
    assert sum("not counted" in e for e in f["F2"].evidence) == 2 * len(TARGETS)
    f3 = "\n".join(f["F3"].evidence)
    assert "hidden: noise (nuisance)" in f3 and "hidden: floor_hue, wall_hue" in f3
    assert "orientation↔orientation" in f3 and "rotation↔orientation" in f3  # coins: by kind


def test_findings_fail_on_numbers_that_contradict_them(tmp_path):
    f = verdicts(tmp_path / "a", targets=CLOSE, gain=-0.1, omes_delta=-0.3, pruned_loss=0.3,
                 zero_shot={"white-dsprites": 0.1})
    assert {c: f[c].verdict for c in ("F1", "F2", "F3", "F4")} == {c: FAILS for c in ("F1", "F2", "F3", "F4")}
    # F0: a source that scores what its untrained floor scores
    root = fabricate(tmp_path / "b")
    for s in (0, 1):
        src = root / f"source-s{s}"
        data = json.loads((src / "floor" / "results.json").read_text())
        data["metrics"] = json.loads((src / "eval" / "results.json").read_text())["metrics"]
        write_json(src / "floor" / "results.json", data)
    results = collect_results(root)
    assert findings(transfer_groups(results), source_groups(results))[0].verdict == FAILS


def test_one_seed_or_a_missing_comparison_is_inconclusive(tmp_path):
    f = verdicts(tmp_path / "one", seeds=(0,), targets=CLOSE)
    assert all(x.verdict == OPEN and x.decide == ONE_SEED for x in f.values())
    # every target has hidden factors: F2 and F3 cannot be decided, and say what would decide them
    f = verdicts(tmp_path / "hidden")
    assert f["F2"].verdict == OPEN and "white-dsprites" in f["F2"].decide
    assert f["F3"].verdict == OPEN and "without hidden factors" in f["F3"].decide


def test_a_saturated_target_is_too_easy_to_tell(tmp_path):
    f = verdicts(tmp_path, acc={"coins-augmented": 0.99}, floor_acc=0.97)
    line = next(e for e in f["F1"].evidence if "coins-augmented" in e)
    assert "too easy to tell" in line and "untrained floor 0.98" in line  # mean of 0.97, 0.98, 0.99
    assert f["F1"].verdict == OPEN and "coins-augmented" in f["F1"].decide


@pytest.mark.parametrize("target, pairs, hidden", [
    ("noisy-color-dsprites", 6, ["noise (nuisance)"]),
    ("shapes3d", 3, ["floor_hue", "wall_hue"]),
    ("coins-augmented", 3, ["texture (nuisance)"]),
    ("white-dsprites", 6, []),
])
def test_correspondence_from_declared_kinds(target, pairs, hidden):
    def spec(name):
        d = declared(name)
        return {"names": d["factor_names"], "sizes": d["factor_sizes"], "kinds": d["factor_kinds"],
                "nuisances": d["nuisances"]}

    corr = correspondence(spec("color-dsprites"), spec(target))
    assert len(corr.pairs) == pairs and corr.hidden == hidden
    if target == "coins-augmented":  # rotation <-> orientation, scale <-> scale; 24 coins vs 3 shapes
        assert ("rotation", "orientation", True) in corr.pairs and ("coin", "shape", False) in corr.pairs
    if target == "shapes3d":  # a 3-D pose is not an in-plane rotation
        assert corr.unmatched == ["orientation"]
