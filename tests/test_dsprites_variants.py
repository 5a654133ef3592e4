"""dSprites variants: factor spaces, colours, nuisances from the generator, the scream recipe."""

from __future__ import annotations

import numpy as np
import pytest

from disentkit.data.dsprites import DSprites
from disentkit.data.dsprites_variants import (
    CROP,
    PALETTE,
    ColorDSprites,
    NoisyColorDSprites,
    NoisyDSprites,
    ScreamDSprites,
    WhiteDSprites,
    scream_texture,
    uniform_noise,
)
from disentkit.data.registry import get_dataset

VARIANTS = {
    "white-dsprites": (WhiteDSprites, 1),
    "color-dsprites": (ColorDSprites, 7),
    "noisy-dsprites": (NoisyDSprites, 1),
    "noisy-color-dsprites": (NoisyColorDSprites, 7),
    "scream-dsprites": (ScreamDSprites, 1),
}
NUISANCE = {"noisy-dsprites", "noisy-color-dsprites", "scream-dsprites"}
ISSUE_COLOURS = [
    (0.9096, 0.5883, 0.3658), (0.6350, 0.6928, 0.3627), (0.3765, 0.7284, 0.5963),
    (0.3955, 0.7074, 0.7875), (0.6964, 0.6221, 0.8997), (0.9082, 0.5511, 0.7494),
]


@pytest.fixture(scope="module")
def masks_of():
    binary = DSprites()
    return lambda f: binary.images(np.column_stack([np.zeros(len(f), int), f[:, 1:]]))[:, 0] > 0.5


@pytest.mark.parametrize("name", list(VARIANTS))
def test_registered_factor_space_and_bijection(name):
    cls, n_colours = VARIANTS[name]
    ds = get_dataset(name)
    assert isinstance(ds, cls) and ds.name == name
    assert ds.factor_sizes == (n_colours, 3, 6, 40, 32, 32) and ds.image_shape == (3, 64, 64)
    assert ds.factor_names[0] == "color" and len(ds) == n_colours * 737_280
    idx = np.random.default_rng(0).integers(0, len(ds), 1000)
    np.testing.assert_array_equal(ds.factors_to_index(ds.index_to_factors(idx)), idx)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_images_shape_range_and_determinism(name, masks_of):
    ds = get_dataset(name)
    f = ds.sample_factors(16, np.random.default_rng(1))
    x = ds.images(f, np.random.default_rng(5))
    assert x.shape == (16, 3, 64, 64) and x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() <= 1.0
    np.testing.assert_array_equal(x, ds.images(f, np.random.default_rng(5)))
    np.testing.assert_array_equal(ds.images(f), ds.images(f))  # rng=None: a fixed generator
    other = ds.images(f, np.random.default_rng(6))
    assert (not np.array_equal(x, other)) == (name in NUISANCE)


def test_palette_is_the_issue_palette():
    np.testing.assert_array_equal(PALETTE[0], [1, 1, 1])
    np.testing.assert_allclose(PALETTE[1:], ISSUE_COLOURS, atol=1e-6)


@pytest.mark.parametrize("cls", [WhiteDSprites, ColorDSprites])
def test_sprite_in_its_colour_on_black(cls, masks_of):
    ds = cls()
    f = ds.sample_factors(50, np.random.default_rng(2))
    x = ds.images(f)
    mask = masks_of(f)
    for i in range(len(f)):
        inside = x[i][:, mask[i]]  # [3, pixels]
        np.testing.assert_array_equal(inside, np.repeat(PALETTE[f[i, 0]][:, None], inside.shape[1], 1))
        assert (x[i][:, ~mask[i]] == 0).all()


def test_all_seven_colours_appear():
    ds = ColorDSprites()
    f = np.tile([[0, 0, 5, 0, 10, 10]], (7, 1))
    f[:, 0] = np.arange(7)
    x = ds.images(f)
    np.testing.assert_allclose(x[:, :, 16 + 10, 16 + 10], PALETTE, atol=0)


@pytest.mark.parametrize("cls", [NoisyDSprites, NoisyColorDSprites])
def test_noisy_background_is_uniform_noise(cls, masks_of):
    ds = cls()
    f = ds.sample_factors(32, np.random.default_rng(3))
    x = ds.images(f, np.random.default_rng(7))
    mask = masks_of(f)
    for i in range(len(f)):
        inside = x[i][:, mask[i]]
        np.testing.assert_array_equal(inside, np.repeat(PALETTE[f[i, 0]][:, None], inside.shape[1], 1))
    background = np.concatenate([x[i][:, ~mask[i]].ravel() for i in range(len(f))])
    assert 0 < background.min() and background.max() < 1
    assert abs(background.mean() - 0.5) < 0.01 and abs(background.var() - 1 / 12) < 0.005
    # independent per channel: the three channels of a pixel are not equal
    assert (x[0][0] != x[0][1]).mean() > 0.9


def test_uniform_noise_levels():
    noise = uniform_noise(np.random.default_rng(0), (200_000,))
    assert noise.dtype == np.float32
    assert len(np.unique(noise)) == 256 and noise.min() == 0.5 / 256 and noise.max() == 1 - 0.5 / 256


def test_scream_texture_loads_offline():
    tex = scream_texture()
    assert tex.dtype == np.float32 and tex.shape[0] == 3 and min(tex.shape[1:]) >= CROP
    assert 0 <= tex.min() and tex.max() <= 1 and tex.std() > 0.1


def test_scream_follows_disentanglement_lib_recipe(masks_of):
    """Replay the generator: background = (crop + c) / 2, sprite pixels = 1 - background."""
    ds = ScreamDSprites()
    f = ds.sample_factors(8, np.random.default_rng(4))
    x = ds.images(f, np.random.default_rng(11))
    rng = np.random.default_rng(11)
    tex = scream_texture()
    top = rng.integers(0, tex.shape[1] - CROP, size=8)
    left = rng.integers(0, tex.shape[2] - CROP, size=8)
    tint = rng.random((8, 3), dtype=np.float32)
    mask = masks_of(f)
    for i in range(8):
        background = (tex[:, top[i] : top[i] + CROP, left[i] : left[i] + CROP] + tint[i, :, None, None]) / 2
        expected = np.where(mask[i], 1 - background, background)
        np.testing.assert_allclose(x[i], expected, atol=1e-6)


def test_variants_reject_bad_factors():
    with pytest.raises(ValueError, match="color"):
        ColorDSprites().images(np.array([[7, 0, 0, 0, 0, 0]]))
    with pytest.raises(ValueError, match="color"):
        NoisyDSprites().images(np.array([[1, 0, 0, 0, 0, 0]]))
