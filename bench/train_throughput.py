"""Training throughput: disentkit's step against a minimal plain-PyTorch loop (issue 4, "Speed").

For each architecture and each arithmetic setting (precision x memory format), three loops are
timed in one process, *alternating* round by round so that a change in machine load hits all of
them alike:

  (b) plain  - a minimal PyTorch loop of the same network and loss on pre-made tensors;
  (a0) step  - disentkit's template step (Method.training_step) on the same pre-made tensors;
  (a) full   - disentkit's full step: pair rendering from the dataset (one batch ahead in a
               background thread, as the training loop does; --no-prefetch renders inline),
               transfer, template step.

Printed per row: median images/s of each, the ratios a0/b (framework overhead; target >= 0.95)
and a/b (with data; target >= 0.85), the speed-up of (a) over the fp32 plain loop (target >= 2x)
and the achieved GFLOP/s of (b) (FLOPs of one step counted with torch.utils.flop_counter).

    python bench/train_throughput.py --quick            # seconds: checks the script works
    python bench/train_throughput.py --threads 2        # the real measurement, on an idle machine
    python bench/train_throughput.py --settings fp32,bf16,bf16+cl,fp32+cl --batches 64,256 --fused

Run it on an idle machine: under contention the figures mean little (see the README).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from disentkit.methods import build_method
from disentkit.models import build_model
from disentkit.training import prepare
from disentkit.training.batches import batch_stream, draw_batch


class _Blobs:
    """Stand-in dataset (one Gaussian blob per image) when the requested one is not installed."""

    name = "blobs (stand-in)"
    factor_names = ("x", "y", "size")
    factor_sizes = (16, 16, 4)
    image_shape = (1, 64, 64)
    combinations = None
    num_factors = 3

    def sample_factors(self, n, rng):
        return rng.integers(0, self.factor_sizes, size=(n, 3))

    def images(self, f, rng=None):
        g = np.arange(64, dtype=np.float32)
        cx, cy, s = 8 + 3 * f[:, 0], 8 + 3 * f[:, 1], 2.0 + f[:, 2]
        dx = (g - cx[:, None]) ** 2 / (2 * s[:, None] ** 2)
        dy = (g - cy[:, None]) ** 2 / (2 * s[:, None] ** 2)
        return np.exp(-(dy[:, :, None] + dx[:, None, :]))[:, None].astype(np.float32)


def get_dataset(name: str):
    from disentkit.data.registry import available_datasets, get_dataset as get

    if name in available_datasets():
        return get(name)
    print(f"note: dataset {name!r} is not available here; using an in-script stand-in", file=sys.stderr)
    return _Blobs()


def plain_step(model, opt, x1, x2, gen, autocast, clip):
    """The minimal loop body: Ada-GVAE written out plainly (no disentkit code)."""
    with autocast():
        x = torch.cat([x1, x2])
        mu, logvar = model.encode(x)
        mu, logvar = mu.float(), logvar.float()
        m1, m2 = mu.chunk(2)
        l1, l2 = logvar.chunk(2)
        with torch.no_grad():
            v1, v2 = l1.exp(), l2.exp()
            d = 0.5 * ((v1 + (m1 - m2) ** 2) / v2 + (v2 + (m1 - m2) ** 2) / v1) - 1
            shared = d < 0.5 * (d.amin(1, keepdim=True) + d.amax(1, keepdim=True))
        am, al = 0.5 * (m1 + m2), torch.logaddexp(l1, l2) - np.log(2.0)
        mu = torch.cat([torch.where(shared, am, m1), torch.where(shared, am, m2)])
        logvar = torch.cat([torch.where(shared, al, l1), torch.where(shared, al, l2)])
        z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=gen)
        logits = model.decode(z).float()
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1).mean()
        kl = 0.5 * (mu**2 + logvar.exp() - logvar - 1).sum(1).mean()
        loss = rec + kl
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    return loss


def make(arch, channels, precision, channels_last, fused, compile_):
    torch.manual_seed(0)
    model = build_model(arch, channels, 10)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, fused=fused or None)
    if compile_:
        model.encode = torch.compile(model.encode)
        model.decode = torch.compile(model.decode)
    return model, opt


def flops_per_step(arch, channels, pairs):
    """FLOPs of one plain training step (forward + backward) on ``pairs`` pairs."""
    from torch.utils.flop_counter import FlopCounterMode

    model, opt = make(arch, channels, "fp32", False, False, False)
    x = torch.rand(pairs, channels, 64, 64)
    with FlopCounterMode(display=False) as counter:
        plain_step(model, opt, x, x.clone(), torch.Generator().manual_seed(0), _null, 1.0)
    return counter.get_total_flops()


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *a):
        return False


def measure(arch, dataset, setting, batch, rounds, steps, fused, compile_, prefetch=True):
    precision = "bf16" if setting.startswith("bf16") else "fp32"
    channels_last = setting.endswith("+cl")
    channels = dataset.image_shape[0]
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bf16" else _null
    rng = np.random.default_rng(0)
    premade = prepare.to_device(draw_batch(dataset, True, batch, rng, 1), torch.device("cpu"), channels_last)
    method = build_method("ada-gvae")
    loops = {}
    mb, ob = make(arch, channels, precision, channels_last, fused, compile_)
    gb = torch.Generator().manual_seed(0)
    loops["plain"] = lambda: plain_step(mb, ob, premade.x1, premade.x2, gb, autocast, 1.0)
    ma, oa = make(arch, channels, precision, channels_last, fused, compile_)
    ga = torch.Generator().manual_seed(0)
    loops["step"] = lambda: method.training_step(ma, oa, premade, 0, ga, 1.0, precision)
    mf, of = make(arch, channels, precision, channels_last, fused, compile_)
    gf = torch.Generator().manual_seed(0)

    stream = batch_stream(dataset, True, batch, rng, 1, count=10**9, prefetch=prefetch)

    def full():
        arrays, _ = next(stream)
        b = prepare.to_device(arrays, torch.device("cpu"), channels_last)
        return method.training_step(mf, of, b, 0, gf, 1.0, precision)

    loops["full"] = full
    for fn in loops.values():  # warm-up (and compilation)
        fn()
        fn()
    times = {k: [] for k in loops}
    for _ in range(rounds):
        for name, fn in loops.items():
            t = time.perf_counter()
            for _ in range(steps):
                fn()
            times[name].append((time.perf_counter() - t) / steps)
    images = 2 * batch
    stream.close()
    return {k: images / statistics.median(v) for k, v in times.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", default="locatello,paper")
    p.add_argument("--settings", default="fp32,fp32+cl,bf16,bf16+cl",
                   help="comma list of fp32 | bf16, each optionally +cl (channels-last)")
    p.add_argument("--batches", default="64", help="pairs per batch (comma list)")
    p.add_argument("--dataset", default="dsprites")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", type=int, default=5, help="steps per round and loop")
    p.add_argument("--fused", action="store_true", help="fused Adam")
    p.add_argument("--no-prefetch", action="store_true", help="render batches in the main thread")
    p.add_argument("--compile", action="store_true", help="torch.compile encode/decode")
    p.add_argument("--quick", action="store_true", help="seconds-long check that the script works")
    p.add_argument("--json", help="also write the rows to this JSON file")
    args = p.parse_args(argv)
    if args.quick:
        args.archs, args.settings, args.batches, args.rounds, args.steps = "locatello", "fp32", "4", 2, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = get_dataset(args.dataset)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, cpu capability "
          f"{torch.backends.cpu.get_cpu_capability()}, dataset {dataset.name}, batch = pairs")
    header = f"{'arch':10} {'batch':>5} {'setting':9} {'plain b':>9} {'step a0':>9} {'full a':>9} " \
             f"{'a0/b':>5} {'a/b':>5} {'a/fp32b':>7} {'GFLOP/s b':>9}"
    print(header)
    rows = []
    for arch in args.archs.split(","):
        for batch in map(int, args.batches.split(",")):
            flops = flops_per_step(arch, dataset.image_shape[0], batch)
            base = None
            for setting in args.settings.split(","):
                r = measure(arch, dataset, setting, batch, args.rounds, args.steps, args.fused, args.compile,
                            not args.no_prefetch)
                if setting == "fp32":
                    base = r["plain"]
                row = {"arch": arch, "batch_pairs": batch, "setting": setting, "fused": args.fused,
                       "prefetch": not args.no_prefetch,
                       "compile": args.compile, "threads": torch.get_num_threads(),
                       "images_per_s": r, "ratio_step": r["step"] / r["plain"],
                       "ratio_full": r["full"] / r["plain"],
                       "speedup_vs_fp32_plain": r["full"] / base if base else None,
                       "gflops_plain": flops * r["plain"] / (2 * batch) / 1e9}
                rows.append(row)
                sp = f"{row['speedup_vs_fp32_plain']:.2f}" if base else "-"
                print(f"{arch:10} {batch:5d} {setting:9} {r['plain']:9.0f} {r['step']:9.0f} "
                      f"{r['full']:9.0f} {row['ratio_step']:5.2f} {row['ratio_full']:5.2f} "
                      f"{sp:>7} {row['gflops_plain']:9.1f}", flush=True)
    if args.json:
        from disentkit.io import write_json

        write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
