"""Can the paper's grid run in a day? Throughput of training on the device this finds (issue 15).

One script, one JSON. Measured on the device (``--device auto``: CUDA if present, else CPU):

* ``single``: images/s of one model, the plain template step (Method.training_step), fp32 and
  bf16, batches pre-made on the device (so the model alone is timed);
* ``ensemble``: aggregate images/s of M = 1, 2, 4, 8, 16, 32 members trained as one
  (:mod:`disentkit.training.ensemble`), fp32 and bf16;
* ``data``: images/s of the data pipeline alone: the CPU prefetch thread (the training loop's
  :func:`batch_stream`) against pairs drawn on the device (:mod:`disentkit.data.render_torch`),
  and their ratio to the best model consumption (target: ≥ 10x);
* ``parity``: fp32 vs bf16 from one initialisation on the same batches for N steps: final loss
  and OMES / DCI of the two models on the same encoded samples;
* ``cpu_ensemble_vs_sequential``: on CPU, M members as one ensemble against M single runs in
  sequence on the same thread count, in the same run (issue 15, item 5);
* ``projection``: images of the packaged study ``paper`` (sources + fine-tunings) divided by the
  best aggregate rate: the grid's wall time on this device.

    python bench/grid_throughput.py --json grid.json                 # on a GPU: the table
    OMP_NUM_THREADS=2 taskset -c 0,1 python bench/grid_throughput.py --device cpu --threads 2 \\
        --members 1,2,4,8 --json grid_cpu.json                        # 2 CPU cores
    python bench/grid_throughput.py --smoke                          # seconds: CI check
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from disentkit.data.registry import get_dataset
from disentkit.data.render_torch import DeviceBatches
from disentkit.errors import DisentkitError
from disentkit.methods import build_method
from disentkit.methods.base import Batch
from disentkit.models import build_model
from disentkit.training import prepare
from disentkit.training.batches import batch_stream
from disentkit.training._stack import Stack, ensemble_step

#: the packaged study of the paper's grid (src/disentkit/studies/paper.yaml)
PAPER_GRID = "paper"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, steps: int, warmup: int, device: torch.device) -> float:
    """Seconds per call of ``fn`` after ``warmup`` calls (device synchronised around)."""
    for _ in range(warmup):
        fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    sync(device)
    return (time.perf_counter() - start) / steps


def models(arch: str, channels: int, latent: int, count: int, device, channels_last: bool):
    out = []
    for seed in range(count):
        torch.manual_seed(seed)
        m = build_model(arch, channels, latent).to(device).train()
        out.append(m.to(memory_format=torch.channels_last) if channels_last else m)
    return out


def single_rate(a, batches, precision: str) -> tuple[float, list[float]]:
    """Images/s of one model's template step; also the losses of the timed steps."""
    cl = prepare.use_channels_last(a.device, precision)
    model = models(a.arch, batches.image_shape[0], a.latent, 1, a.device, cl)[0]
    method = build_method(a.method, beta=1.0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    gen = torch.Generator(device=a.device).manual_seed(0)
    p = batches.pairs(a.batch, gen)
    fmt = (lambda t: t.contiguous(memory_format=torch.channels_last)) if cl else (lambda t: t)
    batch = Batch(fmt(p["x1"]), fmt(p["x2"]), p["changed"])
    noise = torch.Generator(device=a.device).manual_seed(1)
    losses: list[torch.Tensor] = []

    def step():
        terms = method.training_step(model, opt, batch, 0, noise, 1.0, precision)
        losses.append(terms.loss.detach())

    seconds = timed(step, a.steps, a.warmup, a.device)
    return 2 * a.batch / seconds, [float(x) for x in losses]


def ensemble_rate(a, batches, members: int, precision: str) -> float:
    """Aggregate images/s of ``members`` models trained as one."""
    nets = models(a.arch, batches.image_shape[0], a.latent, members, a.device, False)
    method = build_method(a.method, beta=1.0)
    stack = Stack(nets, method, 1e-4, a.device)
    gen = torch.Generator(device=a.device).manual_seed(0)
    p = batches.pairs(a.batch * members, gen)
    batch = {k: v.reshape(members, a.batch, *v.shape[1:]) for k, v in p.items()
             if k in ("x1", "x2", "changed")}
    noises = [torch.Generator(device=a.device).manual_seed(m) for m in range(members)]
    methods = [method] * members
    seconds = timed(lambda: ensemble_step(stack, methods, noises, batch, 0, 1.0, precision),
                    a.steps, a.warmup, a.device)
    return members * 2 * a.batch / seconds


def data_rates(a, dataset, batches) -> dict:
    """Images/s of the CPU prefetch thread and of on-device pairs (pairs of a.batch)."""
    stream = batch_stream(dataset, True, a.batch, np.random.default_rng(0), 1,
                          count=a.data_steps + 1, prefetch=True)
    next(stream)  # the thread is running
    start = time.perf_counter()
    for _ in range(a.data_steps):
        next(stream)
    cpu = 2 * a.batch * a.data_steps / (time.perf_counter() - start)
    stream.close()
    gen = torch.Generator(device=a.device).manual_seed(0)
    n = a.batch * a.data_scale
    seconds = timed(lambda: batches.pairs(n, gen), a.data_steps, 1, a.device)
    return {"cpu_thread_images_per_s": cpu, "device_images_per_s": 2 * n / seconds,
            "device_batch_pairs": n}


def parity(a, batches) -> dict:
    """fp32 vs bf16 from one initialisation on the same batches: loss, OMES and DCI."""
    from disentkit.metrics import score

    out, codes = {}, {}
    gen = torch.Generator(device=a.device).manual_seed(5)
    pairs = batches.pairs(a.eval_n // 2, gen)  # rows differing in one factor: OMES needs them
    factors = torch.cat([pairs["factors1"], pairs["factors2"]])
    images = torch.cat([pairs["x1"], pairs["x2"]])
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = build_model(a.arch, batches.image_shape[0], a.latent).to(a.device).train()
        method = build_method(a.method, beta=1.0)
        opt = torch.optim.Adam(model.parameters(), lr=a.lr)
        data, noise = torch.Generator(device=a.device).manual_seed(3), torch.Generator(
            device=a.device).manual_seed(4)
        for step in range(a.parity_steps):
            p = batches.pairs(a.batch, data)
            terms = method.training_step(model, opt, Batch(p["x1"], p["x2"], p["changed"]),
                                         step, noise, 1.0, precision)
        out[f"{precision}_final_loss"] = float(terms.loss.detach())
        model.eval()
        with torch.no_grad():
            codes[precision] = torch.cat([model.encode(images[i:i + 256])[0]
                                          for i in range(0, len(images), 256)]).float().cpu()
    f = factors.cpu().numpy()
    for precision, z in codes.items():
        with warnings.catch_warnings():  # single-valued factors of the variant: skipped, known
            warnings.simplefilter("ignore")
            flat, _ = score(z.numpy(), f, metrics="omes,dci", backend=a.metric_backend, seed=0)
        out[f"{precision}_omes"], out[f"{precision}_dci"] = (flat["omes.score"],
                                                             flat["dci.disentanglement"])
    out["steps"], out["eval_samples"] = a.parity_steps, a.eval_n
    out["max_code_difference"] = float((codes["fp32"] - codes["bf16"]).abs().max())
    return out


def cpu_compare(a, batches, members: int) -> dict:
    """CPU: one ensemble of ``members`` against ``members`` single runs in sequence (fp32)."""
    dev = a.device
    a.device = torch.device("cpu")
    try:
        single, _ = single_rate(a, batches_on(batches, a.device), "fp32")
        ensemble = ensemble_rate(a, batches_on(batches, a.device), members, "fp32")
    finally:
        a.device = dev
    return {"members": members, "threads": torch.get_num_threads(),
            "sequential_images_per_s": single, "ensemble_images_per_s": ensemble,
            "speedup": ensemble / single}


def batches_on(batches, device):
    return batches if batches.device == device else DeviceBatches(batches.source, device)


def grid_images(study: str) -> dict:
    """Images the paper's grid trains on: sources and fine-tunings, pairs count twice (the
    study's planned runs, real targets included)."""
    from disentkit.experiment.study import load_study, plan

    runs = plan(load_study(study)).runs
    sources = [r.config["train"] for r in runs if r.kind == "source"]
    tunes = [r.config["transfer"] for r in runs if r.kind == "transfer"]
    images = sum(2 * t["run"]["steps"] * t["optim"]["batch_size"] for t in sources)
    images += sum(2 * t["steps"] * t["batch_size"] for t in tunes)
    return {"source_runs": len(sources), "finetune_runs": len(tunes), "images": images}


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:1")
    p.add_argument("--dataset", default="color-dsprites", help="source dataset (generated)")
    p.add_argument("--arch", default="paper", help="network: paper (the paper's) or locatello")
    p.add_argument("--method", default="gvae-labels")
    p.add_argument("--batch", type=int, default=64, help="pairs per step and member (paper: 64)")
    p.add_argument("--members", default="1,2,4,8,16,32", help="ensemble sizes")
    p.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch threads (CPU)")
    p.add_argument("--parity-steps", type=int, default=200)
    p.add_argument("--cpu-members", type=int, default=4, help="M of the CPU comparison (0: skip)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script works")
    p.add_argument("--json", default=None, help="write the results here")
    a = p.parse_args(argv)
    a.latent, a.lr, a.data_steps, a.data_scale, a.eval_n = 10, 1e-4, 20, 8, 5000
    a.metric_backend = "fast"
    if a.smoke:
        a.batch, a.members, a.steps, a.warmup, a.parity_steps = 4, "1,2", 2, 1, 2
        a.data_steps, a.data_scale, a.eval_n, a.cpu_members = 2, 2, 300, 2
    try:
        a.members = [int(m) for m in a.members.split(",")]
    except ValueError:
        p.error(f"--members must be comma-separated integers; found {a.members!r}")
    if min(a.members) < 1 or a.batch < 1 or a.steps < 1:
        p.error("--members, --batch and --steps must be >= 1")
    try:
        import lightgbm  # noqa: F401
    except ImportError:
        a.metric_backend = "reference"
    return a


def main(argv=None) -> int:
    a = parse(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    try:
        a.device = prepare.resolve_device(a.device)
        dataset = get_dataset(a.dataset)
        batches = DeviceBatches(dataset, a.device)
    except (ValueError, DisentkitError) as exc:
        print(f"grid_throughput: {exc}", file=sys.stderr)
        return 2
    bf16 = a.device.type == "cpu" or torch.cuda.is_bf16_supported()
    precisions = ["fp32", "bf16"] if bf16 else ["fp32"]
    out = {"device": torch.cuda.get_device_name(a.device) if a.device.type == "cuda" else "cpu",
           "torch": torch.__version__, "threads": torch.get_num_threads(),
           "settings": {"dataset": a.dataset, "arch": a.arch, "method": a.method,
                        "batch_pairs": a.batch, "steps": a.steps, "smoke": a.smoke}}
    out["single"] = {pr: single_rate(a, batches, pr)[0] for pr in precisions}
    out["ensemble"] = [{"members": m, **{pr: ensemble_rate(a, batches, m, pr) for pr in precisions}}
                       for m in a.members]
    best = max(max(r[pr] for pr in precisions) for r in out["ensemble"])
    out["data"] = data_rates(a, dataset, batches)
    out["data"]["device_over_best_model"] = out["data"]["device_images_per_s"] / best
    if bf16:
        out["parity"] = parity(a, batches)
    if a.cpu_members:
        out["cpu_ensemble_vs_sequential"] = cpu_compare(a, batches, a.cpu_members)
    grid = grid_images(PAPER_GRID)
    out["projection"] = {**grid, "best_images_per_s": best,
                         "hours": grid["images"] / best / 3600.0}
    print_table(out)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {a.json}")
    return 0


def print_table(out: dict) -> None:
    print(f"device: {out['device']}  torch {out['torch']}  threads {out['threads']}")
    for pr, rate in out["single"].items():
        print(f"single model  {pr:5s} {rate:12,.0f} images/s")
    for row in out["ensemble"]:
        rates = "  ".join(f"{pr} {row[pr]:12,.0f}" for pr in row if pr != "members")
        print(f"ensemble M={row['members']:<3d} {rates} images/s (aggregate)")
    d = out["data"]
    print(f"data: CPU thread {d['cpu_thread_images_per_s']:,.0f} images/s, on device "
          f"{d['device_images_per_s']:,.0f} images/s = {d['device_over_best_model']:.1f}x the "
          "best model consumption")
    if "parity" in out:
        p = out["parity"]
        print(f"parity after {p['steps']} steps: loss fp32 {p['fp32_final_loss']:.2f} / bf16 "
              f"{p['bf16_final_loss']:.2f}; OMES {p['fp32_omes']:.3f} / {p['bf16_omes']:.3f}; "
              f"DCI {p['fp32_dci']:.3f} / {p['bf16_dci']:.3f}")
    if "cpu_ensemble_vs_sequential" in out:
        c = out["cpu_ensemble_vs_sequential"]
        print(f"CPU, {c['threads']} threads: M={c['members']} ensemble "
              f"{c['ensemble_images_per_s']:,.0f} vs sequential "
              f"{c['sequential_images_per_s']:,.0f} images/s ({c['speedup']:.2f}x)")
    g = out["projection"]
    print(f"paper grid: {g['source_runs']} sources + {g['finetune_runs']} fine-tunings = "
          f"{g['images']:.3g} images -> {g['hours']:.1f} h at {g['best_images_per_s']:,.0f} "
          "images/s")


if __name__ == "__main__":
    sys.exit(main())
