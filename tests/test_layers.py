"""The layers stay layers (docs/architecture.md, "Forbidden imports"): every module's imports,
including those inside functions, are parsed and checked against the imports that must never
exist; and the package's size limits (no file over 400 lines, no function over 80)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "disentkit"

#: (importing layer, imported layer): layers are dotted prefixes under ``disentkit``
FORBIDDEN = [
    ("metrics", "models"), ("metrics", "data"), ("metrics", "training"),
    ("data", "models"),
    ("models", "methods"),
    ("report", "training"), ("report", "models"),
    ("evaluate", "report"),
    ("viz", "training"), ("viz", "models"), ("viz", "report"), ("viz", "evaluate"),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function, resolved to absolute names."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path).rsplit(".", 0 if path.name == "__init__.py" else 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _in(name: str, layer: str) -> bool:
    full = f"disentkit.{layer}"
    return name == full or name.startswith(full + ".")


#: known violations, each with the issue that removes it (strict: the test fails once one is
#: gone, so this list is cleaned up); none today
KNOWN: dict[str, str] = {}

#: the CLI's own entry points may import it
CLI_ENTRY = ("disentkit.__main__",)

MODULES = [pytest.param(p, id=module_name(p),
                        marks=[pytest.mark.xfail(strict=True, reason=KNOWN[module_name(p)])]
                        if module_name(p) in KNOWN else [])
           for p in sorted(PACKAGE.rglob("*.py"))]


def test_imports_are_parsed_including_function_level(tmp_path):
    sample = PACKAGE / "experiment" / "engine.py"  # imports sweep.slurm inside a function
    assert "disentkit.sweep.slurm" in imports_of(sample)


@pytest.mark.parametrize("path", MODULES)
def test_no_forbidden_import(path):
    name = module_name(path)
    bad = []
    for target in imports_of(path):
        for src, dst in FORBIDDEN:
            if _in(name, src) and _in(target, dst):
                bad.append(f"{name} imports {target} ({src} -> {dst} is forbidden)")
        if not _in(name, "cli") and name not in CLI_ENTRY and _in(target, "cli"):
            bad.append(f"{name} imports {target} (a library module never imports the CLI)")
    assert not bad, "\n".join(sorted(set(bad)))


def _sized_files() -> list[Path]:
    """Every module of the package is held to the size limits."""
    return sorted(PACKAGE.rglob("*.py"))


def test_no_file_over_400_lines_and_no_function_over_80():
    long = []
    for path in _sized_files():
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > 400:
            long.append(f"{path.relative_to(PACKAGE)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                size = node.end_lineno - node.lineno + 1
                if size > 80:
                    long.append(f"{path.relative_to(PACKAGE)}: {node.name}() {size} lines")
    assert len(_sized_files()) > 20 and not long, "\n".join(long)
