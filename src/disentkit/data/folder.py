"""Any folder of images with a factor table: how a user brings their own real data.

The transfer question of Dapueto et al. 2024 (§3) needs a target whose factors are known. A user
with such data writes ``factors.csv`` beside the images and gets a :class:`FactorDataset` that
pairs, metrics and transfer accept like any built-in one; a table that does not cover the full
product of factor values becomes an incomplete grid (pairs only use combinations present).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from disentkit.data import cache as cache_mod
from disentkit.data._augment import check_channels, convert_channels, read_image, resize_to, to_uint8
from disentkit.data.base import FactorDataset
from disentkit.errors import DataLayoutError, reading

OUT = 64
LAYOUT = """ROOT/factors.csv      header: image,<factor 1>,<factor 2>,...  (one int column each)
ROOT/<image>          one row per image: a path relative to ROOT (PNG/JPEG...), then its
                      0-based class of each factor; one image per factor combination;
                      images square, all of one size and one channel count (grey or RGB)"""


def read_factors_csv(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """(factor names, image names, int table [M, K]) from ``factors.csv``, validated."""
    if not path.is_file():
        raise DataLayoutError(path, "factor table not found", LAYOUT)
    with reading(path, "the factor table", "UTF-8 CSV"), open(path, newline="",
                                                                encoding="utf-8-sig") as f:
        reader = csv.reader(f)  # utf-8-sig: a byte-order mark (Excel's) is not part of 'image'
        header = [h.strip() for h in next(reader, [])]
        distinct = len(set(header)) == len(header) and all(header)
        if len(header) < 2 or header[0] != "image" or not distinct:
            raise DataLayoutError(
                path, f"header is {header}, expected 'image' then one distinct name per factor",
                LAYOUT,
            )
        names, rows = [], []
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                if len(row) != len(header):
                    raise ValueError(f"{len(row)} columns, expected {len(header)}")
                classes = [int(v) for v in row[1:]]
                if min(classes) < 0:
                    raise ValueError("negative class")
            except ValueError as exc:
                problem = f"malformed row on line {line}: {exc}"
                raise DataLayoutError(path, problem, LAYOUT) from None
            names.append(row[0].strip())
            rows.append(classes)
    if not rows:
        raise DataLayoutError(path, "factors.csv lists no images", LAYOUT)
    return header[1:], names, np.array(rows, dtype=np.int64)


def inside_root(root: Path, name: str, listed_in: Path) -> Path:
    """``root / name``, refused when it resolves outside ``root`` (``../x.png``, an absolute
    path, a symbolic link leading out): a table must not make us read files elsewhere."""
    path = root / name
    base = root.resolve()
    if Path(name).is_absolute() or not path.resolve().is_relative_to(base):
        raise DataLayoutError(listed_in, f"image {name!r} lies outside the dataset folder {root}",
                              LAYOUT)
    return path


class FolderDataset(FactorDataset):
    """Images listed in ``root/factors.csv``, resized to 64x64 and cached as packed uint8.

    Factor sizes are each column's largest class + 1. ``channels=None`` keeps the images' own
    channel count (1 for grey, 3 for colour); 1 or 3 converts.
    """

    thread_safe_images = True  # images() reads arrays loaded at construction

    name = "folder"
    image_shape = (3, 64, 64)  # an instance takes its images' channel count
    synthetic = False
    source = "your own folder: images + factors.csv (--root)"

    def __init__(
        self,
        root: str | os.PathLike,
        cache_dir: str | os.PathLike | None = None,
        channels: int | None = None,
    ):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataLayoutError(self.root, "dataset folder not found", LAYOUT)
        csv_path = self.root / "factors.csv"
        names, files, table = read_factors_csv(csv_path)
        self.factor_names = tuple(names)
        self.factor_kinds = {n: "other" for n in names}  # undeclared: corresponds to nothing
        self.factor_sizes = tuple(int(v) for v in table.max(axis=0) + 1)
        codes = table @ self.radix
        order = np.argsort(codes, kind="stable")
        table, files = table[order], [files[i] for i in order]
        dup = np.flatnonzero(np.diff(codes[order]) == 0)
        if dup.size:
            raise DataLayoutError(
                csv_path, f"images {files[dup[0]]!r} and {files[dup[0] + 1]!r} have the same "
                f"factors {table[dup[0]].tolist()}", LAYOUT,
            )
        if len(table) < np.prod(self.factor_sizes, dtype=np.float64):
            self.combinations = table
        paths = [inside_root(self.root, f, csv_path) for f in files]
        for p in paths:
            if not p.is_file():
                raise DataLayoutError(p, "image listed in factors.csv is missing", LAYOUT)
        first = read_image(paths[0])
        self._src_shape = first.shape
        if first.shape[0] != first.shape[1]:
            raise DataLayoutError(paths[0], f"image is {first.shape[0]}x{first.shape[1]}, "
                                  "expected a square image", LAYOUT)
        src_channels = 1 if first.ndim == 2 else 3
        self.channels = check_channels(src_channels if channels is None else channels)
        self.image_shape = (self.channels, OUT, OUT)
        key = cache_mod.fingerprint_key(
            {"what": "folder 64", "version": 1, "factors": names},
            cache_mod.file_fingerprint(paths + [csv_path], self.root),
        )

        def build(out):
            cache_mod.fill_from_files(out, paths, self._decode, "decoding images")

        self._pixels = cache_mod.cached_array(
            cache_mod.cache_name("folder", self.root), key,
            (len(paths), OUT, OUT, src_channels), build, cache_dir,
        )

    def _decode(self, path: Path) -> np.ndarray:
        img = read_image(path)
        if img.shape != self._src_shape:
            raise DataLayoutError(path, f"image is {img.shape} (height, width[, channels]), "
                                  f"expected {self._src_shape} like the first image", LAYOUT)
        img = img.astype(np.float64) / (257.0 if img.dtype == np.uint16 else 1.0)
        return to_uint8(resize_to(img.reshape(img.shape[0], img.shape[1], -1), OUT))

    def images(self, factors, rng=None) -> np.ndarray:
        img = self._pixels[self.factors_to_index(factors)]
        out = img.transpose(0, 3, 1, 2).astype(np.float32) * np.float32(1 / 255)
        return convert_channels(out, self.channels)
