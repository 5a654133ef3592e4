"""``disentkit run``: the main job — train a source, evaluate it, transfer it, write the report.

The experiment of Dapueto et al. 2024 as one command on built-in data: a weakly-supervised source
on ``color-dsprites``, its evaluation beside an untrained network of the same architecture (the
floor), zero-shot evaluation and fine-tuning on ``noisy-color-dsprites`` (same factors),
``shapes3d`` and ``coins-augmented`` (other factors, a real photograph) — plus ``coil100-augmented``
and ``rgbd-objects`` when ``--data-root`` holds them — and the report. A preset is a JSON file
(``src/disentkit/presets/{quick,paper}.json``): copy one, edit it, pass ``--preset FILE.json``.

Layout of ``--out``::

    run.json                                 the resolved preset
    sources/<dataset>-<method>-<arch>-beta<b>-seed<s>/   training run folder
        eval/   floor/                       source evaluation and its untrained floor
    transfers/<source folder>--<target>/     transfer folders (disentkit.transfer)
    report.html  report.md  results.csv  report_figures/

Every stage whose output exists is skipped: re-running finishes an interrupted job and costs
seconds on a finished one.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from disentkit.cli.common import (
    add_data_root_argument,
    add_json_argument,
    add_threads_argument,
    apply_cache_dir,
    apply_threads,
    check_device,
    write_json_result,
)
from disentkit.evaluate import EvalSettings

log = logging.getLogger("disentkit.cli")

PRESETS = ("quick", "paper")


@dataclass
class SourceSpec:
    dataset: str = "color-dsprites"
    method: str = "gvae-labels"
    arch: str = "locatello"
    latent_dim: int = 10
    betas: tuple[float, ...] = (1.0,)
    seeds: tuple[int, ...] = (0,)
    steps: int = 3000
    warmup_steps: int = 0
    lr: float = 1e-3
    batch_size: int = 64
    grad_clip: float | None = 1.0


@dataclass
class FinetuneSpec:
    mode: str = "all"
    steps: int = 500
    beta: float = 1.0
    lr: float = 5e-4
    batch_size: int = 64
    heldout_fraction: float = 0.25


@dataclass
class RunSettings:
    device: str = "auto"
    precision: str = "auto"
    log_every: int = 100


@dataclass
class Preset:
    """A whole experiment: the source grid, the targets, fine-tuning and evaluation."""

    name: str = "custom"
    description: str = ""
    source: SourceSpec = field(default_factory=SourceSpec)
    targets: tuple[str, ...] = ()
    real_targets: tuple[str, ...] = ()
    finetune: FinetuneSpec = field(default_factory=FinetuneSpec)
    eval: EvalSettings = field(default_factory=EvalSettings)
    #: downstream classifiers of the transfer evaluations (before/after) when they differ from
    #: ``eval.downstream_models``: the paper's transfer tables read GBT only, and on CPU the
    #: MLPs cost more than the rest of an evaluation together (None: as ``eval``)
    transfer_downstream_models: tuple[str, ...] | None = None
    run: RunSettings = field(default_factory=RunSettings)

    def transfer_eval(self) -> EvalSettings:
        """The evaluation settings of the transfers (``eval`` with the transfer classifiers)."""
        if self.transfer_downstream_models is None:
            return self.eval
        return dataclasses.replace(self.eval,
                                   downstream_models=tuple(self.transfer_downstream_models))


def load_preset(name_or_path: str) -> Preset:
    """A built-in preset by name, or a JSON file; unknown keys raise ``ValueError``."""
    from disentkit.config import from_dict

    if name_or_path in PRESETS:
        text = resources.files("disentkit.presets").joinpath(f"{name_or_path}.json").read_text("utf-8")
        origin = f"built-in preset {name_or_path!r}"
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise ValueError(f"--preset must be one of {PRESETS} or a JSON file; found {name_or_path!r}")
        text, origin = path.read_text(encoding="utf-8"), str(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{origin}: not valid JSON ({exc})") from exc
    preset = from_dict(Preset, data)
    if preset.eval.metrics is not None:
        preset.eval.metrics = tuple(preset.eval.metrics)
    if not preset.source.betas or not preset.source.seeds or not preset.targets:
        raise ValueError(f"{origin}: needs at least one beta, one seed and one target")
    return preset


def smoke(preset: Preset) -> Preset:
    """Seconds-long sizes for tests (docs/architecture.md, principle 12): first β and seed, tiny steps and
    batches, 160 evaluation samples, and only the metrics the report's tables need (OMES, DCI,
    MIG, GBT on the full and pruned code)."""
    p = dataclasses.replace(preset)
    p.source = dataclasses.replace(preset.source, betas=preset.source.betas[:1],
                                   seeds=preset.source.seeds[:1], steps=8, batch_size=8,
                                   warmup_steps=0)
    p.finetune = dataclasses.replace(preset.finetune, steps=4, batch_size=8)
    p.eval = dataclasses.replace(preset.eval, n=160, metrics=("omes", "dci", "mig", "downstream"),
                                 downstream_models=("gbt", "gbt_pruned"), backend="fast",
                                 batch_size=160)
    p.transfer_downstream_models = None
    p.run = dataclasses.replace(preset.run, log_every=2, precision="fp32")
    return p


def source_folder_name(spec: SourceSpec, beta: float, seed: int) -> str:
    return f"{spec.dataset}-{spec.method}-{spec.arch}-beta{beta:g}-seed{seed}"


def source_config(preset: Preset, beta: float, seed: int, threads: int | None):
    from disentkit.config import (DataConfig, MethodConfig, ModelConfig, OptimConfig, RunConfig,
                                 TrainConfig)

    s = preset.source
    return TrainConfig(
        data=DataConfig(dataset=s.dataset),
        model=ModelConfig(arch=s.arch, latent_dim=s.latent_dim),
        method=MethodConfig(name=s.method, beta=beta, warmup_steps=s.warmup_steps),
        optim=OptimConfig(lr=s.lr, batch_size=s.batch_size, grad_clip=s.grad_clip),
        run=RunConfig(steps=s.steps, seed=seed, device=preset.run.device,
                      precision=preset.run.precision, threads=threads,
                      log_every=preset.run.log_every, checkpoint_every=max(s.steps // 10, 1)),
    ).validate()


def find_real_targets(preset: Preset, data_root: str | None, say) -> list[tuple[str, str]]:
    """(name, root) of each real target whose files are under ``data_root`` (itself or a
    sub-folder named after the dataset); the others are skipped with the reason."""
    from disentkit.data.registry import get_dataset

    found = []
    if not data_root:
        return found
    for name in preset.real_targets:
        errors = []
        for root in (Path(data_root), Path(data_root) / name):
            try:
                get_dataset(name, root=str(root))
            except (FileNotFoundError, ValueError, OSError) as exc:
                errors.append(str(exc).splitlines()[0])
                continue
            found.append((name, str(root)))
            break
        else:
            say(f"skipping real target {name}: not found under {data_root} ({errors[0]})")
    return found


class JobClock:
    """Stage headers with the elapsed time and, once the source has been trained and evaluated,
    an estimate of the time left: seconds per training image and per evaluation, as measured in
    this job, times the training images and evaluations still to come. Once a transfer has run,
    the transfers still to come count its measured time instead (their evaluations may use
    fewer classifiers than the source's: see ``Preset.transfer_downstream_models``)."""

    def __init__(self, preset: Preset, n_runs: int, n_targets: int):
        s, f = preset.source, preset.finetune
        self.source_images = s.steps * s.batch_size * (1 if s.method == "beta-vae" else 2)
        finetune_images = 0 if f.mode == "none" else f.steps * f.batch_size
        evals_per_transfer = 1 if f.mode == "none" else 2
        # remaining work per stage, in order: (training images, evaluations, is a transfer)
        self.plan = []
        for _ in range(n_runs):
            self.plan += [(self.source_images, 0, False), (0, 2, False)]
            self.plan += [(finetune_images, evals_per_transfer, True)] * n_targets
        self.plan.append((0, 0, False))  # the report
        self.total = len(self.plan)
        self.t0 = time.perf_counter()
        self.spent = {"images": [0.0, 0], "evals": [0.0, 0]}
        self.transfer_seconds: list[float] = []  # transfers that ran (not skipped)

    def header(self, text: str) -> str:
        stage = self.total - len(self.plan) + 1
        left = self.left()  # this stage included
        if self.plan:
            self.plan.pop(0)
        el = int(time.perf_counter() - self.t0)
        out = f"[stage {stage}/{self.total}, {el // 60}:{el % 60:02d} elapsed"
        if left is not None:
            out += f", about {int(left) // 60}:{int(left) % 60:02d} left"
        return out + f"] {text}"

    def left(self) -> float | None:
        """Seconds the stages still planned will take (None until both rates are measured)."""
        (ti, ni), (te, ne) = self.spent["images"], self.spent["evals"]
        if not ni or not ne:
            return None
        per_transfer = (sum(self.transfer_seconds) / len(self.transfer_seconds)
                        if self.transfer_seconds else None)
        return sum(per_transfer if transfer and per_transfer is not None
                   else images * ti / ni + evals * te / ne
                   for images, evals, transfer in self.plan)

    @contextlib.contextmanager
    def measure(self, images: int = 0, evals: int = 0, transfer: bool = False):
        """Time the block: ``images`` trained, ``evals`` evaluations, or (``transfer``) one
        whole transfer that ran; a stage skipped as finished passes nothing and counts nothing."""
        start = time.perf_counter()
        yield
        took = time.perf_counter() - start
        if transfer:
            self.transfer_seconds.append(took)
            return
        key, amount = ("images", images) if images else ("evals", evals)
        if amount:
            self.spent[key][0] += took
            self.spent[key][1] += amount


def run_job(preset: Preset, out: str | Path, *, data_root: str | None = None,
            threads: int | None = None) -> "Report":  # noqa: F821
    """Run every stage of ``preset`` into ``out`` (skipping finished ones) and build the report.

    Stage headers, progress and notes are ``logging`` records (:mod:`disentkit.progress`)."""
    from disentkit.config import to_dict
    from disentkit.data.registry import get_dataset
    from disentkit.evaluate import evaluate_source, is_complete
    from disentkit.io import write_json
    from disentkit.report import build_report
    from disentkit.train import train
    from disentkit.train.checkpoint import checkpoint_path, load_checkpoint
    from disentkit.transfer import StageProgress, TransferConfig, transfer

    out = Path(out)
    t0 = time.perf_counter()
    progress = StageProgress()  # stage headers (JobClock's) and steps: disentkit.progress

    def say(text: str) -> None:
        log.info("%s", text)

    if threads is not None:  # the metrics' classifiers share the thread budget too
        preset = dataclasses.replace(preset, eval=dataclasses.replace(preset.eval, n_jobs=threads))
    from disentkit import runfolder

    runfolder.claim(out, "run", to_dict(preset), resuming=(out / "run.json").is_file())
    write_json(out / "run.json", {"preset": to_dict(preset), "data_root": data_root})
    targets = [(t, None) for t in preset.targets] + find_real_targets(preset, data_root, say)
    runs = [(b, s) for b in preset.source.betas for s in preset.source.seeds]
    clock = JobClock(preset, n_runs=len(runs), n_targets=len(targets))

    def header(text: str) -> None:
        progress.stage(clock.header(text))

    for beta, seed in runs:
        cfg = source_config(preset, beta, seed, threads)
        run_dir = out / "sources" / source_folder_name(preset.source, beta, seed)
        have = checkpoint_path(run_dir).is_file()
        done = have and load_checkpoint(run_dir).step >= cfg.run.steps
        header(f"train source {run_dir.name} ({cfg.run.steps} steps)" + (" (skipped: done)" if done else ""))
        with clock.measure(images=0 if done else clock.source_images, evals=0):
            if not done:
                train(cfg, run_dir, resume=have, progress=progress)
        header(f"evaluate source {run_dir.name} and its untrained floor")
        skip = is_complete(run_dir / "eval") and is_complete(run_dir / "floor")
        with clock.measure(images=0, evals=0 if skip else 2):
            evaluate_source(run_dir, preset.eval, dataset=get_dataset(preset.source.dataset))
        for target, root in targets:
            header(f"transfer {run_dir.name} -> {target}")
            tcfg = TransferConfig(
                source=str(run_dir), target=target, finetune=preset.finetune.mode,
                steps=preset.finetune.steps, beta=preset.finetune.beta, lr=preset.finetune.lr,
                batch_size=preset.finetune.batch_size, seed=seed,
                heldout_fraction=preset.finetune.heldout_fraction, data_root=root,
                device=preset.run.device, precision=preset.run.precision, threads=threads,
                log_every=preset.run.log_every, eval=preset.transfer_eval(),
            )
            folder = out / "transfers" / f"{run_dir.name}--{target}"
            last = folder / ("before" if preset.finetune.mode == "none" else "after")
            with clock.measure(transfer=not is_complete(last)):
                transfer(tcfg, folder, progress=progress)
    header("report")
    report = build_report(out)
    el = int(time.perf_counter() - t0)
    say(f"done in {el // 60}:{el % 60:02d}")
    return report


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="the main job: train a source, transfer it to the targets, write the report",
        description=__doc__.split("\n\n")[1].replace("``", ""),
    )
    p.add_argument("--preset", default="quick",
                   help="quick (<= 30 min on 2 CPU cores), paper (the paper's settings, "
                        "for a GPU) or a JSON file copied from one of them")
    p.add_argument("--out", default="disentkit-run", help="output folder")
    add_data_root_argument(p)
    p.add_argument("--smoke", action="store_true",
                   help="tiny sizes: the whole job in seconds (wins over the preset's sizes)")
    p.add_argument("--show-preset", action="store_true",
                   help="print the resolved preset as JSON (a file to copy and edit) and exit")
    p.add_argument("--device", default=None,
                   help="auto (CUDA when available, else CPU), cpu, cuda or cuda:N "
                        "(default: auto, or the run.device of a preset file that sets another)")
    add_threads_argument(p)
    add_json_argument(p, "the source scores, the findings' verdicts and the report's files")
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from disentkit.cli.report import findings_json
    from disentkit.config import to_dict
    from disentkit.report.collect import collect_results
    from disentkit.report.findings import findings
    from disentkit.report.html import summarise
    from disentkit.report.tables import source_groups, transfer_groups

    preset = load_preset(args.preset)
    if args.smoke:
        preset = smoke(preset)
    if args.device is not None:
        check_device(args.device)
        preset.run = dataclasses.replace(preset.run, device=args.device)
    if args.show_preset:
        print(json.dumps(to_dict(preset), indent=2))
        return 0
    apply_threads(args.threads)
    apply_cache_dir(args)
    log.info("disentkit run: preset %s%s -> %s", preset.name, " (smoke)" if args.smoke else "",
             args.out)
    report = run_job(preset, args.out, data_root=args.data_root, threads=args.threads)
    results = collect_results(args.out)
    scores = []
    for g in source_groups(results):
        for key in ("dci.disentanglement", "mig.score"):
            trained, floor = g.stat(key), g.stat(key, "floor")
            if trained and floor:
                print(f"{g.source}: {key} {trained.text()} (untrained {floor.text()})")
                scores.append({"source": g.source, "metric": key, "trained": trained.text(),
                               "untrained": floor.text()})
    found = findings(transfer_groups(results), source_groups(results))
    print(summarise(found))
    print(f"report: {report.html}")
    write_json_result(args.json, {"out": str(args.out), "report": str(report.html),
                                  "sources": scores, "findings": findings_json(found)})
    return 0
