"""Exceptions that carry a message meant for the user.

The CLI maps every one of these (and ``ValueError`` / ``FileNotFoundError``) to exit code 2;
the message must say what was expected and what was found (docs/architecture.md, principle 10).
:func:`user_message` is the one place that decides which failures are expected (exit 2, one
message) and which are bugs (exit 1, a traceback and a request to report it).
"""

from __future__ import annotations

import contextlib
from typing import Iterator


class DisentkitError(Exception):
    """Base class of disentkit's user-facing errors."""


class DataLayoutError(DisentkitError, FileNotFoundError):
    """A dataset folder or file is missing or malformed.

    The message names the offending path and the expected on-disk layout.
    """

    def __init__(self, path, problem: str, expected_layout: str):
        self.path = str(path)
        self.problem = problem
        self.expected_layout = expected_layout
        super().__init__(f"{problem}: {self.path}\nexpected layout:\n{expected_layout}")

    def __str__(self) -> str:  # FileNotFoundError would otherwise format (errno, strerror)
        return self.args[0]


class UnknownNameError(DisentkitError, KeyError):
    """A registry lookup failed; the message lists the valid names."""

    def __init__(self, kind: str, name: str, valid):
        super().__init__(f"unknown {kind} {name!r}; valid names: {', '.join(sorted(valid))}")

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.args[0]


class InputFileError(DisentkitError, ValueError):
    """A file given to us (data, config, results) cannot be decoded or holds the wrong thing.

    The message names the file, and the row or field when known, and says what was expected.
    """

    def __init__(self, path, problem: str, expected: str | None = None, where: str | None = None):
        self.path = str(path)
        place = f"{self.path}, {where}" if where else self.path
        super().__init__(f"{place}: {problem}" + (f"; expected {expected}" if expected else ""))


def _decode_errors() -> tuple[type[BaseException], ...]:
    """Exception types raised by the readers of our input formats (optional ones when present)."""
    import csv
    import zipfile

    types: list[type[BaseException]] = [ValueError, OSError, EOFError, zipfile.BadZipFile,
                                         csv.Error, UnicodeError]
    try:
        import yaml

        types.append(yaml.YAMLError)
    except ImportError:  # pragma: no cover - yaml is a dependency
        pass
    return tuple(types)


def describe(exc: BaseException) -> str:
    """A short, file-agnostic description of a decoding or OS error."""
    import json

    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at position {exc.start})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@contextlib.contextmanager
def reading(path, what: str, expected: str | None = None) -> Iterator[None]:
    """Turn any decoding error raised while reading ``path`` into an :class:`InputFileError`
    naming the file, ``what`` it should hold and what was ``expected``; our own errors pass."""
    try:
        yield
    except DisentkitError:
        raise
    except _decode_errors() as exc:
        raise InputFileError(path, f"cannot read {what}: {describe(exc)}", expected) from exc


def user_message(exc: BaseException) -> str | None:
    """The message the CLI prints for an expected failure, or ``None`` for a bug.

    Expected: our errors, ``ValueError`` (bad values, the library's convention), OS errors
    (missing files, permissions, a full disk) and the decoding errors of our input formats.
    """
    import errno

    if isinstance(exc, DisentkitError):
        return str(exc)
    if isinstance(exc, OSError):
        names = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
        if exc.errno == errno.ENOSPC:
            return f"no space left on the device{' writing ' + names if names else ''}; free " \
                   "some space and run the command again (finished steps are kept)"
        if names:
            return f"{names}: {describe(exc)}"
        return describe(exc) if exc.strerror else str(exc) or type(exc).__name__
    if isinstance(exc, _decode_errors()):
        return str(exc) or type(exc).__name__
    return None
