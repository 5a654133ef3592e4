"""Time the metric suite on the paper's protocol (N = 15,008, D = 10, K = 6) for both backends.

Prints per-metric seconds for ``reference`` (scikit-learn) and ``fast`` (LightGBM + PyTorch),
the speed-up measured in the same run, the largest |fast − reference| over every shared key,
and the time of OMES alone on N = 1,000,000 rows. Targets (issue 5): fast suite ≤ 60 s on 2
cores, every fast value within 0.03 of the reference, OMES ≤ 2 s at N = 1,000,000.

The data are the paper's own example representations (``tests/data/omes_example``, a
Shapes3D model: exactly 15,008 × 10 codes and 6 factors) when present, else a synthetic code of
the same shape. Pin the cores to measure "2 cores":

    OMP_NUM_THREADS=1 taskset -c 0,1 python bench/metrics_speed.py --jobs 2
    python bench/metrics_speed.py --quick          # seconds-long smoke run (CI)
    python bench/metrics_speed.py --backends fast  # skip the slow reference (~30 min)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "data" / "omes_example"
SHAPES3D_SIZES = (10, 10, 10, 8, 4, 15)


def synthetic(n: int, sizes, d: int, seed: int = 0):
    """A partly disentangled code: one noisy dimension per factor, the rest mixed or noise."""
    rng = np.random.default_rng(seed)
    factors = np.stack([rng.integers(0, s, n) for s in sizes], axis=1)
    z = rng.normal(size=(n, d))
    for k in range(min(len(sizes), d)):
        z[:, k] += 3.0 * factors[:, k] / max(sizes[k] - 1, 1)
    if d > len(sizes):
        z[:, len(sizes)] += z[:, 0]  # one dimension shares a factor: some entanglement
    return z.astype(np.float32), factors, [f"factor_{k}" for k in range(len(sizes))]


def load_data(source: str, quick: bool):
    if quick:
        return (*synthetic(240, (2, 3), 3), "synthetic (quick)")
    if source in ("auto", "reference") and REFERENCE.is_dir():
        from disentkit.metrics.representations import load_representations

        codes, factors, names = load_representations(
            REFERENCE / "representations.npz", REFERENCE / "classes.csv"
        )
        return codes, factors, names, f"reference example ({REFERENCE})"
    if source == "reference":
        sys.exit(f"reference data not found at {REFERENCE}")
    return (*synthetic(15008, SHAPES3D_SIZES, 10), "synthetic, Shapes3D-sized")


def time_omes(n: int, quick: bool) -> float:
    from disentkit.metrics import omes

    codes, factors, _ = synthetic(n, SHAPES3D_SIZES if not quick else (2, 3), 10, seed=1)
    start = time.perf_counter()
    omes(codes, factors, random_state=0)
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a seconds-long check")
    parser.add_argument("--backends", default="reference,fast")
    parser.add_argument("--metrics", default=None, help="comma-separated (default: all)")
    parser.add_argument("--data", default="auto", choices=("auto", "reference", "synthetic"))
    parser.add_argument("--jobs", type=int, default=2, help="parallel fits for the fast backend")
    parser.add_argument("--rows", type=int, default=None, help="use only the first ROWS rows")
    parser.add_argument("--omes-n", type=int, default=1_000_000, help="0 skips the OMES timing")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="write all figures here")
    args = parser.parse_args(argv)

    import torch

    from disentkit.metrics import score

    torch.set_num_threads(1)  # parallelism comes from fitting factors side by side
    codes, factors, names, source = load_data(args.data, args.quick)
    if args.rows:
        codes, factors = codes[: args.rows], factors[: args.rows]
    print(f"data: {source}: N={len(codes)}, D={codes.shape[1]}, K={factors.shape[1]}")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    runs = {}
    for backend in backends:
        start, cpu = time.perf_counter(), time.process_time()
        flat, details = score(
            codes, factors, metrics=args.metrics, factor_names=names, backend=backend,
            seed=args.seed, n_jobs=args.jobs if backend == "fast" else 1,
        )
        runs[backend] = {
            "total_s": time.perf_counter() - start,
            "cpu_s": time.process_time() - cpu,  # all threads: robust to a busy machine
            "timing_s": details["timing_s"],
            "metrics": flat,
        }
        run = runs[backend]
        print(f"{backend}: {run['total_s']:.1f} s wall, {run['cpu_s']:.1f} s CPU")

    names_run = list(runs[backends[0]]["timing_s"])
    header = "metric        " + "".join(f"{b:>12s}" for b in backends)
    if len(backends) == 2:
        header += "     speed-up"
    print(header)
    for name in names_run + ["total"]:
        secs = [
            runs[b]["total_s"] if name == "total" else runs[b]["timing_s"][name] for b in backends
        ]
        line = f"{name:14s}" + "".join(f"{s:11.2f}s" for s in secs)
        if len(backends) == 2:
            line += f"   {secs[0] / max(secs[1], 1e-9):9.1f}x"
        print(line)

    report = {"data": source, "n": int(len(codes)), "runs": runs}
    if {"reference", "fast"} <= set(runs):
        ref, fast = runs["reference"]["metrics"], runs["fast"]["metrics"]
        diffs = {k: abs(fast[k] - ref[k]) for k in ref if k in fast}
        worst = max(diffs, key=diffs.get)
        print(f"max |fast - reference| = {diffs[worst]:.4f} ({worst}); "
              f"keys over 0.03: {sorted(k for k, v in diffs.items() if v > 0.03) or 'none'}")
        report["max_abs_diff"] = {"value": diffs[worst], "key": worst}
        report["diffs"] = diffs
    omes_n = 20_000 if args.quick else args.omes_n
    if omes_n:
        omes_s = time_omes(omes_n, args.quick)
        print(f"OMES alone, N={omes_n}: {omes_s:.2f} s")
        report["omes_large"] = {"n": omes_n, "seconds": omes_s}
    if args.json:
        from disentkit.io import write_json

        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
