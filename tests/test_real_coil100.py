"""Coil-100, Coil-100-Augmented(-Binary): fixtures built in the public layouts, in the test."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from disentkit.cli import main
from disentkit.data._augment import ROTATIONS_DEG, SCALES, aa_downsample_uint8, grid_index_map
from disentkit.data.coil100 import (
    Coil100,
    Coil100Augmented,
    Coil100AugmentedBinary,
    silhouette,
)
from disentkit.data.pairs import sample_pairs
from disentkit.data.registry import get_dataset
from disentkit.errors import DataLayoutError

OBJECTS = (1, 2, 3)
ANGLES = (0, 5, 10)


def coil_view(o: int, a: int) -> np.ndarray:
    """A 128x128 RGB view: a coloured off-centre disk (object) with a notch (pose) on black."""
    y, x = np.mgrid[0:128, 0:128]
    img = np.zeros((128, 128, 3), dtype=np.uint8)
    disk = (x - 60 - o) ** 2 + (y - 64) ** 2 < (20 + 4 * o) ** 2
    img[disk] = (60 * o, 200 - 40 * o, 90 + a)
    img[(x > 80) & (x < 90) & (abs(y - 64 + a) < 4)] = (255, 255, 255)
    return img


def write_png(path, arr) -> None:
    Image.fromarray(arr).save(path)


@pytest.fixture
def coil_root(tmp_path):
    root = tmp_path / "coil"
    (root / "coil-100").mkdir(parents=True)
    for o in OBJECTS:
        for a in ANGLES:
            write_png(root / "coil-100" / f"obj{o}__{a}.png", coil_view(o, a))
    return root


def block_mean(img: np.ndarray) -> np.ndarray:
    return img.reshape(64, 2, 64, 2, -1).mean(axis=(1, 3))


def paper_resize(img: np.ndarray) -> np.ndarray:
    """The paper's loader: ToTensor (float in [0, 1]) then Resize([64, 64], antialias=True),
    i.e. torch's antialiased bilinear interpolation; uint8 [H, W, C] -> float [64, 64, C]."""
    import torch

    x = torch.from_numpy(img.astype(np.float64) / 255.0).permute(2, 0, 1)[None]
    y = torch.nn.functional.interpolate(x, size=(64, 64), mode="bilinear", antialias=True,
                                        align_corners=False)
    return y[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_antialiased_resize_equals_torchvision_to_8_bits(channels):
    img = np.random.default_rng(channels).integers(0, 256, (128, 128, channels), dtype=np.uint8)
    ours = aa_downsample_uint8(img[None], 2)[0].astype(np.float64) / 255
    ref = paper_resize(img)
    assert np.abs(ours - ref).max() <= 0.5 / 255 + 1e-9
    np.testing.assert_array_equal(ours, np.floor(ref * 255 + 0.5 + 1e-9) / 255)  # half up
    assert np.abs(block_mean(img.astype(np.float64)) / 255 - ref).max() > 0.05  # not a box


def test_coil100_reads_plain_layout_and_resizes_like_the_paper(coil_root, tmp_path):
    ds = Coil100(coil_root, cache_dir=tmp_path / "c", objects=OBJECTS, angles=ANGLES)
    assert ds.factor_sizes == (3, 3) and ds.image_shape == (3, 64, 64)
    x = ds.images(np.array([[1, 2], [0, 0]]))
    assert x.shape == (2, 3, 64, 64) and x.dtype == np.float32
    expect = paper_resize(coil_view(2, 10))
    np.testing.assert_allclose(x[0].transpose(1, 2, 0), expect, atol=0.5 / 255 + 1e-6)
    grey = Coil100(coil_root, cache_dir=tmp_path / "c", objects=OBJECTS, angles=ANGLES, channels=1)
    luma = (x[0] * np.array([0.299, 0.587, 0.114])[:, None, None]).sum(0)
    assert grey.image_shape == (1, 64, 64)
    np.testing.assert_allclose(grey.images(np.array([[1, 2]]))[0, 0], luma, atol=1e-5)


def test_augmented_identity_class_equals_plain_view(coil_root, tmp_path):
    aug = Coil100Augmented(coil_root, cache_dir=tmp_path / "c", objects=OBJECTS, angles=ANGLES)
    plain = Coil100(coil_root, cache_dir=tmp_path / "c", objects=OBJECTS, angles=ANGLES)
    assert aug.mode == "generated" and aug.factor_sizes == (3, 3, 18, 9)
    f = np.array([[o, p, 0, 0] for o in range(3) for p in range(3)])
    np.testing.assert_array_equal(aug.images(f), plain.images(f[:, :2]))


def _skimage_two_step(img, angle, zoom):
    """Independent reference: two nearest-neighbour warps with scikit-image, OpenCV's matrices."""
    from skimage.transform import AffineTransform, warp

    def one(im, ang, z):
        th = np.deg2rad(ang)
        a, b = z * np.cos(th), z * np.sin(th)
        m = np.array([[a, b, (1 - a) * 64 - b * 64], [-b, a, b * 64 + (1 - a) * 64], [0, 0, 1]])
        out = warp(im, AffineTransform(matrix=np.linalg.inv(m)), order=0, preserve_range=True)
        return out.astype(im.dtype)

    return one(one(img, angle, 1.0), 0.0, zoom)


def test_grid_maps_agree_with_scikit_image_warps():
    img = np.random.default_rng(0).integers(0, 256, (128, 128), dtype=np.uint8)
    for angle in ROTATIONS_DEG:
        for zoom in SCALES:
            m = grid_index_map(128, angle, zoom)
            mine = np.where(m >= 0, img.reshape(-1)[np.maximum(m, 0)], 0).reshape(128, 128)
            ref = _skimage_two_step(img, angle, zoom)
            differ = np.mean(mine != ref)
            # OpenCV rounds coordinates in 1/1024 fixed point: only exact ties may differ
            assert differ < 0.005, (angle, zoom, differ)
            if angle % 90 == 0 and zoom == 1.0:
                np.testing.assert_array_equal(mine, ref)


def test_rotation_is_counter_clockwise_and_scale_shrinks_about_centre(tmp_path):
    root = tmp_path / "dot"
    (root / "coil-100").mkdir(parents=True)
    img = np.zeros((128, 128, 3), dtype=np.uint8)
    img[60:68, 100:108] = 255  # a square to the right of the centre (64, 64)
    write_png(root / "coil-100" / "obj1__0.png", img)
    ds = Coil100Augmented(root, cache_dir=tmp_path / "c", objects=(1,), angles=(0,))
    x = ds.images(np.array([[0, 0, 0, 0], [0, 0, 18 // 4, 0], [0, 0, 0, 8]]))[:, 0]
    centroid = [np.argwhere(im > 0.5).mean(axis=0) for im in x]
    np.testing.assert_allclose(centroid[0], [32, 52], atol=1)  # (row, col) at 64x64
    # 80 degrees counter-clockwise on screen: right of centre moves up (smaller row)
    th = np.deg2rad(80)
    np.testing.assert_allclose(centroid[1], [32 - 20 * np.sin(th), 32 + 20 * np.cos(th)], atol=1.5)
    # zoom 0.5 about the centre halves the distance and quarters the area
    np.testing.assert_allclose(centroid[2], [32, 42], atol=1)
    assert x[2].sum() == pytest.approx(x[0].sum() / 4, rel=0.1)


def _write_release(src_root, dst, objects, angles, size=128, make=None, drop=()):
    """A pre-built release in the authors' layout, made with the OpenCV-exact maps."""
    dst.mkdir(parents=True)
    rows = []
    for oi, o in enumerate(objects):
        for pi, a in enumerate(angles):
            view = np.asarray(Image.open(src_root / "coil-100" / f"obj{o}__{a}.png"))
            if make is not None:
                view = make(view)
            for ri, angle in enumerate(ROTATIONS_DEG):
                for si, zoom in enumerate(SCALES):
                    if (oi, pi, ri, si) in drop:
                        continue
                    m = grid_index_map(size, angle, zoom)
                    flat = view.reshape(size * size, -1)
                    out = np.where((m >= 0)[:, None], flat[np.maximum(m, 0)], 0)
                    name = f"obj{o}__{a}__{angle}__{zoom}.png"
                    write_png(dst / name, out.reshape(view.shape).astype(np.uint8))
                    rows.append([name, o - 1, a // 5, ri, si])
    with open(dst / "classes.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "object", "pose", "rotation", "scale"])
        w.writerows(rows)
    return rows


def test_release_and_generated_paths_give_the_same_images(coil_root, tmp_path):
    release = tmp_path / "coil-100-augmented"
    _write_release(coil_root, release, (1, 2), (0, 5))
    rel = Coil100Augmented(release, cache_dir=tmp_path / "c")
    gen = Coil100Augmented(coil_root, cache_dir=tmp_path / "c", objects=(1, 2), angles=(0, 5))
    assert rel.mode == "release" and rel.factor_sizes == gen.factor_sizes == (2, 2, 18, 9)
    assert rel.is_complete
    f = np.array([[o, p, r, s] for o in range(2) for p in range(2) for r in range(18)
                  for s in range(9)])
    np.testing.assert_array_equal(rel.images(f), gen.images(f))


def test_incomplete_release_samples_and_pairs_only_existing(coil_root, tmp_path):
    release = tmp_path / "rel"
    drop = {(0, 0, r, s) for r in range(18) for s in range(9) if (r + s) % 3}
    _write_release(coil_root, release, (1,), (0, 5), drop=drop)
    ds = Coil100Augmented(release, cache_dir=tmp_path / "c")
    assert not ds.is_complete and len(ds) == 2 * 162 - len(drop)
    rng = np.random.default_rng(1)
    assert ds.contains(ds.sample_factors(300, rng)).all()
    pairs = sample_pairs(ds, 100, rng)
    assert ds.contains(pairs.factors2).all()
    assert (pairs.changed.sum(axis=1) == 1).all()


def test_release_errors_name_file_and_layout(coil_root, tmp_path):
    release = tmp_path / "rel"
    _write_release(coil_root, release, (1,), (0,), drop={(0, 0, r, s) for r in range(1, 18)
                                                          for s in range(9)})
    text = (release / "classes.csv").read_text()
    (release / "classes.csv").write_text(text.replace("obj1__0__0__0.94.png,0,0,0,1",
                                                      "obj1__0__0__0.94.png,0,0,0,2"))
    with pytest.raises(DataLayoutError, match=r"line 3.*disagree[\s\S]*classes.csv"):
        Coil100Augmented(release, cache_dir=tmp_path / "c")
    (release / "classes.csv").write_text(text.replace("image,object", "name,object"))
    with pytest.raises(DataLayoutError, match="header"):
        Coil100Augmented(release, cache_dir=tmp_path / "c")
    (release / "classes.csv").write_text(text)
    (release / "obj1__0__0__0.5.png").unlink()
    with pytest.raises(DataLayoutError, match=r"missing: .*obj1__0__0__0\.5\.png"):
        Coil100Augmented(release, cache_dir=tmp_path / "c")


def test_plain_layout_errors(coil_root, tmp_path):
    with pytest.raises(DataLayoutError, match=r"not found[\s\S]*obj\{o\}__\{a\}\.png"):
        Coil100(tmp_path / "nowhere", cache_dir=tmp_path / "c")
    with pytest.raises(DataLayoutError, match=r"missing: .*obj1__15\.png"):
        Coil100(coil_root, cache_dir=tmp_path / "c", objects=OBJECTS, angles=(0, 15))
    with pytest.raises(DataLayoutError, match=r"obj4__0\.png"):  # default: all 100 objects
        Coil100(coil_root, cache_dir=tmp_path / "c", angles=ANGLES)
    write_png(coil_root / "coil-100" / "obj2__5.png", np.zeros((100, 128, 3), np.uint8))
    with pytest.raises(DataLayoutError, match=r"100x128, expected 128x128: .*obj2__5\.png"):
        Coil100(coil_root, cache_dir=tmp_path / "c", objects=OBJECTS, angles=ANGLES)
    assert not list((tmp_path / "c").glob("coil100-*.npy"))  # nothing half-built is kept
    with pytest.raises(ValueError, match="objects must be"):
        Coil100(coil_root, cache_dir=tmp_path / "c", objects=(0, 1))


def test_cli_show_exit_codes(coil_root, tmp_path, capsys):
    out = tmp_path / "x.png"
    assert main(["datasets", "show", "coil100", "--root", str(tmp_path / "none"),
                 "--out", str(out), "--cache-dir", str(tmp_path / "c")]) == 2
    assert "expected layout" in capsys.readouterr().err
    assert not out.exists()
    release = tmp_path / "rel"
    _write_release(coil_root, release, (1,), (0,))
    assert main(["datasets", "show", "coil100-augmented", "--root", str(release),
                 "--out", str(out), "--cache-dir", str(tmp_path / "c")]) == 0
    assert Image.open(out).size[0] > 100


def test_silhouette_recipe_on_a_disk():
    y, x = np.mgrid[0:128, 0:128]
    disk = (x - 64) ** 2 + (y - 64) ** 2 < 40**2
    img = np.where(disk[..., None], np.array([200, 120, 40], np.uint8), 10).astype(np.uint8)
    img[64, 64] = 0  # salt: removed by the median blur
    sil = silhouette(img)
    assert sil.shape == (64, 64) and set(np.unique(sil)) == {0, 255}
    small = block_mean(disk[..., None].astype(float))[..., 0] > 0.5
    assert np.mean((sil > 0) != small) < 0.01
    np.testing.assert_array_equal(silhouette(img[..., 0]) > 0, sil > 0)  # grey input accepted


def test_binary_generated_and_release_agree_and_channels(coil_root, tmp_path):
    ds = Coil100AugmentedBinary(coil_root, cache_dir=tmp_path / "c", objects=OBJECTS,
                                angles=ANGLES)
    assert ds.image_shape == (1, 64, 64) and ds.factor_sizes == (3, 3, 18, 9)
    f = ds.sample_factors(40, np.random.default_rng(0))
    x = ds.images(f)
    assert set(np.unique(x)) <= {0.0, 1.0} and x.mean() > 0.02
    x3 = Coil100AugmentedBinary(coil_root, cache_dir=tmp_path / "c", objects=OBJECTS,
                                angles=ANGLES, channels=3).images(f)
    assert x3.shape == (40, 3, 64, 64) and (x3 == x).all()
    # a binary release: 64x64 single-channel silhouettes, the grid applied at 64x64
    release = tmp_path / "rel-bin"
    _write_release(coil_root, release, (1, 2), (0, 5), size=64, make=silhouette)
    rel = get_dataset("coil100-augmented-binary", root=release, cache_dir=tmp_path / "c")
    g = np.array([[o, p, r, s] for o in range(2) for p in range(2) for r in (0, 3, 7)
                  for s in (0, 4, 8)])
    np.testing.assert_array_equal(rel.images(g), ds.images(g))


def test_cache_is_reused_and_rebuilt_when_the_source_changes(coil_root, tmp_path):
    cache = tmp_path / "c"
    Coil100(coil_root, cache_dir=cache, objects=OBJECTS, angles=ANGLES)
    files = sorted(cache.glob("coil100-rgbx128-*.npy"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns
    Coil100(coil_root, cache_dir=cache, objects=OBJECTS, angles=ANGLES)
    assert files[0].stat().st_mtime_ns == mtime  # reused, not rebuilt
    write_png(coil_root / "coil-100" / "obj1__0.png", np.full((128, 128, 3), 255, np.uint8))
    again = Coil100(coil_root, cache_dir=cache, objects=OBJECTS, angles=ANGLES)
    assert again.images(np.array([[0, 0]])).min() == 1.0
    now = sorted(cache.glob("coil100-rgbx128-*.npy"))
    assert len(now) == 1 and now != files  # new key, stale entry removed
