"""Generators of corrupt input files, one function per fault, each writing into a given folder.

Every generator returns the path of the faulty file; the fault tests feed it to every command
that reads that kind of file (issue 14, item 10). Kept free of pytest so that
``scripts/audit.py`` reuses them.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np


# ------------------------------------------------------------------------------ images
def good_png(path: Path, size: int = 16, value: int = 0) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)
    return path


def truncated_png(path: Path) -> Path:
    good_png(path, value=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def random_png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(0).bytes(300))
    return path


def folder_dataset(root: Path, bad: str | None = None, csv_text: str | bytes | None = None) -> Path:
    """A 2x2 folder dataset; ``bad`` in {truncated, random} breaks image 3, ``csv_text``
    replaces factors.csv."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(4):
        good_png(root / f"{i}.png", value=60 * i)
    if bad == "truncated":
        truncated_png(root / "3.png")
    elif bad == "random":
        random_png(root / "3.png")
    text = csv_text if csv_text is not None else "image,a,b\n0.png,0,0\n1.png,0,1\n2.png,1,0\n3.png,1,1\n"
    (root / "factors.csv").write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return root


CSV_FAULTS = {
    "not-utf8": b"image,a,b\n0.png,0,0\n1.png,\xff\xfe,1\n",
    "header-only": "image,a,b\n",
    "outside-root": "image,a\n0.png,0\n../outside.png,1\n",
    "absolute": "image,a\n0.png,0\n/etc/hostname,1\n",
    "columns": "image,a,b\n0.png,0\n",
    "negative": "image,a\n0.png,-1\n",
}


# ------------------------------------------------------------------------------ npz
def dsprites_npz(path: Path, rows=np.arange(0, 737280, 4096), scale: int = 1) -> Path:
    """A valid cut of dSprites (optionally images times ``scale``, e.g. 255)."""
    from disentkit.data.dsprites import DSprites

    DSprites().export(path, indices=rows, compressed=True)
    if scale != 1:
        with np.load(path, allow_pickle=False) as d:
            arrays = {k: d[k] for k in ("imgs", "latents_classes", "latents_values")}
        arrays["imgs"] = arrays["imgs"] * np.uint8(scale)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)
    return path


def truncated_npz(path: Path) -> Path:
    dsprites_npz(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def random_npz(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(1).bytes(4096))
    return path


def npy_as_npz(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.save(f, np.zeros((4, 3), np.float32))
    return path


def crc_broken_npz(path: Path) -> Path:
    """A dSprites npz whose compressed ``imgs`` member fails its CRC when read."""
    dsprites_npz(path)
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("imgs.npy")
    data = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    mid = start + info.compress_size // 2
    data[mid : mid + 8] = bytes(8)  # inside the deflate stream
    path.write_bytes(bytes(data))
    return path


NPZ_FAULTS = {"truncated": truncated_npz, "random": random_npz, "npy": npy_as_npz,
              "crc": crc_broken_npz}


# ------------------------------------------------------------------------------ h5
def shapes3d_h5(path: Path) -> Path:
    from disentkit.data.shapes3d import Shapes3D

    return Shapes3D().export(path, sizes=(2, 2, 2, 2, 2, 2))


def random_h5(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + np.random.default_rng(2).bytes(2048))
    return path


def truncated_h5(path: Path) -> Path:
    shapes3d_h5(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def chunk_broken_h5(path: Path) -> Path:
    """A valid header and tables, with the compressed image chunks overwritten."""
    import h5py

    shapes3d_h5(path)
    with h5py.File(path, "r") as f:
        ds = f["images"]
        offsets = [ds.id.get_chunk_info(i).byte_offset for i in range(ds.id.get_num_chunks())]
    data = bytearray(path.read_bytes())
    for off in offsets:
        data[off : off + 64] = b"\x00" * 64
    path.write_bytes(bytes(data))
    return path


H5_FAULTS = {"random": random_h5, "truncated": truncated_h5, "chunks": chunk_broken_h5}


# ------------------------------------------------------------------------------ JSON / YAML
JSON_FAULTS = {
    "truncated": b'{"optim": {"lr": 0.1',
    "list": b"[1, 2, 3]",
    "not-utf8": b'{"optim": {"lr": "\xff"}}',
    "empty": b"",
}


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def study_yaml(name="s", source="color", targets="[noisy-color-dsprites]", extra="") -> str:
    return (f"name: {name}\nsources:\n  - name: {source}\n    dataset: color-dsprites\n"
            f"    seeds: 1\n    steps: 2\n{extra}transfers:\n  - source: {source}\n"
            f"    targets: {targets}\n    finetune_steps: 1\nevaluation: {{n_samples: 16}}\n")


YAML_FAULTS = {
    "syntax": "name: s\nsources: [\n  - {name: a\n",
    "escape": study_yaml(source="'../../../escaped'"),
    "name-list": study_yaml(name="[a, b]"),
    "targets-int": study_yaml(targets="5"),
    "lr-empty": study_yaml(extra="    lr:\n"),
    "not-utf8": b"name: \xff\xfe\n",
}


# ------------------------------------------------------------------------------ safetensors
def corrupt_checkpoint(run_dir: Path, how: str) -> Path:
    """Break ``run_dir``'s checkpoint: truncated, random bytes, or metadata naming a bit
    generator that does not exist (``getattr`` on file content would run it)."""
    from disentkit.training.checkpoint import checkpoint_path

    path = checkpoint_path(run_dir)
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "random":
        path.write_bytes(np.random.default_rng(3).bytes(len(data) // 4))
    elif how == "bitgen":
        from safetensors import safe_open
        from safetensors.torch import save_file

        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata())
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        rng = json.loads(meta["numpy_rng"])
        rng["bit_generator"] = "__class__"
        meta["numpy_rng"] = json.dumps(rng)
        save_file(tensors, str(path), metadata=meta)
    else:
        raise ValueError(how)
    return path


SAFETENSORS_FAULTS = ("truncated", "random", "bitgen")


def snapshot(root: Path, exclude: tuple[Path, ...] = ()) -> dict[str, tuple[int, bytes]]:
    """Every file under ``root`` (except under ``exclude``) with its mode and bytes."""
    out = {}
    for p in sorted(root.rglob("*")):
        if any(p == e or e in p.parents for e in exclude):
            continue
        out[str(p.relative_to(root))] = (p.stat().st_mode, p.read_bytes() if p.is_file() else b"")
    return out
