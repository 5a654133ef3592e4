"""``disentkit train``: train a source model into a run folder (issue 4, docs/architecture.md, "Contracts").

The config is resolved in layers, each overriding the one before: defaults (or, with
``--resume``, the run's saved config) → ``--config FILE.json`` → explicit flags →
``--set section.key=value`` → ``--smoke``. ``--smoke`` comes last on purpose: a smoke run is a
seconds-long check, so its sizes win over ``--steps``/``--batch-size``/... and one line says which
explicit values it replaced. The resolved config is saved as ``config.json`` (printed with -v).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from disentkit.cli.common import (
    add_cache_argument,
    add_json_argument,
    add_threads_argument,
    apply_cache_dir,
    check_dataset,
    check_device,
    check_folder,
    write_json_result,
)
from disentkit.config import TRAIN_SMOKE

log = logging.getLogger("disentkit.cli")

#: seconds-long settings for ``--smoke`` (TrainConfig.smoke(), docs/architecture.md, principle
#: 12); they win over flags
SMOKE = TRAIN_SMOKE

#: flag -> config path; flags left unset do not override lower layers
FLAGS = {
    "dataset": "data.dataset", "root": "data.root", "k": "data.k",
    "arch": "model.arch", "latent_dim": "model.latent_dim", "init_from": "model.init_from",
    "method": "method.name", "beta": "method.beta", "warmup_steps": "method.warmup_steps",
    "lr": "optim.lr", "batch_size": "optim.batch_size", "trainable": "optim.trainable",
    "steps": "run.steps", "seed": "run.seed", "device": "run.device",
    "precision": "run.precision", "threads": "run.threads", "logger": "run.logger",
    "log_every": "run.log_every", "checkpoint_every": "run.checkpoint_every",
}

HELP = {
    "dataset": "dataset name (see `disentkit datasets list`)",
    "root": "folder of ONE dataset's files (real datasets, original files)",
    "k": "factors changed per weak-supervision pair",
    "arch": "network: locatello | paper",
    "latent_dim": "latent dimensions",
    "init_from": "run folder whose weights initialise the model",
    "method": "beta-vae | ada-gvae | ada-ml-vae | gvae-labels",
    "beta": "weight β of the KL term",
    "warmup_steps": "linear β warm-up length in steps",
    "lr": "Adam learning rate",
    "batch_size": "images, or pairs for the pair methods",
    "trainable": "which weights train",
    "steps": "training steps (--smoke wins over it)",
    "seed": "run seed (weights, data stream, noise)",
    "device": "auto (CUDA when available) | cpu | cuda | cuda:N",
    "precision": "arithmetic: auto picks bf16 only where it pays",
    "logger": "jsonl: log.jsonl; tensorboard: also TensorBoard events in RUN/tensorboard "
              "(pip install 'disentkit[tensorboard]')",
    "log_every": "steps between log.jsonl records",
    "checkpoint_every": "steps between checkpoints",
}
CHOICES = {"trainable": ["all", "encoder", "decoder"], "precision": ["auto", "fp32", "bf16"],
           "logger": ["jsonl", "tensorboard"]}
TYPES = {"k": int, "latent_dim": int, "beta": float, "warmup_steps": int, "lr": float,
         "batch_size": int, "steps": int, "seed": int, "threads": int, "log_every": int,
         "checkpoint_every": int}


DESCRIPTION = """\
Train a source model into a run folder (config.json, checkpoint/, log.jsonl).

