"""dSprites, generated procedurally, and a loader for the original DeepMind file.

dSprites (Matthey et al. 2017) is the paper's main synthetic *source* dataset (Dapueto et al.
2024, §4.1 and Table 1): 737,280 binary 64x64 images of a square, an ellipse or a heart under
six factors — color (1), shape (3), scale (6), orientation (40), posX (32), posY (32). The paper
trains on it and transfers to real images, so the images must be the real ones pixel for pixel
whenever possible: ``_dsprites_raster`` reproduces all 320 real reference frames and all 12
real reference images pixel for pixel.

Two sources, one class:

* ``DSprites()`` renders any batch of factors on the fly (nothing stored, nothing downloaded).
* ``DSprites(root=DIR)`` reads ``DIR/dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` (or
  ``root`` may be that file). Images are read on first use. A file holding only some rows (e.g.
  a shrunk :meth:`DSprites.export`) is an incomplete grid whose ``combinations`` are its rows.

Row order is the public file's: mixed radix over (color, shape, scale, orientation, posX, posY),
posY fastest, which is exactly :class:`~disentkit.data.base.FactorDataset`'s index order.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from disentkit.data import _dsprites_raster as raster
from disentkit.data._npz import read_npy_header, zip_member_memmap
from disentkit.data.base import FactorDataset
from disentkit.errors import DataLayoutError
from disentkit.io import atomic_path

FILENAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
FACTOR_NAMES = ("color", "shape", "scale", "orientation", "posX", "posY")
FACTOR_SIZES = (1, 3, 6, 40, 32, 32)

EXPECTED_LAYOUT = f"""\
DIR/{FILENAME}   (numpy .npz, as published by google-deepmind/dsprites-dataset)
  imgs             uint8 [N, 64, 64] in {{0, 1}}
  latents_classes  int   [N, 6]  (color, shape, scale, orientation, posX, posY) classes,
                   sizes 1, 3, 6, 40, 32, 32; the full file has N = 737280 rows, posY fastest
  latents_values   float [N, 6]  (optional for this loader)
  metadata         pickled dict  (optional, ignored)"""


def factor_values() -> dict[str, np.ndarray]:
    """The public file's latent values of every class (``latents_possible_values``)."""
    return {
        "color": np.array([1.0]),
        "shape": np.array([1.0, 2.0, 3.0]),
        "scale": raster.SCALES.copy(),
        "orientation": raster.ORIENTATIONS.copy(),
        "posX": raster.POSITIONS.copy(),
        "posY": raster.POSITIONS.copy(),
    }


def sprite_masks(factors: np.ndarray) -> np.ndarray:
    """Binary sprites bool [n, 64, 64] for dSprites classes [n, >=5] whose last five columns
    are (shape, scale, orientation, posX, posY). The leading colour column is ignored: the
    variants colour the binary sprite themselves."""
    f = np.asarray(factors)
    return raster.render_masks(f[:, -5], f[:, -4], f[:, -3], f[:, -2], f[:, -1])


