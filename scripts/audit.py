"""Adversarial audit through the CLI (issue 14): bad input, foreign folders and bad options fed to
every command, each trial in a fresh folder, in a child process, under a timeout.

A trial is *good* when the command exits as expected (2 for a fault, with one message naming the
file and no traceback; 0 where the input is valid), and no file outside its fresh output folder
was created, changed or deleted. *Weak*: the right exit code, but the file is not named or
something was left behind. *Bad*: a traceback, a wrong exit code, a hang, or a user file lost.

    PYTHONPATH=src python scripts/audit.py --jobs 2            # about 170 trials
    PYTHONPATH=src python scripts/audit.py --only csv --list   # names of the trials

Prints one line per weak or bad trial, then ``good N  weak N  bad N``; exits 1 when any is bad.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from faults import generators as G  # noqa: E402

TIMEOUT_S = 180
TRAIN = ["train", "--steps", "1", "--batch-size", "2", "--threads", "1", "--device", "cpu"]


@dataclass
class Trial:
    name: str
    #: builds the inputs in the folder; returns (argv with {OUT}, file the message must name, exit)
    setup: Callable[[Path], tuple[list[str], str | None, int]]


def _source_run(d: Path) -> Path:
    """A one-step source run, made through the CLI like a user's."""
    run = d / "src"
    subprocess.run([sys.executable, "-m", "disentkit", "train", "--dataset", "dsprites",
                    "--smoke", "--steps", "1", "--out", str(run)], check=True,
                   capture_output=True, timeout=TIMEOUT_S)
    return run


