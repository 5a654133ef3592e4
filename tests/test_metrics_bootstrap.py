"""Fast bootstrap intervals: the vectorised pieces equal their definitions, the fit-once
intervals agree with the refit-everything definition, the refits and progress are reported."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from disentkit.metrics import _run, score
from disentkit.metrics._common import (
    check_inputs,
    histogram_discretize,
    mutual_information_matrix,
    split_rows,
)
from disentkit.metrics._resample import (
    dense_labels,
    discretize,
    mig_score,
    mutual_information_fast,
    row_counts,
    weighted_auc,
)
from disentkit.metrics.bootstrap import bootstrap_intervals, t_interval
from disentkit.metrics.mig import mig


def small_code(n=600, seed=0):
    """Two factors read from well-separated noisy dimensions (stable classifiers), plus noise."""
    rng = np.random.default_rng(seed)
    factors = np.stack([rng.integers(0, 3, n), rng.integers(0, 4, n)], axis=1)
    z = np.zeros((n, 3))
    z[:, 0] = factors[:, 0] + 0.3 * rng.normal(size=n)
    z[:, 1] = factors[:, 1] + 0.3 * rng.normal(size=n) + 0.2 * factors[:, 0]
    z[:, 2] = rng.normal(size=n)
    return z, factors


def test_discretize_and_mutual_information_equal_the_reference():
    z, f = small_code(500)
    z[:, 2] = 1.5  # a constant column: numpy's ±0.5 edge rule
    assert np.array_equal(discretize(z), histogram_discretize(z))
    labels, sizes = dense_labels(f + 7)  # labels are relabelled: MI must not care
    fast = mutual_information_fast(discretize(z), labels, sizes)
    np.testing.assert_allclose(fast, mutual_information_matrix(histogram_discretize(z), f),
                               rtol=1e-10, atol=1e-12)
    assert mig_score(z, labels, sizes) == pytest.approx(mig(z, f)["mig.score"], abs=1e-12)


def test_weighted_auc_equals_sklearn_on_the_expanded_rows():
    rng = np.random.default_rng(1)
    scores = np.round(rng.random(80), 1)  # many ties
    positive = rng.random(80) < 0.4
    idx = rng.integers(0, 80, size=(5, 80))
    counts = row_counts(idx, 0, 80)
    assert counts.sum(axis=1).tolist() == [80.0] * 5
    got = weighted_auc(scores, positive, counts)
    for b in range(5):
        assert got[b] == pytest.approx(roc_auc_score(positive[idx[b]], scores[idx[b]]), abs=1e-12)
    assert np.isnan(weighted_auc(scores, np.zeros(80, bool), counts)).all()


def _definition(z, f, names, b, seed=0, backend="fast"):
    """The refit-everything intervals: the whole suite rerun on each resample."""
    inputs = check_inputs(z, f)
    common = {"backend": backend, "train_fraction": 2 / 3, "n_jobs": 1, "seed": seed}
    return bootstrap_intervals(
        lambda c, fa, i: _run(names, c, fa, inputs.factor_names,
                              {**common, "seed": seed + 1 + i})[0],
        inputs.codes, inputs.factors, n_train=split_rows(len(z)), num_resamples=b, seed=seed,
    )


def test_metrics_without_a_fit_are_identical_to_the_definition():
    z, f = small_code(300)
    names = ["omes", "mig", "modularity"]
    flat, details = score(z, f, metrics=names, bootstrap=8, n_jobs=1)
    ref = _definition(z, f, names, 8)
    for key in ("omes.score", "omes.alpha_0.3.max", "mig.score", "modularity.score"):
        assert (flat[f"{key}.ci_low"], flat[f"{key}.ci_high"]) == pytest.approx(ref[key], abs=1e-12)
    assert "predictions" not in details["modularity"]  # arrays are not part of the output
    assert details["bootstrap"]["refits"] == {}


def test_fit_once_intervals_agree_with_refitting_everything():
    """Measured on this case (seed 0): with B = 40 the endpoints differ by at most 0.19 of the
    definition's interval width (0.09-0.13 for the fit-once keys, 0.19 for the t-interval of
    DCI disentanglement), with B = 60 by at most 0.11. The Monte-Carlo error of a 2.5 %
    percentile from 40 draws alone is about ±0.3 σ (≈ ±0.08 width), the difference of two
    such about 0.11 width; the bound below, 0.3 width, is ~3 of those standard errors."""
    z, f = small_code(600)
    names = ["dci", "sap", "modularity"]
    b = 40
    flat, details = score(z, f, metrics=names, backend="fast", bootstrap=b, n_jobs=1,
                             bootstrap_refits=b)
    ref = _definition(z, f, names, b)
    keys = ["dci.informativeness_test", "sap.score", "explicitness.score_test",
            "dci.disentanglement", "dci.completeness"]
    for key in keys:
        low, high = flat[f"{key}.ci_low"], flat[f"{key}.ci_high"]
        r_low, r_high = ref[key]
        width = r_high - r_low
        assert low <= flat[key] <= high, key
        assert abs(low - r_low) <= 0.3 * width, (key, low, r_low, width)
        assert abs(high - r_high) <= 0.3 * width, (key, high, r_high, width)
    refits = details["bootstrap"]["refits"]
    assert refits == {"dci.disentanglement": b, "dci.completeness": b}


def test_refits_are_capped_stated_and_progress_ticks():
    z, f = small_code(240)
    ticks = []
    flat, details = score(z, f, metrics="dci,sap,beta_vae,factor_vae,downstream",
                             backend="fast", bootstrap=6, bootstrap_refits=3, n_jobs=1,
                             progress=ticks.append)
    assert sum(ticks) == 6 + 3
    assert details["bootstrap"]["refits"] == {"dci.disentanglement": 3, "dci.completeness": 3}
    assert "fit once" in details["bootstrap"]["methods"]["sap"]
    for key in ("beta_vae.eval_accuracy", "factor_vae.eval_accuracy", "gbt.mean_test_accuracy",
                "mlp_pruned.min_test_accuracy", "dci.completeness"):
        assert flat[f"{key}.ci_low"] <= flat[key] + 1e-12 <= flat[f"{key}.ci_high"] + 2e-12, key
    once, _ = score(z, f, metrics="sap,beta_vae,factor_vae", bootstrap=6, n_jobs=1)
    again, _ = score(z, f, metrics="sap,beta_vae,factor_vae", bootstrap=6, n_jobs=1)
    assert again == once  # deterministic
    with pytest.raises(ValueError, match="bootstrap_refits must be at least 2"):
        score(z, f, metrics="dci", bootstrap=4, bootstrap_refits=1)


def test_t_interval_is_centred_and_widens_with_spread():
    low, high = t_interval(0.5, [0.4, 0.5, 0.6], 0.95)
    assert low == pytest.approx(0.5 - 4.302653 * 0.1, abs=1e-5)
    assert high - 0.5 == pytest.approx(0.5 - low)
    assert np.isnan(t_interval(0.5, [0.4], 0.95)[0])


def test_cli_states_the_refits(tmp_path, capsys):
    import json

    from disentkit.cli import main
    from disentkit.metrics.representations import save_representations

    z, f = small_code(240)
    save_representations(tmp_path / "rep", z, z, f, ["a", "b"])
    out = tmp_path / "m.json"
    code = main(["metrics", "--representations", str(tmp_path / "rep" / "representations.npz"),
                 "--classes", str(tmp_path / "rep" / "classes.csv"), "--metrics", "dci,mig",
                 "--backend", "fast", "--bootstrap", "4", "--bootstrap-refits", "2",
                 "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "95% interval" in printed and "from 2 refits" in printed
    boot = json.loads(out.read_text())["details"]["bootstrap"]
    assert boot["resamples"] == 4 and boot["refits"]["dci.completeness"] == 2
