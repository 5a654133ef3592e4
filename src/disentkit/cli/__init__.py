"""The ``disentkit`` command line: thin wrappers that parse arguments and call library code.

Each sub-command lives in its own module exposing ``register(subparsers)``, which adds a parser
whose ``func(args) -> int`` does the work. Errors meant for the user (bad input, missing data)
exit with code 2 and a one-paragraph message; anything else is a bug and keeps its traceback.
Library code logs through ``logging``; ``main`` routes the ``disentkit`` loggers to stderr at the
level ``-q`` / ``-v`` ask for (progress lines and notes are INFO, the resolved config DEBUG).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from disentkit import __version__
from disentkit.cli.common import HelpFormatter, add_logging_arguments, configure_logging

#: sub-command modules, in the order ``disentkit --help`` lists them
COMMAND_MODULES = [
    "disentkit.cli.run",
    "disentkit.cli.train",
    "disentkit.cli.transfer",
    "disentkit.cli.metrics",
    "disentkit.cli.report",
    "disentkit.cli.sweep",
    "disentkit.cli.datasets",
]

EXIT_USAGE = 2

TOUR = """\
a short tour (each command: disentkit COMMAND --help):
  disentkit run --smoke --out demo         the whole experiment in seconds (drop --smoke:
                                           the quick preset; --preset paper for a GPU)
  disentkit datasets list                  the datasets and their factors
  disentkit train --dataset color-dsprites --method ada-gvae --out src
  disentkit transfer --source src --target shapes3d --out tr
  disentkit encode src --dataset color-dsprites --out reps
  disentkit metrics --representations reps/representations.npz --classes reps/classes.csv
  disentkit report demo                    rebuild report.html from results on disk
  disentkit sweep plan quick               a study's runs and their state (then: sweep run)

Long work shows a bar on a terminal and a line with rate and ETA every 10 s when piped
($DISENTKIT_PROGRESS_SECONDS); -q hides it, -v adds debug detail."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="disentkit",
        description="Disentangled representations from synthetic to real images "
        "(Dapueto et al., NeurIPS 2024).",
        epilog=TOUR,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"disentkit {__version__}",
                        help="print the version and exit")
    add_logging_arguments(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # a command not written yet is simply absent
            if exc.name == module_name:
                continue
            raise
        module.register(sub)
    for p in sub_parsers(parser):
        p.formatter_class = HelpFormatter
        add_logging_arguments(p)
    return parser


def sub_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every parser below ``parser`` (sub-commands and their actions), depth first."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases map to one parser
                out.append(child)
                out += sub_parsers(child)
    return out


EXIT_BUG = 1


def main(argv: list[str] | None = None) -> int:
    """Run one command. The one error boundary: every expected failure (our errors, bad values,
    OS errors, undecodable input files; see :func:`disentkit.errors.user_message`) prints one
    message naming the file and exits 2; anything else is a bug: its traceback, a request to
    report it, exit 1. ``--debug`` (or ``DISENTKIT_DEBUG=1``) prints tracebacks of both."""
    from disentkit.data.cache import CACHE_ENV
    from disentkit.errors import user_message

    parser = build_parser()
    for p in [parser, *sub_parsers(parser)]:  # before or after the command name
        p.add_argument("--debug", action="store_true",
                       default=False if p is parser else argparse.SUPPRESS,
                       help="print the full traceback of any error (for bug reports)")
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    debug = args.debug or os.environ.get("DISENTKIT_DEBUG", "") not in ("", "0")
    restore_logging = configure_logging(args.verbosity)
    cache_env = os.environ.get(CACHE_ENV)  # --cache-dir sets it for this command only
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `disentkit datasets list | head`: the reader left, not an error
        sys.stdout = open(os.devnull, "w")  # no second error while Python flushes at exit
        return 0
    except Exception as exc:  # noqa: BLE001 - this is the boundary
        message = user_message(exc)
        if debug or message is None:
            traceback.print_exc()
        if message is None:
            print(f"disentkit {args.command}: internal error ({type(exc).__name__}: {exc}). "
                  f"This is a bug in disentkit {__version__}; please report it to the "
                  "project's issue tracker with the traceback above", file=sys.stderr)
            return EXIT_BUG
        print(f"disentkit {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        restore_logging()
        if cache_env is None:
            os.environ.pop(CACHE_ENV, None)
        else:
            os.environ[CACHE_ENV] = cache_env
