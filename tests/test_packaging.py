"""Packaging metadata that a plain install depends on (CI builds and installs the real thing).

The default metric backend of ``run`` and ``transfer`` needs LightGBM, so it is a core
dependency; every ``pip install 'disentkit[EXTRA]'`` hint in the code must name an extra that
exists; the typing marker and the packaged presets/studies must be shipped.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "disentkit"


@pytest.fixture(scope="module")
def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower() for r in requirements}


def test_lightgbm_is_a_core_dependency(project):
    core = requirement_names(project["project"]["dependencies"])
    assert {"lightgbm", "torch", "numpy", "scikit-learn"} <= core
    extras = project["project"]["optional-dependencies"]
    assert "fast" not in extras
    assert set(extras) == {"slurm", "tensorboard", "test"}


def test_every_install_hint_names_an_existing_extra(project):
    extras = set(project["project"]["optional-dependencies"])
    hints = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for m in re.finditer(r"disentkit\[(\w+)\]", path.read_text(encoding="utf-8")):
            hints.append((path.relative_to(ROOT).as_posix(), m.group(1)))
    unknown = [f"{p}: disentkit[{extra}]" for p, extra in hints if extra not in extras]
    assert not unknown, "install hints naming extras that do not exist:\n" + "\n".join(unknown)


def test_package_data_and_typing_marker_are_shipped(project):
    """Every non-Python file inside the package (presets, studies, the typing marker) is
    matched by a package-data pattern, so the wheel carries it."""
    assert (PACKAGE / "py.typed").is_file()
    patterns = project["tool"]["setuptools"]["package-data"]["disentkit"]
    data_files = [p.relative_to(PACKAGE) for p in PACKAGE.rglob("*") if p.is_file()
                  and p.suffix not in {".py", ".pyc"} and "__pycache__" not in p.parts]
    assert any(p.as_posix() == "py.typed" for p in data_files)
    unshipped = [p.as_posix() for p in data_files if not any(p.match(g) for g in patterns)]
    assert not unshipped, f"package files no package-data pattern ships: {unshipped}"
    assert "Typing :: Typed" in project["project"]["classifiers"]


def test_metadata_a_package_index_shows(project):
    meta = project["project"]
    assert meta["name"] == "disentkit"
    assert meta["license"] == "Apache-2.0"
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").lstrip().startswith("Apache License")
    assert meta["urls"]["Source"].startswith("https://github.com/")
    assert meta["authors"]


def test_the_extra_hint_check_would_catch_a_wrong_hint():
    assert re.search(r"disentkit\[(\w+)\]", "pip install 'disentkit[fast]'").group(1) == "fast"