The config is resolved in layers, each overriding the one before: the defaults shown below (or,
with --resume, the run's saved config), --config FILE.json, explicit flags, --set
section.key=value, and last --smoke: a smoke run is a seconds-long check, so its sizes win over
--steps/--batch-size/--log-every/--checkpoint-every and one line says which values it replaced.
The resolved config is saved as config.json (and printed with -v)."""


def _default(path: str):
    from disentkit.config import TrainConfig, to_dict

    section, key = path.split(".")
    return to_dict(TrainConfig())[section][key]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a (weakly-supervised) VAE into a run folder",
                       description=DESCRIPTION)
    p.add_argument("--out", required=True, help="run folder to write (config.json, checkpoint/, log.jsonl)")
    for flag, path in FLAGS.items():
        if flag == "threads":
            add_threads_argument(p)
            continue
        default = _default(path)
        shown = "none" if default is None else default
        p.add_argument(f"--{flag.replace('_', '-')}", type=TYPES.get(flag), choices=CHOICES.get(flag),
                       help=f"{HELP[flag]} (default: {shown})")
    p.add_argument("--grad-clip", help="global gradient-norm clip, or 'none' (default: 1.0)")
    add_cache_argument(p)
    p.add_argument("--config", help="JSON file with a full or partial training config "
                                    "(default: none, the built-in defaults)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override any config field, e.g. --set optim.lr=5e-4 (repeatable; default: none)")
    p.add_argument("--smoke", action="store_true",
                   help="a seconds-long run: its sizes (" + ", ".join(f"{k}={v}" for k, v in SMOKE.items())
                        + ") win over --steps, --batch-size, --log-every, --checkpoint-every and --set")
    p.add_argument("--resume", action="store_true", help="continue the run in --out up to --steps")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    add_json_argument(p, "the run folder and its last logged losses")
    p.set_defaults(func=cmd_train)


def resolve_config(args: argparse.Namespace):
    """The TrainConfig these arguments describe (layers as in the module docstring)."""
    from disentkit.config import TrainConfig, apply_overrides, from_dict, to_dict
    from disentkit.io import read_json

    saved = Path(args.out) / "config.json"
    cfg = from_dict(TrainConfig, read_json(saved)) if args.resume and saved.is_file() else TrainConfig()
    if args.config:
        data = to_dict(cfg)
        loaded = read_json(args.config)
        if not isinstance(loaded, dict):
            raise ValueError(f"{args.config}: expected a mapping of config sections "
                             f"{sorted(data)}, found a {type(loaded).__name__}")
        for section, values in loaded.items():  # a partial file is fine
            if not isinstance(values, dict) or section not in data:
                raise ValueError(f"{args.config}: expected sections {sorted(data)}, found {section!r}")
            data[section].update(values)
        cfg = from_dict(TrainConfig, data)
    overrides, explicit = [], {}
    for flag, path in FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            overrides.append(f"{path}={json.dumps(value)}")
            explicit[path] = f"--{flag.replace('_', '-')} {value}"
    if args.grad_clip is not None:
        clip = "null" if args.grad_clip.lower() == "none" else args.grad_clip
        overrides.append(f"optim.grad_clip={clip}")
    for item in args.set:
        explicit[item.split("=", 1)[0].strip()] = f"--set {item}"
    overrides += list(args.set)
    if args.smoke:
        replaced = [explicit[path] for path in SMOKE if path in explicit]
        if replaced:
            log.warning("--smoke wins over %s (uses %s); drop --smoke for a full-size run",
                        ", ".join(replaced), ", ".join(f"{k}={v}" for k, v in SMOKE.items()))
    cfg = apply_overrides(cfg, overrides).validate()  # a bad explicit value fails even under --smoke
    return cfg.smoke().validate() if args.smoke else cfg


def preflight(cfg) -> None:
    """Everything that can be checked before training: names, folders, device, optional extras."""
    from disentkit.methods import method_class
    from disentkit.models import model_class

    check_dataset(cfg.data.dataset, cfg.data.root)
    method_class(cfg.method.name)
    model_class(cfg.model.arch)
    check_folder(cfg.model.init_from, "--init-from")
    check_device(cfg.run.device)
    if cfg.run.logger == "tensorboard":
        from disentkit.training.logging import require_tensorboard

        require_tensorboard()


def cmd_train(args: argparse.Namespace) -> int:
    from disentkit.config import to_dict
    from disentkit.training import train
    from disentkit.training.logging import read_log
    from disentkit.training.prepare import is_run_folder

    if args.resume and not is_run_folder(Path(args.out)):  # a mistyped folder must not start over
        raise ValueError(f"--resume: {args.out} holds no run (no config.json or checkpoint/); "
                         "check the path, or drop --resume to start a new run")
    apply_cache_dir(args)
    cfg = resolve_config(args)
    preflight(cfg)
    log.debug("resolved config (saved as config.json):\n%s", json.dumps(to_dict(cfg), indent=2))
    run_dir = train(cfg, args.out, resume=args.resume, overwrite=args.overwrite)
    records = [r for r in read_log(run_dir) if "loss" in r]
    last = f"; last logged loss {records[-1]['loss']:.2f} at step {records[-1]['step']}" if records else ""
    print(f"run folder: {run_dir}{last}")
    write_json_result(args.json, {"run_dir": str(run_dir), "steps": cfg.run.steps,
                                  "last": records[-1] if records else None})
    return 0
