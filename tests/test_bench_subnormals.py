"""bench/subnormals.py --smoke runs end to end and writes its measurement."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "subnormals.py"


def test_subnormals_bench_smoke_writes_both_rates(tmp_path):
    out = tmp_path / "sub.json"
    proc = subprocess.run([sys.executable, str(BENCH), "--smoke", "--threads", "1",
                           "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["warm_steps"] == 4 and data["timed_steps"] == 4
    assert len(data["images_per_s"]["flush"]) == 1 and len(data["images_per_s"]["keep"]) == 1
    assert all(r > 0 for rates in data["images_per_s"].values() for r in rates)
    assert 0.0 <= data["subnormal_share_of_optimizer_state"] <= 1.0
    assert data["ratio_flush_over_keep"] > 0 and "images/s" in proc.stdout


def test_subnormals_bench_refuses_a_bad_size():
    proc = subprocess.run([sys.executable, str(BENCH), "--steps", "0"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "--steps" in proc.stderr
