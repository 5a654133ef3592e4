"""``disentkit run``: presets, the whole job end to end in --smoke sizes, every report file,
a well-formed HTML page that shows every figure, and re-running skips finished stages."""

from __future__ import annotations

import json
import time

import pytest

from disentkit.cli import main
from disentkit.config import ConfigError
from disentkit.experiment.engine import JobClock
from disentkit.experiment.stages import PreflightError, preflight
from disentkit.experiment.study import Study, TransferSpec, SourceSpec, load_study, plan

from test_report import check_html

TARGETS = ("noisy-color-dsprites", "shapes3d", "coins-augmented")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DISENTKIT_CACHE_DIR", str(out.parent / "cache"))
        t0 = time.process_time()  # CPU seconds: wall time depends on who else uses the machine
        code = main(["run", "--smoke", "--out", str(out), "--threads", "1"])
        cpu = time.process_time() - t0
    return out, code, cpu


def test_smoke_run_writes_every_report_file(smoke_run, capsys):
    out, code, cpu = smoke_run
    assert code == 0
    print(f"smoke run: {cpu:.1f} CPU seconds")
    assert cpu < 90, f"the smoke run took {cpu:.0f} CPU seconds"
    for name in ("report.html", "report.md", "results.csv", "study.json"):
        assert (out / name).is_file(), name
    (src,) = (out / "sources").glob("color-dsprites.b1.s0.*")
    assert (src / "eval" / "results.json").is_file() and (src / "floor" / "results.json").is_file()
    for target in TARGETS:
        (t,) = (out / "transfers").glob(f"color-dsprites--{target}.b1.s0.*")
        assert (t / "before" / "results.json").is_file() and (t / "after" / "results.json").is_file()
    text, images = check_html(out / "report.html")
    shown = {img["data-file"] for img in images}
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*.png")}
    assert on_disk == shown  # every figure is in the page, and nothing else
    # reconstructions + traversals per evaluation (relation maps only when a dimension is active),
    # training curves of the source and fine-tuning curves of each target
    evals = 1 + 2 * len(TARGETS)
    assert sum(p.endswith("reconstructions.png") for p in on_disk) == evals
    assert sum(p.endswith("traversals.png") for p in on_disk) == evals
    assert sum(p.endswith("-curves.png") for p in on_disk) == 1 + len(TARGETS)
    for target in TARGETS:
        assert f"→ {target}" in text
    assert "untrained" in text and "Do the paper" in text
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 + 3 * len(TARGETS)  # source, floor; per target before, floor, after
    for path in out.rglob("results.json"):  # no test combination was seen in training, anywhere
        ev = json.loads(path.read_text())["evaluation"]
        assert ev["test_rows_seen_in_train"] == 0 and ev["distinct_combinations"] == ev["n"], path
    assert 'class="banner"' in text and "mean nothing" in text  # smoke sizes say so


