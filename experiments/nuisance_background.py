"""Why does the noisy target keep less? Measure the background shift (issue 13, point 4).

A source trained on Color-dSprites (coloured sprites on black) is evaluated *zero-shot* on the
held-out combinations of Color-dSprites with the black background replaced by:

* ``black``        — nothing replaced: the protocol's own cost (retention should be ~100 %);
* ``fixed-noise``  — one uniform-noise image, the same behind every sprite (amplitude 1);
* ``iid-noise-A``  — i.i.d. uniform noise per pixel and channel, times A = 0.1, 0.25, 0.5, 1.0
  (A = 1 is Noisy-Color-dSprites' background).

Each condition is evaluated for the trained source and for its untrained floor (the same
architecture at its initialisation, Dapueto et al. 2024 read every number beside it). Retention
is reported two ways, for OMES (α = 0.5) and DCI disentanglement:

* raw: ``score(condition) / score(source on its own data)``;
* floor-normalised: ``(score − floor(condition)) / (source − floor(source))``.

If the fixed image already costs as much as strong i.i.d. noise, the loss comes from the
*background shift* (a nuisance the source never saw: a hidden factor of the target), not from
per-image randomness.

Usage::

    python experiments/nuisance_background.py --source RUN_DIR [--out DIR] [--n 15008]
    python experiments/nuisance_background.py --smoke [--out DIR]  # trains a tiny source itself

Writes ``DIR/nuisance.json``, ``DIR/nuisance.csv`` and ``DIR/nuisance.png`` and prints the table.
Every evaluation folder (``DIR/<condition>/trained``, ``.../floor``) is a normal disentkit
evaluation, skipped when already complete, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

from disentkit.data.base import FactorDataset
from disentkit.data.dsprites_variants import uniform_noise
from disentkit.data.registry import get_dataset
from disentkit.data.views import CombinationSubset, DatasetView
from disentkit.errors import DisentkitError
from disentkit.evaluate import EvalInfo, EvalSettings, evaluate_model
from disentkit.io import write_json, write_text
from disentkit.models.channels import adapt_channels
from disentkit.transfers import load_source

AMPLITUDES = (0.1, 0.25, 0.5, 1.0)
METRICS = (("omes", "omes.score"), ("dci_d", "dci.disentanglement"))
DATASET = "color-dsprites"
FIXED_SEED = 12345  # the one noise image of "fixed-noise"


class Background(DatasetView):
    """Color-dSprites (or a part of it) with the black background replaced.

    A pixel is background when all its channels are 0: Color-dSprites draws binary sprites in
    colours whose every channel is > 0.36, so this is exactly the sprite's complement.
    ``kind``: "black" (unchanged), "fixed" (one noise image) or "iid" (noise per image, drawn
    from the generator that ``images`` receives, so a seed reproduces it). The background is a
    nuisance, not a factor: rows are still drawn without repeating a *combination*.
    """

    def __init__(self, base: FactorDataset, kind: str, amplitude: float = 1.0):
        if kind not in ("black", "fixed", "iid"):
            raise ValueError(f"background kind must be black, fixed or iid, found {kind!r}")
        if not 0.0 <= amplitude <= 1.0:
            raise ValueError(f"noise amplitude must be in [0, 1], found {amplitude}")
        super().__init__(base)  # factors, combinations and membership: the base's
        self.kind, self.amplitude = kind, float(amplitude)
        if kind != "black":  # a background the source never saw: a hidden factor of the target
            self.nuisances = tuple(self.nuisances) + ("noise",)
        self._fixed = uniform_noise(np.random.default_rng(FIXED_SEED), (1,) + self.image_shape)

    def __len__(self) -> int:
        return len(self.base)

    def images(self, factors, rng=None):
        img = self.base.images(factors, rng)
        if self.kind == "black":
            return img
        if rng is None:
            rng = np.random.default_rng(0)
        if self.kind == "fixed":
            noise = np.broadcast_to(self._fixed * np.float32(self.amplitude), img.shape)
        else:
            noise = uniform_noise(rng, img.shape) * np.float32(self.amplitude)
        background = (img == 0).all(axis=1, keepdims=True)
        return np.where(background, noise, img).astype(np.float32)


def conditions(amplitudes=AMPLITUDES) -> list[tuple[str, str, float]]:
    """(label, background kind, amplitude) of every condition, in the table's order."""
    out = [("black", "black", 0.0), ("fixed-noise", "fixed", 1.0)]
    return out + [(f"iid-noise-{a:g}", "iid", float(a)) for a in amplitudes]


