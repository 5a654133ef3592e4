"""MPI3D (Gondal et al. 2019): the field's sim-to-real benchmark, in its three public renderings.

One robot arm holding an object, photographed (``real``), rendered realistically
(``realistic``) or simply (``toy``) on the same factor grid of 1,036,800 combinations. Dapueto et
al. 2024 transfer to Coil-100 and RGB-D Objects; MPI3D-real is the other standard real target,
and its toy/realistic twins make source → target studies with *identical* factors possible.

Files (the public npz releases): ``mpi3d_toy.npz``, ``mpi3d_realistic.npz``, ``mpi3d_real.npz``,
each holding ``images`` uint8 [1036800, 64, 64, 3] in mixed-radix order, last factor fastest.
The array is memory-mapped straight out of the zip archive (``np.savez`` stores members
uncompressed), never loaded whole; a compressed archive is unpacked once into the cache folder.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from disentkit.data import cache as cache_mod
from disentkit.data._npz import read_npy_header, zip_member_memmap
from disentkit.data._augment import check_channels, convert_channels
from disentkit.data.base import FactorDataset
from disentkit.errors import DataLayoutError

MPI3D_FACTORS = (
    "object_color", "object_shape", "object_size", "camera_height",
    "background_color", "horizontal_axis", "vertical_axis",
)
MPI3D_SIZES = (6, 6, 2, 3, 3, 40, 40)


class _MPI3D(FactorDataset):
    """Shared loader; subclasses name the file. ``factor_sizes=`` shrinks the grid (tests)."""

    thread_safe_images = True  # images() reads arrays loaded at construction

    factor_names = MPI3D_FACTORS
    factor_sizes = MPI3D_SIZES
    #: what each factor is and what else varies (disentkit.data.kinds): the two axes of the
    #: robot arm move the object across the image
    factor_kinds = {"object_color": "colour", "object_shape": "identity", "object_size": "scale",
                    "camera_height": "pose", "background_color": "background",
                    "horizontal_axis": "position", "vertical_axis": "position"}
    nuisances: tuple[str, ...] = ()
    image_shape = (3, 64, 64)
    synthetic = False
    filename = ""

    def __init__(
        self,
        root: str | os.PathLike,
        cache_dir: str | os.PathLike | None = None,
        channels: int = 3,
        factor_sizes: Sequence[int] | None = None,
    ):
        self.channels = check_channels(channels)
        self.image_shape = (self.channels, 64, 64)
        if factor_sizes is not None:
            factor_sizes = tuple(int(s) for s in factor_sizes)
            if len(factor_sizes) != len(MPI3D_FACTORS) or min(factor_sizes) < 1:
                raise ValueError(f"factor_sizes must be 7 positive ints, found {factor_sizes}")
            self.factor_sizes = factor_sizes
        root = Path(root)
        self.path = root / self.filename if root.is_dir() else root
        n = int(np.prod(self.factor_sizes))
        layout = (
            f"ROOT/{self.filename}: numpy npz with 'images' uint8 [{n}, 64, 64, 3], rows in "
            f"mixed-radix order of {dict(zip(self.factor_names, self.factor_sizes))}, last fastest"
        )
        self._images = self._open(cache_dir, layout)
        if self._images.shape != (n, 64, 64, 3) or self._images.dtype != np.uint8:
            raise DataLayoutError(
                self.path, f"'images' is {self._images.dtype} {self._images.shape}", layout
            )

    def _open(self, cache_dir, layout: str) -> np.ndarray:
        if not self.path.is_file():
            raise DataLayoutError(self.path, f"{self.name} file not found", layout)
        try:
            arr = zip_member_memmap(self.path, "images.npy")
        except KeyError:
            raise DataLayoutError(self.path, "the archive has no 'images' array", layout) from None
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
            problem = f"unreadable or truncated npz ({exc})"
            raise DataLayoutError(self.path, problem, layout) from None
        if arr is None:
            arr = self._unpacked(cache_dir, layout)
        return arr

    def _unpacked(self, cache_dir, layout: str) -> np.ndarray:
        """A compressed archive (``np.savez_compressed``) is unpacked once into the cache."""
        with zipfile.ZipFile(self.path) as zf, zf.open("images.npy") as f:
            shape, _, dtype = read_npy_header(f)
            if dtype != np.uint8:
                raise DataLayoutError(self.path, f"'images' is {dtype}, expected uint8", layout)
            key = cache_mod.fingerprint_key(
                {"what": f"{self.name} unpacked", "version": 1},
                cache_mod.file_fingerprint([self.path], self.path.parent),
            )

            def build(out):
                flat = out.reshape(-1)
                pos = 0
                while pos < flat.size:
                    chunk = f.read(min(1 << 24, flat.size - pos))
                    if not chunk:
                        raise DataLayoutError(self.path, "truncated 'images' array", layout)
                    flat[pos : pos + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
                    pos += len(chunk)

            try:
                return cache_mod.cached_array(
                    cache_mod.cache_name(self.name, self.path), key, shape, build, cache_dir
                )
            except (zipfile.BadZipFile, EOFError, OSError) as exc:
                if isinstance(exc, DataLayoutError):
                    raise
                raise DataLayoutError(self.path, f"truncated npz ({exc})", layout) from None

    def images(self, factors, rng=None) -> np.ndarray:
        index = self.grid_code(factors)
        order = np.argsort(index, kind="stable")  # sorted reads are kinder to a cold page cache
        batch = np.empty((len(index), 64, 64, 3), dtype=np.uint8)
        batch[order] = self._images[index[order]]
        out = batch.transpose(0, 3, 1, 2).astype(np.float32) * np.float32(1 / 255)
        return convert_channels(out, self.channels)


class MPI3DToy(_MPI3D):
    """MPI3D-toy: simple renderings of the MPI3D robot scene (``mpi3d_toy.npz``)."""

    name = "mpi3d-toy"
    filename = "mpi3d_toy.npz"
    synthetic = True
    source = "Gondal et al. 2019, MPI3D toy renderings (read from --root)"


class MPI3DRealistic(_MPI3D):
    """MPI3D-realistic: realistic renderings of the same scene (``mpi3d_realistic.npz``)."""

    name = "mpi3d-realistic"
    filename = "mpi3d_realistic.npz"
    nuisances = ("texture", "lighting")
    synthetic = True
    source = "Gondal et al. 2019, MPI3D realistic renderings (read from --root)"


class MPI3DReal(_MPI3D):
    """MPI3D-real: photographs of the real robot platform (``mpi3d_real.npz``)."""

    name = "mpi3d-real"
    filename = "mpi3d_real.npz"
    nuisances = ("texture", "lighting")
    source = "Gondal et al. 2019, MPI3D real photographs (read from --root)"
