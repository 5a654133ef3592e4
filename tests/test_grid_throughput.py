"""bench/grid_throughput.py --smoke runs end to end and writes every section of its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "grid_throughput.py"


def test_grid_throughput_smoke_writes_every_measurement(tmp_path):
    out = tmp_path / "grid.json"
    proc = subprocess.run([sys.executable, str(BENCH), "--smoke", "--device", "cpu",
                           "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["device"] == "cpu" and data["settings"]["smoke"] is True
    assert all(rate > 0 for rate in data["single"].values())
    assert [r["members"] for r in data["ensemble"]] == [1, 2]
    assert all(r["fp32"] > 0 and r["bf16"] > 0 for r in data["ensemble"])
    d = data["data"]
    assert d["cpu_thread_images_per_s"] > 0 and d["device_images_per_s"] > 0
    p = data["parity"]
    assert abs(p["fp32_final_loss"] - p["bf16_final_loss"]) < 0.05 * p["fp32_final_loss"]
    assert 0.0 <= p["fp32_omes"] <= 1.0 and 0.0 <= p["bf16_dci"] <= 1.0
    c = data["cpu_ensemble_vs_sequential"]
    assert c["members"] == 2 and c["speedup"] > 0
    g = data["projection"]
    # the packaged study paper: 5 sources x 20 models; 15 transfers x 20 models
    assert g["source_runs"] == 100 and g["finetune_runs"] == 300
    assert g["images"] == (60 * 400_000 + 40 * 300_000 + 300 * 50_000) * 128
    assert g["hours"] == g["images"] / g["best_images_per_s"] / 3600
    assert "paper grid" in proc.stdout


def test_grid_throughput_refuses_a_dataset_it_cannot_draw_on_the_device():
    proc = subprocess.run([sys.executable, str(BENCH), "--smoke", "--dataset", "no-such-set"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "unknown dataset 'no-such-set'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
