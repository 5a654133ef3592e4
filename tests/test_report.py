"""The report: tables in the paper's layout, verdicts from the numbers, a well-formed HTML page.

Every results.json here is fabricated in the test (the report is a pure function of files on
disk), so these tests need no training and take a second.
"""

from __future__ import annotations

import csv
import html.parser
import json

import numpy as np
import pytest

from disentkit.cli import main
from disentkit.io import write_json
from disentkit.report import build_report
from disentkit.viz import figures as F
from disentkit.report.collect import SCHEMA, collect_results, load_result
from disentkit.data.kinds import kinds_of
from disentkit.data.registry import dataset_class
from disentkit.report.tables import Stat, cell_text, source_groups, source_table, transfer_groups

SRC_FACTORS = ["color", "shape", "scale", "orientation", "posX", "posY"]
TARGETS = {
    "noisy-color-dsprites": SRC_FACTORS,
    "shapes3d": ["floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation"],
    "coins-augmented": ["coin", "rotation", "scale"],
}
MODEL = {"source_dataset": "color-dsprites", "method": "ada-gvae", "arch": "locatello", "beta": 1.0}


def declared(name):
    """A dataset's factors as results.json records them (names, sizes, declared kinds)."""
    cls = dataset_class(name)
    return {"factor_names": list(cls.factor_names), "factor_sizes": list(cls.factor_sizes),
            "factor_kinds": kinds_of(cls), "nuisances": list(cls.nuisances)}


def _metrics(factors, acc, omes, dci, pruned_loss=0.01):
    m = {f"gbt.test_accuracy.{f}": acc + 0.01 * i for i, f in enumerate(factors)}
    m.update({f"gbt_pruned.test_accuracy.{f}": acc - 0.05 for f in factors})
    m["gbt.mean_test_accuracy"] = float(np.mean([m[f"gbt.test_accuracy.{f}"] for f in factors]))
    m["gbt_pruned.mean_test_accuracy"] = acc - pruned_loss
    m.update({"omes.score": omes, "omes.os": omes + 0.1, "omes.mes": omes - 0.1,
              "dci.disentanglement": dci, "mig.score": dci / 2})
    m.update({f"omes.factor.{f}": omes for f in factors})
    return m


def _png(path):
    fig = F.image_rows_figure([("row", np.zeros((2, 1, 8, 8), np.float32))], "t")
    return F.save_figure(fig, path)


