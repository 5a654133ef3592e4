"""dSprites: factor space, rendering, fidelity to the real frames, npz loader and export."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from disentkit.data import _dsprites_raster as raster
from disentkit.data.dsprites import FILENAME, DSprites, factor_values
from disentkit.errors import DataLayoutError

SIZES = (1, 3, 6, 40, 32, 32)


@pytest.fixture(scope="module")
def ds():
    return DSprites()


# ---------------------------------------------------------------------- factor space
def test_factor_space_is_the_public_grid(ds):
    assert ds.factor_names == ("color", "shape", "scale", "orientation", "posX", "posY")
    assert ds.factor_sizes == SIZES
    assert len(ds) == 737_280 and ds.image_shape == (1, 64, 64)
    # posY fastest, then posX, ... exactly the public file's row order
    np.testing.assert_array_equal(ds.index_to_factors(np.array([1])), [[0, 0, 0, 0, 0, 1]])
    np.testing.assert_array_equal(ds.index_to_factors(np.array([32])), [[0, 0, 0, 0, 1, 0]])
    np.testing.assert_array_equal(ds.index_to_factors(np.array([40 * 1024])), [[0, 0, 1, 0, 0, 0]])
    np.testing.assert_array_equal(ds.index_to_factors(np.array([len(ds) - 1])), [[0, 2, 5, 39, 31, 31]])


def test_index_factor_bijection(ds):
    rng = np.random.default_rng(1)
    idx = rng.integers(0, len(ds), 2000)
    factors = ds.index_to_factors(idx)
    np.testing.assert_array_equal(ds.factors_to_index(factors), idx)
    f = ds.sample_factors(500, rng)
    np.testing.assert_array_equal(ds.index_to_factors(ds.factors_to_index(f)), f)


def test_factor_values_match_public_file():
    v = factor_values()
    assert v["scale"][0] == 0.5 and v["scale"][-1] == 1.0 and len(v["scale"]) == 6
    assert v["orientation"][0] == 0 and v["orientation"][-1] == pytest.approx(2 * np.pi)
    assert len(v["orientation"]) == 40 and len(v["posX"]) == 32 and v["posY"][-1] == 1.0


# ---------------------------------------------------------------------- rendering
def test_images_binary_float32_and_deterministic(ds):
    f = ds.sample_factors(40, np.random.default_rng(2))
    a = ds.images(f)
    b = ds.images(f, np.random.default_rng(99))
    assert a.shape == (40, 1, 64, 64) and a.dtype == np.float32
    assert set(np.unique(a)) <= {0.0, 1.0}
    assert (a.reshape(40, -1).sum(1) > 40).all()  # every sprite is visible
    np.testing.assert_array_equal(a, b)


def test_images_reject_bad_factors(ds):
    with pytest.raises(ValueError, match="posY"):
        ds.images(np.array([[0, 0, 0, 0, 0, 32]]))
    with pytest.raises(ValueError, match=r"shape \[n, 6\]"):
        ds.images(np.zeros((2, 5), dtype=int))


def test_geometry_square_scale_position_rotation(ds):
    # axis-aligned square, scale 1, at posX = posY = 0: 20x20 pixels, rows/cols 6..25
    img = ds.images(np.array([[0, 0, 5, 0, 0, 0]]))[0, 0]
    rows, cols = np.nonzero(img)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (6, 25, 6, 25)
    # posX moves columns, posY moves rows, 32 px across the 32 positions
    moved = ds.images(np.array([[0, 0, 5, 0, 31, 0], [0, 0, 5, 0, 0, 31]]))[:, 0]
    r, c = np.nonzero(moved[0])
    assert (r.min(), c.min()) == (6, 38)
    r, c = np.nonzero(moved[1])
    assert (r.min(), c.min()) == (38, 6)
    # scale 0.5: half the side
    small = ds.images(np.array([[0, 0, 0, 0, 0, 0]]))[0, 0]
    assert small.sum() == 100
    # a small counter-clockwise turn lifts the right side: the top-most pixel is right of centre
    turned = ds.images(np.array([[0, 1, 5, 1, 0, 0]]))[0, 0]
    r, c = np.nonzero(turned)
    assert c[r == r.min()].mean() > 16


def test_window_never_cuts_a_sprite():
    assert raster.max_sprite_radius() < raster.WINDOW_REACH
    # the window reaches that far on both sides at every sub-pixel offset, inside the canvas
    for pos in range(32):
        cx, _ = raster.sprite_centres(np.array([pos]), np.array([pos]))
        first = np.floor(cx[0]) - 15 + 0.5
        assert first <= cx[0] - raster.WINDOW_REACH
        assert first + raster._WINDOW - 1 >= cx[0] + raster.WINDOW_REACH
        assert first >= 0.5 and first + raster._WINDOW - 1 <= 63.5
    rng = np.random.default_rng(3)
    f = np.stack([rng.integers(0, s, 3000) for s in SIZES[1:]], 1)
    fast = raster.render_masks(*f.T)
    full = raster.render_masks(*f.T, window=False)
    np.testing.assert_array_equal(fast, full)


# ---------------------------------------------------------------------- fidelity
def gif_latents() -> np.ndarray:
    """Frame → (shape, scale, orientation, posX, posY) classes of dsprites.gif (SOURCES.md)."""
    rows = []
    up, down = list(range(6)), list(range(5, -1, -1))
    for s in up + down + up:
        rows.append((2, s, 0, 0, 0))
    rows += [(2, 5, o, 0, 0) for o in range(40)]
    rows += [(2, 5, 39, 0, y) for y in range(32)]
    rows += [(2, 5, 39, x, 31) for x in range(32)]
    rows += [(2, 5, 39, 31, y) for y in range(31, -1, -1)]
    rows += [(2, 5, 39, x, 0) for x in range(31, -1, -1)]
    rows += [(2, s, 39, 0, 0) for s in down]
    for shape in (1, 0):
        rows += [(shape, s, 0, 0, 0) for s in up + down + up]
        rows += [(shape, 5, o, 0, 0) for o in range(40)]
        rows += [(shape, s, 39, 0, 0) for s in down]
    return np.array(rows)


def test_fidelity_gif_frames(ds, reference_dir):
    from PIL import Image, ImageSequence

    with Image.open(reference_dir / "dsprites.gif") as im:
        frames = np.stack([np.array(f.convert("L")) > 127 for f in ImageSequence.Iterator(im)])
    latents = gif_latents()
    assert len(frames) == len(latents) == 320
    ours = ds.images(np.column_stack([np.zeros(320, dtype=int), latents]))[:, 0] > 0.5
    wrong = (ours != frames).reshape(320, -1).sum(1)
    exact = int((wrong == 0).sum())
    print(f"dsprites.gif: {exact}/320 frames pixel-identical, max {wrong.max()} pixels off")
    assert exact >= 0.75 * 320  # the target
    assert exact == 320, "regression: the fitted geometry reproduced every frame"


def test_fidelity_real_images_iou(ds, reference_dir):
    ref = np.load(reference_dir / "dsprites_subset12.npz")
    values = ref["latents_values"]
    grid = factor_values()
    classes = np.column_stack(
        [np.abs(values[:, k][:, None] - grid[name][None, :]).argmin(1)
         for k, name in enumerate(ds.factor_names)]
    )
    ours = ds.images(classes)[:, 0] > 0.5
    real = ref["imgs"].astype(bool)
    iou = (ours & real).sum((1, 2)) / (ours | real).sum((1, 2))
    print(f"dsprites_subset12: mean IoU {iou.mean():.4f}, {int((iou == 1).sum())}/12 identical")
    assert iou.mean() >= 0.97  # the target
    assert (iou == 1).all(), "regression: the fitted geometry reproduced all 12 images"


# ---------------------------------------------------------------------- export / loader
def test_export_shrunk_grid_round_trip(ds, tmp_path):
    rows = np.random.default_rng(4).choice(len(ds), 200, replace=False)
    out = ds.export(tmp_path / FILENAME, indices=rows, chunk=64)
    assert out.is_file() and not list(tmp_path.glob(".*tmp*"))
    data = np.load(out, allow_pickle=True, encoding="latin1")
    assert set(data.files) == {"imgs", "latents_values", "latents_classes", "metadata"}
    assert data["imgs"].dtype == np.uint8 and data["imgs"].shape == (200, 64, 64)
    np.testing.assert_array_equal(data["latents_classes"], ds.index_to_factors(rows))
    np.testing.assert_allclose(data["latents_values"][:, 2], factor_values()["scale"][data["latents_classes"][:, 2]])
    assert list(data["metadata"].item()["latents_sizes"]) == list(SIZES)

    for root in (tmp_path, out):  # a folder or the file itself
        loaded = DSprites(root=root)
        assert not loaded.is_complete and len(loaded) == 200
        np.testing.assert_array_equal(loaded.combinations, ds.index_to_factors(rows))
        f = loaded.combinations[::7]
        np.testing.assert_array_equal(loaded.images(f), ds.images(f))
        np.testing.assert_array_equal(loaded.images(f)[:, 0], data["imgs"][::7])


def test_export_rejects_bad_indices(ds, tmp_path):
    with pytest.raises(ValueError, match="1-d"):
        ds.export(tmp_path / "x.npz", indices=np.zeros((2, 2), dtype=int))
    with pytest.raises(ValueError, match="out of range"):
        ds.export(tmp_path / "x.npz", indices=np.array([len(ds)]))
    assert not (tmp_path / "x.npz").exists()


def test_missing_file_names_path_and_layout(tmp_path):
    with pytest.raises(DataLayoutError) as info:
        DSprites(root=tmp_path)
    msg = str(info.value)
    assert str(tmp_path / FILENAME) in msg and "latents_classes" in msg and "[N, 64, 64]" in msg
    with pytest.raises(DataLayoutError, match=str(tmp_path / "absent" / FILENAME)):
        DSprites(root=tmp_path / "absent")
    with pytest.raises(DataLayoutError, match="dSprites file not found"):
        DSprites(root=tmp_path / "other.npz")


def _save(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    "arrays, problem",
    [
        ({"imgs": np.zeros((3, 32, 32), np.uint8), "latents_classes": np.zeros((3, 6), int)}, "imgs"),
        ({"imgs": np.zeros((3, 64, 64), np.uint8)}, "lacks array 'latents_classes'"),
        ({"imgs": np.zeros((3, 64, 64), np.uint8), "latents_classes": np.zeros((3, 5), int)}, "int \\[3, 6\\]"),
        ({"imgs": np.zeros((2, 64, 64), np.uint8), "latents_classes": np.array([[0, 3, 0, 0, 0, 0]] * 2)}, "out of range"),
        ({"imgs": np.zeros((2, 64, 64), np.uint8), "latents_classes": np.zeros((2, 6), int)}, "repeated rows"),
    ],
)
def test_malformed_file_raises_layout_error(tmp_path, arrays, problem):
    path = _save(tmp_path / FILENAME, **arrays)
    with pytest.raises(DataLayoutError, match=problem) as info:
        DSprites(root=tmp_path)
    assert str(path) in str(info.value)


def test_not_an_npz_raises_layout_error(tmp_path):
    (tmp_path / FILENAME).write_bytes(b"not a zip archive")
    with pytest.raises(DataLayoutError, match="not a readable npz"):
        DSprites(root=tmp_path)
    with zipfile.ZipFile(tmp_path / "empty.npz", "w"):
        pass
    with pytest.raises(DataLayoutError, match="lacks array 'imgs'"):
        DSprites(root=tmp_path / "empty.npz")


def test_file_backed_dataset_refuses_export(ds, tmp_path):
    path = ds.export(tmp_path / FILENAME, indices=np.arange(5))
    with pytest.raises(ValueError, match="generated"):
        DSprites(root=path).export(tmp_path / "again.npz")


@pytest.mark.parametrize("compressed", [True, False])
def test_uncompressed_file_is_memory_mapped(ds, tmp_path, compressed):
    rows = np.arange(3000, 3300)
    path = ds.export(tmp_path / FILENAME, indices=rows, compressed=compressed)
    loaded = DSprites(root=tmp_path)
    f = loaded.combinations[::5]
    np.testing.assert_array_equal(loaded.images(f), ds.images(f))
    assert isinstance(loaded._file_images(), np.memmap) == (not compressed)
    with zipfile.ZipFile(path) as zf:
        methods = {i.compress_type for i in zf.infolist()}
    assert methods == {zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED}
