"""The ``disentkit`` command line: thin wrappers that parse arguments and call library code.

Each sub-command lives in its own module exposing ``register(subparsers)``, which adds a parser
whose ``func(args) -> int`` does the work. Errors meant for the user (bad input, missing data)
exit with code 2 and a one-paragraph message; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from disentkit import __version__

#: sub-command modules, in the order ``disentkit --help`` lists them
COMMAND_MODULES = [
    "disentkit.cli.datasets",
    "disentkit.cli.train",
    "disentkit.cli.metrics",
    "disentkit.cli.transfer",
    "disentkit.cli.run",
    "disentkit.cli.report",
    "disentkit.cli.sweep",
]

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="disentkit",
        description="Disentangled representations from synthetic to real images "
        "(Dapueto et al., NeurIPS 2024).",
    )
    parser.add_argument("--version", action="version", version=f"disentkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # a command not written yet is simply absent
            if exc.name == module_name:
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from disentkit.errors import DisentkitError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except (DisentkitError, ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"disentkit {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
