"""``disentkit transfer``: carry a source run to a target dataset, before and after fine-tuning.

See :mod:`disentkit.transfer` for what each stage does and where the disentkit defaults depart
from the reference code (fresh optimiser, explicit seed and β, held-out evaluation) — ``--compat``
restores the reference behaviour when old numbers must be reproduced.
"""

from __future__ import annotations

import argparse

from disentkit.cli.common import add_threads_argument, apply_threads

#: seconds-long settings for ``--smoke``
SMOKE = {"steps": 4, "batch_size": 8, "n": 240, "log_every": 2}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "transfer",
        help="evaluate a source run on a target zero-shot, fine-tune it there, evaluate again",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--source", required=True, help="source run folder (from `disentkit train`)")
    p.add_argument("--target", required=True, help="target dataset name (`disentkit datasets list`)")
    p.add_argument("--root", default=None, help="folder of the target's files (real datasets)")
    p.add_argument("--out", required=True, help="transfer folder to write")
    p.add_argument("--finetune", choices=["all", "encoder", "decoder", "none"], default="all",
                   help="which weights fine-tuning trains (paper: all); none = zero-shot only")
    p.add_argument("--finetune-steps", type=int, default=50000, help="paper: 50,000")
    p.add_argument("--beta", type=float, default=1.0, help="β of the fine-tuning β-VAE objective")
    p.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (fresh optimiser)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0, help="fine-tuning seed")
    p.add_argument("--heldout-fraction", type=float, default=0.25,
                   help="share of the target's factor combinations kept for evaluation only")
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--n", type=int, default=15008, help="evaluation samples (paper: 15,008)")
    p.add_argument("--backend", choices=["reference", "fast"], default="fast",
                   help="metric backend (scikit-learn reference or LightGBM fast)")
    p.add_argument("--metrics", default=None, help="comma-separated metric families (default: all)")
    p.add_argument("--eval-seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    p.add_argument("--compat", action="store_true",
                   help="reproduce the reference code: β = 1, seed 0, the source's optimiser state "
                        "and step, evaluation on the fine-tuning images (flagged in the report)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: seconds")
    add_threads_argument(p)
    p.set_defaults(func=cmd_transfer)


def config_from_args(args: argparse.Namespace):
    from disentkit.evaluate import EvalSettings
    from disentkit.transfer import TransferConfig

    metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip()) if args.metrics else None
    steps, batch, n, log_every = args.finetune_steps, args.batch_size, args.n, 100
    if args.smoke:
        steps, batch, n, log_every = SMOKE["steps"], SMOKE["batch_size"], SMOKE["n"], SMOKE["log_every"]
    return TransferConfig(
        source=args.source, target=args.target, finetune=args.finetune, steps=steps,
        beta=args.beta, lr=args.lr, batch_size=batch, seed=args.seed, compat=args.compat,
        heldout_fraction=args.heldout_fraction, split_seed=args.split_seed, data_root=args.root,
        device=args.device, precision=args.precision, threads=args.threads, log_every=log_every,
        eval=EvalSettings(n=n, seed=args.eval_seed, metrics=metrics, backend=args.backend),
    ).validate()


def cmd_transfer(args: argparse.Namespace) -> int:
    from disentkit.cli.common import format_table
    from disentkit.transfer import transfer

    apply_threads(args.threads)
    cfg = config_from_args(args)
    res = transfer(cfg, args.out)
    keys = ["gbt.mean_test_accuracy", "gbt_pruned.mean_test_accuracy", "omes.score",
            "dci.disentanglement", "mig.score"]
    rows = []
    for key in keys:
        before = res["before"]["metrics"].get(key)
        after = (res["after"] or {}).get("metrics", {}).get(key)
        if before is None:
            continue
        row = {"metric": key, "before": f"{before:.3f}"}
        if after is not None:
            row.update(after=f"{after:.3f}", delta=f"{after - before:+.3f}")
        rows.append(row)
    print(format_table(rows, ["metric", "before", "after", "delta"]))
    print(f"transfer folder: {args.out}  (disentkit report {args.out} builds its report)")
    return 0
