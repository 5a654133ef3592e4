"""Helpers shared by CLI commands: one definition of each common option, tables, JSON results,
logging set-up and the checks every command runs before any work (a missing dependency, dataset
folder or a bad name fails in the first second, not after training).

Option names mean the same on every command:

* ``--root DIR``: the folder of ONE dataset's files (a real dataset, or an original file set);
* ``--data-root DIR``: a folder holding SEVERAL datasets, one sub-folder per dataset name
  (``run``, ``sweep run``);
* ``--cache-dir DIR``: where decoded real datasets are cached (default ``$DISENTKIT_CACHE_DIR`` or
  the user cache folder);
* ``--device`` (default ``auto``), ``--threads``, ``--seed``, ``--bootstrap``, ``--json FILE``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

log = logging.getLogger("disentkit.cli")

#: most columns a table printed by the CLI may use
MAX_COLUMNS = 100


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows every option's default: ``(default: X)`` is appended unless the help already says
    what the default is; flags (off unless given) and options without a value need no note."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" in text.lower() or not action.option_strings or action.nargs == 0
                or action.required or default in (None, argparse.SUPPRESS) or default == []):
            return text
        return text + " (default: %(default)s)"


# ---------------------------------------------------------------------------- options
def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch, NumPy and the metrics' classifiers "
                             "(default: the cores this process may use)")


def add_ensemble_argument(parser: argparse.ArgumentParser) -> None:
    """``--ensemble M``: the study's ``execution.ensemble`` from the command line."""
    parser.add_argument("--ensemble", type=int, default=None, metavar="M",
                        help="train up to M compatible runs (equal but for seed, β and a "
                             "fine-tuning's source) as one vmapped network; each stays its own run "
                             "with the same id and results (default: the study's "
                             "execution.ensemble, 1 = every run alone)")


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto",
                        help="auto (CUDA when available, else CPU), cpu, cuda or cuda:N")


def add_seed_argument(parser: argparse.ArgumentParser, what: str = "random draws") -> None:
    parser.add_argument("--seed", type=int, default=0, help=f"seed of the {what}")


def add_json_argument(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--json", default=None, metavar="FILE",
                        help=f"also write {what} as JSON to FILE (default: no JSON file)")


def add_cache_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", default=None,
                        help="cache folder for decoded real datasets (default: "
                             "$DISENTKIT_CACHE_DIR, else the user cache folder)")


def add_dataset_root_arguments(parser: argparse.ArgumentParser, what: str = "the dataset") -> None:
    """``--root`` (one dataset's folder) and ``--cache-dir``."""
    parser.add_argument("--root", default=None,
                        help=f"folder of {what}'s files: ONE dataset (needed for real datasets; "
                             "default: none, generated data)")
    add_cache_argument(parser)


def add_data_root_argument(parser: argparse.ArgumentParser) -> None:
    """``--data-root``: a folder holding several datasets."""
    parser.add_argument("--data-root", default=None,
                        help="folder holding SEVERAL real datasets, one sub-folder per dataset "
                             "name (coil100/, rgbd-objects/ ...; files lying directly in it are "
                             "found too) (default: none, built-in data only)")
    add_cache_argument(parser)


def add_logging_arguments(parser: argparse.ArgumentParser, top: bool = False) -> None:
    """``-q/--quiet`` and ``-v/--verbose`` (on sub-commands too, without overriding the top's)."""
    default = 0 if top else argparse.SUPPRESS
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=-1,
                       default=default, help="only warnings and errors: no progress, no notes")
    group.add_argument("-v", "--verbose", dest="verbosity", action="store_const", const=1,
                       default=default, help="also debug messages (e.g. the resolved config)")


# ---------------------------------------------------------------------------- logging
class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record is emitted (redirections, tests)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it; sys.stderr wins
        pass

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        with tqdm.external_write_mode(file=sys.stderr):  # a live bar steps aside, then redraws
            super().emit(record)


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return f"{record.levelname.lower()}: {text}" if record.levelno >= logging.WARNING else text


def configure_logging(verbosity: int = 0) -> Callable[[], None]:
    """Route the ``disentkit`` loggers to stderr: warnings only (-1), info (0) or debug (1).

    Returns a function that puts the logger back as it was (``main`` called from Python, e.g.
    in a notebook or a test, leaves no handler or level behind)."""
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    logger = logging.getLogger("disentkit")
    old_level = logger.level
    for h in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
        logger.removeHandler(h)
    handler = _StderrHandler()
    handler.setFormatter(_Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)

    def restore() -> None:
        logger.removeHandler(handler)
        logger.setLevel(old_level)

    return restore


