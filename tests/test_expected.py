"""The numbers of a fixed-seed smoke job do not move under refactoring (issue 12, acceptance).

``tests/expected/smoke_run.json`` holds every metric value of ``disentkit run --smoke --threads 1``
(the quick preset at smoke size, seed 0) as captured before the engine refactor. This test re-runs
the job and compares each value with absolute tolerance 1e-6 (the file's ``tolerance``): CPU
arithmetic with one thread is bit-reproducible, the margin only absorbs summation-order noise of
another BLAS build. A change of protocol that moves numbers on purpose updates the file and says
why in its commit.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from disentkit.cli import main

EXPECTED = Path(__file__).resolve().parent / "expected" / "smoke_run.json"


def collect(out: Path) -> dict[str, dict[str, float]]:
    """``{"<kind>:<dataset>": {metric: value}}`` of every results.json under ``out``."""
    found: dict[str, dict[str, float]] = {}
    for path in sorted(out.rglob("results.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        key = f"{data['kind']}:{data['dataset']['name']}"
        assert key not in found, f"two results for {key}"
        found[key] = {k: v for k, v in data["metrics"].items()
                      if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return found


def test_smoke_run_reproduces_stored_numbers(tmp_path, monkeypatch):
    expected = json.loads(EXPECTED.read_text(encoding="utf-8"))
    monkeypatch.setenv("DISENTKIT_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out"
    assert main(["run", "--smoke", "--out", str(out), "--threads", "1"]) == 0
    got, want, tol = collect(out), expected["results"], expected["tolerance"]
    assert sorted(got) == sorted(want)
    bad = []
    for key, metrics in want.items():
        assert sorted(got[key]) == sorted(metrics), key
        for name, value in metrics.items():
            if not math.isclose(got[key][name], value, rel_tol=0.0, abs_tol=tol) and not (
                    math.isnan(value) and math.isnan(got[key][name])):
                bad.append(f"{key} {name}: expected {value!r}, found {got[key][name]!r}")
    assert not bad, "\n".join(bad[:20])
