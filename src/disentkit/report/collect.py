"""Find and read the evaluation results a report is built from.

Every evaluation (docs/architecture.md, "Contracts" run folder) writes one ``results.json`` whose ``kind`` says what
was evaluated: ``source`` (a trained source model on its own dataset), ``floor`` (an untrained
network of the same architecture, the floor that proves learning happened), ``before`` (a source
model on a target, zero-shot) or ``after`` (the same after fine-tuning on the target). A report is
a pure function of these files, so ``disentkit report DIR`` rebuilds it from disk for one run or
for a whole sweep of runs (Dapueto et al. 2024, §4: tables over 10 seeds).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from disentkit.errors import InputFileError, reading
from disentkit.evaluate import KINDS, SCHEMA  # the writer owns the schema; the report reads it


@dataclass
class Result:
    """One evaluation read from disk: the parsed ``results.json`` and where it lies."""

    path: Path
    data: dict[str, Any] = field(repr=False)

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def kind(self) -> str:
        return self.data["kind"]

    @property
    def metrics(self) -> dict[str, float]:
        return self.data.get("metrics", {})

    @property
    def dataset(self) -> str:
        return self.data["dataset"]["name"]

    @property
    def factor_names(self) -> list[str]:
        return list(self.data["dataset"].get("factor_names", []))

    @property
    def model(self) -> dict[str, Any]:
        return self.data.get("model", {})

    @property
    def transfer(self) -> dict[str, Any] | None:
        return self.data.get("transfer")

    def source_label(self) -> str:
        """The source model's identity without its seed: dataset, method, architecture, β."""
        m = self.model
        return f"{m.get('source_dataset', '?')} ({m.get('method', '?')}, {m.get('arch', '?')}, β={_num(m.get('beta'))})"

    def replicate(self) -> tuple:
        """What varies across repeats of one experiment: the source seed and the transfer seed."""
        t = self.transfer or {}
        return (self.model.get("seed"), t.get("seed"))

    def figure(self, name: str) -> Path | None:
        """Absolute path of a figure this evaluation listed, if it exists on disk."""
        rel = self.data.get("figures", {}).get(name)
        if not rel:
            return None
        path = self.folder / rel
        return path if path.is_file() else None

    def log_path(self) -> Path | None:
        rel = self.data.get("log")
        if not rel:
            return None
        path = (self.folder / rel).resolve()
        return path if path.is_file() else None


def _num(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def load_result(path: str | Path) -> Result:
    """Read one ``results.json``; raise :class:`~disentkit.errors.InputFileError` (a
    ``ValueError``) naming the file when it is not ours or is malformed."""
    path = Path(path)
    data = _read(path)
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise InputFileError(path, "not a disentkit results file",
                             f"a JSON object with schema {SCHEMA!r}")
    if data.get("kind") not in KINDS:
        raise InputFileError(path, f"kind must be one of {KINDS}, found {data.get('kind')!r}")
    for key in ("dataset", "metrics"):
        if not isinstance(data.get(key), dict):
            raise InputFileError(path, f"the {key!r} section is missing or not an object")
    if not isinstance(data["dataset"].get("name"), str):
        raise InputFileError(path, "dataset.name is missing", "the evaluated dataset's name")
    return Result(path=path, data=data)


def _read(path: Path) -> Any:
    with reading(path, "results", "a complete UTF-8 JSON file (truncated by a crash or a copy?)"):
        return json.loads(path.read_text(encoding="utf-8"))


class Results(list):
    """The results found, and ``skipped``: (file, reason) of the broken ones left out."""

    def __init__(self, items=(), skipped=()):
        super().__init__(items)
        self.skipped: list[tuple[Path, str]] = list(skipped)


def collect_results(root: str | Path, skip_broken: bool = False) -> Results:
    """Every disentkit ``results.json`` under ``root`` (recursively), in a stable order.

    A valid JSON file without our schema tag (another tool's ``results.json``) is skipped. A
    truncated or malformed file raises :class:`~disentkit.errors.InputFileError` naming it,
    because a silently missing row would bias a mean over seeds; with ``skip_broken`` it is
    left out and listed in ``Results.skipped`` instead, for the report to show.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no such results folder: {root}")
    out = Results()
    for path in sorted(root.rglob("results.json")):
        try:
            head = _read(path)
            if not isinstance(head, dict) or head.get("schema") != SCHEMA:
                continue  # valid JSON, but not ours (another tool's results.json)
            out.append(load_result(path))
        except InputFileError as exc:
            if not skip_broken:
                raise InputFileError(path, f"{str(exc).removeprefix(str(path) + ': ')}; pass "
                                     "--skip-broken to build the tables without it") from None
            out.skipped.append((path, str(exc).removeprefix(str(path) + ": ")))
    return out


def skipped_note(results: Results) -> str:
    """One sentence listing the files ``--skip-broken`` left out ('' when none)."""
    if not getattr(results, "skipped", None):
        return ""
    files = "; ".join(f"{p} ({why})" for p, why in results.skipped)
    return f" Left out by --skip-broken ({len(results.skipped)} broken results files): {files}."
