"""Shapes3D: factor grid, generated images, each factor's effect, h5 export/reload, file errors."""

from __future__ import annotations

import colorsys
import pickle

import h5py
import numpy as np
import pytest

from disentkit.data import _shapes3d_render as render
from shapes3d_reference import GIF_FACTORS, gif_frames, save_compare_figure
from disentkit.data.registry import get_dataset
from disentkit.data.shapes3d import FACTOR_SIZES, Shapes3D, label_values, values_to_classes
from disentkit.errors import DataLayoutError

# a few geometries, each rendered once per module (rendering is the slow part)
BASE = np.array([0, 6, 3, 4, 0, 7])  # red floor, blue wall, green cube, mid scale, azimuth 0


@pytest.fixture(scope="module")
def ds() -> Shapes3D:
    return Shapes3D(supersample=2)


def vary(base, k, values):
    f = np.repeat(base[None], len(values), axis=0)
    f[:, k] = values
    return f


def changed(a, b, tol=1e-6):
    """Pixels [H, W] where any channel differs."""
    return np.abs(a - b).max(axis=0) > tol


# ------------------------------------------------------------------------------ factor grid
def test_registered_and_described():
    ds = get_dataset("shapes3d")
    assert isinstance(ds, Shapes3D)
    assert ds.factor_sizes == (10, 10, 10, 8, 4, 15)
    assert ds.factor_names[-1] == "orientation"
    assert len(ds) == 480_000
    assert ds.describe()["image_shape"] == "3x64x64"


def test_index_factor_bijection_orientation_fastest():
    ds = Shapes3D()
    idx = np.concatenate([np.arange(0, 480_000, 997), [479_999]])
    f = ds.index_to_factors(idx)
    assert np.array_equal(ds.factors_to_index(f), idx)
    assert np.array_equal(ds.index_to_factors(np.array([1]))[0], [0, 0, 0, 0, 0, 1])
    assert np.array_equal(ds.index_to_factors(np.array([15]))[0], [0, 0, 0, 0, 1, 0])
    assert np.array_equal(ds.index_to_factors(np.array([479_999]))[0], np.array(FACTOR_SIZES) - 1)
    every = ds.index_to_factors(np.arange(480_000))
    assert len(np.unique(every @ np.array([48000, 4800, 480, 60, 15, 1]))) == 480_000


def test_label_values_round_trip_with_rounding():
    values = label_values()
    f = Shapes3D().index_to_factors(np.arange(0, 480_000, 331))
    labels = np.stack([values[n][f[:, k]] for k, n in enumerate(values)], -1)
    noisy = labels.astype(np.float32).astype(np.float64)  # float32 noise as in some copies
    assert np.array_equal(values_to_classes(noisy), f)
    bad = labels.copy()
    bad[0, 3] = 0.8  # between two scales
    with pytest.raises(ValueError, match="scale"):
        values_to_classes(bad)
    with pytest.raises(ValueError, match=r"\[n, 6\]"):
        values_to_classes(labels[:, :5])


# ------------------------------------------------------------------------------ images
def test_shape_dtype_range_and_determinism(ds):
    rng = np.random.default_rng(0)
    f = ds.sample_factors(6, rng)
    x = ds.images(f)
    assert x.shape == (6, 3, 64, 64) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert x.std() > 0.1  # not a blank picture
    again = Shapes3D(supersample=2).images(f, rng=np.random.default_rng(123))
    assert np.array_equal(x, again)  # no nuisances: rng does not matter, renders are exact
    assert np.array_equal(ds.images(f[::-1]), x[::-1])
    with pytest.raises(ValueError, match="orientation"):
        ds.images(np.array([[0, 0, 0, 0, 0, 15]]))


def test_albedo_is_hsv_full_saturation():
    hues = np.arange(10) / 10
    want = np.array([colorsys.hsv_to_rgb(h, 1.0, 1.0) for h in hues])
    assert np.allclose(render.hsv_albedo(hues), want)


def test_floor_hue_changes_only_the_floor(ds):
    a, b = ds.images(vary(BASE, 0, [0, 5]))
    m = changed(a, b)
    assert m[-1].all() and m[-4:].mean() > 0.95  # the bottom rows are floor
    assert not m[:30].any()  # sky and the upper wall do not move
    assert not m[44:50, 29:35].any()  # the cube's front face neither


def test_wall_hue_changes_only_the_walls(ds):
    a, b = ds.images(vary(BASE, 1, [6, 0]))
    m = changed(a, b)
    assert m[18:32].all()  # a band of wall above the object
    assert not m[:12].any() and not m[46:].any()  # sky above, floor below
    assert not m[44:50, 29:35].any()