def trials() -> list[Trial]:
    out: list[Trial] = []
    add = lambda name, f: out.append(Trial(name, f))  # noqa: E731
    readers = {
        "show": lambda ds, root: ["datasets", "show", ds, "--root", str(root), "--out", "{OUT}/s.png"],
        "verify": lambda ds, root: ["datasets", "verify", ds, "--root", str(root)],
        "train": lambda ds, root: TRAIN + ["--dataset", ds, "--root", str(root), "--out", "{OUT}/r"],
    }
    for cmd, argv in readers.items():
        for fault in ("truncated", "random"):
            add(f"png/{fault}/{cmd}", lambda d, a=argv, f=fault: (
                a("folder", G.folder_dataset(d / "ds", bad=f)), str(d / "ds" / "3.png"), 2))
        for fault, text in G.CSV_FAULTS.items():
            add(f"csv/{fault}/{cmd}", lambda d, a=argv, t=text: (
                a("folder", G.folder_dataset(d / "ds", csv_text=t)), str(d / "ds" / "factors.csv"), 2))
        for fault, make in G.NPZ_FAULTS.items():
            add(f"npz/{fault}/{cmd}", lambda d, a=argv, m=make: (
                a("dsprites", m(d / "d.npz")), str(d / "d.npz"), 2))
        for fault, make in G.H5_FAULTS.items():
            add(f"h5/{fault}/{cmd}", lambda d, a=argv, m=make: (
                a("shapes3d", m(d / "3dshapes.h5")), str(d / "3dshapes.h5"), 2))
        for ds in ("dsprites", "shapes3d", "mpi3d-toy", "coil100", "rgbd-objects", "folder"):
            add(f"root-missing/{ds}/{cmd}", lambda d, a=argv, n=ds: (a(n, d / "nope"), "nope", 2))
            add(f"root-empty/{ds}/{cmd}", lambda d, a=argv, n=ds: (
                (d / "empty").mkdir() or a(n, d / "empty"), "empty", 2))
            add(f"root-file/{ds}/{cmd}", lambda d, a=argv, n=ds: (
                a(n, G.write(d / "file.bin", b"x" * 64)), "file.bin", 2))
    for fault, make in G.NPZ_FAULTS.items():
        add(f"representations/{fault}/metrics", lambda d, m=make: _repr(d, m, "metrics"))
        add(f"representations/{fault}/omes", lambda d, m=make: _repr(d, m, "omes"))
    for fault in ("truncated", "not-utf8"):
        for cmd in ("report", "aggregate"):
            add(f"results/{fault}/{cmd}", lambda d, f=fault, c=cmd: _results(d, f, c))
    for argv in (["run", "--preset", "nope", "--out", "{OUT}/r"],
                 ["report", "missing-folder"], ["aggregate", "missing-folder"],
                 ["datasets", "show", "dsprites", "--out", "."],
                 ["datasets", "verify", "nope", "--root", "."],
                 ["encode", "missing-run", "--dataset", "dsprites", "--out", "{OUT}/e"],
                 ["omes", "missing-folder"]):
        add("option/" + "_".join(argv[:2]), lambda d, a=argv: (a, None, 2))
    add("npz/0-255/train", lambda d: (readers["train"]("dsprites", G.dsprites_npz(d / "d.npz", scale=255)),
                                      str(d / "d.npz"), 2))
    add("csv/bom/train", lambda d: (readers["train"]("folder", G.folder_dataset(
        d / "ds", csv_text="\ufeffimage,a,b\n0.png,0,0\n1.png,0,1\n2.png,1,0\n3.png,1,1\n")), None, 0))
    for fault, data in G.JSON_FAULTS.items():
        add(f"json/{fault}/--config", lambda d, b=data: (
            TRAIN + ["--dataset", "dsprites", "--config", str(G.write(d / "c.json", b)),
                     "--out", "{OUT}/r"], str(d / "c.json"), 2))
    for fault, data in G.YAML_FAULTS.items():
        for cmd in ("plan", "run"):
            add(f"yaml/{fault}/sweep-{cmd}", lambda d, b=data, c=cmd: (
                ["sweep", c, str(G.write(d / "s.yaml", b)), "--out", "{OUT}/sw"], str(d / "s.yaml"), 2))
    for fault in G.SAFETENSORS_FAULTS:
        add(f"safetensors/{fault}/encode", lambda d, f=fault: _ckpt(d, f, "encode"))
        add(f"safetensors/{fault}/transfer", lambda d, f=fault: _ckpt(d, f, "transfer"))
        add(f"safetensors/{fault}/resume", lambda d, f=fault: _ckpt(d, f, "resume"))
    add("overwrite/foreign-config", _foreign_config)
    add("overwrite/out-dot", lambda d: ((d / "setup.py").write_text("x") and None) or (
        ["train", "--dataset", "dsprites", "--smoke", "--out", ".", "--overwrite"], None, 2))
    add("overwrite/symlink", _symlink)
    add("resume/mistyped", lambda d: (["train", "--dataset", "dsprites", "--smoke", "--resume",
                                       "--out", "{OUT}/typo"], "typo", 2))
    for flag, value in (("--steps", "-1"), ("--batch-size", "0"), ("--lr", "nan"), ("--beta", "-1"),
                        ("--k", "0"), ("--seed", "x"), ("--dataset", "nope"), ("--method", "nope")):
        add(f"option/train{flag}={value}", lambda d, f=flag, v=value: (
            ["train", "--dataset", "dsprites", "--smoke", f, v, "--out", "{OUT}/r"], None, 2))
    for flag, value in (("--beta", "nan"), ("--n", "0"), ("--lr", "0"), ("--heldout-fraction", "1"),
                        ("--target", "nope"), ("--finetune-steps", "-3")):
        add(f"option/transfer{flag}={value}", lambda d, f=flag, v=value: (
            ["transfer", "--source", str(_source_run(d)), "--target", "noisy-dsprites",
             "--finetune-steps", "2", "--n", "32", "--batch-size", "4", "--metrics", "mig",
             f, v, "--out", "{OUT}/t"], None, 2))  # not --smoke: it would override the flag
    return out


def _ckpt(d: Path, fault: str, cmd: str):
    run = _source_run(d)
    bad = G.corrupt_checkpoint(run, fault)
    argv = {"encode": ["encode", str(run), "--dataset", "dsprites", "--n", "8", "--out", "{OUT}/e"],
            "transfer": ["transfer", "--source", str(run), "--target", "noisy-dsprites", "--smoke",
                         "--out", "{OUT}/t"],
            "resume": ["train", "--resume", "--out", str(run), "--steps", "3"]}[cmd]
    return argv, str(bad), 2


