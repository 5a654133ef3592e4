"""Run-folder ownership and locking (issue 14, items 1, 4 and 7): ``--overwrite`` deletes only what
disentkit wrote, a foreign folder is refused untouched, a second writer is refused with the
holder's name and the lock of a killed process is taken over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from disentkit import runfolder
from disentkit.cli import main

TRAIN = ["train", "--dataset", "dsprites", "--smoke", "--steps", "1", "--batch-size", "2"]


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else b"<dir>")
            for p in sorted(root.rglob("*"))}


def test_foreign_config_json_is_never_overwritten(tmp_path, capsys):
    out = tmp_path / "P"
    (out / "src").mkdir(parents=True)
    (out / "config.json").write_text('{"editor": "vim"}')
    (out / "thesis.tex").write_text("x")
    before = _tree(tmp_path)
    assert main(TRAIN + ["--out", str(out), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "not a disentkit output folder" in err
    assert _tree(tmp_path) == before  # nothing deleted, nothing created


def test_out_dot_in_a_project_folder_is_refused(tmp_path, monkeypatch, capsys):
    (tmp_path / "setup.py").write_text("print()")
    monkeypatch.chdir(tmp_path)
    before = _tree(tmp_path)
    assert main(TRAIN + ["--out", ".", "--overwrite"]) == 2
    assert main(TRAIN + ["--out", "."]) == 2
    assert "refusing" in capsys.readouterr().err
    assert _tree(tmp_path) == before


def test_symlink_to_elsewhere_is_refused_and_unlinked_not_followed(tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "data.txt").write_text("precious")
    link = tmp_path / "link"
    link.symlink_to(elsewhere)
    assert main(TRAIN + ["--out", str(link), "--overwrite"]) == 2
    assert (elsewhere / "data.txt").read_text() == "precious"
    # a marked run holding a symlink named like one of our outputs: the link goes, not its target
    run = tmp_path / "run"
    assert main(TRAIN + ["--out", str(run)]) == 0
    (run / "results.json").symlink_to(elsewhere / "data.txt")
    (run / "notes.txt").write_text("mine")
    assert main(TRAIN + ["--out", str(run), "--overwrite"]) == 0
    assert (elsewhere / "data.txt").read_text() == "precious"
    assert not (run / "results.json").exists()
    assert (run / "notes.txt").read_text() == "mine"  # not ours: kept
    assert (run / "checkpoint").is_dir() and runfolder.read_marker(run)["kind"] == "train"


def test_overwrite_replaces_our_run(tmp_path):
    run = tmp_path / "run"
    assert main(TRAIN + ["--out", str(run)]) == 0
    marker = runfolder.read_marker(run)
    assert marker["kind"] == "train" and len(marker["config_hash"]) == 64
    assert main(TRAIN + ["--out", str(run)]) == 2  # exists, no flag
    assert main(TRAIN + ["--out", str(run), "--overwrite", "--seed", "5"]) == 0
    assert runfolder.read_marker(run)["config_hash"] != marker["config_hash"]


def test_resume_on_a_mistyped_folder_is_refused(tmp_path, capsys):
    assert main(TRAIN + ["--out", str(tmp_path / "typo"), "--resume"]) == 2
    assert "holds no run" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()


def test_clear_requires_marker(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(runfolder.ForeignFolderError, match="carries no"):
        runfolder.clear(tmp_path)
    assert (tmp_path / "config.json").exists()


_HOLDER = textwrap.dedent("""
    import sys, time
    from disentkit import runfolder
    with runfolder.hold(sys.argv[1]):
        print("held", flush=True)
        time.sleep(60)
""")


def _start_holder(folder: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(folder)], stdout=subprocess.PIPE,
                            env=env, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_writer_refused_naming_holder_and_stale_lock_taken_over(tmp_path):
    proc = _start_holder(tmp_path)
    try:
        with pytest.raises(runfolder.FolderLockedError, match=f"pid {proc.pid} on host"):
            with runfolder.hold(tmp_path):
                pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    # the holder died without cleaning up: its lock is taken over at once
    t0 = time.monotonic()
    with runfolder.hold(tmp_path):
        assert f"pid {os.getpid()}" in (tmp_path / runfolder.LOCK_FILE).read_text()
    assert time.monotonic() - t0 < 5


def test_two_train_processes_into_one_folder(tmp_path, capsys):
    proc = _start_holder(tmp_path / "run")
    try:
        assert main(TRAIN + ["--out", str(tmp_path / "run")]) == 2
        assert f"pid {proc.pid}" in capsys.readouterr().err
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert not (tmp_path / "run" / "config.json").exists()
