"""Ownership and locking of output folders: nothing outside our own outputs is ever deleted.

Every folder disentkit writes a run into carries a marker file (:data:`MARKER`) written by us,
holding the kind of folder (``train``, ``transfer``, ``run``, ``sweep``), the package version and
a hash of the config it was made for. ``--overwrite`` empties only folders that carry the marker
and, inside them, only the entries disentkit writes (:data:`OWNED_NAMES`, nested marked folders and
our temporary files); any other file is left where it is. A non-empty folder without the marker is
refused: it may be a user's project (``--out .``), and deleting it would lose their data.

While a process writes a folder it holds an exclusive lock (:func:`hold`): ``fcntl.flock`` on
:data:`LOCK_FILE`, whose content names the holder (pid and host). The kernel releases a flock when
its holder dies, so the lock of a killed process is taken over by the next writer without any
stale-lock heuristics; a second live writer is refused with the holder's name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import socket
from pathlib import Path
from typing import Any, Iterator

from disentkit import __version__
from disentkit.errors import DisentkitError

try:  # POSIX; on other systems the lock degrades to a pid file (see _exclusive_file)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

log = logging.getLogger(__name__)

MARKER = ".disentkit-run.json"
LOCK_FILE = ".disentkit.lock"
KINDS = ("train", "transfer", "run", "sweep", "report")

#: entries disentkit writes into run folders; ``--overwrite`` removes these and nothing else
OWNED_NAMES = frozenset({
    MARKER, LOCK_FILE, "config.json", "log.jsonl", "checkpoint", "results.json", "results.csv",
    "representations.npz", "classes.csv", "transfer.json", "run.json", "sweep.json",
    "running.json", "error.json", "done.json", "run.log", "report.html", "report.md",
    "report_figures", "aggregate.csv", "aggregate.md", "omes.json", "relation.png", "relation.csv",
    "association.csv", "inactive.csv", "traversals.png", "reconstructions.png", "figures",
    "before", "after", "floor", "eval", "finetune", "source_adapted", "sources", "transfers",
    "study.json",
})
#: temporary names of :func:`disentkit.io.atomic_path` (``.<name>.<random>.tmp<suffix>``)
TEMP_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]{6,}\.tmp(\.[A-Za-z0-9]+)?$")


class ForeignFolderError(DisentkitError):
    """The output folder holds files that disentkit did not write; it is left untouched."""


class FolderLockedError(DisentkitError):
    """Another live process is writing the folder."""


def config_hash(config: Any) -> str:
    """SHA-256 of a config's canonical JSON (sorted keys), to tell runs of one config apart."""
    text = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_marker(folder: str | os.PathLike) -> dict | None:
    """The marker of ``folder``, or ``None`` when it has none or it is not one of ours."""
    path = Path(folder) / MARKER
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or data.get("kind") not in KINDS or "disentkit" not in data:
        return None
    return data


def write_marker(folder: str | os.PathLike, kind: str, config: Any = None) -> None:
    """Mark ``folder`` as a disentkit ``kind`` folder (created if needed)."""
    from disentkit.io import write_json

    if kind not in KINDS:
        raise ValueError(f"run folder kind must be one of {', '.join(KINDS)}, found {kind!r}")
    write_json(Path(folder) / MARKER, {"disentkit": __version__, "kind": kind,
                                       "config_hash": config_hash(config)})


def is_ours(folder: str | os.PathLike) -> bool:
    return read_marker(folder) is not None


