"""Is bf16 autocast safe? Train the same run in fp32 and in bf16 and compare the final loss.

Issue 4 asks that bf16 training reach the fp32 loss within 2 % after 2,000 steps before bf16 may
be a default. Both runs use the same seed, data stream and settings; the figure compared is the
mean loss over the last ``--window`` logged steps.

    python bench/bf16_parity.py --steps 2000 --threads 2     # the real check (minutes)
    python bench/bf16_parity.py --quick                      # seconds: checks the script works
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from disentkit.config import TrainConfig, apply_overrides
from disentkit.training import train
from disentkit.training.logging import read_log


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="dsprites")
    p.add_argument("--method", default="ada-gvae")
    p.add_argument("--arch", default="locatello")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--window", type=int, default=100, help="logged steps averaged at the end")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.batch_size, args.window = 4, 4, 2
    dataset = None
    from disentkit.data.registry import available_datasets

    if args.dataset not in available_datasets():
        import sys

        sys.path.insert(0, str(Path(__file__).parent))
        from train_throughput import _Blobs

        print(f"note: dataset {args.dataset!r} is not available; using an in-script stand-in")
        dataset = _Blobs()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in ("fp32", "bf16"):
            cfg = apply_overrides(TrainConfig(), [
                f"data.dataset={args.dataset}", f"method.name={args.method}", f"model.arch={args.arch}",
                f"optim.batch_size={args.batch_size}", f"optim.lr={args.lr}", f"run.steps={args.steps}",
                f"run.seed={args.seed}", f"run.precision={precision}", "run.device=cpu", "run.log_every=1",
                f"run.checkpoint_every={args.steps}"] + ([f"run.threads={args.threads}"] if args.threads else []))
            t = time.perf_counter()
            run = train(cfg, Path(tmp) / precision, dataset=dataset, progress=None)
            elapsed = time.perf_counter() - t
            log = read_log(run)
            results[precision] = (float(np.mean([r["loss"] for r in log[-args.window:]])), elapsed)
            print(f"{precision}: final loss {results[precision][0]:.3f} "
                  f"(mean of last {args.window} steps), {elapsed:.1f} s", flush=True)
    gap = results["bf16"][0] / results["fp32"][0] - 1
    verdict = "within" if abs(gap) <= 0.02 else "OUTSIDE"
    print(f"bf16 vs fp32 final loss: {gap:+.2%} ({verdict} the 2 % tolerance); "
          f"time ratio fp32/bf16 = {results['fp32'][1] / results['bf16'][1]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