def _repr(d: Path, make, cmd: str):
    bad = make(d / "in" / "representations.npz")
    G.write(d / "in" / "classes.csv", "a,b\n0,1\n1,0\n")
    if cmd == "omes":
        return ["omes", str(d / "in"), "--out", "{OUT}"], str(bad), 2
    return ["metrics", "--representations", str(bad), "--classes", str(d / "in" / "classes.csv")], \
        str(bad), 2


def _results(d: Path, fault: str, cmd: str):
    bad = G.write(d / "runs" / "a" / "results.json", '{"schema": "disentkit.results/1", "kind": "so'
                  if fault == "truncated" else b'{"schema": "\xff"}')
    return [cmd, str(d / "runs")], str(bad), 2


def _foreign_config(d: Path):
    p = d / "P"
    (p / "src").mkdir(parents=True)
    (p / "config.json").write_text('{"editor": "vim"}')
    (p / "thesis.tex").write_text("x")
    return ["train", "--dataset", "dsprites", "--smoke", "--out", str(p), "--overwrite"], str(p), 2


def _symlink(d: Path):
    (d / "elsewhere").mkdir()
    (d / "elsewhere" / "data.txt").write_text("precious")
    (d / "link").symlink_to(d / "elsewhere")
    return ["train", "--dataset", "dsprites", "--smoke", "--out", str(d / "link"), "--overwrite"], \
        "link", 2


def run_trial(trial: Trial) -> tuple[str, str, str]:
    """(verdict, name, why)."""
    with tempfile.TemporaryDirectory(prefix="audit-") as tmp:
        d = Path(tmp)
        out, cache = d / "fresh-out", d / "cache"
        try:
            argv, named, expect = trial.setup(d)
        except Exception as exc:  # noqa: BLE001 - the audit's own failure, reported
            return "bad", trial.name, f"setup failed: {exc!r}"
        before = G.snapshot(d, exclude=(out, cache))
        argv = [a.replace("{OUT}", str(out)) for a in argv]
        env = {**os.environ, "DISENTKIT_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}
        try:
            proc = subprocess.run([sys.executable, "-m", "disentkit", *argv], cwd=d, env=env,
                                  capture_output=True, text=True, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return "bad", trial.name, f"no answer within {TIMEOUT_S} s (a hang)"
        after = G.snapshot(d, exclude=(out, cache))
        text = proc.stderr + proc.stdout
        lost = sorted(set(before) - set(after))
        changed = sorted(k for k in before if k in after and before[k] != after[k])
        if lost or "Traceback" in proc.stderr or proc.returncode != expect:
            why = (f"lost {lost[:3]}" if lost else f"exit {proc.returncode} (expected {expect}): "
                   + (proc.stderr.strip().splitlines() or [""])[-1][:200])
            return "bad", trial.name, why
        if named and named not in text:
            return "weak", trial.name, f"message does not name {named}: {text.strip()[:200]}"
        if changed or set(after) - set(before):
            return "weak", trial.name, f"changed/left {(changed or sorted(set(after) - set(before)))[:3]}"
        return "good", trial.name, ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=1, help="trials run at once")
    ap.add_argument("--only", default="", help="run trials whose name contains this")
    ap.add_argument("--list", action="store_true", help="print the trial names and stop")
    args = ap.parse_args()
    chosen = [t for t in trials() if args.only in t.name]
    if args.list:
        print("\n".join(t.name for t in chosen))
        print(f"{len(chosen)} trials")
        return 0
    counts = {"good": 0, "weak": 0, "bad": 0}
    with cf.ThreadPoolExecutor(max(1, args.jobs)) as pool:
        for verdict, name, why in pool.map(run_trial, chosen):
            counts[verdict] += 1
            if verdict != "good":
                print(f"{verdict:<5} {name}: {why}", flush=True)
    print(f"trials {len(chosen)}  good {counts['good']}  weak {counts['weak']}  bad {counts['bad']}")
    return 1 if counts["bad"] else 0


if __name__ == "__main__":
    sys.exit(main())
