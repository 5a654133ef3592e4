"""RGB-D Objects (colour and depth) on a fixture in the cropped release's layout."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from disentkit.cli import main
from disentkit.data.pairs import sample_pairs
from disentkit.data.registry import get_dataset
from disentkit.data.rgbd import RGBDObjects, RGBDObjectsDepth, reference_depth, scale_depth
from disentkit.errors import DataLayoutError

CATEGORIES = ("apple", "bell_pepper", "cap")  # 'bell_pepper' has an underscore, as in the release
#: frames per video; frame 2 of video 2 is missing everywhere, so the grid is incomplete
FRAMES = {1: (1, 2, 3), 2: (1, 3, 4, 5), 4: (1, 2)}


def _crop(c: int, video: int, frame: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A tall crop (h > w) for even categories, a wide one otherwise; mask; depth (mm)."""
    h, w = (70, 40) if c % 2 == 0 else (40, 90)
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[...] = (40 + 50 * c, 10 * frame, 60 * video)
    mask = np.zeros((h, w), np.uint8)
    mask[2:-2, 2:-2] = 255
    rgb[0, :] = 255  # outside the mask: must disappear
    depth = np.linspace(700, 1300, h)[:, None].repeat(w, axis=1).astype(np.uint16)
    depth[:, :3] = 0  # no reading
    return rgb, mask, depth


def _write_rgbd(root, categories=CATEGORIES, instances=(1, 2), frames=FRAMES):
    for c, cat in enumerate(categories):
        for inst in instances:
            d = root / cat / f"{cat}_{inst}"
            d.mkdir(parents=True)
            for video, fr in frames.items():
                for frame in fr:
                    rgb, mask, depth = _crop(c + inst - 1, video, frame)
                    stem = d / f"{cat}_{inst}_{video}_{frame}"
                    Image.fromarray(rgb).save(f"{stem}_crop.png")
                    Image.fromarray(mask).save(f"{stem}_maskcrop.png")
                    Image.fromarray(depth).save(f"{stem}_depthcrop.png")
    return root


@pytest.fixture
def rgbd_root(tmp_path):
    return _write_rgbd(tmp_path / "rgbd-dataset")


def _expected_table():
    return {(c, [1, 2, 4].index(v), f - 1) for c in range(3) for v, fr in FRAMES.items()
            for f in fr}


def test_factors_follow_the_folder_and_grid_is_incomplete(rgbd_root, tmp_path):
    ds = RGBDObjects(rgbd_root, cache_dir=tmp_path / "c")
    assert ds.factor_names == ("category", "azimuth", "pose")
    assert ds.factor_sizes == (3, 3, 5)  # pose: the largest frame number
    assert ds.categories == CATEGORIES
    assert set(map(tuple, ds.combinations.tolist())) == _expected_table()
    assert not ds.is_complete and len(ds) == 3 * 9
    np.testing.assert_array_equal(ds.factor_values()["azimuth"], [1, 2, 4])


def test_sampling_and_pairs_only_return_existing_combinations(rgbd_root, tmp_path):
    ds = RGBDObjects(rgbd_root, cache_dir=tmp_path / "c")
    table = _expected_table()
    rng = np.random.default_rng(0)
    assert {tuple(r) for r in ds.sample_factors(500, rng).tolist()} == table  # uniform, all hit
    for k in (1, 2):
        pairs = sample_pairs(ds, 200, rng, k=k)
        assert {tuple(r) for r in pairs.factors2.tolist()} <= table
        assert {tuple(r) for r in pairs.factors1.tolist()} <= table
        np.testing.assert_array_equal((pairs.factors1 != pairs.factors2).sum(axis=1), k)
        assert pairs.x1.shape == (200, 3, 64, 64)


def test_rgb_is_masked_and_padded_on_the_short_side(rgbd_root, tmp_path):
    ds = RGBDObjects(rgbd_root, cache_dir=tmp_path / "c")
    tall, wide = ds.images(np.array([[0, 0, 0], [1, 0, 0]]))
    # tall crop 70x40: black bars left and right, object spans the full height
    assert tall[:, :, :8].max() == 0 and tall[:, :, -8:].max() == 0
    assert tall[0, 10:54, 32].min() > 0.1
    # wide crop 40x90: bars top and bottom
    assert wide[:, :10].max() == 0 and wide[:, -10:].max() == 0
    assert wide[0, 32, 5:59].min() > 0.2
    # the unmasked white top row of each crop is gone; colour is the crop's
    assert tall.max() < 0.5
    np.testing.assert_allclose(tall[:, 32, 32], np.array([40, 10, 60]) / 255, atol=1 / 255)


def test_normalised_depth_is_16_bit_scaled_without_wrap_and_channels(rgbd_root, tmp_path):
    ds = RGBDObjectsDepth(rgbd_root, cache_dir=tmp_path / "c", depth_mode="normalised")
    assert ds.image_shape == (1, 64, 64)
    x = ds.images(np.array([[0, 0, 0]]))[0, 0]
    column = x[1:63, 40]  # top of the crop is nearest (700 mm) → brightest, monotone down
    assert column[0] > 0.9 and column[-1] < 0.1
    assert np.all(np.diff(column) <= 1e-6)  # no wrap-around anywhere
    assert x[:, :14].max() == 0  # padding and missing readings are black
    x3 = get_dataset("rgbd-objects-depth", root=rgbd_root, cache_dir=tmp_path / "c",
                     channels=3, depth_mode="normalised").images(np.array([[0, 0, 0]]))
    assert x3.shape == (1, 3, 64, 64) and (x3 == x).all()
    d = np.array([[0, 700, 1000], [1300, 0, 65535]], np.uint16)
    np.testing.assert_allclose(scale_depth(d), [[0, 1, 1 - 300 / 64835], [1 - 600 / 64835, 0, 0]])