def test_object_hue_changes_only_the_object(ds):
    a, b = ds.images(vary(BASE, 2, [3, 8]))
    m = changed(a, b)
    rows, cols = np.nonzero(m)
    assert m[46, 32]  # the cube's centre
    assert 20 <= rows.min() and rows.max() <= 60 and 16 <= cols.min() and cols.max() <= 48
    assert 150 < m.sum() < 900  # an object, not the room


def object_pixels(ds, factors):
    """Pixels that move when only the object hue changes = the object's silhouette."""
    other = factors.copy()
    other[:, 2] = (other[:, 2] + 5) % 10
    return np.array([changed(a, b).sum() for a, b in zip(ds.images(factors), ds.images(other))])


def test_scale_grows_the_object_and_shape_changes_it(ds):
    sizes = object_pixels(ds, vary(BASE, 3, [0, 4, 7]))
    assert sizes[0] < sizes[1] < sizes[2]
    assert 1.8 < sizes[2] / sizes[0] < 4.0  # area ~ (1.25 / 0.75)^2 = 2.8
    imgs = ds.images(vary(BASE, 4, [0, 1, 2, 3]))
    for i in range(4):
        for j in range(i + 1, 4):
            m = changed(imgs[i], imgs[j])
            assert m.any() and not m[:12].any() and not m[:, :8].any()  # object only
    caps, cube = object_pixels(ds, vary(BASE, 4, [3, 0]))
    assert caps > cube  # the capsule is the tall one


def test_orientation_turns_the_room(ds):
    imgs = ds.images(vary(BASE, 5, [0, 7, 14]))
    # at +-30 degrees a room corner shows: a darker side wall on one side of the picture
    wall = lambda img, c: img[2, 22:30, c].mean()  # blue channel of the wall  # noqa: E731
    assert wall(imgs[0], 60) < wall(imgs[0], 4) - 0.1  # corner right of the object
    assert wall(imgs[2], 4) < wall(imgs[2], 60) - 0.1  # mirrored at +30
    assert abs(wall(imgs[1], 4) - wall(imgs[1], 60)) < 0.08  # back wall only at 0
    assert changed(imgs[0], imgs[2])[:, :10].any()


def test_windowed_render_equals_full_ray_casting():
    p = render.SceneParams()
    for shape, scale, az in [(0, 0.75, -30.0), (3, 1.25, 30.0), (2, 1.0, 4.3), (1, 1.25, -12.9)]:
        view = render.render_view(p, az, 64, 2)
        fast = render.render_weights(p, shape, scale, az, 64, 2, view=view)
        full = render.render_weights(p, shape, scale, az, 64, 2, view=view, window=False)
        assert np.array_equal(fast[0], full[0]) and np.array_equal(fast[1], full[1])


def test_supersample_is_validated():
    with pytest.raises(ValueError, match="supersample"):
        Shapes3D(supersample=0)


# ------------------------------------------------------------------------------ fidelity
def test_looks_like_the_real_gif_frames(reference_dir, ds):
    real = gif_frames(reference_dir / "3dshapes.gif").astype(np.float32) / 255
    assert real.shape == (len(GIF_FACTORS), 64, 64, 3)
    frames = [0, 7, 14, 16, 24, 36, 49]
    ours = ds.images(GIF_FACTORS[frames]).transpose(0, 2, 3, 1)
    err = np.abs(ours - real[frames]).mean(axis=(1, 2, 3))
    assert err.max() < 0.05, err  # all 53 frames: mean 0.022, max 0.035 (supersample 3)
    # the wrong factors are clearly worse: fidelity is not a property of any picture
    wrong = GIF_FACTORS[frames].copy()
    wrong[:, 5] = 14 - wrong[:, 5]
    wrong[:, 0] = (wrong[:, 0] + 3) % 10
    err_wrong = np.abs(ds.images(wrong).transpose(0, 2, 3, 1) - real[frames]).mean(axis=(1, 2, 3))
    assert (err_wrong > 2 * err).all()


def test_compare_figure_writes_png(reference_dir, tmp_path, ds):
    gif = reference_dir / "3dshapes.gif"
    out = save_compare_figure(gif, tmp_path / "cmp.png", frames=(0, 24), dataset=ds)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*tmp*"))


# ------------------------------------------------------------------------------ h5 files
SUBSET = (2, 1, 2, 1, 2, 3)  # 24 images


