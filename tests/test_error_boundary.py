"""The CLI's one error boundary (issue 14, item 2): expected failures exit 2 with one message
naming the file; bugs exit 1 with a traceback and a request to report them; ``--debug`` shows
tracebacks of both."""

from __future__ import annotations

import errno
import json
import os

import pytest

from disentkit import cli
from disentkit.errors import InputFileError, reading, user_message
from disentkit.io import read_json


def _fail_with(monkeypatch, exc):
    def boom(args):
        raise exc

    real = cli.build_parser

    def parser():
        p = real()
        p._subparsers._group_actions[0].choices["datasets"].set_defaults(func=boom)
        for action in p._subparsers._group_actions[0].choices["datasets"]._subparsers._group_actions:
            for sub in action.choices.values():
                sub.set_defaults(func=boom)
        return p

    monkeypatch.setattr(cli, "build_parser", parser)


@pytest.mark.parametrize("exc, expected", [
    (OSError(errno.ENOSPC, "No space left on device", "/data/out.npz"), "no space left"),
    (PermissionError(errno.EACCES, "Permission denied", "/ro/config.json"), "/ro/config.json"),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "/x/y.png"), "/x/y.png"),
    (InputFileError("/a/b.csv", "cannot read", "UTF-8 CSV", where="line 3"), "/a/b.csv, line 3"),
])
def test_expected_failures_exit_2_with_one_message(monkeypatch, capsys, exc, expected):
    _fail_with(monkeypatch, exc)
    assert cli.main(["datasets", "list"]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err
    assert err.count("\n") == 1, "one line"


def test_a_bug_exits_1_with_traceback_and_asks_for_a_report(monkeypatch, capsys):
    _fail_with(monkeypatch, KeyError("oops"))
    assert cli.main(["datasets", "list"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "bug" in err and "report" in err


def test_debug_shows_the_traceback_of_an_expected_failure(monkeypatch, capsys):
    _fail_with(monkeypatch, ValueError("bad value"))
    assert cli.main(["--debug", "datasets", "list"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "bad value" in err
    monkeypatch.setenv("DISENTKIT_DEBUG", "1")
    assert cli.main(["datasets", "list"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_read_json_names_the_file_and_accepts_a_bom(tmp_path):
    bom = tmp_path / "bom.json"
    bom.write_bytes("\ufeff".encode("utf-8") + json.dumps({"a": 1}).encode())
    assert read_json(bom) == {"a": 1}
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"a": \xff}')
    with pytest.raises(InputFileError, match=f"{bad}: cannot read JSON: not UTF-8"):
        read_json(bad)
    bad.write_text('{"a": ')
    with pytest.raises(InputFileError, match="line 1 column 7"):
        read_json(bad)


def test_reading_passes_our_errors_and_bugs_through(tmp_path):
    with pytest.raises(InputFileError, match="f.npz: cannot read arrays: boom"):
        with reading(tmp_path / "f.npz", "arrays"):
            raise EOFError("boom")
    with pytest.raises(KeyError):  # a bug stays a bug
        with reading(tmp_path / "f.npz", "arrays"):
            raise KeyError("k")
    assert user_message(KeyError("k")) is None
    assert user_message(RuntimeError("r")) is None


def test_read_only_output_folder(tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root ignores folder permissions")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert cli.main(["datasets", "show", "dsprites", "--out", str(ro / "x.png")]) == 2
        assert str(ro) in capsys.readouterr().err
    finally:
        ro.chmod(0o755)
