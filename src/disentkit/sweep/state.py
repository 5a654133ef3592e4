"""The state of a run, read from its folder alone (so any executor, and any machine sharing the
file system, agrees on it).

Files the sweep writes into a run folder, all atomically:

* ``sweep.json``   the run's spec (id, kind, resolved config); written when the run starts.
* ``running.json`` lock + heartbeat: host, pid and the time of the last beat. Created with
  ``O_EXCL`` so two executors never run the same run; rewritten every ``HEARTBEAT_S`` seconds.
* ``error.json``   a failed attempt: exception type, message and the full traceback.
* ``done.json``    written last, only after the run's own results are on disk: the run is done.

States: ``done`` (``done.json``), ``running`` (a live lock), ``failed`` (``error.json``),
``todo`` (anything else, including a run whose lock went stale: its process died mid-way, and
re-running resumes it from its checkpoint).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import threading
import time
from pathlib import Path

from disentkit.io import read_json, write_json

TODO, RUNNING, DONE, FAILED = "todo", "running", "done", "failed"
STATES = (TODO, RUNNING, DONE, FAILED)
SPEC_FILE, LOCK_FILE, ERROR_FILE, DONE_FILE = "sweep.json", "running.json", "error.json", "done.json"
HEARTBEAT_S = 10.0
#: a lock whose heartbeat is older than this is stale (its process died without cleaning up)
STALE_AFTER_S = 120.0


@dataclasses.dataclass(frozen=True)
class RunState:
    state: str
    detail: str = ""


def run_state(folder: str | Path, *, now: float | None = None, stale_after: float = STALE_AFTER_S) -> RunState:
    """State of the run in ``folder`` (see the module docstring)."""
    folder = Path(folder)
    if (folder / DONE_FILE).is_file():
        return RunState(DONE)
    lock = _read_lock(folder)
    if lock is not None:
        if not lock_is_stale(lock, now=now, stale_after=stale_after):
            return RunState(RUNNING, f"{lock.get('host')}:{lock.get('pid')}")
        detail = "interrupted (stale lock)"
    else:
        detail = ""
    if (folder / ERROR_FILE).is_file():
        with contextlib.suppress(OSError, ValueError):
            err = read_json(folder / ERROR_FILE)
            return RunState(FAILED, f"{err.get('type', '')}: {err.get('message', '')}".strip(": "))
        return RunState(FAILED)
    if detail == "" and (folder / SPEC_FILE).is_file():
        detail = "started before, will resume"
    return RunState(TODO, detail)


def lock_is_stale(lock: dict, *, now: float | None = None, stale_after: float = STALE_AFTER_S) -> bool:
    """A lock is stale when its process is gone (same host) or its heartbeat is too old."""
    now = time.time() if now is None else now
    if lock.get("host") == socket.gethostname() and isinstance(lock.get("pid"), int):
        if not _pid_alive(lock["pid"]):
            return True
    return now - float(lock.get("heartbeat", 0.0)) > stale_after


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (finished child not yet reaped) is not alive for our purpose
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _read_lock(folder: Path) -> dict | None:
    try:
        data = read_json(folder / LOCK_FILE)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"heartbeat": 0.0}  # unreadable lock: treat as stale once its age is unknown
    return data if isinstance(data, dict) else {"heartbeat": 0.0}


class RunLock:
    """Exclusive claim on a run folder with a heartbeat thread; use as a context manager.

    ``acquire`` returns False when another live process holds the run. A stale lock is taken
    over (the process that held it is gone).
    """

    def __init__(self, folder: str | Path, *, heartbeat_s: float = HEARTBEAT_S):
        self.folder = Path(folder)
        self.heartbeat_s = heartbeat_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = time.time()

    def _payload(self) -> dict:
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": self._started,
            "heartbeat": time.time(),
            "slurm_job_id": slurm_job_id(),
        }

    def acquire(self) -> bool:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / LOCK_FILE
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                lock = _read_lock(self.folder)
                if lock is not None and not lock_is_stale(lock):
                    return False
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self._payload(), f)
            self._thread = threading.Thread(target=self._beat, daemon=True, name="sweep-heartbeat")
            self._thread.start()
            return True
        return False

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            with contextlib.suppress(OSError):
                write_json(self.folder / LOCK_FILE, self._payload())

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with contextlib.suppress(FileNotFoundError):
            (self.folder / LOCK_FILE).unlink()

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def slurm_job_id() -> str | None:
    """This process's Slurm job as ``sacct -j`` names it: ``ARRAY_TASK`` form inside an array
    (``1234_5``; the bare ``SLURM_JOB_ID`` of an array element is another number), else the id."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID")


def record_error(folder: str | Path, exc_type: str, message: str, traceback_text: str, **extra) -> None:
    """Write ``error.json`` (atomically): what failed, with the traceback to debug it."""
    write_json(
        Path(folder) / ERROR_FILE,
        {"type": exc_type, "message": message, "traceback": traceback_text, "time": time.time(), **extra},
    )


def record_done(folder: str | Path, **info) -> None:
    """Write ``done.json`` and clear a previous attempt's ``error.json``."""
    folder = Path(folder)
    write_json(folder / DONE_FILE, {"time": time.time(), **info})
    with contextlib.suppress(FileNotFoundError):
        (folder / ERROR_FILE).unlink()