def test_rerun_skips_finished_stages(smoke_run, monkeypatch, capsys):
    out, code, _ = smoke_run
    assert code == 0
    import disentkit.metrics as metrics_mod
    import disentkit.training as train_mod

    monkeypatch.setattr(train_mod, "train", lambda *a, **k: pytest.fail("trained again"))
    monkeypatch.setattr(metrics_mod, "score", lambda *a, **k: pytest.fail("evaluated again"))
    before = (out / "transfers").stat().st_mtime_ns
    assert main(["run", "--smoke", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "skipped: done" in captured.err and f"report: {out / 'report.html'}" in captured.out
    assert (out / "transfers").stat().st_mtime_ns == before


def test_presets_load_and_round_trip(tmp_path, capsys):
    quick, paper = load_study("quick"), load_study("paper")
    (src,) = quick.sources
    (tr,) = quick.transfers
    assert src.dataset == "color-dsprites" and tr.targets == TARGETS
    assert (src.steps, src.lr, src.arch, src.batch_size) == (5000, 1e-3, "locatello", 64)
    assert (tr.steps, tr.lr, tr.beta, tr.grad_clip) == (500, 5e-4, 1.0, 1.0)
    assert quick.evaluation.n == 15008 and quick.evaluation.backend == "fast"
    assert quick.execution.precision == paper.execution.precision == "fp32"
    color = next(s for s in paper.sources if s.name == "color-dsprites")
    assert color.betas == (1.0, 2.0) and len(color.seeds) == 10 and color.arch == "paper"
    assert (color.steps, color.warmup_steps) == (400000, 50000)
    assert all((t.steps, t.lr, t.beta, t.grad_clip) == (50000, 1e-4, 1.0, None) for t in paper.transfers)
    assert paper.evaluation.backend == "reference" and paper.evaluation.sampling == "lines"
    tiny = paper.smoke()
    assert tiny.sources[0].steps < 20 and tiny.evaluation.n < 500
    assert main(["run", "--preset", "paper", "--show-preset"]) == 0
    (tmp_path / "mine.json").write_text(capsys.readouterr().out)
    assert load_study(str(tmp_path / "mine.json")) == paper  # the printed study is a study file
    data = json.loads((tmp_path / "mine.json").read_text())
    data["sources"][0]["stpes"] = 5
    (tmp_path / "typo.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="stpes"):
        load_study(str(tmp_path / "typo.json"))
    assert main(["run", "--preset", "nonexistent"]) == 2
    assert "not a packaged study" in capsys.readouterr().err


def test_missing_optional_targets_are_skipped_and_required_ones_fail_first(tmp_path, caplog):
    study = Study(name="s", sources=(SourceSpec(name="c", dataset="color-dsprites", steps=2),),
                  transfers=(TransferSpec(source="c", targets=("shapes3d",),
                                          optional_targets=("coil100-augmented",)),))
    assert preflight(study, str(tmp_path)) == {"coil100-augmented": False}
    assert "skipping optional target coil100-augmented" in caplog.text
    assert len(plan(study, optional={"coil100-augmented": False}).runs) == 2
    needs_files = Study(name="s", sources=study.sources,
                        transfers=(TransferSpec(source="c", targets=("rgbd-objects",)),))
    with pytest.raises(PreflightError, match="rgbd-objects"):
        preflight(needs_files, str(tmp_path))
    # `run` refuses before training or writing anything
    path = tmp_path / "study.json"
    from disentkit.config import to_dict

    path.write_text(json.dumps(to_dict(needs_files)))
    assert main(["run", "--preset", str(path), "--smoke", "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()


def test_job_clock_estimates_time_left_from_measured_rates():
    quick = plan(load_study("quick"), optional={})  # 5000 steps x 64 pairs; fine-tuning 500 x 64
    clock = JobClock(quick)
    source = quick.runs[0]
    assert clock.images[source.id] == 5000 * 64 * 2
    finetune_images = 500 * 64
    first = clock.text("train source")
    assert first.startswith("[stage 1/6, 0:00 elapsed]") and "left" not in first
    clock.spent = {"images": [10.0, 1000], "evals": [30.0, 2]}  # 10 ms per image, 15 s per eval
    line = clock.text("evaluate source")  # left: 2 evals + 3 x (fine-tuning + before, floor, after)
    expected = 2 * 15 + 3 * (finetune_images * 0.01 + 3 * 15)
    assert f"about {int(expected) // 60}:{int(expected) % 60:02d} left" in line
    assert line.startswith("[stage 2/6")
    with clock.measure(images=500, evals=0):
        pass
    assert clock.spent["images"][1] == 1500


def test_job_clock_counts_measured_transfers_for_the_rest():
    """After one transfer ran, the remaining transfers are estimated at its measured time (the
    source's evaluation rate overestimated them when transfers use fewer classifiers); a
    transfer skipped as finished does not count."""
    clock = JobClock(plan(load_study("quick"), optional={}))
    clock.spent = {"images": [10.0, 1000], "evals": [30.0, 2]}
    for _ in range(3):  # train, evaluate, first transfer
        clock.text("stage")
    with clock.measure(transfer=False):  # skipped: finished before
        pass
    assert clock.transfer_seconds == [] and clock.spent["evals"] == [30.0, 2]
    with clock.measure(transfer=True):  # ran
        pass
    assert len(clock.transfer_seconds) == 1
    clock.transfer_seconds = [100.0]
    assert clock.text("second transfer").endswith("about 3:20 left] second transfer")


def test_quick_preset_evaluates_transfers_with_gbt_only():
    """The source and its floor get every metric; the transfers the GBT classifiers their
    tables read (the MLPs would cost more than the rest of a CPU evaluation)."""
    quick = load_study("quick")
    assert quick.evaluation.n == 15008 and quick.evaluation.downstream_models is None
    transfer = quick.evaluation.settings(transfer=True)
    assert transfer.downstream_models == ("gbt", "gbt_pruned", "gbt_single")
    assert transfer.n == quick.evaluation.n
    tiny = quick.smoke().evaluation
    assert tiny.settings(transfer=True) == tiny.settings()
    runs = plan(quick, optional={}).runs
    assert runs[1].config["transfer"]["eval"]["downstream_models"] == ["gbt", "gbt_pruned", "gbt_single"]
    assert runs[0].config["evaluation"]["downstream_models"] is None
