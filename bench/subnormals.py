"""Why the quick source slowed down as it trained: subnormal floats, and what flushing them buys.

Adam's first moments of weights whose gradient is zero decay by 0.9 per step into the
subnormal range (below 1.2e-38 in float32), where x86 arithmetic is many times slower. The
training loop therefore treats subnormals as zero on every CPU thread while it trains
(:func:`disentkit.training.prepare.flush_denormals`). This script measures the effect where it
bites: it trains the quick preset's source (color-dsprites, gvae-labels, locatello, lr 1e-3,
batch 64 pairs, fp32) for ``--warm`` steps *without* flushing (as training ran before), counts
the subnormal values in its optimiser state, then resumes it for ``--steps`` more steps alternately with and without flushing (``--rounds``
times each, in this one process), and prints the median images/s of each and their ratio.

    OMP_NUM_THREADS=2 python bench/subnormals.py --threads 2 --json subnormals.json  # idle machine
    python bench/subnormals.py --smoke                                                # seconds

Run it on an idle machine: under contention the figures mean little (see the README).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from disentkit.config import TrainConfig, apply_overrides
from disentkit.training import prepare, train
from disentkit.training.checkpoint import load_checkpoint
from disentkit.training.logging import read_log


def quick_source(steps: int, threads: int, log_every: int) -> TrainConfig:
    """The quick preset's source training config (src/disentkit/studies/quick.yaml)."""
    return apply_overrides(TrainConfig(), [
        "data.dataset=color-dsprites", "method.name=gvae-labels", "model.arch=locatello",
        "optim.lr=1e-3", "optim.batch_size=64", "optim.grad_clip=1.0", "run.precision=fp32",
        "run.device=cpu", f"run.steps={steps}", f"run.threads={threads}",
        f"run.log_every={log_every}", f"run.checkpoint_every={steps}"])


def subnormal_share(run_dir: Path) -> float:
    """Share of the optimiser state's non-zero values that are subnormal."""
    tiny = torch.finfo(torch.float32).tiny
    sub = nonzero = 0
    for entry in load_checkpoint(run_dir).optimizer["state"].values():
        for value in entry.values():
            if value.numel() > 1:
                v = value.float()
                sub += int(((v != 0) & (v.abs() < tiny)).sum())
                nonzero += int((v != 0).sum())
    return sub / max(nonzero, 1)


def resumed_rate(warm_dir: Path, work: Path, cfg: TrainConfig, flush: bool, name: str) -> float:
    """Median images/s of ``cfg.run.steps`` resumed from the warm run, flushing or not."""
    run = work / name
    shutil.copytree(warm_dir, run)
    prepare.FLUSH_DENORMALS = flush
    try:
        train(cfg, run, resume=True, progress=False)
    finally:
        prepare.FLUSH_DENORMALS = True
    start = load_checkpoint(warm_dir).step
    return statistics.median(r["images_per_s"] for r in read_log(run) if r["step"] > start)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--warm", type=int, default=1000, help="steps trained before timing")
    p.add_argument("--steps", type=int, default=150, help="timed steps per resumed run")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds of each setting")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script works")
    p.add_argument("--json", default=None, help="write the results here")
    a = p.parse_args(argv)
    if a.smoke:
        a.warm, a.steps, a.rounds = 4, 4, 1
    if min(a.warm, a.steps, a.rounds, a.threads) < 1:
        p.error("--warm, --steps, --rounds and --threads must be >= 1")
    log_every = max(a.steps // 3, 1)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        prepare.FLUSH_DENORMALS = False  # the state a run carried before flushing existed
        try:
            warm = train(quick_source(a.warm, a.threads, log_every), work / "warm",
                         progress=False)
        finally:
            prepare.FLUSH_DENORMALS = True
        timed = quick_source(a.warm + a.steps, a.threads, log_every)
        rates: dict[str, list[float]] = {"flush": [], "keep": []}
        for r in range(a.rounds):
            for key in ("keep", "flush"):
                rates[key].append(resumed_rate(warm, work, timed, key == "flush", f"{key}{r}"))
        out = {"warm_steps": a.warm, "timed_steps": a.steps, "threads": a.threads,
               "subnormal_share_of_optimizer_state": subnormal_share(warm),
               "images_per_s": rates,
               "ratio_flush_over_keep": statistics.median(rates["flush"])
               / statistics.median(rates["keep"])}
    print(f"after {a.warm} steps, {out['subnormal_share_of_optimizer_state']:.1%} of the "
          f"optimiser state's non-zero values are subnormal; resumed {a.steps} steps on "
          f"{a.threads} thread(s): flush {statistics.median(rates['flush']):,.0f} vs keep "
          f"{statistics.median(rates['keep']):,.0f} images/s ({out['ratio_flush_over_keep']:.2f}x)")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