def retention(score: float, floor: float, source: float, source_floor: float) -> dict:
    """Raw and floor-normalised retention of one score (None where it is undefined: a source
    score of 0, or a source not above its own floor)."""
    raw = score / source if source else None
    gain = source - source_floor  # a source not above its floor leaves nothing to retain
    normalised = (score - floor) / gain if gain > 0 else None
    return {"raw": raw, "floor_normalised": normalised}


def _untrained(cfg, channels: int):
    from disentkit.training.prepare import build_network, seeds

    plain = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, init_from=None))
    return build_network(plain, channels, seeds(cfg.run.seed)["init"])


def _scores(results: dict) -> dict:
    return {name: float(results["metrics"][key]) for name, key in METRICS}


def measure(source: Path, out: Path, settings: EvalSettings, heldout_fraction: float = 0.25,
            split_seed: int = 0, amplitudes=AMPLITUDES) -> dict:
    """Evaluate the source and its floor on its own data and under every condition."""
    model, cfg = load_source(source)
    base = get_dataset(DATASET)
    channels = int(base.image_shape[0])
    trained = adapt_channels(model, channels)
    floor = adapt_channels(_untrained(cfg, model.in_channels), channels)
    info = {"run_dir": str(source), "source_dataset": cfg.data.dataset, "method": cfg.method.name,
            "arch": cfg.model.arch, "beta": cfg.method.beta, "latent_dim": cfg.model.latent_dim,
            "seed": cfg.run.seed, "steps": cfg.run.steps}
    own = evaluate_model(trained, base, out / "source" / "trained", EvalInfo("source", info),
                         settings)
    ref = _scores(own)
    ref_floor = _scores(evaluate_model(floor, base, out / "source" / "floor",
                                       EvalInfo("floor", {**info, "steps": 0}), settings))
    heldout = CombinationSubset(base, "heldout", heldout_fraction, split_seed)
    split = f"held-out combinations ({heldout_fraction:.0%} of the grid, split seed {split_seed})"
    rows = []
    for label, kind, amplitude in conditions(amplitudes):
        data = Background(heldout, kind, amplitude)
        t_info = {"target": f"{DATASET} ({label} background)", "source_dataset": cfg.data.dataset,
                  "finetune": "none", "eval_split": split}
        s = _scores(evaluate_model(trained, data, out / label / "trained",
                                   EvalInfo("before", info, t_info, split), settings))
        f = _scores(evaluate_model(floor, data, out / label / "floor",
                                   EvalInfo("floor", {**info, "steps": 0}, t_info, split),
                                   settings))
        row = {"condition": label, "background": kind, "amplitude": amplitude}
        for name, _ in METRICS:
            r = retention(s[name], f[name], ref[name], ref_floor[name])
            row.update({name: s[name], f"{name}_floor": f[name], f"{name}_retention": r["raw"],
                        f"{name}_retention_floor_normalised": r["floor_normalised"]})
        rows.append(row)
    return {"source": str(source), "dataset": DATASET, "split": split,
            "reference": {"source": ref, "floor": ref_floor}, "conditions": rows,
            "settings": {"n": settings.n, "seed": settings.seed, "backend": settings.backend,
                         "sampling": settings.sampling, "metrics": list(settings.metrics or [])},
            "versions": own.get("meta", {}).get("versions", {})}


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.0f}%"