# ---------------------------------------------------------------------------- output
def format_table(rows: Sequence[dict], columns: Iterable[str] | None = None,
                 max_width: int | None = None) -> str:
    """Render dict rows as an aligned plain-text table; with ``max_width`` the last column wraps
    onto continuation lines so no line is longer."""
    rows = list(rows)
    if not rows:
        return ""
    columns = list(columns or rows[0].keys())
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    indent = sum(widths[:-1]) + 2 * (len(columns) - 1)
    if max_width is not None and indent + widths[-1] > max_width:
        widths[-1] = max(max_width - indent, 10)

    def lines(vals: list[str]) -> list[str]:
        last = textwrap.wrap(vals[-1], widths[-1]) or [""]
        head = "  ".join(v.ljust(w) for v, w in zip(vals[:-1], widths[:-1]))
        out = [(head + "  " + last[0]).rstrip()]
        out += [(" " * indent + part).rstrip() for part in last[1:]]
        return out

    out = lines(columns) + lines(["-" * w for w in widths])
    for row in cells:
        out += lines(row)
    return "\n".join(out)


def write_json_result(path: str | None, obj: Any) -> None:
    """Write a command's results to ``--json FILE`` (atomically) when asked."""
    if not path:
        return
    from disentkit.io import write_json

    write_json(path, obj)
    log.info("wrote %s", path)


# ---------------------------------------------------------------------------- set-up and checks
def apply_threads(threads: int | None) -> None:
    """Set torch's intra-op threads when asked; explicit counts keep parallel workers fair."""
    if threads is None:
        return
    if threads < 1:
        raise ValueError(f"--threads must be >= 1, found {threads}")
    import torch

    torch.set_num_threads(threads)


def apply_ensemble(study, ensemble: int | None):
    """``study`` with ``--ensemble`` as its ``execution.ensemble`` (unchanged when not given),
    checked at once: a bad value is one line naming the field, before anything starts."""
    import dataclasses

    from disentkit.config import ConfigError, validate

    if ensemble is None:
        return study
    study = dataclasses.replace(study, execution=dataclasses.replace(study.execution,
                                                                     ensemble=ensemble))
    try:
        validate(study.execution, "execution")
    except ConfigError as exc:
        raise ConfigError(f"--ensemble: {exc}") from None
    return study


def apply_cache_dir(args: argparse.Namespace) -> None:
    """``--cache-dir`` for every dataset this process (and its workers) opens."""
    from disentkit.data.cache import CACHE_ENV

    if getattr(args, "cache_dir", None):
        os.environ[CACHE_ENV] = str(Path(args.cache_dir).resolve())


def dataset_kwargs(args: argparse.Namespace) -> dict:
    """Keyword arguments for ``get_dataset`` from ``--root`` (``--cache-dir`` travels through
    the environment, see :func:`apply_cache_dir`, so generated datasets accept it too)."""
    return {"root": args.root} if getattr(args, "root", None) else {}


def check_dataset(name: str | None, root: str | None = None, option: str = "--dataset") -> None:
    """A registered dataset name and, when given, an existing ``--root``."""
    from disentkit.data.registry import dataset_class

    if name is not None:
        dataset_class(name)  # UnknownNameError lists the valid names
    if root and Path(root).is_file():  # dSprites, Shapes3D, MPI3D: --root may name the file itself
        return
    check_folder(root, "--root")


def check_folder(path: str | None, option: str) -> None:
    if path and not Path(path).is_dir():
        raise FileNotFoundError(f"{option} {path}: no such folder")


def check_metrics(metrics: str | Sequence[str] | None, backend: str) -> None:
    """Known metric names and an installed backend (LightGBM for ``fast``)."""
    from disentkit.metrics import resolve_metrics
    from disentkit.metrics._common import check_backend

    resolve_metrics(metrics)
    check_backend(backend)


def check_device(device: str) -> None:
    """A device torch knows and this machine has (``auto``, ``cpu``, ``cuda``, ``cuda:N``)."""
    from disentkit.training.prepare import resolve_device

    try:
        resolve_device(device)
    except RuntimeError as exc:  # torch's own message for an unknown device type
        raise ValueError(f"--device must be auto, cpu, cuda or cuda:N, found {device!r}") from exc
