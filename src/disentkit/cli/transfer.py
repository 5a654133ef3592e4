"""``disentkit transfer``: carry a source run to a target dataset, before and after fine-tuning.

See :mod:`disentkit.transfers` for what each stage does and where the disentkit defaults depart
from the reference code (fresh optimiser, explicit seed and β, held-out evaluation) — ``--compat``
restores the reference behaviour when old numbers must be reproduced.
"""

from __future__ import annotations

import argparse
import logging

from disentkit.cli.common import (
    add_dataset_root_arguments,
    add_device_argument,
    add_json_argument,
    add_threads_argument,
    apply_cache_dir,
    apply_threads,
    check_dataset,
    check_device,
    check_metrics,
    format_table,
    write_json_result,
)
from disentkit.config import EVAL_SMOKE, TRANSFER_SMOKE

log = logging.getLogger("disentkit.cli")

#: seconds-long settings for ``--smoke`` (TransferConfig.smoke()); they win over the explicit
#: options (one line says so)
SMOKE = {"finetune_steps": TRANSFER_SMOKE["steps"], "batch_size": TRANSFER_SMOKE["batch_size"],
         "n": EVAL_SMOKE["n"], "log_every": TRANSFER_SMOKE["log_every"]}
#: defaults of the options --smoke replaces (an explicit different value is reported)
DEFAULTS = {"finetune_steps": 50000, "batch_size": 64, "n": 15008}
KEYS = ["gbt.mean_test_accuracy", "gbt_pruned.mean_test_accuracy", "omes.score",
        "dci.disentanglement", "mig.score"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "transfer",
        help="zero-shot evaluation, fine-tuning and evaluation again on a target",
        description=__doc__.split("\n\n")[0].replace("``", ""),
    )
    p.add_argument("--source", required=True, help="source run folder (from `disentkit train`)")
    p.add_argument("--target", required=True, help="target dataset name (`disentkit datasets list`)")
    add_dataset_root_arguments(p, "the target")
    p.add_argument("--target-option", action="append", default=[], metavar="KEY=VALUE",
                   help="target dataset option, repeatable, e.g. depth_mode=normalised for "
                        "rgbd-objects-depth (default: none, the dataset's defaults)")
    p.add_argument("--out", required=True, help="transfer folder to write")
    p.add_argument("--finetune", choices=["all", "encoder", "decoder", "none"], default="all",
                   help="which weights fine-tuning trains (paper: all); none = zero-shot only")
    p.add_argument("--finetune-steps", type=int, default=DEFAULTS["finetune_steps"],
                   help="fine-tuning steps (paper: 50,000; --smoke wins over it)")
    p.add_argument("--beta", type=float, default=1.0, help="β of the fine-tuning β-VAE objective")
    p.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (fresh optimiser)")
    p.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"],
                   help="fine-tuning batch (--smoke wins over it)")
    p.add_argument("--grad-clip", default="none",
                   help="global gradient-norm clip while fine-tuning, or 'none' (as the paper's "
                        "code)")
    p.add_argument("--seed", type=int, default=0, help="fine-tuning seed")
    p.add_argument("--heldout-fraction", type=float, default=0.25,
                   help="share of the target's factor combinations kept for evaluation only")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the held-out split")
    p.add_argument("--n", type=int, default=DEFAULTS["n"],
                   help="evaluation samples (paper: 15,008; --smoke wins over it)")
    p.add_argument("--backend", choices=["reference", "fast"], default="fast",
                   help="metric backend (scikit-learn reference or LightGBM fast)")
    p.add_argument("--metrics", default=None,
                   help="comma-separated metric families (default: all)")
    p.add_argument("--eval-seed", type=int, default=0, help="seed of the evaluation samples")
    add_device_argument(p)
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="fine-tuning arithmetic")
    p.add_argument("--compat", action="store_true",
                   help="reproduce the reference code: β = 1, seed 0, the source's optimiser state "
                        "and step, evaluation on the fine-tuning images (flagged in the report)")
    p.add_argument("--smoke", action="store_true",
                   help="tiny sizes, seconds: " + ", ".join(f"{k}={v}" for k, v in SMOKE.items())
                        + " (win over --finetune-steps, --batch-size, --n)")
    add_threads_argument(p)
    p.add_argument("--data-workers", type=int, default=1,
                   help="threads rendering fine-tuning batches of a real target in parallel "
                        "(same batches; for GPUs, where one thread cannot keep up)")
    add_json_argument(p, "the metrics before and after fine-tuning")
    p.set_defaults(func=cmd_transfer)


