"""Data throughput: images/s and pairs/s per dataset, at batch 64, on ONE thread (issue 2, item 7).

Training draws a batch of weak-supervision pairs every step (Dapueto et al. 2024 §3; Locatello
et al. 2020), so the generators must outrun the network: the targets are >= 5,000 images/s for
every dSprites variant and >= 2,000 images/s for Shapes3D, on one core.

For each dataset: ``images/s`` times ``sample_factors`` + ``images`` of a batch of 64, ``pairs/s``
times ``disentkit.data.pairs.sample_pairs`` (two images per pair) of 64 pairs; each figure is the
median over repeats. ``cpu img/s`` divides by the process's CPU time instead of wall time: on a
shared machine it is the better estimate of what one idle core would do.

    python bench/data_throughput.py --quick                    # seconds: checks the script works
    python bench/data_throughput.py                            # every dataset that needs no root
    python bench/data_throughput.py dsprites shapes3d --repeats 9
    python bench/data_throughput.py --root dsprites=/data/dsprites   # add the original file

Run the full measurement on an idle machine.
"""

from __future__ import annotations

import os

# One thread for every numeric library, before numpy/torch are imported (a script, not a module).
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from disentkit.cli.common import format_table  # noqa: E402
from disentkit.data.pairs import sample_pairs  # noqa: E402
from disentkit.data.registry import datasets_without_root, get_dataset  # noqa: E402

BATCH = 64
#: images/s targets of the issue, per dataset name
TARGETS = {
    "dsprites": 5000, "white-dsprites": 5000, "color-dsprites": 5000, "noisy-dsprites": 5000,
    "noisy-color-dsprites": 5000, "scream-dsprites": 5000, "shapes3d": 2000,
}


def rootless_datasets() -> list[str]:
    return datasets_without_root()


def parse_roots(items: list[str]) -> dict[str, str]:
    roots = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--root expects NAME=DIR, found {item!r}")
        roots[name] = path
    return roots


def _rate(fn, batches: int, per_batch: int) -> tuple[float, float]:
    """(wall, cpu) items per second of ``batches`` calls of ``fn``."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(batches):
        fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    items = batches * per_batch
    return items / max(wall, 1e-9), items / max(cpu, 1e-9)


def measure(dataset, repeats: int, batches: int, seed: int = 0) -> dict:
    """Median images/s and pairs/s (wall and CPU time) of one dataset at batch 64."""
    rng = np.random.default_rng(seed)
    draw = lambda: dataset.images(dataset.sample_factors(BATCH, rng), rng)  # noqa: E731
    pairs = lambda: sample_pairs(dataset, BATCH, rng)  # noqa: E731
    draw(), pairs()  # warm-up: lazy tables, caches
    img, cpu_img, pair = [], [], []
    for _ in range(repeats):
        wall, cpu = _rate(draw, batches, BATCH)
        img.append(wall)
        cpu_img.append(cpu)
        pair.append(_rate(pairs, batches, BATCH)[0])
    target = TARGETS.get(dataset.name)
    median_img = statistics.median(img)
    return {
        "dataset": dataset.name,
        "images/s": round(median_img),
        "cpu img/s": round(statistics.median(cpu_img)),
        "pairs/s": round(statistics.median(pair)),
        "target img/s": target if target else "",
        "met": "" if not target else ("yes" if median_img >= target else "NO"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("datasets", nargs="*", help="names (default: every dataset needing no root)")
    parser.add_argument("--root", action="append", default=[], metavar="NAME=DIR",
                        help="add a dataset read from files (repeatable)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batches", type=int, default=20, help="batches per repeat")
    parser.add_argument("--quick", action="store_true", help="2 repeats of 2 batches: seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.batches = 2, 2
    if args.repeats < 1 or args.batches < 1:
        parser.error(f"--repeats and --batches must be >= 1, found {args.repeats}, {args.batches}")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a dependency, but the bench needs none
        pass

    try:
        roots = parse_roots(args.root)
    except ValueError as exc:
        parser.error(str(exc))  # exit code 2 with the message
    names = list(args.datasets) or rootless_datasets()
    names += [n for n in roots if n not in names]
    rows = []
    for name in names:
        dataset = get_dataset(name, **({"root": roots[name]} if name in roots else {}))
        rows.append(measure(dataset, args.repeats, args.batches, args.seed))
        print(f"measured {name}", file=sys.stderr, flush=True)
    print(f"batch {BATCH}, 1 thread, median of {args.repeats} repeats x {args.batches} batches")
    print(format_table(rows))
    if args.json:
        from disentkit.io import write_json

        write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
