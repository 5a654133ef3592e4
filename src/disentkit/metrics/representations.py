"""Representations on disk: save and load the interchange format (arrays only; encoding a
dataset with a model is :func:`disentkit.evaluate.encode`).

The paper's code (and its ``example/`` folder) stores what a model makes of 15,008 samples as
``representations.npz`` (``mean`` and ``sampled``, float32 [N, D]) beside ``classes.csv`` (factor
names as header, one row of integer classes per sample). Every metric reads that pair, so a model
trained anywhere can be scored here, and ours can be scored by their scripts.
"""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import numpy as np

from disentkit.errors import DataLayoutError, reading
from disentkit.io import atomic_path, write_text
from disentkit.metrics._common import as_integer_factors

REPRESENTATIONS = "representations.npz"
CLASSES = "classes.csv"
LAYOUT = (
    f"  {REPRESENTATIONS}  arrays 'mean' and 'sampled', float32 [N, D]\n"
    f"  {CLASSES}          header = factor names, then N rows of integer classes"
)


def save_representations(folder, mean, sampled, factors, factor_names) -> tuple[Path, Path]:
    """Write ``representations.npz`` and ``classes.csv`` into ``folder`` atomically."""
    mean = np.asarray(mean, dtype=np.float32)
    sampled = np.asarray(sampled, dtype=np.float32)
    factors = as_integer_factors(factors)
    names = [str(n) for n in factor_names]
    if mean.ndim != 2 or sampled.shape != mean.shape:
        raise ValueError(
            f"mean and sampled must both be [N, D]; found {mean.shape} and {sampled.shape}"
        )
    if factors.ndim != 2 or len(factors) != len(mean) or factors.shape[1] != len(names):
        raise ValueError(
            f"factors must be [N={len(mean)}, K={len(names)}] (one column per name); "
            f"found {factors.shape}"
        )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    npz = folder / REPRESENTATIONS
    with atomic_path(npz, suffix=".npz") as tmp:
        np.savez(tmp, mean=mean, sampled=sampled)
    lines = [",".join(names)] + [",".join(str(int(v)) for v in row) for row in factors]
    write_text(folder / CLASSES, "\n".join(lines) + "\n")
    return npz, folder / CLASSES


def load_representations(npz, csv_file, key: str = "mean"):
    """Read ``(codes [N, D], factors int64 [N, K], factor_names)`` from the reference layout.

    ``classes.csv`` may hold float-formatted integers ("3.0", as in the paper's example); any
    value that is not an integer raises ``ValueError`` naming the row and column.
    """
    npz, csv_file = Path(npz), Path(csv_file)
    for path in (npz, csv_file):
        if not path.is_file():
            raise DataLayoutError(path, "file not found", LAYOUT)
    if not zipfile.is_zipfile(npz):  # a .npy, a pickle or a truncated file: never unpickled
        raise DataLayoutError(npz, "not an npz (zip) archive of arrays", LAYOUT)
    with reading(npz, "representations", "an npz archive of arrays"):
        with np.load(npz, allow_pickle=False) as data:
            if key not in data.files:
                raise ValueError(f"{npz} has no array {key!r}; it holds {', '.join(data.files)}")
            codes = np.asarray(data[key])
    with reading(csv_file, "factor classes", "UTF-8 CSV"):
        with open(csv_file, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    if not rows:
        raise DataLayoutError(csv_file, "empty classes file", LAYOUT)
    if not any(rows[1:]):
        raise DataLayoutError(csv_file, "classes file has a header but no rows", LAYOUT)
    names = [n.strip() for n in rows[0]]
    body = [r for r in rows[1:] if r]
    try:
        values = np.array([[float(v) for v in r] for r in body], dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"{csv_file}: classes must be numbers ({exc})") from exc
    if values.ndim != 2 or (len(body) and values.shape[1] != len(names)):
        raise ValueError(
            f"{csv_file}: every row must have {len(names)} values (one per factor name)"
        )
    factors = as_integer_factors(values.reshape(len(body), len(names)))
    if len(factors) != len(codes):
        raise ValueError(
            f"{npz} holds {len(codes)} codes but {csv_file} holds {len(factors)} rows of classes"
        )
    return codes, factors, names
