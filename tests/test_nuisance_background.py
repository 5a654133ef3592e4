"""experiments/nuisance_background.py: the background conditions, the retention arithmetic and
the smoke run end to end (it trains a tiny source itself)."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from disentkit.data.registry import get_dataset

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "nuisance_background.py"


@pytest.fixture(scope="module")
def nb():
    spec = importlib.util.spec_from_file_location("nuisance_background", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_backgrounds_replace_only_the_black_pixels(nb):
    base = get_dataset("color-dsprites")
    f = base.sample_factors(6, np.random.default_rng(0))
    plain = base.images(f, np.random.default_rng(1))
    sprite = ~(plain == 0).all(axis=1, keepdims=True)
    black = nb.Background(base, "black").images(f, np.random.default_rng(1))
    np.testing.assert_array_equal(black, plain)
    fixed = nb.Background(base, "fixed").images(f, np.random.default_rng(1))
    again = nb.Background(base, "fixed").images(f, np.random.default_rng(7))
    np.testing.assert_array_equal(fixed, again)  # one image: the rng plays no part
    bg = np.broadcast_to(~sprite, fixed.shape)
    common = ~sprite[0, 0] & ~sprite[1, 0]  # background in both images: the same noise
    np.testing.assert_array_equal(fixed[0][:, common], fixed[1][:, common])
    assert not np.array_equal(fixed[0][:, common], np.zeros_like(fixed[0][:, common]))
    assert np.array_equal(np.where(bg, 0, fixed), np.where(bg, 0, plain))  # sprites untouched
    assert fixed[bg].min() > 0
    iid = nb.Background(base, "iid", 0.25).images(f, np.random.default_rng(1))
    assert np.array_equal(np.where(bg, 0, iid), np.where(bg, 0, plain))
    assert 0 < iid[bg].max() <= 0.25 and iid[bg].mean() == pytest.approx(0.125, abs=0.01)
    other = nb.Background(base, "iid", 0.25).images(f, np.random.default_rng(2))
    assert not np.array_equal(iid, other)  # i.i.d.: another draw, another background
    assert nb.Background(base, "black").nuisances == base.nuisances
    assert "noise" in nb.Background(base, "fixed").nuisances
    with pytest.raises(ValueError, match="amplitude must be in"):
        nb.Background(base, "iid", 1.5)
    with pytest.raises(ValueError, match="black, fixed or iid"):
        nb.Background(base, "stripes")


def test_retention_raw_and_floor_normalised(nb):
    r = nb.retention(0.3, 0.1, 0.6, 0.2)
    assert r["raw"] == pytest.approx(0.5) and r["floor_normalised"] == pytest.approx(0.5)
    assert nb.retention(0.3, 0.1, 0.0, 0.0) == {"raw": None, "floor_normalised": None}
    assert nb.retention(0.3, 0.1, 0.2, 0.25)["floor_normalised"] is None  # source below floor
    labels = [c[0] for c in nb.conditions()]
    assert labels == ["black", "fixed-noise", "iid-noise-0.1", "iid-noise-0.25", "iid-noise-0.5",
                      "iid-noise-1"]


def test_smoke_run_writes_json_csv_and_plot(nb, tmp_path, capsys):
    out = tmp_path / "nuisance"
    assert nb.main(["--smoke", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "fixed-noise" in printed and "iid-noise-0.5" in printed
    result = json.loads((out / "nuisance.json").read_text())
    assert result["smoke"] is True and result["settings"]["n"] == 240
    rows = result["conditions"]
    assert [r["condition"] for r in rows] == [c[0] for c in nb.conditions()]
    ref, ref_floor = result["reference"]["source"], result["reference"]["floor"]
    for r in rows:
        for m in ("omes", "dci_d"):
            assert 0.0 <= r[m] <= 1.0 and 0.0 <= r[f"{m}_floor"] <= 1.0
            want = nb.retention(r[m], r[f"{m}_floor"], ref[m], ref_floor[m])
            assert r[f"{m}_retention"] == want["raw"] or r[f"{m}_retention"] == pytest.approx(
                want["raw"])
            got = r[f"{m}_retention_floor_normalised"]
            assert got == want["floor_normalised"] or got == pytest.approx(want["floor_normalised"])
    with open(out / "nuisance.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [t["condition"] for t in table] == [r["condition"] for r in rows]
    assert (out / "nuisance.png").stat().st_size > 1000
    # every evaluation is a normal results.json; black is the unchanged held-out part
    black = json.loads((out / "black" / "trained" / "results.json").read_text())
    assert black["kind"] == "before" and "held-out" in black["dataset"]["split"]
    # a second run reuses every finished evaluation and gives the same numbers
    assert nb.main(["--smoke", "--out", str(out)]) == 0
    assert json.loads((out / "nuisance.json").read_text())["conditions"] == rows


def test_bad_source_is_a_one_line_error(nb, tmp_path, capsys):
    assert nb.main(["--source", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "missing" in err and "\n" not in err
    assert not (tmp_path / "o" / "nuisance.json").exists()
    with pytest.raises(SystemExit):
        nb.parse_args(["--smoke", "--source", "x"])  # one of the two, not both
    assert nb.parse_args(["--smoke"]).out == "nuisance-background"
