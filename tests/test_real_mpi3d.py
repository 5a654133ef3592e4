"""MPI3D loaders on a tiny npz whose factor sizes are shrunk through ``factor_sizes=``."""

from __future__ import annotations

import numpy as np
import pytest

from disentkit.cli import main
from disentkit.data.mpi3d import MPI3DReal, MPI3DRealistic, MPI3DToy
from disentkit.data.registry import get_dataset
from disentkit.errors import DataLayoutError

SIZES = (2, 3, 1, 1, 2, 3, 2)  # 72 images instead of 1,036,800


def _images(sizes=SIZES) -> np.ndarray:
    """Image k stores k in its red channel and 255 - k in its blue channel."""
    n = int(np.prod(sizes))
    imgs = np.zeros((n, 64, 64, 3), np.uint8)
    imgs[..., 0] = np.arange(n, dtype=np.uint8)[:, None, None]
    imgs[..., 2] = 255 - imgs[..., 0]
    return imgs


@pytest.fixture
def npz_root(tmp_path):
    root = tmp_path / "mpi3d"
    root.mkdir()
    np.savez(root / "mpi3d_real.npz", images=_images())
    return root


def test_rows_follow_mixed_radix_last_factor_fastest(npz_root):
    ds = MPI3DReal(npz_root, factor_sizes=SIZES)
    assert isinstance(ds._images, np.memmap)  # memory-mapped out of the archive
    f = ds.sample_factors(50, np.random.default_rng(0))
    x = ds.images(f)
    assert x.shape == (50, 3, 64, 64) and x.dtype == np.float32
    strides = np.array([36, 12, 12, 12, 6, 2, 1])
    np.testing.assert_allclose(x[:, 0, 5, 5] * 255, f @ strides, atol=1e-4)
    np.testing.assert_allclose(x[:, 2, 0, 0], 1 - x[:, 0, 0, 0], atol=1e-6)
    grey = MPI3DReal(npz_root / "mpi3d_real.npz", factor_sizes=SIZES, channels=1)
    assert grey.images(f[:3]).shape == (3, 1, 64, 64)


def test_each_variant_reads_its_own_file(tmp_path):
    for cls, fname in [(MPI3DToy, "mpi3d_toy.npz"), (MPI3DRealistic, "mpi3d_realistic.npz")]:
        np.savez(tmp_path / fname, images=_images())
        ds = cls(tmp_path, factor_sizes=SIZES)
        assert ds.path.name == fname and ds.factor_names[0] == "object_color"
    assert MPI3DToy.factor_sizes == (6, 6, 2, 3, 3, 40, 40)


def test_compressed_archive_is_unpacked_once_into_the_cache(tmp_path):
    np.savez_compressed(tmp_path / "mpi3d_toy.npz", images=_images())
    ds = get_dataset("mpi3d-toy", root=tmp_path, cache_dir=tmp_path / "c", factor_sizes=SIZES)
    assert len(list((tmp_path / "c").glob("mpi3d-toy-*.npy"))) == 1
    f = np.array([[1, 2, 0, 0, 1, 2, 1]])
    assert ds.images(f)[0, 0, 0, 0] * 255 == pytest.approx(36 + 24 + 6 + 4 + 1)


def test_layout_errors(npz_root, tmp_path):
    with pytest.raises(DataLayoutError, match=r"not found: .*mpi3d_toy\.npz[\s\S]*'images'"):
        MPI3DToy(npz_root)
    with pytest.raises(DataLayoutError, match=r"'images' is uint8 \(72, 64, 64, 3\)"):
        MPI3DReal(npz_root)  # the real sizes expect 1,036,800 rows
    data = (npz_root / "mpi3d_real.npz").read_bytes()
    cut = tmp_path / "cut" / "mpi3d_real.npz"
    cut.parent.mkdir()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataLayoutError, match=r"truncated npz[\s\S]*mpi3d_real\.npz"):
        MPI3DReal(cut.parent, factor_sizes=SIZES)
    np.savez(tmp_path / "cut" / "mpi3d_toy.npz", labels=np.zeros(3))
    with pytest.raises(DataLayoutError, match="no 'images' array"):
        MPI3DToy(cut.parent, factor_sizes=SIZES)
    with pytest.raises(ValueError, match="7 positive ints"):
        MPI3DToy(cut.parent, factor_sizes=(1, 2))


def test_cli_exit_code_for_a_truncated_file(tmp_path, capsys):
    data_root = tmp_path / "d"
    data_root.mkdir()
    (data_root / "mpi3d_real.npz").write_bytes(b"PK\x03\x04 not really")
    code = main(["datasets", "show", "mpi3d-real", "--root", str(data_root),
                 "--out", str(tmp_path / "x.png")])
    assert code == 2 and "mpi3d_real.npz" in capsys.readouterr().err


def test_zip_member_memmap_maps_stored_and_refuses_what_it_cannot_map(tmp_path):
    """The shared npz reader (dSprites and MPI3D): a stored member is mapped in place, a
    compressed one gives None, a Fortran-ordered one and a missing one raise."""
    from disentkit.data._npz import zip_member_memmap

    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    np.savez(tmp_path / "s.npz", a=a, f=np.asfortranarray(a.astype(np.int16)))
    np.savez_compressed(tmp_path / "c.npz", a=a)
    mapped = zip_member_memmap(tmp_path / "s.npz", "a.npy")
    assert isinstance(mapped, np.memmap) and np.array_equal(mapped, a)
    assert zip_member_memmap(tmp_path / "c.npz", "a.npy") is None
    with pytest.raises(ValueError, match="Fortran"):
        zip_member_memmap(tmp_path / "s.npz", "f.npy")
    with pytest.raises(KeyError):
        zip_member_memmap(tmp_path / "s.npz", "missing.npy")
