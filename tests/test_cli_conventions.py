"""CLI conventions (issue 11, item 6): help on every option with its default, one name per
concept across commands, -q/-v through logging, tables within 100 columns, outputs never written
into an input folder, --smoke against explicit sizes, checks before any work."""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from disentkit.cli import build_parser, main, sub_parsers
from disentkit.cli.common import HelpFormatter, format_table

SRC = Path(__file__).resolve().parents[1] / "src"


def _leaf_parsers():
    """(command path, parser) for every parser that runs something (has no sub-commands)."""
    out = []
    for p in sub_parsers(build_parser()):
        if not any(isinstance(a, argparse._SubParsersAction) for a in p._actions):
            out.append((p.prog, p))
    return out


def _options(parser):
    return [a for a in parser._actions
            if a.option_strings and not isinstance(a, (argparse._HelpAction, argparse._VersionAction))]


def test_every_option_of_every_command_has_help_with_its_default():
    leaves = _leaf_parsers()
    assert {prog.split(" ", 1)[1] for prog, _ in leaves} >= {
        "run", "train", "transfer", "metrics", "omes", "encode", "report", "aggregate",
        "sweep plan", "sweep run", "datasets list", "datasets show", "datasets export"}
    missing, no_default = [], []
    formatter = HelpFormatter("x")
    for prog, parser in leaves:
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            name = f"{prog} {'/'.join(action.option_strings) or action.dest}"
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(name)
                continue
            takes_value = action.option_strings and action.nargs != 0 and not action.required
            if takes_value and "default" not in formatter._get_help_string(action).lower():
                no_default.append(name)
    assert not missing, f"options without help: {missing}"
    assert not no_default, f"options whose help does not show the default: {no_default}"


def test_help_shows_defaults_in_the_rendered_text():
    text = build_parser()._subparsers._group_actions[0].choices["transfer"].format_help()
    assert "(default: 50000)" in " ".join(text.split())  # --finetune-steps
    assert "(default: auto)" in text  # --device


def test_one_name_per_concept_across_commands():
    leaves = dict(_leaf_parsers())
    flags = {prog: {s for a in _options(p) for s in a.option_strings} for prog, p in leaves.items()}
    every = set().union(*flags.values())
    assert not every & {"--n-boot", "--jobs", "--workers-threads"}, "renamed options are back"
    for prog, p in leaves.items():
        for a in _options(p):
            if "--device" in a.option_strings:
                # train's flags default to None (unset = the lower config layers) and say so
                assert a.default == "auto" or "(default: auto" in a.help, \
                    f"{prog} --device defaults to {a.default}"
            if "--root" in a.option_strings:
                assert "ONE dataset" in a.help, prog
            if "--data-root" in a.option_strings:
                assert "SEVERAL" in a.help, prog
        if flags[prog] & {"--root", "--data-root"}:
            assert "--cache-dir" in flags[prog], f"{prog} reads a real dataset but has no --cache-dir"
    results = ["run", "train", "transfer", "metrics", "omes", "report", "aggregate"]
    for name in results:
        assert "--json" in flags[f"disentkit {name}"], f"{name} has no --json"
    assert "--bootstrap" in flags["disentkit aggregate"] and "--bootstrap" in flags["disentkit metrics"]
    for name in ("train", "transfer", "encode", "metrics", "run", "sweep run"):
        assert "--threads" in flags[f"disentkit {name}"], name


