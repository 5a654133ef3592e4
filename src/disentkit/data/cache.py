"""A packed uint8 image cache, memory-mapped, built once per source folder.

Decoding thousands of PNGs per training batch would starve the GPU (issue 3, "Speed and memory"),
so every real-image loader decodes its *base* images once — Coil-100's 7,200 views, RGB-D crops,
the 24 coins — into one ``uint8`` array ``[N, H, W, C]`` saved as ``.npy`` and memory-mapped
afterwards. Augmented datasets (Coil-100-Augmented, §4.1 of Dapueto et al. 2024) cache only the
base images and generate rotations and scales per batch, so 1.17 M combinations never touch disk.

Cache files are keyed by a *fingerprint*: a hash of the loader's recipe (name, parameters, version)
and of the source files' names, sizes and modification times. A changed source folder hashes to a
new key and is rebuilt; stale entries of the same dataset are removed after a successful build.

Builds are atomic: the array is written to a temporary file whose name carries the builder's
process id, flushed, then renamed onto the final name. A build killed midway leaves only that
temporary file, which is never read and is deleted by the next build once its process is gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

#: environment variable that overrides the default cache folder (e.g. on a cluster's scratch disk)
CACHE_ENV = "DISENTKIT_CACHE_DIR"

#: called with the writable memory-mapped array; must fill every row
Builder = Callable[[np.ndarray], None]


def default_cache_dir() -> Path:
    """``$DISENTKIT_CACHE_DIR`` when set, else ``<user cache dir>/disentkit/datasets``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("disentkit")) / "datasets"


def resolve_cache_dir(cache_dir: str | os.PathLike | None) -> Path:
    return Path(cache_dir) if cache_dir is not None else default_cache_dir()


def file_fingerprint(paths: Iterable[Path], root: Path) -> list[tuple[str, int, int]]:
    """(name relative to ``root``, size, mtime in ns) of each file, sorted by name.

    Size and modification time detect a replaced or re-encoded image without reading it.
    """
    rows = []
    for p in paths:
        st = p.stat()
        rows.append((p.relative_to(root).as_posix(), int(st.st_size), int(st.st_mtime_ns)))
    rows.sort()
    return rows


def cache_name(prefix: str, root: str | os.PathLike | None) -> str:
    """``prefix`` plus a short hash of the resolved source folder, so that two copies of a dataset
    in different folders keep separate caches instead of evicting each other."""
    if root is None:
        return prefix
    digest = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:8]
    return f"{prefix}-{digest}"


def fill_from_files(out: np.ndarray, paths: list, decode: Callable, desc: str) -> None:
    """``out[i] = decode(paths[i])``, with progress (:mod:`disentkit.progress`) for long builds."""
    from disentkit.progress import track

    mode = "auto" if len(paths) >= 2000 else "off"
    for i, path in enumerate(track(paths, desc=desc, unit="images", mode=mode)):
        out[i] = decode(path)


def fingerprint_key(recipe: dict, files: list | None = None) -> str:
    """A short stable hash of the recipe (JSON-able dict) and the file fingerprint."""
    h = hashlib.sha256()
    h.update(json.dumps(recipe, sort_keys=True, default=str).encode())
    for row in files or ():
        h.update(repr(row).encode())
    return h.hexdigest()[:16]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _remove_dead_temporaries(folder: Path, name: str) -> None:
    """Delete ``.{name}-*.pid<N>.tmp.npy`` files left by builds whose process has died."""
    for tmp in folder.glob(f".{name}-*.tmp.npy"):
        try:
            pid = int(tmp.name.rsplit(".pid", 1)[1].split(".")[0])
        except (IndexError, ValueError):
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def cached_array(
    name: str,
    key: str,
    shape: tuple[int, ...],
    build: Builder,
    cache_dir: str | os.PathLike | None = None,
) -> np.ndarray:
    """The read-only memory-mapped uint8 array ``cache_dir/{name}-{key}.npy``, built if absent.

    ``build(out)`` fills the writable array ``out`` (shape ``shape``); if it raises, or the process
    dies, no file appears under the final name. A file whose shape disagrees with ``shape`` (a
    truncated or foreign file) is rebuilt rather than trusted.
    """
    folder = resolve_cache_dir(cache_dir)
    final = folder / f"{name}-{key}.npy"
    arr = _open_valid(final, shape)
    if arr is not None:
        return arr
    folder.mkdir(parents=True, exist_ok=True)
    _remove_dead_temporaries(folder, name)
    tmp = folder / f".{name}-{key}.pid{os.getpid()}.tmp.npy"
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=tuple(shape))
        build(out)
        out.flush()
        del out
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    for stale in folder.glob(f"{name}-*.npy"):  # older versions of this dataset's cache
        if stale != final:
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
    arr = _open_valid(final, shape)
    assert arr is not None
    return arr


def _open_valid(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    if not path.is_file():
        return None
    try:
        arr = np.load(path, mmap_mode="r")
    except (ValueError, OSError):
        return None
    if arr.shape != tuple(shape) or arr.dtype != np.uint8:
        return None
    return arr
