"""What produced the numbers: device, precision actually used, versions, wall time per stage and
the preset's own text (issue 13, point 6; docs/architecture.md §6 "every evaluation records what
it did").

Read from files the runs already write, never from the current machine: the checkpoint's
metadata (the *resolved* device and precision of each training), each ``log.jsonl`` (training
wall time, ``elapsed_s``), each ``results.json`` (evaluation time, versions, backend) and the
job's ``run.json`` (the preset). "auto" precision picks bf16 on CPUs and GPUs with bf16 units,
so the report says which arithmetic each training used, beside the preset's text, and warns when
they disagree.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from disentkit.report.collect import Result
from disentkit.report.health import read_log

CHECKPOINT = Path("checkpoint") / "checkpoint.safetensors"
HEADER_LIMIT = 100 * 2**20  # a safetensors JSON header is a few kB; refuse absurd lengths


def checkpoint_info(run_dir: Path) -> dict:
    """The ``info`` metadata of a run's checkpoint (device, precision, arch…); {} when absent.

    A safetensors file starts with an 8-byte little-endian header length and a JSON header whose
    ``__metadata__`` holds disentkit's strings; reading it needs neither torch nor the tensors.
    """
    path = Path(run_dir) / CHECKPOINT
    try:
        with open(path, "rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            if size > HEADER_LIMIT:
                return {}
            header = json.loads(fh.read(size))
        meta = header.get("__metadata__", {})
        info = json.loads(meta.get("info", "{}"))
        info["step"] = int(meta["step"]) if "step" in meta else None
        return info
    except (OSError, ValueError, struct.error, KeyError, TypeError):
        return {}


def training_seconds(records: list[dict]) -> float | None:
    """Wall seconds of a training from its log: ``elapsed_s`` restarts at each resume, so the
    maximum of every segment is summed. None when the log predates ``elapsed_s``."""
    total, seg_max, last, seen = 0.0, 0.0, None, False
    for rec in records:
        e = rec.get("elapsed_s")
        if not isinstance(e, (int, float)):
            continue
        seen = True
        if last is not None and e < last:  # a resumed segment
            total += seg_max
            seg_max = 0.0
        seg_max, last = max(seg_max, float(e)), float(e)
    return total + seg_max if seen else None


def _seconds(v) -> str:
    if v is None:
        return "not recorded"
    v = float(v)
    return f"{v:.1f} s" if v < 120 else f"{int(v) // 60}:{int(v) % 60:02d} min"


def _rel(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)


def _label(r: Result) -> str:
    seed = r.model.get("seed")
    if r.kind in ("source", "floor"):
        return f"evaluate {r.kind}: {r.source_label()} seed {seed} on {r.dataset}"
    t = r.transfer or {}
    return (f"evaluate {r.kind} fine-tuning: {r.model.get('source_dataset', '?')} seed {seed} → "
            f"{r.dataset} (transfer seed {t.get('seed')})")


def stage_rows(results: list[Result], root: Path) -> list[dict]:
    """One row per training (source or fine-tuning) and per evaluation: what ran, on which
    device, in which precision, for how long."""
    rows, trainings = [], {}
    for r in results:
        log = r.log_path()
        if log is not None and r.kind in ("source", "after"):
            trainings.setdefault(log.parent, r)
    for run_dir, r in sorted(trainings.items(), key=lambda kv: str(kv[0])):
        info = checkpoint_info(run_dir)
        what = "train source" if r.kind == "source" else f"fine-tune on {r.dataset}"
        rows.append({"stage": f"{what}: {r.model.get('source_dataset', '?')} seed "
                              f"{r.model.get('seed')}", "folder": _rel(run_dir, root),
                     "device": info.get("device", "not recorded"),
                     "precision": info.get("precision", "not recorded"),
                     "wall time": _seconds(training_seconds(read_log(run_dir / "log.jsonl")))})
    for r in results:
        meta = r.data.get("meta", {})
        rows.append({"stage": _label(r), "folder": _rel(r.folder, root),
                     "device": meta.get("device", "cpu"),
                     "precision": meta.get("precision", "fp32"),
                     "wall time": _seconds(meta.get("elapsed_s"))})
    return rows


def preset_info(root: Path) -> dict | None:
    """The preset of the job in ``root`` (``run.json``): name, description, run.precision."""
    path = Path(root) / "run.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    preset = data.get("preset") if isinstance(data, dict) else None
    if not isinstance(preset, dict):
        return None
    run = preset.get("run") if isinstance(preset.get("run"), dict) else {}
    return {"name": str(preset.get("name", "?")), "description": str(preset.get("description", "")),
            "precision": run.get("precision")}


def provenance(results: list[Result], root: Path) -> tuple[list[str], list[dict]]:
    """(lines, stage rows) for the report's provenance section."""
    rows = stage_rows(results, root)
    backends = sorted({str(r.data.get("meta", {}).get("backend")) for r in results})
    versions = sorted({json.dumps(r.data.get("meta", {}).get("versions", {}), sort_keys=True)
                       for r in results})
    lines = [f"{len(results)} evaluations read from results.json files; they encode on the CPU "
             "in fp32 unless their results.json records another device or precision.",
             f"Metric backend(s): {', '.join(backends)}."]
    for v in versions:
        pairs = ", ".join(f"{k} {x}" for k, x in sorted(json.loads(v).items()))
        lines.append(f"Library versions{' (one of several sets)' if len(versions) > 1 else ''}: "
                     f"{pairs or 'not recorded'}.")
    trained = [r for r in rows if r["stage"].startswith(("train", "fine-tune"))]
    used = sorted({r["precision"] for r in trained})
    devices = sorted({r["device"] for r in trained})
    if trained:
        lines.append(f"Training: device {', '.join(devices)}; precision actually used "
                     f"{', '.join(used)} (per stage below).")
    preset = preset_info(root)
    if preset is None:
        lines.append("Preset: no run.json here (not a `disentkit run` folder), so no preset text.")
    else:
        lines.append(f"Preset {preset['name']} (precision setting {preset['precision']!r}): "
                     f"{preset['description']}")
        if "bf16" in used and preset["precision"] != "bf16":
            lines.append(f"WARNING: precision {preset['precision']!r} resolved to bf16 for at "
                         "least "
                         "one training on this machine, whatever the preset's text says; bf16 "
                         "parity with fp32 is not measured (bench/bf16_parity.py).")
    return lines, rows