def test_top_help_is_a_tour_on_one_screen():
    env = {**os.environ, "COLUMNS": "80", "PYTHONPATH": str(SRC)}
    proc = subprocess.run([sys.executable, "-m", "disentkit", "--help"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) <= 40, f"{len(lines)} lines"
    assert max(len(line) for line in lines) <= 100
    for example in ("disentkit run --smoke", "disentkit train ", "disentkit transfer ",
                    "disentkit metrics ", "disentkit report ", "disentkit datasets list"):
        assert example in proc.stdout


def test_quiet_and_verbose_set_the_disentkit_log_level(tmp_path, capsys, monkeypatch):
    import disentkit.cli.datasets as datasets_cli

    logger = logging.getLogger("disentkit")
    seen = []

    def record(args):
        seen.append(logger.getEffectiveLevel())
        logging.getLogger("disentkit.test").info("an info record")
        logging.getLogger("disentkit.test").debug("a debug record")
        return 0

    monkeypatch.setattr(datasets_cli, "cmd_list", record)
    before = (logger.level, list(logger.handlers))
    assert main(["-q", "datasets", "list"]) == 0
    assert capsys.readouterr().err == ""
    assert main(["datasets", "list", "-v"]) == 0  # also accepted after the sub-command
    assert "a debug record" in capsys.readouterr().err
    assert main(["datasets", "list"]) == 0
    err = capsys.readouterr().err
    assert "an info record" in err and "debug" not in err
    assert seen == [logging.WARNING, logging.DEBUG, logging.INFO]
    assert (logger.level, list(logger.handlers)) == before  # main leaves logging as it was
    assert build_parser().parse_args(["-v", "datasets", "list"]).verbosity == 1
    with pytest.raises(SystemExit):
        build_parser().parse_args(["-q", "-v", "datasets", "list"])


def test_datasets_list_fits_100_columns_and_writes_json(tmp_path, capsys):
    out = tmp_path / "d.json"
    assert main(["datasets", "list", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert max(len(line) for line in printed.splitlines()) <= 100
    rows = json.loads(out.read_text())
    names = {r["name"] for r in rows}
    assert {"dsprites", "shapes3d", "coil100"} <= names
    assert all(r["name"] in printed for r in rows) and all(r["source"] for r in rows)


def test_format_table_wraps_the_last_column():
    rows = [{"a": "x", "b": "word " * 40}]
    text = format_table(rows, max_width=30)
    assert max(len(line) for line in text.splitlines()) <= 30
    assert text.split()[:5] == ["a", "b", "-", "-" * 27, "x"]
    assert text.split()[5:] == ["word"] * 40  # nothing lost


@pytest.fixture
def rep_folder(tmp_path):
    from disentkit.metrics.representations import save_representations

    rng = np.random.default_rng(0)
    factors = np.stack([rng.integers(0, 3, 200), rng.integers(0, 4, 200)], axis=1)
    mean = np.concatenate([factors + 0.05 * rng.normal(size=factors.shape),
                           rng.normal(size=(200, 1))], axis=1)
    save_representations(tmp_path / "rep", mean, mean, factors, ["a", "b"])
    return tmp_path / "rep"


def test_omes_writes_a_new_folder_by_default_never_its_input(rep_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in rep_folder.iterdir())
    assert main(["omes", str(rep_folder), "--json", str(tmp_path / "o.json")]) == 0
    assert sorted(p.name for p in rep_folder.iterdir()) == before  # input untouched
    made = tmp_path / "rep-omes"
    assert (made / "omes.json").is_file() and (made / "relation.png").is_file()
    assert json.loads((tmp_path / "o.json").read_text())["association"] == \
        json.loads((made / "omes.json").read_text())["association"]
    assert main(["omes", str(rep_folder), "--out", str(rep_folder)]) == 2
    assert "input folder" in capsys.readouterr().err
    assert sorted(p.name for p in rep_folder.iterdir()) == before


def test_metrics_checks_names_and_backend_before_reading(tmp_path, monkeypatch, capsys):
    # the files do not exist: a bad metric name must be reported first, without reading
    code = main(["metrics", "--representations", str(tmp_path / "none.npz"), "--classes",
                 str(tmp_path / "none.csv"), "--metrics", "omes,nope"])
    assert code == 2 and "unknown metric" in capsys.readouterr().err
    import disentkit.metrics._common as common

    def no_lightgbm():
        raise ValueError("backend 'fast' needs LightGBM; install the extra: pip install 'disentkit[fast]'")

    monkeypatch.setattr(common, "import_lightgbm", no_lightgbm)
    code = main(["metrics", "--representations", str(tmp_path / "none.npz"), "--classes",
                 str(tmp_path / "none.csv"), "--backend", "fast"])
    assert code == 2 and "LightGBM" in capsys.readouterr().err


# ---------------------------------------------------------------------------- train
def _train_args(out, *extra):
    return ["train", "--dataset", "dsprites", "--out", str(out), "--threads", "1", *extra]


def test_train_smoke_wins_over_explicit_sizes_and_says_so(tmp_path, capsys):
    from disentkit.cli.train import SMOKE, resolve_config

    parser = build_parser()
    args = parser.parse_args(_train_args(tmp_path / "r", "--smoke", "--steps", "3000",
                                         "--set", "optim.batch_size=64", "--lr", "5e-4"))
    from disentkit.cli.common import configure_logging

    configure_logging(0)
    cfg = resolve_config(args)
    assert cfg.run.steps == SMOKE["run.steps"] and cfg.optim.batch_size == SMOKE["optim.batch_size"]
    assert cfg.optim.lr == 5e-4  # not a size: the explicit value stays
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--smoke wins over --steps 3000, --set optim.batch_size=64" in err[0]
    cfg = resolve_config(parser.parse_args(_train_args(tmp_path / "r", "--smoke")))
    assert cfg.run.steps == SMOKE["run.steps"] and capsys.readouterr().err == ""  # nothing replaced


def test_transfer_smoke_wins_over_explicit_sizes_and_says_so(caplog):
    from disentkit.cli.transfer import SMOKE, config_from_args

    caplog.set_level("INFO", logger="disentkit")
    args = build_parser().parse_args(["transfer", "--source", "s", "--target", "shapes3d", "--out",
                                      "o", "--smoke", "--finetune-steps", "3000"])
    cfg = config_from_args(args)
    assert cfg.steps == SMOKE["finetune_steps"] and cfg.eval.n == SMOKE["n"]
    assert "--smoke wins over --finetune-steps 3000" in caplog.text


@pytest.mark.parametrize("argv", [
    ["train", "--dataset", "dsprites", "--smoke", "--steps", "-1"],
    ["train", "--dataset", "dsprites", "--smoke", "--batch-size", "0"],
    ["transfer", "--source", "s", "--target", "shapes3d", "--smoke", "--n", "0"],
    ["transfer", "--source", "s", "--target", "shapes3d", "--smoke", "--finetune-steps", "-2"],
])
def test_smoke_does_not_hide_a_bad_explicit_value(tmp_path, capsys, argv):
    """--smoke replaces sizes, but an invalid explicit size is still an error (exit 2)."""
    out = tmp_path / "o"
    assert main(argv + ["--out", str(out)]) == 2
    assert "must be" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("extra, message", [
    (["--dataset", "nope"], "unknown dataset"),
    (["--root", "/no/such/folder"], "no such folder"),
    (["--method", "nope"], "unknown method"),
    (["--arch", "nope"], "unknown architecture"),
])
def test_train_preflight_fails_before_any_work(tmp_path, capsys, extra, message):
    out = tmp_path / "run"
    assert main(_train_args(out, "--smoke", *extra)) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()  # nothing half-written


def test_train_prints_its_config_only_with_verbose(tmp_path, capsys):
    assert main(_train_args(tmp_path / "a", "--smoke", "-q", "--json", str(tmp_path / "a.json"))) == 0
    captured = capsys.readouterr()
    assert '"optim"' not in captured.out + captured.err and "run folder" in captured.out
    record = json.loads((tmp_path / "a.json").read_text())
    from disentkit.config import TRAIN_SMOKE

    steps = TRAIN_SMOKE["run.steps"]
    assert record["steps"] == steps and record["last"]["step"] == steps
    assert main(_train_args(tmp_path / "b", "--smoke", "-v")) == 0
    assert '"optim"' in capsys.readouterr().err  # the resolved config, as a debug record


def test_transfer_preflight_checks_before_loading(tmp_path, capsys):
    base = ["transfer", "--source", str(tmp_path / "none"), "--out", str(tmp_path / "t"), "--smoke"]
    assert main([*base, "--target", "nope"]) == 2
    assert "unknown dataset" in capsys.readouterr().err
    assert main([*base, "--target", "shapes3d", "--metrics", "omes,nope"]) == 2
    assert "unknown metric" in capsys.readouterr().err
    assert main([*base, "--target", "shapes3d"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


def test_run_device_overrides_the_preset_and_is_checked(capsys):
    assert main(["run", "--smoke", "--device", "cpu", "--show-preset"]) == 0
    assert json.loads(capsys.readouterr().out)["execution"]["device"] == "cpu"
    assert main(["run", "--smoke", "--show-preset"]) == 0
    assert json.loads(capsys.readouterr().out)["execution"]["device"] == "auto"
    assert main(["run", "--smoke", "--device", "tpu", "--show-preset"]) == 2
    assert "--device must be" in capsys.readouterr().err



def test_report_json_holds_the_findings(tmp_path, capsys):
    from test_report import fabricate

    fabricate(tmp_path / "run", seeds=(0,))
    out = tmp_path / "r.json"
    assert main(["report", str(tmp_path / "run"), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    data = json.loads(out.read_text())
    assert Path(data["html"]).is_file() and Path(data["csv"]).is_file()
    codes = [f["code"] for f in data["findings"]]
    assert codes and all(f"{f['code']}: {f['claim']} -> {f['verdict']}" in printed
                         for f in data["findings"])
