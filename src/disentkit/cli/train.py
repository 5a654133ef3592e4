"""``disentkit train``: train a source model into a run folder (issue 4, docs/architecture.md, "Contracts").

The config is resolved in layers, each overriding the one before: defaults (or, with
``--resume``, the run's saved config) → ``--config FILE.json`` → ``--smoke`` → explicit flags →
``--set section.key=value``. The resolved config is printed and saved as ``config.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from disentkit.cli.common import add_threads_argument

#: seconds-long settings for ``--smoke`` (docs/architecture.md, principle 12)
SMOKE = ["run.steps=6", "optim.batch_size=4", "run.log_every=2", "run.checkpoint_every=3"]

#: flag -> config path; flags left unset do not override lower layers
FLAGS = {
    "dataset": "data.dataset", "root": "data.root", "k": "data.k",
    "arch": "model.arch", "latent_dim": "model.latent_dim", "init_from": "model.init_from",
    "method": "method.name", "beta": "method.beta", "warmup_steps": "method.warmup_steps",
    "lr": "optim.lr", "batch_size": "optim.batch_size", "trainable": "optim.trainable",
    "steps": "run.steps", "seed": "run.seed", "device": "run.device",
    "precision": "run.precision", "threads": "run.threads",
    "log_every": "run.log_every", "checkpoint_every": "run.checkpoint_every",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a (weakly-supervised) VAE into a run folder")
    p.add_argument("--out", required=True, help="run folder to write (config.json, checkpoint/, log.jsonl)")
    p.add_argument("--dataset", help="dataset name (see `disentkit datasets list`)")
    p.add_argument("--root", help="folder of a real dataset's files")
    p.add_argument("--k", type=int, help="factors changed per pair (default 1)")
    p.add_argument("--method", help="beta-vae | ada-gvae | ada-ml-vae | gvae-labels")
    p.add_argument("--arch", help="network: locatello | paper")
    p.add_argument("--latent-dim", type=int)
    p.add_argument("--init-from", help="run folder whose weights initialise the model")
    p.add_argument("--beta", type=float)
    p.add_argument("--warmup-steps", type=int, help="linear β warm-up length")
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int, help="images, or pairs for pair methods")
    p.add_argument("--grad-clip", help="global gradient-norm clip, or 'none'")
    p.add_argument("--trainable", choices=["all", "encoder", "decoder"])
    p.add_argument("--steps", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"])
    p.add_argument("--log-every", type=int)
    p.add_argument("--checkpoint-every", type=int)
    add_threads_argument(p)
    p.add_argument("--config", help="JSON file with a full or partial training config")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override any config field, e.g. --set optim.lr=5e-4 (repeatable)")
    p.add_argument("--smoke", action="store_true", help="a seconds-long run (tiny steps and batch)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out up to --steps")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.set_defaults(func=cmd_train)


def resolve_config(args: argparse.Namespace):
    """The TrainConfig these arguments describe (layers as in the module docstring)."""
    from disentkit.config import TrainConfig, apply_overrides, from_dict, to_dict
    from disentkit.io import read_json

    saved = Path(args.out) / "config.json"
    cfg = from_dict(TrainConfig, read_json(saved)) if args.resume and saved.is_file() else TrainConfig()
    if args.config:
        data = to_dict(cfg)
        for section, values in read_json(args.config).items():  # a partial file is fine
            if not isinstance(values, dict) or section not in data:
                raise ValueError(f"{args.config}: expected sections {sorted(data)}, found {section!r}")
            data[section].update(values)
        cfg = from_dict(TrainConfig, data)
    overrides = list(SMOKE) if args.smoke else []
    for flag, path in FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            overrides.append(f"{path}={json.dumps(value)}")
    if args.grad_clip is not None:
        clip = "null" if args.grad_clip.lower() == "none" else args.grad_clip
        overrides.append(f"optim.grad_clip={clip}")
    return apply_overrides(cfg, overrides + list(args.set)).validate()


def cmd_train(args: argparse.Namespace) -> int:
    from disentkit.config import to_dict
    from disentkit.train import train
    from disentkit.train.logging import read_log

    cfg = resolve_config(args)
    print(json.dumps(to_dict(cfg), indent=2))
    run_dir = train(cfg, args.out, resume=args.resume, overwrite=args.overwrite)
    records = [r for r in read_log(run_dir) if "loss" in r]
    last = f"; last logged loss {records[-1]['loss']:.2f} at step {records[-1]['step']}" if records else ""
    print(f"run folder: {run_dir}{last}")
    return 0
