"""Coil-100 and the paper's two augmented variants (Dapueto et al. 2024, §4.1 and appendix).

Coil-100 (Nene, Nayar & Murase 1996) photographs 100 objects on a turntable every 5 degrees:
7,200 RGB PNGs of 128x128, ``coil-100/obj{o}__{a}.png``. The paper makes it a disentanglement
target by adding two synthetic factors, in-plane rotation (18) and scale (9), giving
100 x 72 x 18 x 9 = 1.17 M combinations (Coil-100-Augmented), and a silhouette version
(Coil-100-Augmented-Binary) used as a simpler source.

Here the augmented images are *generated per batch* from the 7,200 cached views with the exact
OpenCV recipe of the authors' build script (see :mod:`disentkit.data._augment`), so nothing but
the base views is ever stored. A folder holding the authors' pre-built release (a ``classes.csv``
and one PNG per combination) is read as well; both paths give the same images (tested).

Factor classes are 0-based indices into the values actually loaded: ``objects`` and ``angles``
select a subset of Coil-100 (the full set by default).
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from disentkit.data import cache as cache_mod
from disentkit.data._augment import (
    ROTATIONS_DEG,
    SCALES,
    RotationScaleGrid,
    aa_downsample_uint8,
    check_channels,
    convert_channels,
    read_image,
    silhouette,
    uint8_to_images,
)
from disentkit.data.base import FactorDataset
from disentkit.errors import DataLayoutError, reading

COIL_OBJECTS: tuple[int, ...] = tuple(range(1, 101))
COIL_ANGLES: tuple[int, ...] = tuple(range(0, 360, 5))
SOURCE_SIZE = 128
OUT = 64

PLAIN_LAYOUT = """ROOT/coil-100/obj{o}__{a}.png   128x128 RGB PNGs (the Columbia coil-100.zip):
    objects o = 1..100, turntable angles a = 0, 5, ..., 355 (7,200 files)"""
RELEASE_LAYOUT = """ROOT/classes.csv   header: image,object,pose,rotation,scale
ROOT/obj{o}__{pose}__{angle}__{scale}.png   one PNG per row, e.g. obj1__0__20__0.94.png
    classes are 0-based: object = o-1, pose = pose/5, rotation = angle/20,
    scale = index of the zoom in 1.0, 0.94, 0.88, 0.81, 0.75, 0.69, 0.62, 0.56, 0.5"""
RELEASE_COLUMNS = ["image", "object", "pose", "rotation", "scale"]
_RELEASE_NAME = re.compile(r"^obj(\d+)__(\d+)__(\d+)__([0-9.]+)\.png$")


# ---------------------------------------------------------------------- reading the plain release


def plain_files(root, objects: Sequence[int], angles: Sequence[int], layout: str) -> list[Path]:
    """Paths of the selected views, object-major; a missing folder or file raises."""
    folder = Path(root) / "coil-100"
    if not folder.is_dir():
        raise DataLayoutError(folder, "Coil-100 folder not found", layout)
    present = {e.name for e in os.scandir(folder)}
    files = []
    for o in objects:
        for a in angles:
            name = f"obj{o}__{a}.png"
            if name not in present:
                raise DataLayoutError(folder / name, "Coil-100 image missing", layout)
            files.append(folder / name)
    return files


def _check_selection(values, universe, what: str) -> tuple[int, ...]:
    values = tuple(int(v) for v in values)
    bad = [v for v in values if v not in universe]
    if not values or bad or len(set(values)) != len(values):
        raise ValueError(
            f"{what} must be distinct values from {universe[0]}..{universe[-1]} "
            f"(step {universe[1] - universe[0]}), found {values}"
        )
    return values


def decode_view(path: Path, size: int, layout: str) -> np.ndarray:
    """One view as uint8 [size, size, 3]; a grey PNG is replicated, a wrong size raises."""
    img = read_image(path)
    if img.dtype != np.uint8:
        raise DataLayoutError(path, f"expected an 8-bit PNG, found {img.dtype}", layout)
    if img.shape[:2] != (size, size):
        raise DataLayoutError(
            path, f"image is {img.shape[0]}x{img.shape[1]}, expected {size}x{size}", layout
        )
    return np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img


def _rgbx_base_cache(root, files, objects, angles, cache_dir) -> np.ndarray:
    """Packed RGBX views [N + 1, 128*128] uint32 (last row black), decoded once and cached.

    The fourth byte pads each pixel to 32 bits so that one gather moves a whole pixel.
    """
    recipe = {"what": "coil100 views, RGBX 128", "version": 1, "objects": objects, "angles": angles}
    key = cache_mod.fingerprint_key(recipe, cache_mod.file_fingerprint(files, Path(root)))

    def build(out):
        def decode(path):
            rgbx = np.zeros((SOURCE_SIZE, SOURCE_SIZE, 4), dtype=np.uint8)
            rgbx[..., :3] = decode_view(path, SOURCE_SIZE, PLAIN_LAYOUT)
            return rgbx

        cache_mod.fill_from_files(out[: len(files)], files, decode, "decoding Coil-100")

    arr = cache_mod.cached_array(
        cache_mod.cache_name("coil100-rgbx128", root), key,
        (len(files) + 1, SOURCE_SIZE, SOURCE_SIZE, 4), build, cache_dir,
    )
    return arr.reshape(len(files) + 1, -1).view(np.uint32)


# ---------------------------------------------------------------------- datasets


class Coil100(FactorDataset):
    """Coil-100: object (100) x turntable pose (72), 128x128 photographs resized to 64x64.

    Reads ``root/coil-100/obj{o}__{a}.png``. The resize is the paper's loader's antialiased
    bilinear (``torchvision.transforms.Resize(antialias=True)``; :func:`aa_downsample_uint8`).
    ``channels=1`` gives ITU-R 601 luma.
    """

    thread_safe_images = True  # images() reads arrays loaded at construction

    name = "coil100"
    factor_names = ("object", "pose")
    factor_sizes = (100, 72)
    #: what each factor is and what else varies (disentkit.data.kinds)
    factor_kinds = {"object": "identity", "pose": "pose"}
    nuisances: tuple[str, ...] = ("texture",)
    image_shape = (3, 64, 64)
    synthetic = False
    source = "Nene et al. 1996, Columbia Coil-100 (read from --root)"

    def __init__(
        self,
        root: str | os.PathLike,
        cache_dir: str | os.PathLike | None = None,
        objects: Sequence[int] | None = None,
        angles: Sequence[int] | None = None,
        channels: int = 3,
    ):
        self.root = Path(root)
        self.objects = _check_selection(objects or COIL_OBJECTS, COIL_OBJECTS, "objects")
        self.angles = _check_selection(angles or COIL_ANGLES, COIL_ANGLES, "angles")
        self.channels = check_channels(channels)
        self.factor_sizes = (len(self.objects), len(self.angles))
        self.image_shape = (self.channels, OUT, OUT)
        files = plain_files(self.root, self.objects, self.angles, PLAIN_LAYOUT)
        self._pixels = _rgbx_base_cache(self.root, files, self.objects, self.angles, cache_dir)
        self._identity = RotationScaleGrid(SOURCE_SIZE, OUT, angles=(0,), scales=(1.0,))

    def images(self, factors, rng=None) -> np.ndarray:
        f = self.check_factors(factors)
        rows = f[:, 0] * len(self.angles) + f[:, 1]
        zeros = np.zeros(len(f), dtype=np.int64)
        small = self._identity.apply(self._pixels, rows, zeros, zeros)
        return convert_channels(uint8_to_images(small, 3), self.channels)

    def factor_values(self) -> dict[str, np.ndarray]:
        return {"object": np.array(self.objects), "pose": np.array(self.angles)}  # pose in degrees


class Coil100Augmented(FactorDataset):
    """Coil-100-Augmented: object 100 x pose 72 x in-plane rotation 18 x scale 9 (1.17 M images).

    Two sources, chosen by what ``root`` holds:

    * ``root/coil-100/obj{o}__{a}.png`` (the plain Coil-100 release): each batch is generated
      from the 7,200 cached views — rotation by 0, 20, …, 340 degrees counter-clockwise about the
      canvas centre, then zoom by 1.00 … 0.50, nearest-neighbour with black fill on the 128x128
      canvas, then the paper's loader's antialiased bilinear resize to 64x64.
    * ``root/classes.csv`` + ``root/obj{o}__{pose}__{angle}__{scale}.png`` (the authors'
      pre-built release): every listed image is decoded once, resized to 64x64 alike and cached;
      a release that lacks some combinations becomes an incomplete grid. The full release is
      1.17 M PNGs (a one-off decode of about an hour into a 14 GB cache), against 7,200 views
      and a 470 MB cache for the generated path, which is why the plain layout is preferred.
    """

    thread_safe_images = True  # images() reads arrays loaded at construction

    name = "coil100-augmented"
    factor_names = ("object", "pose", "rotation", "scale")
    factor_sizes = (100, 72, 18, 9)
    factor_kinds = {"object": "identity", "pose": "pose", "rotation": "rotation", "scale": "scale"}
    nuisances: tuple[str, ...] = ("texture",)
    image_shape = (3, 64, 64)
    synthetic = False
    source = "Dapueto et al. 2024 augmentation of Coil-100 (read from --root)"

    #: canvas the grid is applied on, and the number of colour channels of the source
    canvas = SOURCE_SIZE
    source_channels = 3
    release_size = SOURCE_SIZE

    def __init__(
        self,
        root: str | os.PathLike,
        cache_dir: str | os.PathLike | None = None,
        objects: Sequence[int] | None = None,
        angles: Sequence[int] | None = None,
        channels: int | None = None,
    ):
        self.root = Path(root)
        self.channels = check_channels(self.source_channels if channels is None else channels)
        self.image_shape = (self.channels, OUT, OUT)
        if not self.root.is_dir():
            raise DataLayoutError(self.root, f"{self.name} folder not found", self._layouts())
        if (self.root / "classes.csv").is_file():
            if objects is not None or angles is not None:
                raise ValueError("objects=/angles= select views of plain Coil-100, not a release")
            self.mode = "release"
            self._init_release(cache_dir)
        else:
            self.mode = "generated"
            self.objects = _check_selection(objects or COIL_OBJECTS, COIL_OBJECTS, "objects")
            self.angles = _check_selection(angles or COIL_ANGLES, COIL_ANGLES, "angles")
            self.factor_sizes = (
                len(self.objects), len(self.angles), len(ROTATIONS_DEG), len(SCALES)
            )
            files = plain_files(self.root, self.objects, self.angles, self._layouts())
            self._pixels = self._base_cache(files, cache_dir)
            self._grid = RotationScaleGrid(self.canvas, OUT)

    def _layouts(self) -> str:
        return (f"either the plain release:\n{PLAIN_LAYOUT}\n"
                f"or the pre-built release:\n{RELEASE_LAYOUT}")

    def _base_cache(self, files, cache_dir) -> np.ndarray:
        return _rgbx_base_cache(self.root, files, self.objects, self.angles, cache_dir)

    # ------------------------------------------------------------------ the pre-built release
    def _init_release(self, cache_dir) -> None:
        table, names = read_classes_csv(self.root / "classes.csv", self._layouts())
        self.factor_sizes = tuple(int(v) for v in table.max(axis=0) + 1)
        codes = table @ self.radix
        order = np.argsort(codes, kind="stable")
        table, names = table[order], [names[i] for i in order]
        if len(table) < np.prod(self.factor_sizes):
            self.combinations = table  # cache rows follow the table's order
        present = {e.name for e in os.scandir(self.root)}
        for name in names:
            if name not in present:
                raise DataLayoutError(self.root / name, "image listed in classes.csv is missing",
                                      self._layouts())
        files = [self.root / n for n in names]
        recipe = {"what": f"{self.name} release, 64", "version": 2}  # 2: antialiased bilinear
        key = cache_mod.fingerprint_key(recipe, cache_mod.file_fingerprint(files, self.root))
        c = self.source_channels

        def decode(path):
            img = read_image(path)
            if img.shape[:2] != (self.release_size, self.release_size):
                raise DataLayoutError(path, f"image is {img.shape[0]}x{img.shape[1]}, expected "
                                      f"{self.release_size}x{self.release_size}", self._layouts())
            img = img.reshape(img.shape[0], img.shape[1], -1)
            if img.shape[2] != c:  # grey release read as RGB, or RGB silhouettes read as grey
                img = img[..., :1].repeat(c, axis=2) if c == 3 else img[..., :1]
            return aa_downsample_uint8(img, self.release_size // OUT)

        def build(out):
            cache_mod.fill_from_files(out, files, decode, f"decoding {self.name} release")

        self._release = cache_mod.cached_array(
            cache_mod.cache_name(f"{self.name}-release", self.root), key,
            (len(files), OUT, OUT, c), build, cache_dir,
        )

    # ------------------------------------------------------------------ rendering
    def images(self, factors, rng=None) -> np.ndarray:
        f = self.check_factors(factors)
        if self.mode == "release":
            img = self._release[self.factors_to_index(f)]
            out = img.transpose(0, 3, 1, 2).astype(np.float32) * np.float32(1 / 255)
        else:
            rows = f[:, 0] * len(self.angles) + f[:, 1]
            small = self._grid.apply(self._pixels, rows, f[:, 2], f[:, 3])
            out = uint8_to_images(small, self.source_channels)
        return convert_channels(out, self.channels)

    def factor_values(self) -> dict[str, np.ndarray]:
        if self.mode == "release":
            objects = np.arange(1, self.factor_sizes[0] + 1)
            angles = np.arange(self.factor_sizes[1]) * 5
        else:
            objects, angles = np.array(self.objects), np.array(self.angles)
        return {
            "object": objects,
            "pose": angles,  # degrees on the turntable
            "rotation": np.array(ROTATIONS_DEG),  # degrees, counter-clockwise
            "scale": np.array(SCALES),
        }


def read_classes_csv(path: Path, layout: str) -> tuple[np.ndarray, list[str]]:
    """The release's ``classes.csv`` → (int table [M, 4], image names), fully validated.

    Each row's classes must agree with its file name (object o-1, pose a/5, rotation angle/20,
    scale index); a disagreement means a malformed table and names the line.
    """
    with reading(path, "the class table", "UTF-8 CSV"), open(path, newline="",
                                                             encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header] != RELEASE_COLUMNS:
            raise DataLayoutError(
                path, f"classes.csv header is {header}, expected {RELEASE_COLUMNS}", layout
            )
        names, rows = [], []
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                if len(row) != 5:
                    raise ValueError(f"{len(row)} columns")
                classes = [int(v) for v in row[1:]]
                m = _RELEASE_NAME.match(row[0].strip())
                if m is None:
                    raise ValueError(
                        f"image name {row[0]!r} is not obj{{o}}__{{pose}}__{{angle}}__{{scale}}.png"
                    )
                o, pose, angle, zoom = int(m[1]), int(m[2]), int(m[3]), float(m[4])
                expect = [o - 1, pose // 5, angle // 20,
                          SCALES.index(zoom) if zoom in SCALES else -1]
                if pose % 5 or angle % 20 or classes != expect or min(expect) < 0:
                    raise ValueError(
                        f"classes {classes} disagree with the file name (expected {expect})"
                    )
            except ValueError as exc:
                problem = f"malformed row on line {line}: {exc}"
                raise DataLayoutError(path, problem, layout) from None
            names.append(row[0].strip())
            rows.append(classes)
    if not rows:
        raise DataLayoutError(path, "classes.csv lists no images", layout)
    table = np.array(rows, dtype=np.int64)
    codes = np.unique(table, axis=0)
    if len(codes) != len(table):
        raise DataLayoutError(path, "classes.csv lists the same factor combination twice", layout)
    return table, names


# ---------------------------------------------------------------------- binary silhouettes


class Coil100AugmentedBinary(Coil100Augmented):
    """Coil-100-Augmented-Binary: silhouettes of Coil-100 with the same rotation/scale grid.

    Each view becomes a silhouette by the authors' recipe (:func:`silhouette`), at 64x64; the
    rotation and scale grid is then applied at 64x64 (as their build script does), so images
    are exactly 0/1. One channel by default; ``channels=3`` replicates it (e.g. to feed a network
    trained on colour images). A pre-built release holds 64x64 PNGs (1 or 3 channels).
    """

    name = "coil100-augmented-binary"
    image_shape = (1, 64, 64)
    source = "Dapueto et al. 2024 silhouettes of Coil-100 (read from --root)"
    canvas = OUT
    source_channels = 1
    release_size = OUT

    def _base_cache(self, files, cache_dir) -> np.ndarray:
        recipe = {"what": "coil100 silhouettes 64", "version": 1, "objects": self.objects,
                  "angles": self.angles}
        key = cache_mod.fingerprint_key(recipe, cache_mod.file_fingerprint(files, self.root))

        def build(out):
            def decode(path):
                img = read_image(path)
                if img.dtype != np.uint8 or img.shape[:2] != (SOURCE_SIZE, SOURCE_SIZE):
                    raise DataLayoutError(path, f"image is {img.shape} {img.dtype}, expected "
                                          "128x128 8-bit (1 or 3 channels)", self._layouts())
                return silhouette(img)

            cache_mod.fill_from_files(out[: len(files)], files, decode, "Coil-100 silhouettes")

        arr = cache_mod.cached_array(
            cache_mod.cache_name("coil100-silhouette64", self.root), key,
            (len(files) + 1, OUT, OUT), build, cache_dir,
        )
        return arr.reshape(len(files) + 1, -1)
