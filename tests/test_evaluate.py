"""Evaluation folders: representations, results.json (metrics, OMES block, provenance), figures,
skipping a finished evaluation, the source + untrained-floor pair, and input errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from disentkit.evaluate import (
    EvalInfo,
    EvalSettings,
    evaluate_model,
    evaluate_source,
    is_complete,
    omes_block,
    traversal_rows,
)
from disentkit.io import read_json, write_json
from disentkit.report.collect import SCHEMA, load_result

from test_transfer import EVAL, Squares, _model, train_source


def test_evaluate_model_writes_a_complete_folder(tmp_path, monkeypatch):
    model, ds = _model(1), Squares(1)
    info = EvalInfo("before", {"seed": 3}, {"target": "squares"}, split="everything")
    res = evaluate_model(model, ds, tmp_path / "e", info, EVAL)
    for name in ("representations.npz", "classes.csv", "results.json",
                 "figures/reconstructions.png", "figures/traversals.png"):
        assert (tmp_path / "e" / name).is_file(), name
    rep = np.load(tmp_path / "e" / "representations.npz")
    assert rep["mean"].shape == rep["sampled"].shape == (EVAL.n, 4)
    header = (tmp_path / "e" / "classes.csv").read_text().splitlines()[0]
    assert header.split(",") == list(ds.factor_names)
    saved = load_result(tmp_path / "e" / "results.json")  # our own reader accepts it
    assert saved.kind == "before" and saved.model == {"seed": 3}
    assert res["dataset"]["split"] == "everything" and res["dataset"]["n"] == EVAL.n
    assert res["meta"]["backend"] == "fast" and "torch" in res["meta"]["versions"]
    assert res["meta"]["elapsed_s"] > 0
    assert {"omes.score", "dci.disentanglement", "mig.score", "gbt.mean_test_accuracy"} <= set(res["metrics"])
    assert all(np.isfinite(v) for v in res["metrics"].values())
    assert is_complete(tmp_path / "e")

    # a complete folder is returned as is, without computing anything
    import disentkit.metrics as metrics_mod

    monkeypatch.setattr(metrics_mod, "score", lambda *a, **k: pytest.fail("recomputed"))
    assert evaluate_model(model, ds, tmp_path / "e", info, EVAL) == read_json(tmp_path / "e" / "results.json")


def test_omes_block_keeps_active_dimensions_by_original_index():
    details = {"omes": {"relation": [[0.9, 0.1], [0.0, 0.0], [0.2, 0.8]], "inactive": [1],
                        "factor_names": ["a", "b"], "association": {"a": 0, "b": 2}}}
    block = omes_block(details, ["a", "b"])
    assert block["dims"] == [0, 2]
    assert block["relation"] == [[0.9, 0.1], [0.2, 0.8]]
    assert block["association"] == {"a": 0, "b": 2}
    assert omes_block({"dci": {}}, ["a"]) is None


def test_traversal_rows_sweep_one_dimension_each():
    model = _model(1)
    mean = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    rows = traversal_rows(model, mean, [1, 3], n_steps=5)
    assert [d for d, _ in rows] == [1, 3]
    imgs = rows[0][1]
    assert imgs.shape == (5, 1, 64, 64) and 0 <= imgs.min() and imgs.max() <= 1
    assert not np.allclose(imgs[0], imgs[-1])  # moving the dimension changes the picture


def test_evaluate_source_and_its_untrained_floor(tmp_path):
    run = train_source(tmp_path / "src", channels=1, steps=4)
    light = EvalSettings(n=120, metrics=("omes", "mig"), backend="fast", figures=False)
    out = evaluate_source(run, light, dataset=Squares(1))
    src, floor = out["source"], out["floor"]
    assert src["kind"] == "source" and floor["kind"] == "floor"
    assert src["model"]["method"] == "ada-gvae" and src["model"]["steps"] == 4
    assert floor["model"]["steps"] == 0 and src["log"] == "../log.jsonl"
    assert (run / "eval" / "results.json").is_file() and (run / "floor" / "results.json").is_file()
    a = np.load(run / "eval" / "representations.npz")["mean"]
    b = np.load(run / "floor" / "representations.npz")["mean"]
    assert a.shape == b.shape and not np.allclose(a, b)  # trained weights differ from the init
    # the floor is the source's own initialisation: the same network at step 0
    import dataclasses

    from disentkit.training.checkpoint import load_run
    from disentkit.training.prepare import build_network, seeds

    _, cfg = load_run(run)
    init = build_network(dataclasses.replace(cfg), 1, seeds(cfg.run.seed)["init"]).eval()
    classes = np.loadtxt(run / "floor" / "classes.csv", delimiter=",", skiprows=1, dtype=int)
    with torch.no_grad():
        mu = init.encode(torch.as_tensor(Squares(1).images(classes[:20])))[0].numpy()
    assert np.allclose(mu, b[:20], atol=1e-4)


def test_evaluate_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="kind must be one of"):
        evaluate_model(_model(1), Squares(1), tmp_path / "x", EvalInfo("during"), EVAL)
    with pytest.raises(ValueError, match="takes 3-channel images"):
        evaluate_model(_model(3), Squares(1), tmp_path / "y", EvalInfo("source"), EVAL)
    write_json(tmp_path / "z" / "results.json", {"schema": "other"})
    assert not is_complete(tmp_path / "z") and not is_complete(tmp_path / "missing")
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "results.json").write_text("{cut")
    assert not is_complete(tmp_path / "w")
    assert SCHEMA.startswith("disentkit.results/")


def test_downstream_models_narrow_the_classifiers(tmp_path):
    from disentkit.evaluate import compute_all_metrics

    rng = np.random.default_rng(0)
    factors = rng.integers(0, 3, size=(150, 2))
    codes = np.concatenate([factors + rng.normal(size=factors.shape) * 0.1, rng.normal(size=(150, 1))], 1)
    narrow = EvalSettings(metrics=("mig", "downstream"), downstream_models=("gbt",), backend="fast")
    flat, details = compute_all_metrics(codes, factors, ["a", "b"], narrow)
    assert "gbt.mean_test_accuracy" in flat and "mig.score" in flat
    assert not any(k.startswith(("mlp", "gbt_pruned")) for k in flat)
    assert flat["gbt.mean_test_accuracy"] > 0.9  # the factors are in the code
    assert "omes" in details  # computed for the association even though not asked for
    full, _ = compute_all_metrics(codes, factors, ["a", "b"],
                                  EvalSettings(metrics=("downstream",), backend="fast"))
    assert {"mlp.mean_test_accuracy", "gbt_pruned.mean_test_accuracy"} <= set(full)
    with pytest.raises(ValueError, match="bootstrap"):
        compute_all_metrics(codes, factors, ["a", "b"],
                            EvalSettings(metrics=("downstream",), downstream_models=("gbt",), bootstrap=2))