def test_reference_depth_is_the_papers_high_byte_code_that_wraps(rgbd_root, tmp_path):
    # high byte (d >> 8) times 255/4, truncated, modulo 256: 2 -> 127, 3 -> 191, 4 -> 255, 5 -> 62
    d = np.array([[0, 700, 1000], [1023, 1024, 1300]], np.uint16)
    np.testing.assert_array_equal(reference_depth(d), [[0, 127, 191], [191, 255, 62]])
    ds = RGBDObjectsDepth(rgbd_root, cache_dir=tmp_path / "c")  # the default mode
    assert ds.depth_mode == "reference"
    x = ds.images(np.array([[0, 0, 0]]))[0, 0]
    column = np.round(x[:, 40] * 255)
    assert column[2] == 127 and 191 in column and 255 in column  # 700 mm, 1 m, 1.02-1.28 m
    assert column[-2] < 200  # beyond 1.28 m the code wraps back down: not monotone
    assert x[:, :14].max() == 0
    normalised = RGBDObjectsDepth(rgbd_root, cache_dir=tmp_path / "c", depth_mode="normalised")
    assert not np.array_equal(normalised.images(np.array([[0, 0, 0]]))[0, 0], x)
    assert len(list((tmp_path / "c").glob("rgbd-objects-depth-*.npy"))) == 2  # one cache each
    with pytest.raises(ValueError, match="depth_mode must be one of"):
        RGBDObjectsDepth(rgbd_root, cache_dir=tmp_path / "c", depth_mode="metres")


def test_more_instances_add_an_instance_factor(rgbd_root, tmp_path):
    ds = RGBDObjects(rgbd_root, cache_dir=tmp_path / "c", instances=2)
    assert ds.factor_names == ("category", "instance", "azimuth", "pose")
    assert ds.factor_sizes == (3, 2, 3, 5) and len(ds) == 2 * 27
    a, b = ds.images(np.array([[0, 0, 0, 0], [0, 1, 0, 0]]))
    assert not np.array_equal(a, b)
    with pytest.raises(DataLayoutError, match="expected at least 3"):
        RGBDObjects(rgbd_root, cache_dir=tmp_path / "c", instances=3)


def test_partial_frames_are_skipped_with_a_warning(rgbd_root, tmp_path):
    (rgbd_root / "cap" / "cap_1" / "cap_1_1_3_maskcrop.png").unlink()
    with pytest.warns(UserWarning, match="skipped 1 frame"):
        ds = RGBDObjects(rgbd_root, cache_dir=tmp_path / "c")
    assert not ds.contains(np.array([[2, 0, 2]]))[0] and ds.contains(np.array([[1, 0, 2]]))[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # depth needs no mask: nothing skipped
        assert RGBDObjectsDepth(rgbd_root, cache_dir=tmp_path / "c").contains(
            np.array([[2, 0, 2]]))[0]


def test_layout_errors_name_file_and_layout(rgbd_root, tmp_path):
    with pytest.raises(DataLayoutError, match=r"not found[\s\S]*_maskcrop\.png"):
        RGBDObjects(tmp_path / "nowhere", cache_dir=tmp_path / "c")
    bad = rgbd_root / "apple" / "apple_1" / "apple_1_4_2_depthcrop.png"
    Image.fromarray(np.zeros((70, 40), np.uint8)).save(bad)  # 8-bit depth
    with pytest.raises(DataLayoutError, match=r"16-bit[\s\S]*apple_1_4_2_depthcrop\.png"):
        RGBDObjectsDepth(rgbd_root, cache_dir=tmp_path / "c")
    mask = rgbd_root / "cap" / "cap_1" / "cap_1_2_5_maskcrop.png"
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(mask)
    with pytest.raises(DataLayoutError, match=r"expected the crop's size.*: .*cap_1_2_5_maskcrop"):
        RGBDObjects(rgbd_root, cache_dir=tmp_path / "c")
    assert not list((tmp_path / "c").glob("rgbd-objects-*.npy"))
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(
        rgbd_root / "cap" / "cap_1" / "cap_1_3_1_crop.png")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(
        rgbd_root / "cap" / "cap_1" / "cap_1_3_1_maskcrop.png")
    with pytest.raises(DataLayoutError, match=r"video 3 frame 1: expected videos"):
        RGBDObjects(rgbd_root, cache_dir=tmp_path / "c")


def test_cli_show(rgbd_root, tmp_path):
    out = tmp_path / "x.png"
    assert main(["datasets", "show", "rgbd-objects-depth", "--root", str(rgbd_root),
                 "--cache-dir", str(tmp_path / "c"), "--out", str(out)]) == 0
    assert out.stat().st_size > 1000
    assert main(["datasets", "show", "rgbd-objects", "--root", str(tmp_path / "none"),
                 "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "y.png")]) == 2
