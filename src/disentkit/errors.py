"""Exceptions that carry a message meant for the user.

The CLI maps every one of these (and ``ValueError`` / ``FileNotFoundError``) to exit code 2;
the message must say what was expected and what was found (docs/architecture.md, principle 10).
"""


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