def config_from_args(args: argparse.Namespace):
    from disentkit.config import parse_value
    from disentkit.evaluate import EvalSettings
    from disentkit.transfers import TransferConfig

    metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip()) if args.metrics else None
    clip = None if args.grad_clip.lower() == "none" else parse_value(args.grad_clip)
    cfg = TransferConfig(
        source=args.source, target=args.target, finetune=args.finetune, steps=args.finetune_steps,
        beta=args.beta, lr=args.lr, batch_size=args.batch_size, grad_clip=clip, seed=args.seed,
        compat=args.compat, heldout_fraction=args.heldout_fraction, split_seed=args.split_seed,
        data_root=args.root, target_options=parse_options(args.target_option, "--target-option"),
        device=args.device, precision=args.precision, threads=args.threads,
        data_workers=args.data_workers,
        eval=EvalSettings(n=args.n, seed=args.eval_seed, metrics=metrics, backend=args.backend),
    )
    cfg.validate()  # a bad explicit value fails even under --smoke, which would replace it
    if args.smoke:  # seconds-long sizes (TransferConfig.smoke); an explicit --metrics still holds
        flags = {"finetune_steps": args.finetune_steps, "batch_size": args.batch_size, "n": args.n}
        replaced = [f"--{k.replace('_', '-')} {v}" for k, v in flags.items() if v != DEFAULTS[k]]
        if replaced:
            log.warning("--smoke wins over %s (uses %s); drop --smoke for a full-size transfer",
                        ", ".join(replaced), ", ".join(f"{k}={v}" for k, v in SMOKE.items()))
        cfg = cfg.smoke()
        if metrics is not None:
            cfg.eval.metrics, cfg.eval.downstream_models = metrics, None
    return cfg.validate()


def parse_options(items: list[str], flag: str) -> dict:
    """``KEY=VALUE`` strings as a dict (values parsed as YAML scalars: numbers, true, none)."""
    from disentkit.config import split_assignment

    return dict(split_assignment(item, f"{flag}: expected KEY=VALUE, found {item!r}")
                for item in items)


def preflight(args: argparse.Namespace) -> None:
    """Names, folders, device and the metric backend, before the source is even loaded."""
    from disentkit.transfers import load_source

    check_dataset(args.target, args.root, "--target")
    check_metrics(args.metrics, args.backend)
    check_device(args.device)
    load_source(args.source)  # a bad source folder fails here, naming what is missing


def cmd_transfer(args: argparse.Namespace) -> int:
    from disentkit.transfers import transfer

    apply_threads(args.threads)
    apply_cache_dir(args)
    cfg = config_from_args(args)
    preflight(args)
    res = transfer(cfg, args.out)
    rows = []
    before_all, after_all = res["before"]["metrics"], (res["after"] or {}).get("metrics", {})
    for key in KEYS:
        before, after = before_all.get(key), after_all.get(key)
        if before is None:
            continue
        row = {"metric": key, "before": f"{before:.3f}"}
        if after is not None:
            row.update(after=f"{after:.3f}", delta=f"{after - before:+.3f}")
        rows.append(row)
    print(format_table(rows, ["metric", "before", "after", "delta"]))
    print(f"transfer folder: {args.out}  (disentkit report {args.out} builds its report)")
    write_json_result(args.json, {"folder": str(args.out), "before": before_all,
                                  "after": after_all or None})
    return 0