def table(result: dict) -> str:
    """The printed table: scores, floors and both retentions per condition."""
    ref, fl = result["reference"]["source"], result["reference"]["floor"]
    lines = [f"source {result['source']} on {result['dataset']}: OMES {ref['omes']:.3f} (floor "
             f"{fl['omes']:.3f}), DCI-D {ref['dci_d']:.3f} (floor {fl['dci_d']:.3f})",
             f"{'condition':<16}{'OMES':>7}{'floor':>7}{'ret':>6}{'ret-fn':>8}"
             f"{'DCI-D':>8}{'floor':>7}{'ret':>6}{'ret-fn':>8}"]
    for r in result["conditions"]:
        lines.append(f"{r['condition']:<16}{r['omes']:>7.3f}{r['omes_floor']:>7.3f}"
                     f"{_pct(r['omes_retention']):>6}"
                     f"{_pct(r['omes_retention_floor_normalised']):>8}"
                     f"{r['dci_d']:>8.3f}{r['dci_d_floor']:>7.3f}{_pct(r['dci_d_retention']):>6}"
                     f"{_pct(r['dci_d_retention_floor_normalised']):>8}")
    lines.append("ret = score / source score; ret-fn = (score - floor) / (source - source floor)")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> Path:
    """Retention against i.i.d. amplitude, raw (left) and floor-normalised (right); black and the
    fixed image as horizontal lines."""
    from matplotlib.figure import Figure

    from disentkit.io import atomic_path

    fig = Figure(figsize=(9.5, 3.6))
    rows = {r["condition"]: r for r in result["conditions"]}
    iid = [r for r in result["conditions"] if r["background"] == "iid"]
    axes = fig.subplots(1, 2)
    for ax, kind, ylabel in zip(axes, ("retention", "retention_floor_normalised"),
                                ("score / source score", "(score − floor) / (source − floor)")):
        for (name, _), colour in zip(METRICS, ("tab:blue", "tab:orange")):
            key, label = f"{name}_{kind}", "OMES" if name == "omes" else "DCI-D"
            ys = [np.nan if r[key] is None else r[key] for r in iid]
            ax.plot([r["amplitude"] for r in iid], ys, marker="o", color=colour,
                    label=f"{label}, i.i.d.")
            for cond, style in (("black", ":"), ("fixed-noise", "--")):
                if rows[cond][key] is not None:
                    ax.axhline(rows[cond][key], color=colour, linestyle=style, linewidth=1,
                               label=f"{label}, {cond}")
        ax.set_xlabel("i.i.d. noise amplitude")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("zero-shot retention on Color-dSprites held-out combinations, new background",
                 fontsize=9)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    return path


def _csv(result: dict) -> str:
    rows = result["conditions"]
    cols = list(rows[0])
    lines = [",".join(cols)]
    for r in rows:
        lines.append(",".join("" if r[c] is None else str(r[c]) for c in cols))
    return "\n".join(lines) + "\n"


def smoke_source(out: Path) -> Path:
    """Train a tiny Color-dSprites source (seconds) into ``out/smoke-source``."""
    from disentkit.config import (DataConfig, MethodConfig, ModelConfig, OptimConfig, RunConfig,
                                  TrainConfig)
    from disentkit.training import train

    run_dir = out / "smoke-source"
    cfg = TrainConfig(
        data=DataConfig(dataset=DATASET), model=ModelConfig(arch="locatello", latent_dim=6),
        method=MethodConfig(name="beta-vae", beta=1.0), optim=OptimConfig(lr=1e-3, batch_size=16),
        run=RunConfig(steps=4, seed=0, device="cpu", precision="fp32", log_every=2,
                      checkpoint_every=4, prefetch=False),
    ).validate()
    from disentkit.training.checkpoint import checkpoint_path

    if not checkpoint_path(run_dir).is_file():
        train(cfg, run_dir)
    return run_dir


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", help="run folder of a trained Color-dSprites source")
    p.add_argument("--smoke", action="store_true", help="train a tiny source and use tiny sizes")
    p.add_argument("--out", default="nuisance-background",
                   help="output folder (default ./nuisance-background; keep it outside a run "
                        "folder, or `disentkit report` of that folder will read these evaluations)")
    p.add_argument("--n", type=int, default=15008, help="rows per evaluation (default 15008)")
    p.add_argument("--backend", default="fast", help="metric backend (default fast)")
    p.add_argument("--seed", type=int, default=0, help="evaluation seed (default 0)")
    p.add_argument("--heldout-fraction", type=float, default=0.25)
    p.add_argument("--split-seed", type=int, default=0)
    args = p.parse_args(argv)
    if bool(args.source) == bool(args.smoke):
        p.error("give exactly one of --source RUN_DIR and --smoke")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    n = 240 if args.smoke else args.n
    settings = EvalSettings(n=n, seed=args.seed, backend=args.backend, metrics=("omes", "dci"),
                            figures=False)
    try:
        source = smoke_source(out) if args.smoke else Path(args.source)
        result = measure(source, out, settings, args.heldout_fraction, args.split_seed)
    except (DisentkitError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result["smoke"] = bool(args.smoke)
    write_json(out / "nuisance.json", result)
    write_text(out / "nuisance.csv", _csv(result))
    plot(result, out / "nuisance.png")
    print(table(result))
    print(f"wrote {out / 'nuisance.json'}, {out / 'nuisance.csv'}, {out / 'nuisance.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
