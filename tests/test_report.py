"""Tests for vtune.report: plots, CSV, tables, summaries and the progress display."""

from __future__ import annotations

import csv
import io
import math
import os
import struct
import threading

import matplotlib
import numpy as np
import pytest
from rich.console import Console

from vtune import report
from vtune.report import (
    ProgressDisplay,
    curves_figure,
    format_summary,
    plot_curves,
    trials_table,
    write_trials_csv,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NAN = float("nan")


def make_trials(num: int = 12, *, epochs: int = 9, seed: int = 0) -> list[dict]:
    """A small Hyperband-like population: a third pruned at epoch 3, one diverged, the rest completed."""
    rng = np.random.default_rng(seed)
    trials = []
    for i in range(num):
        lr = float(10 ** rng.uniform(-4, -1))
        ceiling = 0.6 + 0.35 * rng.random()
        curve = [float(ceiling - (ceiling - 0.1) * math.exp(-0.5 * e)) for e in range(1, epochs + 1)]
        config = {"learning_rate": lr, "units": int(2 ** rng.integers(4, 8)), "activation": "relu"}
        trial = {"id": i, "config": config, "bracket": i % 2, "status": "completed", "curve": curve}
        if i % 3 == 1:
            trial["status"] = "pruned"
            trial["curve"] = curve[:3]
            trial["rungs"] = [{"epochs": 3, "val_score": curve[2]}]
        elif i == 2:
            trial["status"] = "diverged"
            trial["curve"] = curve[:2] + [NAN] * (epochs - 2)
            trial["rungs"] = [{"epochs": 3, "val_score": NAN}]
        else:
            trial["rungs"] = [{"epochs": 3, "val_score": curve[2]}, {"epochs": epochs, "val_score": curve[-1]}]
        trials.append(trial)
    return trials


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def best_of(trials: list[dict]) -> dict:
    alive = [t for t in trials if t["status"] != "diverged"]
    return max(alive, key=lambda t: t["rungs"][-1]["val_score"])


# ------------------------------------------------------------------------------------------------ plots


PLOT_CASES = {
    "normal": make_trials(12),
    "single": [{"id": 0, "status": "completed", "curve": [0.2, 0.5, 0.7], "rungs": [{"epochs": 3, "val_score": 0.7}]}],
    "single_epoch": [{"id": 5, "status": "completed", "curve": [0.4]}],
    "all_diverged": [
        {"id": 0, "status": "diverged", "curve": [NAN, NAN]},
        {"id": 1, "status": "diverged", "curve": [0.3, NAN]},
    ],
    "empty_curves": [{"id": 0, "status": "completed", "curve": []}, {"id": 1, "status": "pruned"}],
    "no_trials": [],
    "json_nulls": [{"id": 0, "status": "diverged", "curve": [0.1, 0.2, None]}, *make_trials(3)[:1]],
    "many": make_trials(5000, epochs=12, seed=1),
}


@pytest.mark.parametrize("case", sorted(PLOT_CASES))
def test_plot_curves_writes_a_png(tmp_path, case):
    out = plot_curves(PLOT_CASES[case], tmp_path / "sub" / "curves.png", metric="accuracy")
    assert out == tmp_path / "sub" / "curves.png"
    width, height = png_size(out)
    assert (width, height) == (960, 600)
    assert out.stat().st_size > 10_000
    assert sorted(p.name for p in out.parent.iterdir()) == ["curves.png"]  # no temporary file left


def test_plot_leaves_the_global_backend_alone(tmp_path):
    before = matplotlib.get_backend()
    plot_curves(make_trials(4), tmp_path / "c.png")
    assert matplotlib.get_backend() == before


def collection(fig, label):
    found = [c for c in fig.axes[0].collections if c.get_label() == label]
    assert len(found) <= 1
    return found[0] if found else None


def test_curves_figure_draws_each_status_and_truncates_divergence():
    trials = make_trials(12)
    fig = curves_figure(trials)
    ax = fig.axes[0]
    pruned = collection(fig, "_pruned")
    completed = collection(fig, "_completed")
    diverged = collection(fig, "_diverged")
    assert len(pruned.get_segments()) == sum(t["status"] == "pruned" for t in trials)
    assert len(completed.get_segments()) == sum(t["status"] == "completed" for t in trials)
    (segment,) = diverged.get_segments()
    np.testing.assert_array_equal(segment[:, 0], [1.0, 2.0])  # up to the last finite value only
    np.testing.assert_allclose(segment[:, 1], trials[2]["curve"][:2])
    np.testing.assert_allclose(collection(fig, "_breaks").get_offsets(), [[2.0, trials[2]["curve"][1]]])
    assert pruned.get_linewidths()[0] < completed.get_linewidths()[0]
    assert pruned.get_alpha() < completed.get_alpha()
    # the best trial: a thick labelled line over the whole curve
    best = best_of(trials)
    (line,) = [ln for ln in ax.get_lines() if ln.get_label().startswith("best")]
    assert f"trial {best['id']}" in line.get_label()
    np.testing.assert_allclose(line.get_ydata(), best["curve"])
    assert line.get_linewidth() > completed.get_linewidths()[0]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "pruned (4)" in labels and "diverged (1)" in labels and "completed (7)" in labels


def test_curves_figure_best_id_and_rungs():
    trials = make_trials(6)
    fig = curves_figure(trials, best_id=4, show_rungs=True, title="mine", metric="r2")
    ax = fig.axes[0]
    (line,) = [ln for ln in ax.get_lines() if ln.get_label().startswith("best")]
    assert "trial 4" in line.get_label() and "r2" in line.get_label()
    assert ax.get_title() == "mine"
    assert ax.get_ylabel() == "validation r2"
    rung_lines = [ln for ln in ax.get_lines() if ln.get_linestyle() == ":"]
    assert [ln.get_xdata()[0] for ln in rung_lines] == [3]  # 9 is the last epoch: no line there
    with pytest.raises(ValueError, match="best_id=99"):
        curves_figure(trials, best_id=99)


def test_curves_figure_explains_an_empty_picture():
    texts = lambda fig: " ".join(t.get_text() for t in fig.axes[0].texts)  # noqa: E731
    assert "all 2 trials diverged" in texts(curves_figure(PLOT_CASES["all_diverged"]))
    assert "no learning curves" in texts(curves_figure(PLOT_CASES["empty_curves"]))
    assert "no trials" in texts(curves_figure([]))
    assert texts(curves_figure(make_trials(6))) == ""


def test_curves_figure_clips_far_outliers():
    good = [{"id": i, "status": "completed", "curve": [0.1 * i, 0.2 * i + 0.05]} for i in range(1, 5)]
    bad = [{"id": 9, "status": "completed", "curve": [-1e4, -9e3]}]
    ax = curves_figure(good + bad, metric="r2").axes[0]
    assert ax.get_ylim()[0] > -10
    assert "clipped" in " ".join(t.get_text() for t in ax.texts)


@pytest.mark.parametrize(
    "trials, error",
    [
        ({"id": 0}, TypeError),
        ([{"id": 0, "status": "done", "curve": []}], ValueError),
        ([{"status": "completed"}], ValueError),
        ([{"id": 0, "status": "completed", "rungs": [{"epochs": 3}]}], ValueError),
        (["trial"], TypeError),
    ],
)
def test_bad_trial_records_are_rejected(tmp_path, trials, error):
    with pytest.raises(error):
        plot_curves(trials, tmp_path / "c.png")
    assert not (tmp_path / "c.png").exists()


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "x.png"
    target.write_bytes(b"old")

    def boom(fh):
        fh.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        report._write_atomic(target, boom, binary=True)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["x.png"]
    plot_curves(make_trials(3), target)
    assert target.read_bytes()[:8] == PNG_MAGIC


# ------------------------------------------------------------------------------------------------- CSV


def test_trials_csv_round_trips(tmp_path):
    trials = make_trials(12)
    trials[0]["config"]["dropout"] = 0.1 + 0.2  # 0.30000000000000004: needs repr to survive
    trials[1]["rungs"] = []
    out = write_trials_csv(trials, tmp_path / "trials.csv")
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    header = list(rows[0])
    assert header == [*report.CSV_COLUMNS, "activation", "dropout", "learning_rate", "units"]
    assert len(rows) == len(trials)
    for trial, row in zip(trials, rows):
        assert int(row["id"]) == trial["id"]
        assert int(row["bracket"]) == trial["bracket"]
        assert row["status"] == trial["status"]
        assert float(row["learning_rate"]) == trial["config"]["learning_rate"]
        assert int(row["units"]) == trial["config"]["units"]
        finite = [v for v in trial["curve"] if not math.isnan(v)]
        assert float(row["best_curve_score"]) == max(finite)
        if trial["rungs"]:
            assert int(row["epochs"]) == trial["rungs"][-1]["epochs"]
            expected = trial["rungs"][-1]["val_score"]
            assert float(row["val_score"]) == expected or (math.isnan(expected) and row["val_score"] == "nan")
        else:
            assert row["epochs"] == row["val_score"] == ""
    assert float(rows[0]["dropout"]) == 0.1 + 0.2
    assert rows[1]["dropout"] == ""  # key missing from this trial's config


def test_trials_csv_rejects_clashing_keys(tmp_path):
    with pytest.raises(ValueError, match="status"):
        write_trials_csv([{"id": 0, "status": "completed", "config": {"status": 1}}], tmp_path / "t.csv")


def test_trials_csv_with_no_trials(tmp_path):
    out = write_trials_csv([], tmp_path / "t.csv")
    assert out.read_text().strip() == ",".join(report.CSV_COLUMNS)


# ----------------------------------------------------------------------------------------------- table


def render(renderable, width=200) -> str:
    console = Console(file=io.StringIO(), width=width, force_terminal=False, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


def test_trials_table_ranks_best_first_and_diverged_last():
    trials = make_trials(12)
    table = trials_table(trials, top=5)
    assert table.row_count == 5
    ids = table.columns[1]._cells
    assert ids[0] == str(best_of(trials)["id"])
    scores = [float(s) for s in table.columns[4]._cells]
    assert scores == sorted(scores, reverse=True)
    everything = trials_table(trials, top=100)
    assert everything.row_count == len(trials)
    assert everything.columns[1]._cells[-1] == "2"  # the diverged trial
    assert everything.columns[4]._cells[-1] == "—"


def test_trials_table_shows_only_varying_config_and_compact_numbers():
    trials = make_trials(6)
    trials[0]["config"]["learning_rate"] = 0.0031622776601683794
    trials[0]["rungs"][-1]["val_score"] = 2.0  # make it the best
    table = trials_table(trials, metric="r2", title="t")
    headers = [c.header for c in table.columns]
    assert headers[:6] == ["#", "id", "bracket", "epochs", "val r2", "status"]
    assert "learning_rate" in headers and "units" in headers
    assert "activation" not in headers  # "relu" everywhere
    column = table.columns[headers.index("learning_rate")]._cells
    assert column[0] == "3.16e-03"
    assert all("e-0" in cell for cell in column)  # one style per column
    assert "3.16e-03" in render(table)


def test_trials_table_validates_top():
    with pytest.raises(ValueError, match="top=0"):
        trials_table(make_trials(3), top=0)
    assert trials_table([], top=3).row_count == 0


# --------------------------------------------------------------------------------------------- summary


SUMMARY = {
    "best": {
        "config": {"learning_rate": 0.0031622776, "units": 128, "activation": "tanh"},
        "val_score": 0.98333,
        "test_score": 0.9751,
    },
    "metric": "accuracy",
    "budget": {"model_epochs": 1215},
    "timing": {"wall_s": 83.2, "compile_s": 12.5},
    "strategy": "hyperband",
    "num_trials": 143,
    "num_diverged": 3,
    "out_dir": "runs/digits",
}


def test_format_summary_contains_the_numbers():
    text = format_summary(SUMMARY)
    for piece in ("0.98333", "0.9751", "accuracy", "0.00316228", "128", "tanh", "hyperband", "143 trials",
                  "3 diverged", "1,215 model-epochs", "1 min 23 s", "12.5 s", "runs/digits"):
        assert piece in text, piece
    assert len(text.splitlines()) >= 8


def test_format_summary_without_test_score_or_extras():
    text = format_summary({"best": {"config": {}, "val_score": -0.125, "test_score": None}, "metric": "-f"})
    assert "-0.125" in text and "no test split" in text
    assert "time" not in text and "output" not in text
    with pytest.raises(ValueError, match="best"):
        format_summary({"metric": "accuracy"})
    with pytest.raises(TypeError, match="wall_s"):
        format_summary({**SUMMARY, "timing": {"wall_s": "slow"}})


# -------------------------------------------------------------------------------------------- progress


RUNGS = [(9, 1), (3, 3), (1, 9)]


def run_search(progress: ProgressDisplay, num_brackets: int = 3) -> None:
    with progress:
        for b in range(num_brackets):
            progress.start_bracket(b, num_brackets, RUNGS)
            for r, (n, e) in enumerate(RUNGS):
                progress.advance(n * e, bracket=b, rung=r)
            progress.set_best(0.5 + 0.1 * b)


def test_progress_disabled_prints_nothing():
    console = Console(file=io.StringIO(), force_terminal=True)
    progress = ProgressDisplay(81, enabled=False, console=console)
    run_search(progress)
    progress.message("hello")
    assert console.file.getvalue() == ""
    assert progress.completed == 81


def test_progress_plain_console_prints_one_line_per_bracket():
    console = Console(file=io.StringIO(), force_terminal=False, width=40)
    progress = ProgressDisplay(81, console=console)
    assert not progress.live
    run_search(progress, num_brackets=3)
    lines = console.file.getvalue().splitlines()
    assert len(lines) == 3  # never wrapped, however narrow the console
    for b, line in enumerate(lines):
        assert line.startswith(f"bracket {b + 1}/3")
        assert "9×1 → 3×3 → 1×9" in line
        assert f"{27 * b}/81 model-epochs" in line
    assert "best accuracy 0.6" in lines[2]
    assert progress.completed == 81 and progress.best == pytest.approx(0.7)


def test_progress_live_terminal_shows_bar_stage_and_best():
    console = Console(file=io.StringIO(), force_terminal=True, width=150)
    progress = ProgressDisplay(81, console=console, metric="r2")
    assert progress.live
    with progress:
        progress.start_bracket(1, 4, RUNGS)
        progress.advance(9, rung=1)
        progress.set_best(0.25)
        assert progress._stage_text() == "bracket 2/4 · rung 2/3 · 3 configs × 3 epochs"
        progress.message("compiled in 2.0 s")
    out = console.file.getvalue()
    assert "9/81" in out and "model-epochs" in out and "best r2 0.25" in out and "compiled in 2.0 s" in out
    assert "configs×epochs" not in out  # the bar replaces the plain per-bracket lines


def test_progress_names_brackets_that_train_together():
    # Hyperband's brackets trained side by side: one line for the group, and the live label says so too.
    console = Console(file=io.StringIO(), force_terminal=False, width=40)
    progress = ProgressDisplay(81, console=console)
    with progress:
        progress.start_bracket(0, 4, [(49, 1), (31, 3)], last=3)
        assert progress._stage_text() == "brackets 1–4/4 · rung 1/2 · 49 configs × 1 epoch"
        progress.advance(49, rung=1)
        assert progress._stage_text().startswith("brackets 1–4/4 · rung 2/2")
    assert console.file.getvalue().splitlines()[0].startswith("brackets 1–4/4 · configs×epochs 49×1 → 31×3")
    progress = ProgressDisplay(81, enabled=False)
    progress.start_bracket(2, 4, RUNGS, last=2)  # a group of one is a plain bracket
    assert progress._stage_text().startswith("bracket 3/4 ·")


@pytest.mark.parametrize("force_terminal", [False, True])
def test_progress_advance_is_thread_safe(force_terminal):
    num_threads, steps = 8, 500
    console = Console(file=io.StringIO(), force_terminal=force_terminal)
    progress = ProgressDisplay(num_threads * steps * 3, console=console)
    barrier = threading.Barrier(num_threads)

    def work(k):
        barrier.wait()
        for i in range(steps):
            progress.advance(np.int64(3) if i % 2 else 3, rung=i % 3)
            progress.set_best(k + i / steps)

    with progress:
        progress.start_bracket(0, 1, RUNGS)
        threads = [threading.Thread(target=work, args=(k,)) for k in range(num_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert progress.completed == num_threads * steps * 3
    assert progress.best == pytest.approx(num_threads - 1 + (steps - 1) / steps)


def test_progress_set_best_keeps_the_highest_and_ignores_nan():
    progress = ProgressDisplay(10, enabled=False)
    for score in (0.3, NAN, 0.9, None, 0.1, np.float32(0.5)):
        progress.set_best(score)
    assert progress.best == pytest.approx(0.9)


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda p: p.advance(-1), ValueError),
        (lambda p: p.advance(True), TypeError),
        (lambda p: p.advance(1.5), TypeError),
        (lambda p: p.start_bracket(3, 3, RUNGS), ValueError),
        (lambda p: p.start_bracket(0, 0, RUNGS), ValueError),
        (lambda p: p.start_bracket(0, 2, [(9,)]), ValueError),
        (lambda p: p.start_bracket(1, 3, RUNGS, last=0), ValueError),
        (lambda p: p.start_bracket(1, 3, RUNGS, last=3), ValueError),
        (lambda p: p.start_bracket(0, 3, RUNGS, last=1.0), TypeError),
        (lambda p: p.set_best("high"), TypeError),
    ],
)
def test_progress_validates_input(call, error):
    with pytest.raises(error):
        call(ProgressDisplay(10, enabled=False))


def test_progress_validates_total():
    with pytest.raises(ValueError, match="total_model_epochs=-5"):
        ProgressDisplay(-5)
    with pytest.raises(TypeError, match="total_model_epochs"):
        ProgressDisplay(10.0)