def _entries(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except FileNotFoundError:
        return []


def is_empty(folder: str | os.PathLike) -> bool:
    """True when ``folder`` is absent or holds nothing but a lock file."""
    return all(p.name == LOCK_FILE for p in _entries(Path(folder)))


def check_output(folder: str | os.PathLike, overwrite: bool, allow_unmarked: bool = False) -> None:
    """Refuse to write into a non-empty folder that disentkit did not make.

    ``allow_unmarked`` admits folders made by our own older code paths (a sweep writes its run
    spec before the run starts). Nothing is created or changed here.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ForeignFolderError(f"--out {folder} is a file, expected a folder")
    if is_empty(folder) or is_ours(folder) or allow_unmarked:
        return
    if not overwrite and all(p.name in OWNED_NAMES or TEMP_NAME.match(p.name)
                             for p in _entries(folder)):
        return  # only names we write (a sweep's run spec and log): adding to it loses nothing
    what = "replace" if overwrite else "write into"
    raise ForeignFolderError(
        f"{folder} is not empty and is not a disentkit output folder (no {MARKER}); refusing to "
        f"{what} it so that none of its files is lost; choose a new or empty --out")


def claim(folder: str | os.PathLike, kind: str, config: Any, resuming: bool) -> None:
    """Refuse a foreign non-empty ``folder`` (see :func:`check_output`), then mark it as ours
    unless it already is (a resumed folder keeps its marker and its files' times)."""
    check_output(folder, overwrite=False, allow_unmarked=resuming)
    if not is_ours(folder):
        write_marker(folder, kind, config)


def clear(folder: str | os.PathLike) -> list[str]:
    """Remove what disentkit wrote in a marked ``folder``; return the names of entries kept.

    Only :data:`OWNED_NAMES`, our temporary files and nested marked folders go; symbolic links are
    unlinked, never followed. The folder itself, its marker and its lock stay.
    """
    folder = Path(folder)
    if not is_ours(folder):
        raise ForeignFolderError(f"{folder} carries no {MARKER}; refusing to delete anything in it")
    kept = []
    for entry in _entries(folder):
        if entry.name in (MARKER, LOCK_FILE):
            continue
        if entry.is_symlink():
            if entry.name in OWNED_NAMES or TEMP_NAME.match(entry.name):
                entry.unlink()
            else:
                kept.append(entry.name)
        elif entry.name in OWNED_NAMES or TEMP_NAME.match(entry.name) or (
                entry.is_dir() and is_ours(entry)):
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        else:
            kept.append(entry.name)
    if kept:
        log.warning("%s: kept %d entries disentkit did not write: %s", folder, len(kept),
                    ", ".join(kept))
    return kept


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        text = ""
    return text or "an unknown process"


def _identity() -> str:
    return f"pid {os.getpid()} on host {socket.gethostname()}"


@contextlib.contextmanager
def hold(folder: str | os.PathLike) -> Iterator[Path]:
    """Hold ``folder``'s exclusive write lock for the ``with`` block (the folder is created).

    Raises :class:`FolderLockedError` naming the holder when another live process has it.
    """
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with _locked(folder):
            yield folder
    finally:
        if created:  # a run that failed before writing anything leaves nothing behind
            _remove_if_bare(folder)


def _remove_if_bare(folder: Path) -> None:
    entries = _entries(folder)
    if all(p.name in (LOCK_FILE, MARKER) and p.is_file() for p in entries):
        with contextlib.suppress(OSError):
            for p in entries:
                p.unlink()
            folder.rmdir()


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    path = folder / LOCK_FILE
    if fcntl is None:  # pragma: no cover - Windows
        with _exclusive_file(path):
            yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise FolderLockedError(
                f"{folder} is being written by another process ({_holder(path)}); wait for it to "
                f"finish or stop it") from None
        os.ftruncate(fd, 0)
        os.write(fd, _identity().encode("utf-8"))
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _exclusive_file(path: Path) -> Iterator[None]:  # pragma: no cover - Windows
    """Lock-file fallback: create ``path`` exclusively; a holder that is no longer alive on
    this host is taken over."""
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            holder = _holder(path)
            m = re.match(r"pid (\d+) on host (.+)$", holder)
            if not (m and m.group(2) == socket.gethostname() and not _alive(int(m.group(1)))):
                raise FolderLockedError(f"{path.parent} is being written by another process "
                                        f"({holder})") from None
            path.unlink()
    else:
        raise FolderLockedError(f"{path.parent} is being written by another process")
    os.write(fd, _identity().encode("utf-8"))
    os.close(fd)
    try:
        yield
    finally:
        path.unlink()


def _alive(pid: int) -> bool:  # pragma: no cover - Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


#: a plain name: letters, digits and ``. _ - + =``, not starting with a dot
_PLAIN = re.compile(r"^[A-Za-z0-9_+=-][A-Za-z0-9._+=-]{0,127}$")


def check_plain_name(name: Any, what: str) -> str:
    """Return ``name`` when it is safe as one path component, else raise ``ValueError``.

    Study, source and target names become folder names under ``--out``: a separator, ``..``,
    an absolute path or a leading dot would write outside it or hide the folder (issue 14).
    """
    if not isinstance(name, str) or not _PLAIN.match(name) or ".." in name:
        raise ValueError(f"{what} must be a plain name (letters, digits, '.', '_', '-', '+', "
                         f"'='; no '/', no '..', not starting with '.'), found {name!r}")
    return name
