"""The one progress facility: a tqdm bar on a terminal, plain lines with rate and ETA elsewhere.

Everything long in disentkit (training, encoding, metric suites and their bootstrap loops,
transfer, sweeps, report building) reports through :class:`Progress` or :func:`track`, so every
long stage looks the same and none is silent:

* stderr is a terminal → a tqdm bar (rate and ETA included);
* stderr is piped, redirected to a file or captured by Slurm → one plain line at most every
  ``DISENTKIT_PROGRESS_SECONDS`` seconds (default 10; 0 = every update) and at the end, e.g.
  ``train: 1200/3000 steps (40%), 12.3 steps/s, 1:03 elapsed, ETA 2:26``;
* the ``disentkit`` logger does not pass INFO (``disentkit -q``, or a library user who has not
  configured logging) → nothing, unless the caller forces a mode (``mode="lines"``/``"bar"``,
  e.g. ``train(..., progress=True)``). Library users see progress with
  ``logging.basicConfig(level=logging.INFO)``.

Plain lines and stage headers are ``logging`` records (logger ``disentkit.progress``, level INFO):
library code logs, the CLI decides where the records go.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")

log = logging.getLogger("disentkit.progress")

#: environment variable: seconds between plain progress lines (tests set 0)
SECONDS_ENV = "DISENTKIT_PROGRESS_SECONDS"
DEFAULT_SECONDS = 10.0
MODES = ("auto", "bar", "lines", "off")


def line_interval() -> float:
    """Seconds between plain lines: ``$DISENTKIT_PROGRESS_SECONDS`` when set, else 10."""
    raw = os.environ.get(SECONDS_ENV)
    if raw is None or raw.strip() == "":
        return DEFAULT_SECONDS
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"${SECONDS_ENV} must be a number of seconds, found {raw!r}") from None
    if value < 0:
        raise ValueError(f"${SECONDS_ENV} must be >= 0, found {raw!r}")
    return value


def format_seconds(seconds: float) -> str:
    """``H:MM:SS`` above an hour, else ``M:SS``."""
    s = max(int(round(seconds)), 0)
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def resolve_mode(mode: str = "auto") -> str:
    """``bar``, ``lines`` or ``off`` for ``mode`` (``auto`` looks at the logger and stderr)."""
    if mode not in MODES:
        raise ValueError(f"progress mode must be one of {MODES}, found {mode!r}")
    if mode != "auto":
        return mode
    if not log.isEnabledFor(logging.INFO):
        return "off"
    isatty = getattr(sys.stderr, "isatty", None)
    return "bar" if isatty is not None and isatty() else "lines"


def stage(text: str) -> None:
    """One stage header (``[stage 2/5, 0:41 elapsed] evaluate ...``): an INFO record."""
    log.info("%s", text)


class Progress:
    """Progress of ``total`` units of work (``None``: unknown), shown as described above.

    ``update(n, **postfix)`` after each unit (``postfix``: e.g. ``loss=1.23``, shown beside the
    rate); ``close()`` (or leaving the ``with`` block) prints the final line when any line was
    printed before or the work lasted the interval (quick work stays quiet). ``every_n`` adds a
    plain line every N units whatever the time; ``seconds`` overrides the environment.
    """

    def __init__(self, total: int | None, desc: str = "", unit: str = "it", *, initial: int = 0,
                 mode: str = "auto", seconds: float | None = None, every_n: int | None = None):
        self.total, self.desc, self.unit = total, desc, unit
        self.n = self._start = int(initial)
        self.mode = resolve_mode(mode)
        self.forced = mode != "auto"  # asked for explicitly: shown even if logging is not set up
        self.seconds = line_interval() if seconds is None else float(seconds)
        self.every_n = every_n
        self.postfix: dict = {}
        self._t0 = self._last = time.perf_counter()
        self._last_n = self.n
        self._closed = False
        self._emitted = 0
        self.bar = None
        if self.mode == "bar":
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc or None, unit=unit,
                            dynamic_ncols=True, leave=False)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1, **postfix) -> None:
        self.n += n
        if postfix:
            self.postfix.update(postfix)
        if self.bar is not None:
            self.bar.update(n)
            if postfix:
                self.bar.set_postfix({k: _fmt(v) for k, v in self.postfix.items()}, refresh=False)
            return
        if self.mode != "lines":
            return
        now = time.perf_counter()
        due = now - self._last >= self.seconds
        if self.every_n and self.n - self._last_n >= self.every_n:
            due = True
        if due and not (self.total is not None and self.n >= self.total):
            self._emit(now)

    def line(self, now: float | None = None) -> str:
        """The plain progress line as of now: done/total, percent, rate, elapsed and ETA."""
        now = time.perf_counter() if now is None else now
        elapsed = max(now - self._t0, 1e-9)
        done = self.n - self._start
        rate = done / elapsed
        head = f"{self.desc}: " if self.desc else ""
        if self.total:
            text = f"{head}{self.n}/{self.total} {self.unit} ({100.0 * self.n / self.total:.0f}%)"
        else:
            text = f"{head}{self.n} {self.unit}"
        text += f", {_rate(rate, self.unit)}, {format_seconds(elapsed)} elapsed"
        if self.total:
            left = (self.total - self.n) / rate if rate > 0 else None
            text += f", ETA {format_seconds(left)}" if left is not None else ", ETA ?"
        if self.postfix:
            text += ", " + ", ".join(f"{k} {_fmt(v)}" for k, v in self.postfix.items())
        return text

    def _emit(self, now: float) -> None:
        self._emitted += 1
        if log.isEnabledFor(logging.INFO) or not self.forced:
            log.info("%s", self.line(now))
        else:  # e.g. train(progress=True) in a script that never configured logging
            print(self.line(now), file=sys.stderr, flush=True)
        self._last, self._last_n = now, self.n

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.bar is not None:
            self.bar.close()
        elif self.mode == "lines" and self.n > self._start:
            now = time.perf_counter()  # a final line, unless the work was too short to report
            if self._emitted or now - self._t0 >= self.seconds:
                self._emit(now)


def track(iterable: Iterable[T], total: int | None = None, desc: str = "", unit: str = "it",
          **kwargs) -> Iterator[T]:
    """Iterate ``iterable`` with a :class:`Progress` (``total`` from ``len()`` when possible)."""
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    with Progress(total, desc, unit, **kwargs) as bar:
        for item in iterable:
            yield item
            bar.update(1)


def _rate(rate: float, unit: str) -> str:
    if rate >= 1.0 or rate == 0.0:
        return f"{rate:.3g} {unit}/s"
    return f"{1.0 / rate:.3g} s/{_singular(unit)}"


def _singular(unit: str) -> str:
    """``runs`` → ``run``, ``batches`` → ``batch`` (for ``s/run``; rates read per one unit)."""
    if unit.endswith(("ches", "shes", "sses")):
        return unit[:-2]
    return unit[:-1] if unit.endswith("s") and len(unit) > 1 else unit


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class StageProgress:
    """Stage headers and, while training, the step with rate and ETA, all through this one
    facility (used by transfers and ``disentkit run``): a bar on a terminal, a plain line every
    ~10 s when piped. ``prefix`` starts every line (which transfer of a job is speaking); ``every``
    overrides the seconds between plain lines (default: ``$DISENTKIT_PROGRESS_SECONDS`` or 10)."""

    def __init__(self, prefix: str = "", every: float | None = None):
        self.prefix, self.every = prefix, every
        self._bar = None

    def stage(self, text: str) -> None:
        self._close()
        stage(f"{self.prefix}{text}")

    def __call__(self, step: int, steps: int) -> None:
        if self._bar is None:
            self._bar = Progress(steps, f"{self.prefix}training", "steps",
                                 initial=step - 1, seconds=self.every)
        self._bar.update(step - self._bar.n)
        if step >= steps:
            self._close()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
