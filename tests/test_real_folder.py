"""The ``folder`` dataset: images plus ``factors.csv``, complete or incomplete grids."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from disentkit.cli import main
from disentkit.data.folder import FolderDataset
from disentkit.data.pairs import sample_pairs
from disentkit.errors import DataLayoutError


def _write_folder(root, combos, size=128, grey=False, header="image,shape,size"):
    root.mkdir(parents=True)
    lines = [header]
    for a, b in combos:
        img = np.zeros((size, size), np.uint8) if grey else np.zeros((size, size, 3), np.uint8)
        img[: size // 2] = 40 * a + 10 * b + 5  # top half encodes the factors
        name = f"img/{a}_{b}.png"
        (root / "img").mkdir(exist_ok=True)
        Image.fromarray(img).save(root / name)
        lines.append(f"{name},{a},{b}")
    (root / "factors.csv").write_text("\n".join(lines) + "\n")
    return root


def test_complete_grid_reads_and_resizes(tmp_path):
    combos = [(a, b) for a in range(3) for b in range(2)]
    ds = FolderDataset(_write_folder(tmp_path / "f", combos[::-1]), cache_dir=tmp_path / "c")
    assert ds.factor_names == ("shape", "size") and ds.factor_sizes == (3, 2) and ds.is_complete
    assert ds.image_shape == (3, 64, 64)
    f = np.array(combos)
    x = ds.images(f)
    np.testing.assert_allclose(x[:, 1, 10, 10] * 255, 40 * f[:, 0] + 10 * f[:, 1] + 5, atol=1e-3)
    assert x[:, :, 40:].max() == 0


def test_incomplete_grid_and_grey_images(tmp_path):
    combos = [(0, 0), (0, 1), (1, 1), (2, 0)]
    ds = FolderDataset(_write_folder(tmp_path / "f", combos, size=64, grey=True),
                       cache_dir=tmp_path / "c")
    assert ds.image_shape == (1, 64, 64) and not ds.is_complete and len(ds) == 4
    rng = np.random.default_rng(0)
    pairs = sample_pairs(ds, 50, rng)
    assert {tuple(r) for r in pairs.factors2.tolist()} <= set(combos)
    x3 = FolderDataset(tmp_path / "f", cache_dir=tmp_path / "c", channels=3).images(
        np.array(combos))
    assert x3.shape == (4, 3, 64, 64) and (x3[:, 0] == x3[:, 2]).all()


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.replace("image,shape,size", "file,shape,size"), "header"),
        (lambda t: t.replace("img/0_1.png,0,1", "img/0_1.png,0,x"), "line 3"),
        (lambda t: t.replace("img/0_1.png,0,1", "img/0_1.png,0"), "line 3: 2 columns"),
        (lambda t: t.replace("img/0_1.png,0,1", "img/0_1.png,0,0"), "same factors"),
        (lambda t: t.replace("img/0_1.png", "img/nope.png"), r"missing: .*nope\.png"),
        (lambda t: "image,shape,size\n", "lists no images"),
    ],
)
def test_malformed_table_names_the_file(tmp_path, edit, message):
    root = _write_folder(tmp_path / "f", [(0, 0), (0, 1), (1, 0)])
    (root / "factors.csv").write_text(edit((root / "factors.csv").read_text()))
    with pytest.raises(DataLayoutError, match=message) as err:
        FolderDataset(root, cache_dir=tmp_path / "c")
    assert "expected layout" in str(err.value)


def test_wrong_image_size_and_missing_folder(tmp_path):
    root = _write_folder(tmp_path / "f", [(0, 0), (0, 1), (1, 0)])
    Image.fromarray(np.zeros((96, 96, 3), np.uint8)).save(root / "img" / "1_0.png")
    with pytest.raises(DataLayoutError, match=r"expected \(128, 128, 3\).*: .*1_0\.png"):
        FolderDataset(root, cache_dir=tmp_path / "c")
    assert not list((tmp_path / "c").glob("folder-*.npy"))
    with pytest.raises(DataLayoutError, match="factors.csv"):
        FolderDataset(tmp_path / "none", cache_dir=tmp_path / "c")


def test_cli_show_and_exit_code(tmp_path, capsys):
    root = _write_folder(tmp_path / "f", [(a, b) for a in range(2) for b in range(3)])
    out = tmp_path / "show.png"
    assert main(["datasets", "show", "folder", "--root", str(root), "--cache-dir",
                 str(tmp_path / "c"), "--out", str(out)]) == 0
    assert out.stat().st_size > 1000
    (root / "factors.csv").write_text("image\n")
    assert main(["datasets", "show", "folder", "--root", str(root), "--cache-dir",
                 str(tmp_path / "c"), "--out", str(out)]) == 2
    assert "factors.csv" in capsys.readouterr().err