def _write(folder, kind, dataset, factors, metrics, seed, transfer=None, log=None, figures=True,
           n=15008, smoke=False):
    folder.mkdir(parents=True, exist_ok=True)
    figs = {}
    if figures:
        for name in ("reconstructions", "traversals"):
            _png(folder / "figures" / f"{name}.png")
            figs[name] = f"figures/{name}.png"
    data = {
        "schema": SCHEMA,
        "kind": kind,
        "dataset": {"name": dataset, **declared(dataset), "split": "heldout", "n": n},
        "evaluation": {"n": n, "n_requested": 15008, "n_train": -(-2 * n // 3), "n_test": n - (-(-2 * n // 3)),
                       "sampling": "lines", "distinct_combinations": n, "test_rows_seen_in_train": 0},
        "model": {**MODEL, "seed": seed},
        "transfer": transfer,
        "metrics": metrics,
        "omes": {"relation": np.eye(len(factors) + 1, len(factors)).tolist(),
                 "dims": list(range(len(factors) + 1)), "factor_names": factors,
                 "association": {f: i for i, f in enumerate(factors)}},
        "figures": figs,
        "log": log,
        "meta": {"backend": "fast", "versions": {"disentkit": "0.1.0"}, "elapsed_s": 1.0, "seed": seed,
                 "smoke": smoke},
    }
    write_json(folder / "results.json", data)


def fabricate(root, seeds=(0, 1), zero_shot=None, gain=0.1, omes_delta=-0.02, acc=None,
              targets=TARGETS, pruned_loss=0.01, floor_acc=0.3, n=15008, smoke=False):
    """A finished run: source + floor + transfers (before, after and the target's untrained floor)
    for ``seeds``; every number a parameter so that each finding can be made to hold or not."""
    zero_shot = {"noisy-color-dsprites": 0.5, "shapes3d": 0.2, "coins-augmented": 0.15,
                 "white-dsprites": 0.6, **(zero_shot or {})}
    acc = acc or {}
    src_info = {f"source_{k}": v for k, v in declared("color-dsprites").items()}
    for s in seeds:
        src = root / f"source-s{s}"
        (src / "log.jsonl").parent.mkdir(parents=True, exist_ok=True)
        (src / "log.jsonl").write_text("".join(
            json.dumps({"step": k, "loss": 100 - k, "reconstruction": 90 - k, "kl": 10}) + "\n"
            for k in range(0, 50, 10)))
        _write(src / "eval", "source", "color-dsprites", SRC_FACTORS,
               _metrics(SRC_FACTORS, 0.9, 0.6 + 0.02 * s, 0.7 + 0.02 * s, pruned_loss), s,
               log="../log.jsonl", n=n, smoke=smoke)
        _write(src / "floor", "floor", "color-dsprites", SRC_FACTORS,
               _metrics(SRC_FACTORS, 0.3, 0.05, 0.03), s, figures=False, n=n, smoke=smoke)
        for target, factors in targets.items():
            t = {"source_dataset": "color-dsprites", "target": target, "finetune": "all",
                 "compat": False, "seed": s, "eval_split": "held-out combinations", "steps": 10,
                 "channel_rule": "3->1: test rule" if target == "coins-augmented" else None, **src_info}
            z, a = zero_shot[target], acc.get(target, 0.5)
            tr = root / f"transfer-{target}-s{s}"
            _write(tr / "before", "before", target, factors, _metrics(factors, a, z, z, pruned_loss), s, t,
                   n=n, smoke=smoke)
            _write(tr / "floor", "floor", target, factors, _metrics(factors, floor_acc, 0.02, 0.02), s, t,
                   figures=False, n=n, smoke=smoke)
            (tr / "finetune").mkdir(parents=True, exist_ok=True)
            (tr / "finetune" / "log.jsonl").write_text(
                json.dumps({"step": 1, "loss": 5.0}) + "\n{cut line\n")
            _write(tr / "after", "after", target, factors,
                   _metrics(factors, a + gain, z + omes_delta, z + omes_delta, pruned_loss), s, t,
                   log="../finetune/log.jsonl", n=n, smoke=smoke)
    return root


def test_cells_read_before_plus_delta():
    assert cell_text(Stat(0.62, 0.0, 1), Stat(0.1, 0.0, 1)) == "0.62 (+0.10)"
    assert cell_text(Stat(0.62, 0.03, 3), Stat(-0.05, 0.01, 3)) == "0.62 ± 0.03 (-0.05 ± 0.01)"
    assert cell_text(Stat(0.5, 0.0, 1), None) == "0.50"
    assert cell_text(None, None) == ""
    assert Stat.of([1.0, 3.0, float("nan")]) == Stat(2.0, 1.0, 2)
    assert cell_text(Stat(0.999, 0.0, 1), Stat(-0.004, 0.0, 1)) == "1.00 (+0.00)"  # not -0.00


def test_transfer_table_means_over_seeds(tmp_path):
    results = collect_results(fabricate(tmp_path))
    groups = transfer_groups(results)
    assert [g.target for g in groups] == sorted(TARGETS)
    g = next(g for g in groups if g.target == "shapes3d")
    assert g.columns == ["code", *TARGETS["shapes3d"], "All", "OS", "MES", "OMES", "DCI-D", "MIG"]
    full, pruned, floor = g.rows()
    assert full["code"] == "full" and pruned["code"] == "pruned" and floor["code"] == "untrained floor"
    assert floor["floor_hue"] == "0.30 ± 0.00" and floor["OMES"] == "0.02 ± 0.00"
    assert "n = 15008 rows (15008 distinct combinations" in g.sizes()
    assert "0 test rows seen in training" in g.sizes()
    assert full["floor_hue"] == "0.50 ± 0.00 (+0.10 ± 0.00)"
    assert pruned["floor_hue"] == "0.45 ± 0.00 (+0.10 ± 0.00)"
    assert full["OMES"] == "0.20 ± 0.00 (-0.02 ± 0.00)" and pruned["OMES"] == ""


def test_source_table_shows_floor(tmp_path):
    groups = source_groups(collect_results(fabricate(tmp_path)))
    cols, rows = source_table(groups)
    label = groups[0].source
    assert cols == ["metric", label, f"{label}: untrained"]
    dci = next(r for r in rows if r["metric"] == "dci.disentanglement")
    assert dci[label] == "0.71 ± 0.01" and dci[f"{label}: untrained"] == "0.03 ± 0.00"
    n = next(r for r in rows if r["metric"] == "n (rows evaluated)")
    assert n[label] == n[f"{label}: untrained"] == "15008"
    assert len(groups) == 1 and len(groups[0].floor) == 2  # target floors are not source floors


class _Checker(html.parser.HTMLParser):
    """Fails on a closing tag that does not match the open one; collects images."""

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self):
        super().__init__()
        self.stack, self.images, self.errors = [], [], []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> with open {self.stack[-3:]}")
        else:
            self.stack.pop()


