"""Reading ``.npy`` members of an ``.npz`` archive without loading them: headers and memory maps.

The large synthetic and real releases (dSprites' 737,280 images, MPI3D's 1,036,800) are npz
files; ``np.savez`` stores members uncompressed, so their bytes can be memory-mapped in place
instead of read whole. Used by :mod:`disentkit.data.dsprites` and :mod:`disentkit.data.mpi3d`.
"""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path

import numpy as np


def read_npy_header(f) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) of the ``.npy`` stream at ``f``'s position."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    if version in ((2, 0), (3, 0)):  # 3.0 differs only in a utf-8 (not latin-1) header
        return np.lib.format.read_array_header_2_0(f)
    raise ValueError(f"unsupported .npy format version {version}")


def zip_member_memmap(path: str | os.PathLike, member: str) -> np.ndarray | None:
    """Memory-map an uncompressed ``.npy`` member of a zip file; ``None`` if it is compressed.

    The member's bytes follow its local header (30 bytes, then the name and the extra field,
    whose lengths sit at bytes 26..30); the ``.npy`` header that starts them gives dtype, shape
    and order. Raises ``KeyError`` for a missing member and ``ValueError`` for what cannot be
    mapped: a bad local header, Fortran order, an object dtype, an archive that ends too soon.
    """
    path = Path(path)
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        if local[:4] != b"PK\x03\x04":
            raise ValueError("bad local file header")
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        f.seek(info.header_offset + 30 + name_len + extra_len)
        shape, fortran, dtype = read_npy_header(f)
        offset = f.tell()
    if fortran:
        raise ValueError("Fortran-ordered array")
    if np.dtype(dtype).hasobject:
        raise ValueError("object array")
    needed = offset + int(np.prod(shape)) * np.dtype(dtype).itemsize
    if os.path.getsize(path) < needed:
        raise ValueError(f"archive ends before the end of '{member}' ({needed} bytes needed)")
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=tuple(shape))