class DSprites(FactorDataset):
    """Binary dSprites: generated (default) or read from the original npz (``root=``)."""

    name = "dsprites"
    factor_names = FACTOR_NAMES
    factor_sizes = FACTOR_SIZES
    #: what each factor is and what else varies (disentkit.data.kinds)
    factor_kinds = {"color": "colour", "shape": "identity", "scale": "scale",
                    "orientation": "rotation", "posX": "position", "posY": "position"}
    nuisances: tuple[str, ...] = ()
    image_shape = (1, 64, 64)
    synthetic = True
    source = "generated, pixel-identical on 332/332 real frames (root= reads the original .npz)"

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = None if root is None else Path(root)
        self._imgs: np.ndarray | None = None
        self._path: Path | None = None
        if self.root is not None:
            is_file = self.root.suffix == ".npz" and not self.root.is_dir()
            self._path = self.root if is_file else self.root / FILENAME
            self._open_file(self._path)

    # ------------------------------------------------------------------ original file
    def _open_file(self, path: Path) -> None:
        """Check the layout from the .npy headers (cheap), then read the class table."""
        headers = npz_headers(path)
        for key in ("imgs", "latents_classes"):
            if key not in headers:
                raise DataLayoutError(path, f"dSprites file lacks array {key!r}", EXPECTED_LAYOUT)
        (n, *hw), img_dtype = headers["imgs"]
        if tuple(hw) != (64, 64) or img_dtype not in (np.dtype(np.uint8), np.dtype(bool)):
            raise DataLayoutError(
                path,
                f"dSprites imgs must be uint8 [N, 64, 64], found {img_dtype} {[n, *hw]}",
                EXPECTED_LAYOUT,
            )
        shape, cls_dtype = headers["latents_classes"]
        if tuple(shape) != (n, 6) or cls_dtype.kind not in "iu":
            raise DataLayoutError(
                path,
                f"dSprites latents_classes must be int [{n}, 6], found {cls_dtype} {list(shape)}",
                EXPECTED_LAYOUT,
            )
        try:
            with np.load(path, allow_pickle=False) as data:
                classes = np.asarray(data["latents_classes"], dtype=np.int64)
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
            raise DataLayoutError(path, f"dSprites latents_classes cannot be read ({exc})",
                                  EXPECTED_LAYOUT) from exc
        if n == 0:
            raise DataLayoutError(path, "dSprites file has no rows", EXPECTED_LAYOUT)
        if (classes.min(axis=0) < 0).any() or (classes.max(axis=0) >= FACTOR_SIZES).any():
            raise DataLayoutError(
                path,
                f"dSprites latents_classes out of range: expected classes below {FACTOR_SIZES}, "
                f"found maxima {tuple(int(m) for m in classes.max(axis=0))}",
                EXPECTED_LAYOUT,
            )
        full = int(np.prod(FACTOR_SIZES))
        if n == full and np.array_equal(classes @ self.radix, np.arange(full)):
            self.combinations = None  # the complete public grid: row = mixed-radix index
        else:
            if len(np.unique(classes @ self.radix)) != n:
                raise DataLayoutError(path, "dSprites latents_classes has repeated rows",
                                      EXPECTED_LAYOUT)
            self.combinations = classes

    def _file_images(self) -> np.ndarray:
        """``imgs``: memory-mapped when stored uncompressed, else read once on first use
        (the full array is 3 GB; the public file is compressed)."""
        if self._imgs is None:
            try:
                self._imgs = zip_member_memmap(self._path, "imgs.npy")
            except ValueError:  # Fortran order, an object array, an odd header: np.load reads it
                self._imgs = None
        if self._imgs is None:
            try:
                with np.load(self._path, allow_pickle=False) as data:
                    self._imgs = data["imgs"]
            except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:  # CRC, truncation
                raise DataLayoutError(self._path, f"dSprites imgs cannot be read ({exc})",
                                      EXPECTED_LAYOUT) from exc
        return self._imgs

    # ------------------------------------------------------------------ contract
    def factor_values(self) -> dict[str, np.ndarray]:
        return factor_values()

    def images(self, factors: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Float32 [n, 1, 64, 64] in {0, 1}. ``rng`` is unused: dSprites has no nuisances."""
        factors = self.check_factors(factors)
        if self._path is not None:
            rows = self.factors_to_index(factors)
            batch = self._file_images()[rows]
            if batch.size and batch.max() > 1:  # the public release stores 0/1, not 0/255
                raise DataLayoutError(
                    self._path, f"dSprites imgs must hold 0/1 values, found a maximum of "
                    f"{int(batch.max())} (a 0/255 export? divide it by 255)", EXPECTED_LAYOUT)
            return batch[:, None].astype(np.float32)
        return sprite_masks(factors)[:, None].astype(np.float32)

    # ------------------------------------------------------------------ export
    def export(
        self,
        path: str | os.PathLike,
        indices: np.ndarray | None = None,
        chunk: int = 8192,
        compressed: bool = True,
    ) -> Path:
        """Write the dataset in the public npz format (``imgs``, ``latents_values``,
        ``latents_classes``, ``metadata``), compressed, atomically.

        ``indices`` (rows of the full grid, default all 737,280) writes a subset — tests use it
        to round-trip a few hundred rows; :class:`DSprites` reads such a file back as an
        incomplete grid. Images are generated and compressed ``chunk`` rows at a time, so the
        full export never holds the 3 GB image array in memory. ``compressed=False`` stores the
        arrays uncompressed (3 GB for the full grid) so that the loader can memory-map them.
        """
        if self._path is not None:
            raise ValueError("export writes the generated dataset; this one reads a file")
        rows = np.arange(len(self)) if indices is None else np.asarray(indices, dtype=np.int64)
        if rows.ndim != 1:
            raise ValueError(f"indices must be a 1-d array of row numbers, found shape {rows.shape}")
        classes = self.index_to_factors(rows)
        values = np.stack([factor_values()[k][classes[:, i]] for i, k in enumerate(FACTOR_NAMES)], 1)
        path = Path(path)
        with atomic_path(path, suffix=".npz") as tmp:
            method = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
            with zipfile.ZipFile(tmp, "w", compression=method, allowZip64=True) as zf:
                with zf.open("imgs.npy", "w", force_zip64=True) as f:
                    _write_npy_header(f, (len(rows), 64, 64), np.uint8)
                    for start in range(0, len(rows), chunk):
                        block = sprite_masks(classes[start : start + chunk]).astype(np.uint8)
                        f.write(block.tobytes())
                for key, arr in (
                    ("latents_values", values),
                    ("latents_classes", classes),
                    ("metadata", np.array(_metadata(), dtype=object)),
                ):
                    with zf.open(f"{key}.npy", "w", force_zip64=True) as f:
                        np.lib.format.write_array(f, arr, allow_pickle=True)
        return path


def _metadata() -> dict:
    """A ``metadata`` dict shaped like the public file's (keys and value types)."""
    return {
        "date": "generated by disentkit",
        "description": (
            "dSprites regenerated procedurally by disentkit (Dapueto et al. 2024 replication): "
            "2D shapes from 6 latent factors: color, shape, scale, orientation, posX, posY. "
            "Pixel-identical to the original on the reference frames checked; "
            "latents_classes are class indices, latents_values the original values."
        ),
        "version": 1,
        "latents_names": FACTOR_NAMES,
        "latents_possible_values": factor_values(),
        "latents_sizes": np.array(FACTOR_SIZES),
        "author": "disentkit",
        "title": "dSprites dataset (generated)",
    }


def _write_npy_header(f, shape: tuple[int, ...], dtype) -> None:
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
              "shape": tuple(int(s) for s in shape)}
    np.lib.format.write_array_header_2_0(f, header)


def npz_headers(path: str | os.PathLike) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of every array of an npz, read from the .npy headers only.

    Raises :class:`DataLayoutError` (naming ``path`` and the expected layout) when the file is
    missing or not an npz archive.
    """
    path = Path(path)
    if not path.is_file():
        raise DataLayoutError(path, "dSprites file not found", EXPECTED_LAYOUT)
    out = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                if not name.endswith(".npy"):
                    continue
                with zf.open(name) as f:
                    shape, _, dtype = read_npy_header(f)
                out[name[: -len(".npy")]] = (tuple(shape), np.dtype(dtype))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise DataLayoutError(path, f"not a readable npz archive ({exc})", EXPECTED_LAYOUT) from exc
    return out
