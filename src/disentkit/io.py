"""Atomic file writes: write to a temporary name in the same folder, then rename.

A killed process never leaves a half-written file under the final name (docs/architecture.md, "Contracts").
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    ``suffix`` lets libraries that insist on an extension (``np.savez`` adds ``.npz``,
    matplotlib infers the format) write to the temporary name unchanged.
    """
    path = Path(path)
    if path.is_dir():
        from disentkit.errors import DisentkitError

        raise DisentkitError(f"{path} is a folder; expected the path of a file to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes 0600, and writers that replace the file (safetensors) may too: give the
        # file the permissions any other output gets from the umask, just before the rename
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def _umask() -> int:
    """The process umask (read by setting and restoring it; no other way is portable)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file; a file that is not UTF-8 JSON raises
    :class:`~disentkit.errors.InputFileError` naming it (an Excel BOM is accepted)."""
    from disentkit.errors import reading

    with reading(path, "JSON", "a UTF-8 JSON file"):
        with open(path, encoding="utf-8-sig") as f:
            return json.load(f)


def _json_default(obj: Any) -> Any:
    """Serialise numpy scalars/arrays and paths, which json refuses."""
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")
