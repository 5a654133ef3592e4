"""``disentkit run``: presets, the whole job end to end in --smoke sizes, every report file,
a well-formed HTML page that shows every figure, and re-running skips finished stages."""

from __future__ import annotations

import json
import time

import pytest

from disentkit.cli import main
from disentkit.cli.run import Preset, find_real_targets, load_preset, smoke, source_folder_name

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
    for name in ("report.html", "report.md", "results.csv", "run.json"):
        assert (out / name).is_file(), name
    src = out / "sources" / "color-dsprites-gvae-labels-locatello-beta1-seed0"
    assert (src / "eval" / "results.json").is_file() and (src / "floor" / "results.json").is_file()
    for target in TARGETS:
        t = out / "transfers" / f"{src.name}--{target}"
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
    import disentkit.train as train_mod

    monkeypatch.setattr(train_mod, "train", lambda *a, **k: pytest.fail("trained again"))
    monkeypatch.setattr(metrics_mod, "evaluate", lambda *a, **k: pytest.fail("evaluated again"))
    before = (out / "transfers").stat().st_mtime_ns
    assert main(["run", "--smoke", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "skipped: done" in captured.err and f"report: {out / 'report.html'}" in captured.out
    assert (out / "transfers").stat().st_mtime_ns == before


def test_presets_load_and_round_trip(tmp_path, capsys):
    quick, paper = load_preset("quick"), load_preset("paper")
    assert quick.source.dataset == "color-dsprites" and quick.targets == TARGETS
    assert quick.source.steps == 3000 and quick.source.lr == 1e-3 and quick.source.arch == "locatello"
    assert paper.source.betas == (1.0, 2.0) and len(paper.source.seeds) == 10
    assert (paper.source.steps, paper.source.warmup_steps, paper.finetune.steps) == (400000, 50000, 50000)
    assert paper.eval.n == 15008 and paper.finetune.lr == 1e-4
    tiny = smoke(paper)
    assert tiny.source.steps < 20 and len(tiny.source.seeds) == 1 and tiny.eval.n < 500
    assert main(["run", "--preset", "paper", "--show-preset"]) == 0
    (tmp_path / "mine.json").write_text(capsys.readouterr().out)
    assert load_preset(str(tmp_path / "mine.json")) == paper  # the printed preset is a config file
    data = json.loads((tmp_path / "mine.json").read_text())
    data["source"]["stpes"] = 5
    (tmp_path / "typo.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="stpes"):
        load_preset(str(tmp_path / "typo.json"))
    assert main(["run", "--preset", "nonexistent"]) == 2
    assert "--preset must be one of" in capsys.readouterr().err
    assert source_folder_name(quick.source, 2.0, 3) == "color-dsprites-gvae-labels-locatello-beta2-seed3"


def test_missing_real_targets_are_skipped_with_the_reason(tmp_path):
    said = []
    preset = Preset(targets=("shapes3d",), real_targets=("coil100-augmented",))
    assert find_real_targets(preset, str(tmp_path), said.append) == []
    assert said and "skipping real target coil100-augmented" in said[0]
    assert find_real_targets(preset, None, said.append) == []


def test_job_clock_estimates_time_left_from_measured_rates():
    from disentkit.cli.run import JobClock

    preset = load_preset("quick")  # 3000 steps x 64 pairs; fine-tuning 500 x 64 images
    clock = JobClock(preset, n_runs=1, n_targets=3)
    assert clock.source_images == preset.source.steps * preset.source.batch_size * 2
    finetune_images = preset.finetune.steps * preset.finetune.batch_size
    first = clock.header("train source")
    assert first.startswith("[stage 1/6, 0:00 elapsed]") and "left" not in first
    clock.spent = {"images": [10.0, 1000], "evals": [30.0, 2]}  # 10 ms per image, 15 s per eval
    line = clock.header("evaluate source")  # left: 2 evals + 3 x (fine-tuning images + 2 evals)
    expected = 2 * 15 + 3 * (finetune_images * 0.01 + 2 * 15)
    assert f"about {int(expected) // 60}:{int(expected) % 60:02d} left" in line
    assert line.startswith("[stage 2/6")
    with clock.measure(images=500, evals=0):
        pass
    assert clock.spent["images"][1] == 1500


def test_job_clock_counts_measured_transfers_for_the_rest():
    """After one transfer ran, the remaining transfers are estimated at its measured time (the
    source's evaluation rate overestimated them when transfers use fewer classifiers); a
    transfer skipped as finished does not count."""
    from disentkit.cli.run import JobClock

    clock = JobClock(load_preset("quick"), n_runs=1, n_targets=3)
    clock.spent = {"images": [10.0, 1000], "evals": [30.0, 2]}
    for _ in range(3):  # train, evaluate, first transfer
        clock.header("stage")
    with clock.measure(transfer=False):  # skipped: finished before
        pass
    assert clock.transfer_seconds == [] and clock.spent["evals"] == [30.0, 2]
    with clock.measure(transfer=True):  # ran
        pass
    assert len(clock.transfer_seconds) == 1
    clock.transfer_seconds = [100.0]
    assert clock.header("second transfer").endswith("about 3:20 left] second transfer")


def test_quick_preset_evaluates_transfers_with_gbt_only(tmp_path, capsys):
    """The source and its floor get every metric; the transfers the GBT classifiers their
    tables read (the MLPs would cost more than the rest of a CPU evaluation)."""
    quick = load_preset("quick")
    assert quick.eval.n == 15008 and quick.eval.downstream_models is None
    assert quick.transfer_eval().downstream_models == ("gbt", "gbt_pruned", "gbt_single")
    assert quick.transfer_eval().n == quick.eval.n
    assert smoke(quick).transfer_eval() == smoke(quick).eval
    assert main(["run", "--preset", "quick", "--show-preset"]) == 0
    (tmp_path / "quick.json").write_text(capsys.readouterr().out)
    again = load_preset(str(tmp_path / "quick.json"))
    assert again.transfer_eval() == quick.transfer_eval()
