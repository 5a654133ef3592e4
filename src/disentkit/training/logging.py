"""Training logs: ``log.jsonl`` (one JSON object per logged step), optional TensorBoard events and
the training progress (through :mod:`disentkit.progress`: a bar on a terminal, plain lines with
rate and ETA when piped or under Slurm).

``log.jsonl`` is appended line by line; a run killed mid-write may leave a torn last line, which
:func:`read_log` skips and a resumed run drops together with every line past its checkpoint, so
the log of a resumed run reads like the log of a run never interrupted.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from disentkit.errors import DisentkitError
from disentkit.io import write_text
from disentkit.progress import Progress as _Facility

LOG_FILE = "log.jsonl"
#: TensorBoard event folder inside a run folder (``run.logger = "tensorboard"``)
TENSORBOARD_DIR = "tensorboard"
#: scalars of a log record written to TensorBoard (tag ``train/<key>``)
SCALARS = ("loss", "reconstruction", "kl", "beta", "images_per_s")


def read_log(run_dir: str | Path) -> list[dict]:
    """The records of ``run_dir/log.jsonl`` (empty when absent), skipping torn lines."""
    path = Path(run_dir) / LOG_FILE
    if not path.is_file():
        return []
    records, bad = [], 0
    # bytes that are not UTF-8 (a torn write, a disk error) make their line unreadable, not the log
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            bad += 1
    if bad > 1 or bad and not records:  # one torn last line is what a kill leaves; more is damage
        logging.getLogger(__name__).warning("%s: skipped %d unreadable line(s)", path, bad)
    return records


class RunLog:
    """Appends records to ``log.jsonl``; on construction keeps only records up to ``keep_until``."""

    def __init__(self, run_dir: str | Path, keep_until: int = 0):
        self.path = Path(run_dir) / LOG_FILE
        kept = [r for r in read_log(run_dir) if r.get("step", 0) <= keep_until]
        write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def write(self, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


class Progress:
    """Training progress: ``progress=None`` → the facility's automatic choice (a bar on a
    terminal, plain lines when piped, nothing under ``-q``); ``True`` / ``False`` force it on /
    off; a callable ``progress(step, steps)`` is invoked after every step instead (a caller that
    reports itself, e.g. :class:`disentkit.transfers.StageProgress`)."""

    def __init__(self, progress: bool | None | Callable[[int, int], None], steps: int, start: int,
                 desc: str = "train"):
        self.callback = progress if callable(progress) else None
        self.bar = None
        if self.callback is None and progress is not False:
            mode = "auto" if progress is None else _forced_mode()
            self.bar = _Facility(steps, desc, "steps", initial=start, mode=mode)

    def update(self, step: int, steps: int, record: dict | None = None) -> None:
        if self.bar is not None:
            postfix = {}
            if record is not None:
                postfix = {"loss": round(float(record["loss"]), 2),
                           "img/s": round(float(record["images_per_s"]))}
            self.bar.update(step - self.bar.n, **postfix)
        if self.callback is not None:
            self.callback(step, steps)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _forced_mode() -> str:
    isatty = getattr(sys.stderr, "isatty", None)
    return "bar" if isatty is not None and isatty() else "lines"


class MissingExtraError(DisentkitError, ImportError):
    """An optional dependency is missing; the message names the extra that installs it."""


def require_tensorboard():
    """``torch.utils.tensorboard.SummaryWriter``, imported lazily: TensorBoard is the optional
    extra ``disentkit[tensorboard]``; a missing package raises :class:`MissingExtraError`."""
    try:
        import tensorboard  # noqa: F401  (SummaryWriter needs it; fail with the extra's name)
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise MissingExtraError(
            "run.logger = 'tensorboard' (--logger tensorboard) needs the tensorboard package: "
            "pip install 'disentkit[tensorboard]'"
        ) from exc
    return SummaryWriter


def tensorboard_writer(run_dir: str | Path):
    """A ``SummaryWriter`` on ``run_dir/tensorboard``."""
    return require_tensorboard()(log_dir=str(Path(run_dir) / TENSORBOARD_DIR))


class TensorBoardLog:
    """Mirrors the training log's scalars (tags ``train/loss``, ``train/kl`` ...) into TensorBoard
    events and, at the end, adds one image: inputs above their reconstructions, then one latent
    traversal row per dimension (what the report shows, visible while comparing runs live)."""

    def __init__(self, run_dir: str | Path):
        self.writer = tensorboard_writer(run_dir)

    def write(self, record: dict) -> None:
        step = int(record.get("step", 0))
        for key in SCALARS:
            if key in record:
                self.writer.add_scalar(f"train/{key}", float(record[key]), step)

    def add_final_image(self, model, dataset, step: int, device="cpu", n: int = 8,
                        seed: int = 0) -> None:
        self.writer.add_image("reconstructions_and_traversals",
                              final_image(model, dataset, device, n, seed), step,
                              dataformats="HWC")

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


def final_image(model, dataset, device="cpu", n: int = 8, seed: int = 0) -> np.ndarray:
    """An RGB array [H, W, 3] in [0, 1]: ``n`` inputs, their reconstructions, and a traversal of
    each latent dimension (−2 … 2 around the first input's posterior mean)."""
    import torch

    from disentkit.viz.figures import montage

    rng = np.random.default_rng(seed)
    x = dataset.images(dataset.sample_factors(n, rng), rng)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            xt = torch.as_tensor(x, dtype=torch.float32, device=device)
            mu, _ = model.encode(xt)
            recon = torch.sigmoid(model.decode(mu)).float().cpu().numpy()
            values = torch.linspace(-2.0, 2.0, n, device=device)
            rows = []
            for d in range(mu.shape[1]):
                z = mu[:1].float().repeat(n, 1)
                z[:, d] = mu[0, d].float() + values
                rows.append(torch.sigmoid(model.decode(z.to(mu.dtype))).float().cpu().numpy())
    finally:
        model.train(was_training)
    return montage([np.asarray(x, dtype=np.float32), recon] + rows)
