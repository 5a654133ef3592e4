"""Coins-Augmented: the built-in real target, made from ``skimage.data.coins()`` offline."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from disentkit.cli import main
from disentkit.data.coins import CoinsAugmented, coin_crops, segment_coins
from disentkit.data.pairs import sample_pairs


@pytest.fixture(scope="module")
def coins(tmp_path_factory):
    return CoinsAugmented(cache_dir=tmp_path_factory.mktemp("cache"))


def test_segmentation_finds_24_whole_centred_coins():
    import skimage.data

    photo = skimage.data.coins()
    labels = segment_coins(photo)
    assert labels.max() == 24
    areas = np.bincount(labels.ravel())[1:]
    assert areas.min() > 800 and areas.max() < 4000  # no speck, no two coins merged
    crops = coin_crops(photo, labels)
    assert crops.shape == (24, 128, 128)
    y, x = np.mgrid[0:128, 0:128]
    for crop in crops:
        on = crop > 0
        assert abs(y[on].mean() - 64) < 4 and abs(x[on].mean() - 64) < 4  # centred
        assert not on[:4].any() and not on[-4:].any() and not on[:, :4].any()  # whole, on black


def test_factors_images_and_channels(coins, tmp_path):
    assert coins.factor_names == ("coin", "rotation", "scale")
    assert coins.factor_sizes == (24, 18, 9) and coins.image_shape == (3, 64, 64)
    f = coins.sample_factors(64, np.random.default_rng(0))
    x = coins.images(f)
    assert x.shape == (64, 3, 64, 64) and x.dtype == np.float32
    assert 0 <= x.min() and x.max() <= 1 and x.max() > 0.5
    assert (x[:, 0] == x[:, 1]).all() and (x[:, 1] == x[:, 2]).all()  # grey replicated
    np.testing.assert_array_equal(coins.images(f), x)  # deterministic
    grey = CoinsAugmented(cache_dir=tmp_path / "c", channels=1).images(f)
    np.testing.assert_array_equal(grey[:, 0], x[:, 0])
    with pytest.raises(ValueError, match="channels must be 1 or 3"):
        CoinsAugmented(cache_dir=tmp_path / "c", channels=2)


def test_rotation_keeps_the_coin_and_scale_shrinks_it(coins):
    base = np.array([[c, 0, 0] for c in range(24)])
    mass = coins.images(base)[:, 0].sum(axis=(1, 2))
    rotated = coins.images(base + [0, 5, 0])[:, 0].sum(axis=(1, 2))
    np.testing.assert_allclose(rotated, mass, rtol=0.03)  # nothing is cut off
    assert not np.array_equal(coins.images(base[:1] + [0, 5, 0]), coins.images(base[:1]))
    half = coins.images(base + [0, 0, 8])[:, 0].sum(axis=(1, 2))
    np.testing.assert_allclose(half / mass, 0.25, atol=0.03)


def test_pairs_change_exactly_one_factor(coins):
    pairs = sample_pairs(coins, 32, np.random.default_rng(3))
    assert pairs.x1.shape == (32, 3, 64, 64)
    np.testing.assert_array_equal((pairs.factors1 != pairs.factors2).sum(axis=1), 1)


def test_cli_show_needs_no_data(tmp_path):
    out = tmp_path / "coins.png"
    assert main(["datasets", "show", "coins-augmented", "--out", str(out),
                 "--cache-dir", str(tmp_path / "c")]) == 0
    assert Image.open(out).size[0] > 300
    assert len(list((tmp_path / "c").glob("coins-augmented-crops128-*.npy"))) == 1
