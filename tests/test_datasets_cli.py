"""``disentkit datasets list|show|export``, run in-process through ``disentkit.cli.main``."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from PIL import Image

from disentkit.cli import main
from disentkit.data.dsprites import FILENAME, DSprites
from disentkit.data.registry import available_datasets, datasets_without_root

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def rootless_datasets() -> list[str]:
    return datasets_without_root()


def test_rootless_datasets_include_the_dsprites_family():
    names = rootless_datasets()
    for name in ("dsprites", "white-dsprites", "color-dsprites", "noisy-dsprites",
                 "noisy-color-dsprites", "scream-dsprites"):
        assert name in names


def test_list_shows_every_available_dataset(capsys):
    assert main(["datasets", "list"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["name", "image", "kind", "factors"]
    listed = {line.split()[0] for line in lines[2:] if not line.startswith(" ")}
    assert set(available_datasets()) <= listed
    row = next(line for line in lines if line.startswith("dsprites "))
    assert "posY=32" in row and "1x64x64" in row and "synthetic" in row


@pytest.mark.parametrize("name", rootless_datasets())
def test_show_writes_a_png(name, tmp_path, capsys):
    out = tmp_path / f"{name}.png"
    assert main(["datasets", "show", name, "--out", str(out), "--seed", "3"]) == 0
    assert str(out) in capsys.readouterr().out
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > 200 and im.size[1] > 100
        pixels = np.asarray(im.convert("L"))
    assert pixels.std() > 5  # not a blank canvas


def test_export_dsprites_round_trip_on_a_shrunk_grid(tmp_path, monkeypatch, capsys):
    # the full export takes minutes; shrink it to every 4099th row through the same CLI path
    rows = np.arange(0, len(DSprites()), 4099)
    monkeypatch.setattr(DSprites, "export", functools.partialmethod(DSprites.export, indices=rows))
    out = tmp_path / "sub" / FILENAME
    assert main(["datasets", "export", "dsprites", "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    loaded = DSprites(root=out.parent)
    np.testing.assert_array_equal(loaded.combinations, DSprites().index_to_factors(rows))
    np.testing.assert_array_equal(loaded.images(loaded.combinations), DSprites().images(loaded.combinations))


@pytest.mark.parametrize(
    "argv",
    [
        ["datasets", "show", "no-such-dataset", "--out", "x.png"],
        ["datasets", "export", "no-such-dataset", "--out", "x.npz"],
    ],
)
def test_unknown_dataset_exits_2(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "no-such-dataset" in err and "dsprites" in err  # lists the valid names
    assert not list(tmp_path.iterdir())


def test_missing_original_file_exits_2(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "x.png"
    assert main(["datasets", "show", "dsprites", "--root", str(empty), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(empty / FILENAME) in err and "expected layout" in err
    assert not out.exists()


def test_show_reads_the_original_file_with_root(tmp_path):
    DSprites().export(tmp_path / FILENAME, indices=np.arange(0, 737_280, 997))
    out = tmp_path / "real.png"
    assert main(["datasets", "show", "dsprites", "--root", str(tmp_path), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == PNG_SIGNATURE


def test_data_throughput_bench_quick(tmp_path):
    """bench/data_throughput.py --quick runs end to end (in a subprocess: it pins threads)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parents[1] / "bench" / "data_throughput.py"
    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [sys.executable, str(bench), "--quick", "dsprites", "color-dsprites", "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())
    assert [r["dataset"] for r in rows] == ["dsprites", "color-dsprites"]
    assert all(r["images/s"] > 0 and r["pairs/s"] > 0 and r["cpu img/s"] > 0 for r in rows)
    assert "images/s" in proc.stdout and "color-dsprites" in proc.stdout
    bad = subprocess.run([sys.executable, str(bench), "--quick", "--root", "dsprites"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "NAME=DIR" in bad.stderr