def check_html(path):
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    checker = _Checker()
    checker.feed(text)
    assert not checker.errors and not checker.stack, (checker.errors, checker.stack)
    for img in checker.images:
        assert img["src"].startswith("data:image/png;base64,iVBORw0KGgo")  # an embedded PNG
    return text, checker.images


def test_build_report_writes_every_file(tmp_path):
    fabricate(tmp_path)
    rep = build_report(tmp_path)
    text, images = check_html(rep.html)
    # every figure of the first seed's evaluations, plus the heat maps and curves drawn now
    listed = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*-s0/*/figures/*.png")}
    assert len(listed) == 2 * (1 + 2 * len(TARGETS))
    shown = {img["data-file"] for img in images}
    assert listed <= shown
    assert any(s.startswith("report_figures/") and s.endswith("-curves.png") for s in shown)
    assert any(s.endswith("-relation.png") for s in shown)
    assert len(images) == len(rep.figures)
    assert "holds" in text and "0.50 ± 0.00 (+0.10 ± 0.00)" in text
    assert "untrained floor" in text and "n = 15008 rows" in text and 'class="banner"' not in text
    assert all(f"F{i}:" in text for i in range(5))
    assert text.count("Channels adapted (3-&gt;1: test rule)") == 1
    md = rep.markdown.read_text()
    assert "| code | coin | rotation | scale | All |" in md
    rows = list(csv.DictReader(rep.csv.open()))
    assert len(rows) == 2 * (2 + 3 * len(TARGETS))
    assert {r["test_rows_seen_in_train"] for r in rows} == {"0"} and {r["n"] for r in rows} == {"15008"}
    assert {r["kind"] for r in rows} == {"source", "floor", "before", "after"}
    assert float(next(r for r in rows if r["kind"] == "floor")["dci.disentanglement"]) == 0.03


def test_report_cli(tmp_path, capsys):
    fabricate(tmp_path / "run", seeds=(0,))
    out = tmp_path / "elsewhere" / "page.html"
    assert main(["report", str(tmp_path / "run"), "--out", str(out)]) == 0
    assert out.is_file() and (out.parent / "page.md").is_file() and (out.parent / "results.csv").is_file()
    printed = capsys.readouterr().out
    assert str(out) in printed and "F1: Fine-tuning almost always helps explicitness" in printed
    assert "-> inconclusive" in printed  # one seed decides nothing
    check_html(out)


def test_report_errors(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "no disentkit results.json" in capsys.readouterr().err
    bad = tmp_path / "bad" / "results.json"
    write_json(bad, {"schema": SCHEMA, "kind": "sideways", "dataset": {}, "metrics": {}})
    with pytest.raises(ValueError, match="kind must be one of"):
        load_result(bad)
    fabricate(tmp_path / "ok", seeds=(0,))
    with pytest.raises(ValueError, match=r"\.html"):
        build_report(tmp_path / "ok", tmp_path / "ok" / "report.txt")


def test_figures_reject_bad_shapes():
    with pytest.raises(ValueError, match="relation matrix"):
        F.relation_figure(np.zeros((3, 2)), [0, 1], ["a", "b"], {}, "t")
    with pytest.raises(ValueError, match="differ in shape"):
        F.reconstruction_figure(np.zeros((2, 1, 4, 4)), np.zeros((3, 1, 4, 4)), "t")
    with pytest.raises(ValueError, match="no curve"):
        F.curves_figure({"a": [{"step": 1}]}, "t")
    assert F.traversal_label(3, {"shape": 3, "scale": None}) == "z3: shape"
    assert F.traversal_label(4, {"shape": 3}) == "z4: –"


def test_smoke_sized_report_carries_the_banner(tmp_path):
    fabricate(tmp_path / "smoke", seeds=(0,), smoke=True, n=160)
    text = build_report(tmp_path / "smoke").html.read_text()
    assert 'class="banner"' in text and "--smoke sizes" in text and "mean nothing" in text
    fabricate(tmp_path / "small", seeds=(0,), n=500)  # not flagged smoke, but too small to read
    md = build_report(tmp_path / "small").markdown.read_text()
    assert "as few as 500 rows" in md and "mean nothing" in md
