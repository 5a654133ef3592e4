"""On-device batches equal the CPU renderers: bit for bit for the dSprites family (given the
same nuisance draws), to float32 rounding for the Shapes3D look-alike."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from disentkit.data import _dsprites_raster as raster
from disentkit.data.dsprites_variants import scream_texture, uniform_noise
from disentkit.data.registry import get_dataset
from disentkit.data.render_torch import (
    DSPRITES_FAMILY,
    DeviceBatches,
    DSpritesGeometry,
    compose_noisy,
    compose_scream,
    interp,
)


def random_factors(dataset, n, seed=0):
    return dataset.sample_factors(n, np.random.default_rng(seed))


def test_masks_are_bit_identical_to_the_cpu_rasteriser():
    ds = get_dataset("dsprites")
    f = random_factors(ds, 3000)
    f[:40, 1:] = 0  # the smallest squares at the corner, and every shape below
    f[40:80, 1] = 2  # hearts
    cpu = raster.render_masks(f[:, 1], f[:, 2], f[:, 3], f[:, 4], f[:, 5])
    got = DSpritesGeometry("cpu").masks(torch.as_tensor(f)).numpy()
    assert got.dtype == bool and np.array_equal(got, cpu)
    assert cpu.sum() > 0


def test_interp_matches_numpy_at_nodes_edges_and_outside():
    xp = np.sort(np.random.default_rng(1).random(30)) * 10
    fp = np.random.default_rng(2).random(30)
    x = np.concatenate([xp, [xp[0] - 1, xp[-1] + 1, -5.0], np.linspace(-1, 11, 2001)])
    want = np.interp(x, xp, fp, left=-1.0, right=-1.0)
    got = interp(torch.as_tensor(x), torch.as_tensor(xp), torch.as_tensor(fp), -1.0).numpy()
    assert np.array_equal(got, want)


@pytest.mark.parametrize("name", DSPRITES_FAMILY)
def test_every_dsprites_variant_equals_the_cpu_images(name):
    ds = get_dataset(name)
    batches = DeviceBatches(ds)
    f = random_factors(ds, 64, seed=3)
    cpu = ds.images(f, np.random.default_rng(7))
    ft = torch.as_tensor(f)
    if name in ("dsprites", "white-dsprites", "color-dsprites"):
        got = batches.images(ft, None)
    else:
        mask = batches.geometry.masks(ft)[:, None]
        colour = batches.palette[ft[:, 0]][:, :, None, None]
        rng = np.random.default_rng(7)  # the CPU's draws, replayed
        if name.startswith("noisy"):
            noise = torch.as_tensor(uniform_noise(rng, (64, 3, 64, 64)))
            got = compose_noisy(mask, colour, noise)
        else:
            tex = scream_texture()
            top = rng.integers(0, tex.shape[1] - 64, size=64)
            left = rng.integers(0, tex.shape[2] - 64, size=64)
            tint = rng.random((64, 3), dtype=np.float32)
            got = compose_scream(mask, torch.as_tensor(tex), torch.as_tensor(top),
                                 torch.as_tensor(left), torch.as_tensor(tint))
        drawn = batches.images(ft, torch.Generator().manual_seed(0))  # its own nuisance draws
        assert drawn.shape == got.shape and drawn.dtype == torch.float32
        assert 0.0 <= float(drawn.min()) and float(drawn.max()) <= 1.0
        if name.startswith("noisy"):  # the sprite itself is deterministic
            inside = mask.expand_as(drawn)
            assert torch.equal(drawn[inside], got[inside])
            levels = drawn[~inside] * 256 - 0.5
            assert torch.equal(levels, levels.round())
    assert got.dtype == torch.float32 and tuple(got.shape) == cpu.shape
    assert np.array_equal(got.numpy(), cpu), name


def test_shapes3d_lookalike_equals_the_cpu_images_to_rounding():
    ds = get_dataset("shapes3d", supersample=1)
    batches = DeviceBatches(ds)
    f = random_factors(ds, 32, seed=4)
    got = batches.images(torch.as_tensor(f), None).numpy()
    np.testing.assert_allclose(got, ds.images(f), rtol=0, atol=1e-6)


def test_pairs_change_exactly_k_varying_factors_uniformly():
    batches = DeviceBatches(get_dataset("color-dsprites"))
    gen = torch.Generator().manual_seed(0)
    out = batches.pairs(1500, gen, k=2)
    f1, f2, changed = out["factors1"], out["factors2"], out["changed"]
    assert torch.equal(f1 != f2, changed) and bool((changed.sum(1) == 2).all())
    varying = batches.sizes > 1
    assert not bool(changed[:, ~varying].any())
    assert out["x1"].shape == (1500, 3, 64, 64) and out["x2"].dtype == torch.float32
    # shape has 3 values: a changed shape moves by +1 or +2 (mod 3) about equally often
    moved = ((f2[:, 1] - f1[:, 1]) % 3)[changed[:, 1]]
    share = float((moved == 1).float().mean())
    assert 0.4 < share < 0.6, share  # ~500 changed shapes: ±0.1 is 4.5 sd
    assert set(f1[:, 3].tolist()) == set(range(40))  # every orientation drawn
    again = batches.pairs(1500, torch.Generator().manual_seed(0), k=2)
    assert torch.equal(again["x2"], out["x2"])  # seeded
    with pytest.raises(ValueError, match="k must lie in"):
        batches.pairs(4, gen, k=7)


def test_unsupported_datasets_are_refused(tmp_path):
    with pytest.raises(ValueError, match="generated dataset"):
        DeviceBatches(type("Real", (), {"name": "mpi3d"})())
    with pytest.raises(ValueError, match="read from a file"):
        DeviceBatches(type("File", (), {"name": "dsprites", "root": tmp_path})())
