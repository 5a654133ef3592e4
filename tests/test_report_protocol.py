"""A report that cannot mislead (issue 13, point 6): the heat map boxes exactly OMES's association,
fine-tuning collapse is flagged beside its numbers, every table key has a definition, provenance
names device, precision actually used, versions, wall time per stage and the preset's text."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from matplotlib.patches import Rectangle
from test_report import TARGETS, fabricate

from disentkit.io import write_json
from disentkit.metrics.omes import association
from disentkit.report import build_report
from disentkit.viz import figures as F
from disentkit.report.collect import collect_results, load_result
from disentkit.report.glossary import define, glossary
from disentkit.report.health import active_dimensions, finetune_health
from disentkit.report.provenance import checkpoint_info, training_seconds
from disentkit.report.sections import missing_traversal, traversal_caption
from disentkit.report.tables import source_groups, source_table, transfer_groups
from disentkit.training.checkpoint import TrainingState, save_checkpoint


def _boxed_cells(fig):
    ax = fig.axes[0]
    cells = set()
    for p in ax.patches:
        if isinstance(p, Rectangle):
            x, y = p.get_xy()
            cells.add((int(round(y + 0.5)), int(round(x + 0.5))))
    return cells


def test_heat_map_boxes_exactly_omes_association_not_the_column_max():
    # factor a: z0 reads 0.48 and nothing else; z1 reads 0.67 on every factor (moves with all)
    relation = np.array([[0.48, 0.0, 0.0], [0.67, 0.67, 0.67], [0.01, 0.0, 0.9]])
    dims, names = [0, 3, 5], ["a", "b", "c"]
    assoc = dict(zip(names, association(relation, np.array(dims))))
    # a is boxed at 0.48, not at the column's 0.67; b even on a 0.00 cell: OS rewards z0 for
    # moving with nothing else, exactly as OMES computes it
    assert assoc == {"a": 0, "b": 0, "c": 5}
    fig = F.relation_figure(relation, dims, names, assoc, "t")
    row_of = {d: i for i, d in enumerate(dims)}
    assert _boxed_cells(fig) == {(row_of[d], j) for j, d in enumerate(assoc.values())}
    styles = {(int(round(p.get_xy()[1] + 0.5)), int(round(p.get_xy()[0] + 0.5))): p.get_linestyle()
              for p in fig.axes[0].patches}
    assert styles[(0, 1)] == "--" and styles[(0, 0)] == "-"  # M < 0.1: dashed, said in the title
    assert "dashed" in fig.axes[0].get_title()
    texts = [t for t in fig.axes[0].texts]
    assert len(texts) == relation.size and min(t.get_fontsize() for t in texts) >= 9
    assert "OS" in fig.axes[0].get_title() and "M[d, k]" in fig.axes[0].get_title()
    fig_none = F.relation_figure(relation, dims, names, {"a": None, "b": 3, "c": None}, "t")
    assert _boxed_cells(fig_none) == {(1, 1)}  # no box where OMES associates nothing
    assert "dashed" not in fig_none.axes[0].get_title()
    with pytest.raises(ValueError, match="does not show"):
        F.relation_figure(relation, dims, names, {"a": 7}, "t")


def test_traversal_caption_names_missing_rows(tmp_path):
    fabricate(tmp_path, seeds=(0,))
    r = load_result(tmp_path / "source-s0" / "eval" / "results.json")
    r.data["model"]["latent_dim"] = 10
    cap = traversal_caption(r)
    assert "z7, z8, z9: inactive" in cap and "z6" not in cap.split("no row for")[1]
    assert missing_traversal(r) is None
    r.data["omes"]["dims"] = []
    assert "every dimension is inactive" in traversal_caption(r)
    floor = load_result(tmp_path / "source-s0" / "floor" / "results.json")
    assert "figures off" in missing_traversal(floor)
    r.data["figures"] = {"reconstructions": "figures/reconstructions.png"}
    assert "file is missing" in missing_traversal(r)
    r.data["omes"] = None
    assert "OMES was not computed" in missing_traversal(r)


def test_glossary_defines_every_key_the_tables_show(tmp_path):
    fabricate(tmp_path, seeds=(0,))
    results = collect_results(tmp_path)
    _, rows = source_table(source_groups(results))
    groups = transfer_groups(results)
    keys = [r["metric"] for r in rows] + [c for g in groups for c in g.columns]
    factors = [f for g in groups for f in g.factor_names]
    terms, missing = glossary(keys, factors)
    assert missing == [] and len(terms) > 8
    assert define("not.a.metric") is None
    assert glossary(["not.a.metric"])[1] == ["not.a.metric"]
    assert "scale" in define("gbt.test_accuracy.scale")
    text = build_report(tmp_path).html.read_text()
    assert "<h2>Glossary</h2>" in text and "No definition yet" not in text
    assert "dci.disentanglement" in text and "DCI disentanglement (Eastwood" in text


def _evaluation_files(folder, mean, kl):
    np.savez(folder / "representations.npz", mean=mean, sampled=mean)
    if kl is not None:
        (folder.parent / "finetune").mkdir(exist_ok=True)
        (folder.parent / "finetune" / "log.jsonl").write_text("".join(
            json.dumps({"step": 100 * (i + 1), "kl": v, "elapsed_s": 3.0 * (i + 1)}) + "\n"
            for i, v in enumerate(kl)))


def test_finetune_collapse_is_flagged_beside_the_table(tmp_path):
    fabricate(tmp_path, seeds=(0,))
    rng = np.random.default_rng(0)
    live = rng.normal(size=(300, 10)) * np.r_[np.ones(6), np.full(4, 0.01)]
    dead = live * np.r_[1.0, np.full(9, 0.01)]  # only z0 still moves
    for target in TARGETS:
        tr = tmp_path / f"transfer-{target}-s0"
        collapsed = target == "noisy-color-dsprites"
        _evaluation_files(tr / "before", live, None)
        _evaluation_files(tr / "after", dead if collapsed else live,
                          [24.0, 12.0, 5.5] if collapsed else [24.0, 22.0, 21.0])
    assert active_dimensions(live) == list(range(6)) and active_dimensions(dead) == [0]
    tr = tmp_path / "transfer-noisy-color-dsprites-s0"
    h = finetune_health(load_result(tr / "before" / "results.json"),
                        load_result(tr / "after" / "results.json"))
    assert h.flag and h.kl_start == 24.0 and h.kl_end == 5.5 and len(h.reasons) == 2
    assert h.to_dict()["active_after"] == [0]
    only_kl = finetune_health(None, load_result(tr / "after" / "results.json"))
    assert only_kl.flag and only_kl.active_before is None and len(only_kl.reasons) == 1
    ok = finetune_health(load_result(tmp_path / "transfer-shapes3d-s0" / "before" / "results.json"),
                         load_result(tmp_path / "transfer-shapes3d-s0" / "after" / "results.json"))
    assert not ok.flag and ok.text().startswith("healthy")
    text = build_report(tmp_path).html.read_text()
    noisy = text.split("noisy-color-dsprites (fine-tune: all)</h3>")[1].split("<h3>")[0]
    assert "⚠" in noisy and "COLLAPSED: KL fell from 24.0 to 5.5" in noisy
    shapes = text.split("shapes3d (fine-tune: all)</h3>")[1].split("<h3>")[0]
    assert "⚠" not in shapes and "healthy (KL 24.0 → 21.0, active dims 6 → 6)" in shapes


def test_provenance_names_device_precision_time_and_preset(tmp_path):
    fabricate(tmp_path, seeds=(0,))
    src = tmp_path / "source-s0"
    save_checkpoint(src, TrainingState(step=40, model={"w": torch.zeros(2)},
                                       info={"device": "cpu", "precision": "bf16"}))
    (src / "log.jsonl").write_text("".join(json.dumps({"step": k, "kl": 10, "elapsed_s": e}) + "\n"
                                           for k, e in ((10, 5.0), (20, 9.0), (30, 2.0),
                                                        (40, 4.5))))
    assert checkpoint_info(src)["precision"] == "bf16" and checkpoint_info(src)["step"] == 40
    assert checkpoint_info(tmp_path / "nowhere") == {}
    assert training_seconds([{"elapsed_s": 5.0}, {"elapsed_s": 9.0}, {"elapsed_s": 2.0},
                             {"elapsed_s": 4.5}]) == pytest.approx(13.5)  # resumed once
    assert training_seconds([{"step": 1}]) is None
    write_json(tmp_path / "run.json", {"preset": {"name": "quick", "run": {"precision": "auto"},
                                                  "description":
                                                      "2 CPU cores (fp32, no bf16 units)"}})
    text = build_report(tmp_path).html.read_text()
    prov = text.split("<h2>Provenance</h2>")[1]
    assert "train source: color-dsprites seed 0" in prov and "13.5 s" in prov
    assert "<td>bf16</td>" in prov and "precision actually used bf16" in prov
    assert "Preset quick (precision setting &#x27;auto&#x27;): 2 CPU cores (fp32" in prov
    assert "WARNING: precision &#x27;auto&#x27; resolved to bf16" in prov
    assert "disentkit 0.1.0" in prov and "not recorded" in prov  # fine-tunings without a checkpoint