def test_export_reload_round_trip(tmp_path, ds):
    path = ds.export(tmp_path / "3dshapes.h5", sizes=SUBSET)
    with h5py.File(path, "r") as f:
        assert f["images"].shape == (24, 64, 64, 3) and f["images"].dtype == np.uint8
        labels = f["labels"][()]
    assert labels.dtype == np.float64 and labels.shape == (24, 6)
    assert np.allclose(labels[1], [0.0, 0.0, 0.0, 0.75, 0.0, np.linspace(-30, 30, 15)[1]])
    loaded = Shapes3D(root=tmp_path)  # the folder, like the original release
    assert len(loaded) == 24 and not loaded.is_complete
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in SUBSET], indexing="ij"), -1).reshape(-1, 6)
    assert np.array_equal(loaded.combinations, grid)
    # read in a shuffled order with repeats: h5py needs sorted unique rows internally
    rng = np.random.default_rng(1)
    order = rng.integers(0, 24, size=40)
    got = loaded.images(grid[order])
    want = np.rint(ds.images(grid[order]) * 255) / 255
    assert np.allclose(got, want, atol=1e-6)
    assert np.array_equal(loaded.index_to_factors(order), grid[order])
    with pytest.raises(ValueError, match="not present"):
        loaded.images(np.array([[5, 0, 0, 0, 0, 0]]))
    clone = pickle.loads(pickle.dumps(loaded))  # reopens the file (DataLoader workers)
    assert np.array_equal(clone.images(grid[order]), got)
    clone.close()
    assert Shapes3D(root=path).images(grid[:2]).shape == (2, 3, 64, 64)  # the file itself
    with pytest.raises(ValueError, match="generated"):
        loaded.export(tmp_path / "again.h5")
    loaded.close()


def test_export_rejects_bad_sizes(tmp_path, ds):
    with pytest.raises(ValueError, match="sizes"):
        ds.export(tmp_path / "x.h5", sizes=(11, 1, 1, 1, 1, 1))
    with pytest.raises(ValueError, match="sizes"):
        ds.export(tmp_path / "x.h5", sizes=(1, 1, 1))
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_full_canonical_file_maps_rows_directly(tmp_path, monkeypatch):
    """A file with all 480,000 rows in factor order is read as a complete grid (row = index)."""
    import disentkit.data.shapes3d as mod

    canonical = lambda labels: Shapes3D().index_to_factors(np.arange(len(labels)))  # noqa: E731
    monkeypatch.setattr(mod, "values_to_classes", canonical)
    path = tmp_path / "3dshapes.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "images", shape=(480_000, 64, 64, 3), dtype=np.uint8, chunks=(1, 64, 64, 3)
        )
        f["images"][7] = 200
        f.create_dataset("labels", shape=(480_000, 6), dtype=np.float64)
    ds = Shapes3D(root=tmp_path)
    assert ds.is_complete
    x = ds.images(Shapes3D().index_to_factors(np.array([7, 8, 7])))
    assert np.allclose(x[0], 200 / 255) and np.allclose(x[1], 0) and np.array_equal(x[0], x[2])


def _write(path, **arrays):
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=v)


def _imgs(n, size=64):
    return np.zeros((n, size, size, 3), np.uint8)


ROW0 = [0, 0, 0, 0.75, 0, -30.0]  # label values of row 0


def _groups(path, *names):
    with h5py.File(path, "w") as f:
        for name in names:
            f.create_group(name)


@pytest.mark.parametrize(
    "make, problem",
    [
        (None, "not found"),
        (lambda p: p.write_text("not hdf5"), "not a readable HDF5"),
        (lambda p: _write(p, images=_imgs(2)), "missing dataset"),
        (lambda p: _groups(p, "images", "labels"), "missing dataset"),  # groups, not datasets
        (lambda p: _write(p, images=_imgs(2, 32), labels=np.zeros((2, 6))), "images has shape"),
        (lambda p: _write(p, images=_imgs(2), labels=np.zeros((3, 6))), "labels has shape"),
        (lambda p: _write(p, images=_imgs(1), labels=np.full((1, 6), 7.0)), "bad label values"),
        (lambda p: _write(p, images=_imgs(2), labels=np.tile(ROW0, (2, 1))), "repeat"),
    ],
)
def test_missing_or_malformed_file(tmp_path, make, problem):
    path = tmp_path / "3dshapes.h5"
    if make is not None:
        make(path)
    with pytest.raises(DataLayoutError, match=problem) as err:
        Shapes3D(root=tmp_path)
    assert str(path) in str(err.value) and "labels  float [N, 6]" in str(err.value)


def test_cli_export_and_missing_root(tmp_path, monkeypatch, capsys):
    from disentkit.cli import main

    full_export = Shapes3D.export
    small = lambda self, out: full_export(self, out, sizes=(1, 1, 2, 1, 1, 2))  # noqa: E731
    monkeypatch.setattr(Shapes3D, "export", small)
    out = tmp_path / "f.h5"
    assert main(["datasets", "export", "shapes3d", "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    assert len(Shapes3D(root=out)) == 4
    missing = str(tmp_path / "none")
    argv = ["datasets", "show", "shapes3d", "--root", missing, "--out", str(out) + ".png"]
    assert main(argv) == 2
    assert "3dshapes.h5" in capsys.readouterr().err
