"""Nothing long is silent (issue 11, item 7): the one progress facility, and `train` piped."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from disentkit.config import TRAIN_SMOKE
from disentkit import progress
from disentkit.progress import Progress, format_seconds, line_interval, resolve_mode, track

SRC = Path(__file__).resolve().parents[1] / "src"
LINE = re.compile(r"(\d+)/(\d+) \w+ \(\d+%\), [\d.]+ (\w+/s|s/\w+), \d+:\d\d elapsed, ETA \d+:\d\d")


@pytest.fixture
def lines(caplog, monkeypatch):
    """Progress lines every update, captured from the ``disentkit.progress`` logger."""
    monkeypatch.setenv(progress.SECONDS_ENV, "0")
    caplog.set_level(logging.INFO, logger="disentkit")
    return lambda: [r.getMessage() for r in caplog.records if r.name == "disentkit.progress"]


def test_plain_lines_carry_rate_and_eta(lines):
    with Progress(4, "work", "items") as bar:
        for _ in range(4):
            time.sleep(0.01)
            bar.update(1, loss=1.5)
    got = lines()
    assert len(got) == 4  # three while running, the final one at close
    for text in got:
        assert text.startswith("work: ") and LINE.search(text), text
    assert "4/4 items (100%)" in got[-1] and "ETA 0:00" in got[-1] and "loss 1.5" in got[-1]
    assert "1/4 items (25%)" in got[0]


def test_lines_are_throttled_by_seconds_and_forced_by_every_n(lines):
    with Progress(100, "slow", "it", seconds=3600) as bar:
        for _ in range(99):
            bar.update()
    assert lines() == []  # 3600 s never passed: quick work stays quiet, even at the end
    with Progress(3, "late", "it", seconds=3600) as bar:
        bar._t0 -= 4000  # as if it had run for over an hour
        bar.update(3)
    assert len(lines()) == 1 and lines()[0].startswith("late: 3/3 it (100%)")
    before = len(lines())
    with Progress(100, "n", "it", seconds=3600, every_n=25) as bar:
        for _ in range(100):
            bar.update()
    got = lines()[before:]
    assert [g.split(" ")[1] for g in got] == ["25/100", "50/100", "75/100", "100/100"]


def test_track_counts_an_iterable_and_unknown_totals(lines):
    assert list(track(range(3), desc="r")) == [0, 1, 2]
    assert "r: 3/3 it (100%)" in lines()[-1]
    assert list(track(iter([1, 2]), desc="g")) == [1, 2]
    assert lines()[-1].startswith("g: 2 it,") and "ETA" not in lines()[-1]


def test_quiet_logger_means_no_progress(caplog, monkeypatch):
    monkeypatch.setenv(progress.SECONDS_ENV, "0")
    caplog.set_level(logging.WARNING, logger="disentkit")
    assert resolve_mode() == "off"
    with Progress(3, "q") as bar:
        bar.update(3)
    assert not [r for r in caplog.records if r.name == "disentkit.progress"]


def test_mode_follows_the_terminal(monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="disentkit")

    class Tty:
        def isatty(self):
            return True

        def write(self, s):
            return len(s)

        def flush(self):
            pass

    assert resolve_mode() == "lines"  # pytest's stderr is not a terminal
    monkeypatch.setattr(sys, "stderr", Tty())
    assert resolve_mode() == "bar"
    bar = Progress(2, "b")
    assert bar.bar is not None  # a tqdm bar
    bar.update(2)
    bar.close()
    with pytest.raises(ValueError, match="progress mode"):
        resolve_mode("loud")


def test_interval_from_the_environment(monkeypatch):
    monkeypatch.delenv(progress.SECONDS_ENV, raising=False)
    assert line_interval() == 10.0
    monkeypatch.setenv(progress.SECONDS_ENV, "2.5")
    assert line_interval() == 2.5
    monkeypatch.setenv(progress.SECONDS_ENV, "soon")
    with pytest.raises(ValueError, match="DISENTKIT_PROGRESS_SECONDS"):
        line_interval()
    assert format_seconds(61) == "1:01" and format_seconds(3725) == "1:02:05"


def test_slow_rates_read_as_seconds_per_unit():
    bar = Progress(10, "s", "batches", mode="off")
    bar.n, bar._t0 = 2, bar._t0 - 30.0  # 2 batches in 30 s
    assert "15 s/batch" in bar.line() and "ETA 2:00" in bar.line()
    bar = Progress(10, "f", "runs", mode="off")
    bar.n, bar._t0 = 5, bar._t0 - 1.0
    assert "5 runs/s" in bar.line()


def test_bootstrap_and_metric_suite_report_progress(lines):
    from disentkit.metrics import score

    rng = np.random.default_rng(0)
    factors = np.stack([rng.integers(0, 3, 120), rng.integers(0, 2, 120)], axis=1)
    codes = factors + 0.1 * rng.normal(size=factors.shape)
    score(codes, factors, metrics="mig,modularity", bootstrap=3)
    got = lines()
    assert any(g.startswith("metrics: 2/2 metrics") for g in got)
    assert any(g.startswith("bootstrap: 3/3 steps") for g in got)  # one step per resample
    from disentkit.metrics.bootstrap import bootstrap_intervals

    bootstrap_intervals(lambda c, f, b: {"m": float(c.mean())}, codes, factors, n_train=80,
                        num_resamples=4)  # the refit-everything definition's loop
    assert any(g.startswith("bootstrap: 4/4 resamples") for g in lines())
    assert not any(g.startswith("metrics: ") and "/2 metrics" not in g for g in got)


def test_encoding_reports_progress(lines, toy_dataset_cls):
    import torch

    from disentkit.evaluate import encode

    class Encoder(torch.nn.Module):
        def encode(self, x):
            mu = x.flatten(1)[:, :3]
            return mu, torch.zeros_like(mu)

    encode(Encoder(), toy_dataset_cls(), 40, sampling="uniform", batch_size=10)
    assert any(g.startswith("encode: 4/4 batches") for g in lines())


def test_train_piped_shows_progress_before_it_ends(tmp_path):
    """`disentkit train --smoke` with stdout/stderr piped (as under Slurm): progress lines with
    rate and ETA arrive while the process is still running."""
    env = {**os.environ, "PYTHONPATH": str(SRC), progress.SECONDS_ENV: "0", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "disentkit", "train", "--smoke", "--dataset", "dsprites",
           "--out", str(tmp_path / "run"), "--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=tmp_path)
    seen_alive = None
    try:
        for line in proc.stderr:  # read incrementally, as a log collector would
            if LINE.search(line) and line.startswith("train: "):
                seen_alive = proc.poll() is None
                break
        rest_err = proc.stderr.read()
        out = proc.stdout.read()
    finally:
        proc.wait(timeout=300)
    assert proc.returncode == 0, rest_err
    assert seen_alive is True, "no progress line arrived before the process ended"
    assert "run folder" in out and '"optim"' not in out  # the config only with -v


def test_forced_lines_show_without_logging_configured(caplog, capsys, monkeypatch):
    monkeypatch.setenv(progress.SECONDS_ENV, "0")
    caplog.set_level(logging.WARNING, logger="disentkit")  # as in a script without logging set up
    with Progress(2, "forced", "it", mode="lines") as bar:
        bar.update(2)
    assert "forced: 2/2 it (100%)" in capsys.readouterr().err


def test_a_sweep_reports_progress_over_its_runs(lines, tmp_path):
    from test_sweep import _plan, _study, fake_dispatch

    from disentkit.experiment.stages import Runtime
    from disentkit.sweep.local import run_local

    study = _plan(_study(tmp_path), tmp_path / "out")
    run_local(study, workers=1, runtime=Runtime(threads=1), dispatch=fake_dispatch)
    got = [g for g in lines() if g.startswith(f"sweep {study.name}: ")]
    n = len(study.runs)
    assert [g.split(" ")[2] for g in got] == [f"{k}/{n}" for k in range(1, n + 1)]
    assert all("runs/s" in g or "s/run" in g for g in got) and "ETA 0:00" in got[-1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pseudo-terminal test (Linux)")
def test_train_on_a_terminal_shows_a_bar(tmp_path):
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))  # 100 columns
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "disentkit", "train", "--smoke", "--dataset",
                             "dsprites", "--out", str(tmp_path / "run"), "--threads", "1"],
                            stdout=slave, stderr=slave, env=env, cwd=tmp_path)
    os.close(slave)
    raw = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        raw += chunk
    os.close(master)
    assert proc.wait(timeout=300) == 0
    text = raw.decode("utf-8", "replace")
    steps = TRAIN_SMOKE["run.steps"]
    assert "\rtrain: " in text and f"/{steps} [" in text and "steps/s" in text  # a tqdm bar (redrawn)
    assert not LINE.search(text)  # and no plain progress lines
