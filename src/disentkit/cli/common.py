"""Small helpers shared by CLI commands: tables, thread settings, dataset options."""

from __future__ import annotations

import argparse
from typing import Iterable, Sequence


def format_table(rows: Sequence[dict], columns: Iterable[str] | None = None) -> str:
    """Render dict rows as an aligned plain-text table."""
    rows = list(rows)
    if not rows:
        return ""
    columns = list(columns or rows[0].keys())
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths)).rstrip()  # noqa: E731
    out = [line(columns), line(["-" * w for w in widths])]
    out += [line(row) for row in cells]
    return "\n".join(out)


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for torch/numpy work (default: torch's own choice)",
    )


def apply_threads(threads: int | None) -> None:
    """Set torch's intra-op threads when asked; explicit counts keep parallel workers fair."""
    if threads is None:
        return
    if threads < 1:
        raise ValueError(f"--threads must be >= 1, found {threads}")
    import torch

    torch.set_num_threads(threads)


def add_dataset_root_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", default=None, help="folder holding the dataset's files")
    parser.add_argument(
        "--cache-dir", default=None, help="cache folder for real datasets (default: user cache)"
    )


def dataset_kwargs(args: argparse.Namespace) -> dict:
    """Keyword arguments for ``get_dataset`` from ``--root``/``--cache-dir`` (only those given)."""
    kwargs = {}
    if getattr(args, "root", None):
        kwargs["root"] = args.root
    if getattr(args, "cache_dir", None):
        kwargs["cache_dir"] = args.cache_dir
    return kwargs
