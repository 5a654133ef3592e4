"""The repository is self-contained: no file points outside it, and every cited doc exists.

A user has only this repository (or its sdist): documentation, docstrings, tests, scripts and
benchmarks must not send them to design notes or reference files that live elsewhere, and a
docstring that cites ``docs/<page>.md`` (with a section: ``"Contracts"``, ``principle 7``,
``pitfalls``, ``Method 1``) must cite a page and a section that exist.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TEXT_SUFFIXES = {
    ".py", ".md", ".txt", ".rst", ".yaml", ".yml", ".json", ".toml", ".cfg", ".ini", ".sh",
    ".cff", ".in", ".html",
}
SKIP_DIRS = {
    ".git", ".venv", "venv", "build", "dist", "__pycache__", ".pytest_cache", "node_modules",
}
#: paths that live outside the repository (spelt in pieces so that this file does not match itself)
OUTSIDE = [
    re.compile(re.escape("..") + r"/" + "shared"),
    re.compile("shared" + r"/" + "reference"),
    re.compile("/" + "work" + r"/(shared|main|wt)\b"),
]
#: design notes kept outside the repository; citing them is citing a file the user does not have
OUTSIDE_NOTES = re.compile(r"\b(" + "DESIGN" + "|" + "PAPER" + r")\.md\b")
#: a cited repository path under docs/
DOCS_PATH = re.compile(r"(?<![\w/.-])docs/[\w/.-]*\w\.(?:md|png|py)\b")
#: ``docs/<page>.md, <section>`` as the docstrings write it
CITATION = re.compile(
    r"docs/(?P<page>[\w/-]+\.md),\s*(?:principle\s+(?P<principle>\d+)|\"(?P<quoted>[^\"]+)\""
    r"|§\s*(?P<section>\d+)|(?P<word>[A-Za-z]+)(?:\s+(?P<item>\d+)\b)?)"
)
#: a relative Markdown link target, optionally with an anchor
MD_LINK = re.compile(r"\]\((?!https?:|mailto:|#)(?P<path>[^)\s#]*)(?:#(?P<anchor>[^)\s]+))?\)")


def repo_files() -> list[Path]:
    """Tracked files in a git checkout; every file (minus build and cache folders) elsewhere,
    e.g. in an unpacked sdist."""
    if (ROOT / ".git").exists():
        try:
            out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                                 check=True, timeout=60).stdout
            return [ROOT / p for p in out.decode().split("\0") if p and (ROOT / p).is_file()]
        except (OSError, subprocess.SubprocessError):
            pass
    return [p for p in ROOT.rglob("*") if p.is_file()
            and not SKIP_DIRS.intersection(p.relative_to(ROOT).parts)
            and not any(part.endswith(".egg-info") for part in p.relative_to(ROOT).parts)]


def text_files() -> list[Path]:
    files = []
    for p in repo_files():
        rel = p.relative_to(ROOT)
        if p.suffix in TEXT_SUFFIXES or rel.parts[0] == ".ci" or p.name in {"LICENSE", "NOTICE"}:
            files.append(p)
    return sorted(files)


def read(p: Path) -> str:
    return p.read_text(encoding="utf-8", errors="replace")


def line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def headings(page: Path) -> list[str]:
    return [m.group(2).strip() for m in re.finditer(r"^(#{1,6})\s+(.+)$", read(page), re.M)]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def section_has_item(page: Path, heading_word: str, number: int) -> bool:
    """Is item ``number`` in a section whose heading contains ``heading_word``? An item is a
    numbered list entry (``7. ...``) or a sub-heading (``### 7. ...``, ``### Principle 7``)."""
    text = read(page)
    lead = rf"(?:\s*(?:\*\*)?|#{{1,6}}\s+(?:{heading_word}\w*\s+)?)"
    item = re.compile(rf"^{lead}{number}(?:[.):]|\s|$)", re.M | re.I)
    for m in re.finditer(r"^(#{1,6})\s+(.+)$", text, re.M):
        if heading_word.lower() in m.group(2).lower():
            body = text[m.end():]
            level = len(m.group(1))
            nxt = re.search(rf"^#{{1,{level}}}\s", body, re.M)
            if item.search(body[: nxt.start()] if nxt else body):
                return True
    return False


def test_the_file_walk_sees_the_repository():
    names = {p.relative_to(ROOT).as_posix() for p in text_files()}
    for expected in ("README.md", "pyproject.toml", "src/disentkit/__init__.py",
                     "tests/conftest.py", "docs/science.md"):
        assert expected in names


def test_no_file_points_outside_the_repository():
    problems = []
    for p in text_files():
        text = read(p)
        rel = p.relative_to(ROOT).as_posix()
        for pattern in OUTSIDE:
            for m in pattern.finditer(text):
                problems.append(f"{rel}:{line_of(text, m.start())}: {m.group(0)!r}")
        for m in OUTSIDE_NOTES.finditer(text):
            if not (ROOT / m.group(0)).is_file():
                problems.append(f"{rel}:{line_of(text, m.start())}: cites {m.group(0)}, "
                                "which is not in the repository")
    assert not problems, "paths outside the repository:\n" + "\n".join(problems)


def test_every_cited_docs_path_exists():
    missing = []
    for p in text_files():
        text = read(p)
        rel = p.relative_to(ROOT).as_posix()
        for m in DOCS_PATH.finditer(text):
            if not (ROOT / m.group(0)).exists():
                missing.append(f"{rel}:{line_of(text, m.start())}: {m.group(0)}")
    assert not missing, "cited docs/ files that do not exist:\n" + "\n".join(missing)


def citations() -> list[tuple[str, int, re.Match]]:
    found = []
    for p in text_files():
        if p.suffix != ".py" or p == Path(__file__).resolve():  # this file's forms are examples
            continue
        text = read(p)
        for m in CITATION.finditer(text):
            found.append((p.relative_to(ROOT).as_posix(), line_of(text, m.start()), m))
    return found


def test_docstrings_cite_docs_and_sections_that_exist():
    cites = citations()
    assert cites, "no docstring cites docs/: the citation pattern no longer matches"
    problems = []
    for rel, line, m in cites:
        page = ROOT / "docs" / m["page"]
        where = f"{rel}:{line}: {m.group(0)!r}"
        if not page.is_file():
            problems.append(f"{where}: docs/{m['page']} does not exist")
            continue
        heads = [h.lower() for h in headings(page)]
        if m["principle"]:
            if not section_has_item(page, "principle", int(m["principle"])):
                problems.append(f"{where}: no principle {m['principle']} under 'Principles'")
        elif m["section"]:
            number = m["section"]
            if not any(re.match(rf"(§\s*)?{number}\b", h) or f"§{number}" in h for h in heads):
                problems.append(f"{where}: no heading numbered {number} (e.g. '## {number}. ...')")
        elif m["quoted"]:
            if not any(m["quoted"].lower() in h for h in heads):
                problems.append(f"{where}: no heading {m['quoted']!r}")
        elif m["item"]:
            if not section_has_item(page, m["word"], int(m["item"])):
                problems.append(f"{where}: no item {m['item']} under a {m['word']!r} heading")
        elif not any(m["word"].lower() in h for h in heads):
            problems.append(f"{where}: no heading containing {m['word']!r}")
    assert not problems, "docstring citations that do not resolve:\n" + "\n".join(problems)


def test_relative_markdown_links_resolve():
    problems = []
    for p in text_files():
        if p.suffix != ".md":
            continue
        text = read(p)
        rel = p.relative_to(ROOT).as_posix()
        for m in MD_LINK.finditer(text):
            target = (p.parent / m["path"]).resolve() if m["path"] else p
            where = f"{rel}:{line_of(text, m.start())}: ({m.group(0)[2:-1]})"
            if ROOT not in target.parents and target != ROOT:
                problems.append(f"{where}: points outside the repository")
            elif not target.exists():
                problems.append(f"{where}: no such file")
            elif m["anchor"] and target.suffix == ".md":
                if m["anchor"] not in {slug(h) for h in headings(target)}:
                    problems.append(f"{where}: no heading with anchor #{m['anchor']}")
    assert not problems, "broken links:\n" + "\n".join(problems)


@pytest.mark.parametrize("snippet", [
    "see " + ".." + "/shared/notes.md",
    "files in " + "shared" + "/reference/",
    "as " + "DES" + "IGN.md says",
    "the " + "PAP" + "ER.md summary",
])
def test_the_checks_catch_outside_paths(snippet):
    """The patterns above fire on the kinds of reference this test exists to forbid."""
    assert any(p.search(snippet) for p in OUTSIDE) or OUTSIDE_NOTES.search(snippet)


def test_the_citation_pattern_reads_the_docstring_forms():
    forms = {
        "(docs/architecture.md, principle 7)": ("architecture.md", "7", None, None),
        '(docs/architecture.md, "Contracts", "Metrics")':
            ("architecture.md", None, "Contracts", None),
        "(docs/science.md, pitfalls)": ("science.md", None, None, "pitfalls"),
        "(docs/science.md, Method 1)": ("science.md", None, None, "Method"),
        "(docs/architecture.md, §6)": ("architecture.md", None, None, None),
    }
    for text, (page, principle, quoted, word) in forms.items():
        m = CITATION.search(text)
        assert m is not None, text
        got = (m["page"], m["principle"], m["quoted"], m["word"])
        assert got == (page, principle, quoted, word)
    assert CITATION.search("(docs/architecture.md, §6)")["section"] == "6"
    assert slug("Pitfalls of the reference code") == "pitfalls-of-the-reference-code"
    assert slug("Coins-Augmented (built in)") == "coins-augmented-built-in"
