"""Training logs: ``log.jsonl`` (one JSON object per logged step) and a terminal progress bar.

``log.jsonl`` is appended line by line; a run killed mid-write may leave a torn last line, which
:func:`read_log` skips and a resumed run drops together with every line past its checkpoint, so
the log of a resumed run reads like the log of a run never interrupted.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable

from disentkit.io import write_text

LOG_FILE = "log.jsonl"


def read_log(run_dir: str | Path) -> list[dict]:
    """The records of ``run_dir/log.jsonl`` (empty when absent), skipping torn lines."""
    path = Path(run_dir) / LOG_FILE
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
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
    """A tqdm bar with ETA on a terminal (``progress=None``), forced on/off with a bool, or a
    callable ``progress(step, steps)`` invoked after every step (for callers with their own UI)."""

    def __init__(self, progress: bool | None | Callable[[int, int], None], steps: int, start: int):
        self.callback = progress if callable(progress) else None
        show = sys.stderr.isatty() if progress is None else progress is True
        self.bar = None
        if show:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=steps, initial=start, unit="step", dynamic_ncols=True)

    def update(self, step: int, steps: int, record: dict | None = None) -> None:
        if self.bar is not None:
            self.bar.update(1)
            if record is not None:
                self.bar.set_postfix(loss=f"{record['loss']:.2f}", img_s=f"{record['images_per_s']:.0f}")
        if self.callback is not None:
            self.callback(step, steps)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
