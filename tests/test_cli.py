"""The ``vtune`` command line: plan tables, one real tiny search (tune → show → resume), input errors.

Only two commands compile anything (the real ``tune`` and its ``resume``); every other test either never
reaches :func:`vtune.tune` or replaces it with a stand-in that records its arguments.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

import vtune
from vtune import cli
from vtune.data import Dataset
from vtune.result import Result

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY_SPACE = {"units": 4, "num_layers": 1, "batch_size": 4}


def _run(argv):
    """``(status, stdout, stderr)`` of ``cli.main(argv)`` in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main([str(a) for a in argv])
    return status, out.getvalue(), err.getvalue()


def _first_rung_counts(table: str) -> list[int]:
    """The n_i of rung 0 of every bracket, from ``Plan.table()`` text."""
    row = next(line for line in table.splitlines() if line.split()[:1] == ["0"])
    return [int(v) for v in row.split()[1::2]]


# --------------------------------------------------------------------------------------------------
# plan, --version, the entry point
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, counts",
    [
        (["--max-epochs", "81", "--eta", "3"], [81, 34, 15, 8, 5]),
        (["--max-epochs", "81", "--eta", "3", "--sizing", "table"], [81, 27, 9, 6, 5]),
        (["--max-epochs", "27", "--eta", "3"], [27, 12, 6, 4]),
        (["--max-epochs", "27"], [27, 12, 6, 4]),  # eta defaults to 3
        (["--max-epochs", "243", "--eta", "3"], [243, 98, 41, 18, 9, 6]),  # s_max = 5, not 4.999…
    ],
)
def test_plan_prints_first_rung_counts(capsys, argv, counts):
    assert cli.main(["plan", *argv]) == 0
    captured = capsys.readouterr()
    assert _first_rung_counts(captured.out) == counts
    assert f"R={argv[1]}" in captured.out
    assert captured.err == ""


def test_plan_totals_for_r81(capsys):
    assert cli.main(["plan", "--max-epochs", "81", "--eta", "3"]) == 0
    assert "configurations: 143, model-epochs: 1581" in capsys.readouterr().out


def test_version(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"vtune {vtune.__version__}"


def test_no_command_is_a_usage_error(capsys):
    assert cli.main([]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error" in err


def test_python_dash_m_vtune_entry_point():
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "vtune", "plan", "--max-epochs", "9", "--eta", "3"],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert _first_rung_counts(proc.stdout) == [9, 5, 3]
    bad = subprocess.run([sys.executable, "-m", "vtune", "plan", "--max-epochs", "9", "--eta", "1"],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_the_program_leaves_at_once_with_its_exit_handlers_run_and_output_flushed():
    """Run as the program, a finished command skips the interpreter's teardown (``cli._leave``): its status,
    its whole output (to a pipe, i.e. buffered) and the ``atexit`` handlers must all survive that."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    code = ("import atexit, sys\n"
            "atexit.register(lambda: print('handler ran'))\n"
            "from vtune.cli import main\n"
            "sys.argv = ['vtune', 'plan', '--max-epochs', '27', '--eta', '3']\n"
            "print('x' * 100000)\n"  # more than a pipe's buffer, still unflushed when main ends
            "sys.exit(main())\n"
            "print('not reached')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "x" * 100000 in proc.stdout and _first_rung_counts(proc.stdout) == [27, 12, 6, 4]
    assert proc.stdout.rstrip().endswith("handler ran") and "not reached" not in proc.stdout


# --------------------------------------------------------------------------------------------------
# One real tiny search: tune, show, resume
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    space = root / "space.json"
    space.write_text(json.dumps(TINY_SPACE))
    out = root / "run"
    status, stdout, stderr = _run([
        "tune", "--dataset", "xor", "--strategy", "random", "--trials", 2, "--max-epochs", 2, "--space", space,
        "--compile-cache", "none", "--quiet", "--out", out,
    ])
    assert status == 0, f"the tiny tune run failed (exit {status}): {stderr}"
    results = json.loads((out / "results.json").read_text())
    return {"out": out, "status": status, "stdout": stdout, "stderr": stderr, "results": results}


def test_tune_writes_every_file(tiny_run):
    out = tiny_run["out"]
    for name in ("results.json", "trials.csv", "curves.png", "run.json"):
        assert (out / name).is_file(), name
    assert (out / "best_model").is_dir() and any((out / "best_model").iterdir())
    assert tiny_run["stderr"] == ""  # --quiet: no progress, no notes


def test_tune_results_json_schema(tiny_run):
    res = tiny_run["results"]
    assert {"config", "val_score", "test_score"} <= set(res["best"])
    assert res["best"]["config"] == TINY_SPACE
    assert 0.0 <= res["best"]["val_score"] <= 1.0 and 0.0 <= res["best"]["test_score"] <= 1.0
    assert len(res["trials"]) == 2
    for trial in res["trials"]:
        assert {"id", "config", "bracket", "rungs", "status"} <= set(trial)
        assert trial["status"] == "completed" and trial["rungs"][-1]["epochs"] == 2
    assert res["budget"]["model_epochs"] == 4
    assert {"wall_s", "compile_s"} <= set(res["timing"])
    assert res["seed"] == 0 and res["version"] == vtune.__version__


def test_tune_stdout_has_summary_table_and_files(tiny_run):
    text = tiny_run["stdout"]
    val = tiny_run["results"]["best"]["val_score"]
    assert "best validation accuracy:" in text
    assert "higher is better" in text
    assert "strategy: random" in text
    assert "best 2 of 2 trials" in text and "val accuracy" in text
    out = tiny_run["out"]
    for name in ("results.json", "trials.csv", "curves.png"):
        assert str(out / name) in text
    assert str(out / "best_model") + os.sep in text
    assert f"{val:.4g}"[:4] in text


def test_tune_records_run_json(tiny_run):
    spec = json.loads((tiny_run["out"] / "run.json").read_text())
    assert spec["dataset"] == "xor" and spec["data"] is None and spec["target"] is None
    assert (spec["strategy"], spec["trials"], spec["max_epochs"], spec["eta"]) == ("random", 2, 2, None)
    assert spec["space"] == TINY_SPACE  # the file's content, not its path
    assert spec["seed"] == 0 and spec["chunk"] is None


def test_show(tiny_run, capsys):
    assert cli.main(["show", str(tiny_run["out"])]) == 0
    captured = capsys.readouterr()
    assert "best validation accuracy:" in captured.out and "best 2 of 2 trials" in captured.out
    assert "files:" not in captured.out and captured.err == ""


def test_tune_refuses_an_out_folder_of_another_search(tiny_run, capsys):
    before = (tiny_run["out"] / "run.json").read_text()
    status = cli.main(["tune", "--dataset", "xor", "--strategy", "hyperband", "--out", str(tiny_run["out"])])
    err = capsys.readouterr().err
    assert status == 2 and "different search" in err and "strategy='random'" in err
    assert err.count("\n") == 1
    assert (tiny_run["out"] / "run.json").read_text() == before


def test_resume_gives_the_same_best(tiny_run):
    # Last of the module's tests on this folder: resume rewrites its results.
    status, stdout, stderr = _run(["resume", tiny_run["out"], "--quiet", "--compile-cache", "none"])
    assert status == 0, stderr
    assert "resuming" in stderr
    again = json.loads((tiny_run["out"] / "results.json").read_text())
    assert again["best"]["val_score"] == tiny_run["results"]["best"]["val_score"]
    assert again["best"]["config"] == tiny_run["results"]["best"]["config"]
    assert [t["rungs"] for t in again["trials"]] == [t["rungs"] for t in tiny_run["results"]["trials"]]
    assert "best validation accuracy:" in stdout


# --------------------------------------------------------------------------------------------------
# Bad input: one line on stderr, exit status 2, no traceback, no folder left behind
# --------------------------------------------------------------------------------------------------


def _bad_cases(tmp: pathlib.Path) -> dict:
    (tmp / "t.csv").write_text("a,b,label\n1,2,x\n3,4,y\n5,6,x\n7,8,y\n")
    (tmp / "bad.json").write_text('{"learning_rate": ')
    (tmp / "unknown.json").write_text('{"learnin_rate": 0.1}')
    (tmp / "lowhigh.json").write_text('{"learning_rate": {"float": [0.1, 0.01], "scale": "log"}}')
    (tmp / "big_batch.json").write_text('{"batch_size": 8, "units": 4, "num_layers": 1}')
    (tmp / "norun").mkdir()
    (tmp / "badrun").mkdir()
    (tmp / "badrun" / "run.json").write_text('{"format": 1, "strategy": "random"')
    (tmp / "oddrun").mkdir()
    (tmp / "oddrun" / "run.json").write_text(json.dumps(
        {"format": 1, "dataset": "xor", "data": None, "target": None, "strategy": "annealing", "max_epochs": None,
         "eta": None, "trials": None, "seed": 0, "space": None, "chunk": None}))
    xor = ["tune", "--dataset", "xor", "--strategy", "random", "--compile-cache", "none", "--quiet"]
    return {
        "unknown dataset": (["tune", "--dataset", "mnist"], "invalid choice: 'mnist'"),
        "unknown strategy": (["tune", "--dataset", "xor", "--strategy", "annealing"], "invalid choice: 'annealing'"),
        "eta 1": (["tune", "--dataset", "xor", "--eta", "1"], "--eta: must be at least 2"),
        "max-epochs 0": (["tune", "--dataset", "xor", "--max-epochs", "0"], "--max-epochs: must be at least 1"),
        "max-epochs not a number": (["tune", "--dataset", "xor", "--max-epochs", "ten"], "must be an integer"),
        "negative seed": (["tune", "--dataset", "xor", "--seed", "-1"], "--seed: must be at least 0"),
        "missing csv": (["tune", "--data", tmp / "nope.csv", "--target", "label"], "not found"),
        "csv without target": (["tune", "--data", tmp / "t.csv", "--target", "class"],
                               "target='class' is not a column"),
        "space missing": ([*xor, "--space", tmp / "nope.json"], "space file not found"),
        "space invalid json": ([*xor, "--space", tmp / "bad.json"], "invalid JSON at line 1"),
        "space unknown name": ([*xor, "--space", tmp / "unknown.json"], "unknown hyperparameter 'learnin_rate'"),
        "space low >= high": ([*xor, "--space", tmp / "lowhigh.json"], "low < high"),
        "dataset and data": (["tune", "--dataset", "xor", "--data", tmp / "t.csv"], "not allowed with argument"),
        "data without target": (["tune", "--data", tmp / "t.csv"], "needs --target"),
        "target without data": (["tune", "--dataset", "xor", "--target", "label"], "applies only with --data"),
        "trials with hyperband": (["tune", "--dataset", "xor", "--trials", "4"], "--trials does not apply"),
        "eta with random": ([*xor, "--eta", "2"], "--eta applies only to hyperband and halving"),
        "batch larger than the data": ([*xor, "--trials", "2", "--space", tmp / "big_batch.json"],
                                       "batch_size=8 is larger than the training split"),
        "resume without run.json": (["resume", tmp / "norun"], "run.json is missing"),
        "resume with broken run.json": (["resume", tmp / "badrun"], "is not valid JSON"),
        "resume with a bad strategy": (["resume", tmp / "oddrun"], "strategy='annealing'"),
        "resume of no folder": (["resume", tmp / "nowhere"], "is not a folder"),
        "show without results": (["show", tmp / "norun"], "results.json is missing"),
        "plan eta 1": (["plan", "--max-epochs", "9", "--eta", "1"], "--eta: must be at least 2"),
        "plan without R": (["plan", "--eta", "3"], "required: --max-epochs"),
    }


BAD_CASE_NAMES = [
    "unknown dataset", "unknown strategy", "eta 1", "max-epochs 0", "max-epochs not a number", "negative seed",
    "missing csv", "csv without target", "space missing", "space invalid json", "space unknown name",
    "space low >= high", "dataset and data", "data without target", "target without data",
    "trials with hyperband", "eta with random", "batch larger than the data", "resume without run.json",
    "resume with broken run.json", "resume with a bad strategy", "resume of no folder", "show without results",
    "plan eta 1", "plan without R",
]


@pytest.mark.parametrize("case", BAD_CASE_NAMES)
def test_bad_input_is_one_line_exit_2(case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VTUNE_DEBUG", raising=False)
    argv, needle = _bad_cases(tmp_path)[case]
    status = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert status == 2
    assert captured.err.count("\n") == 1, captured.err
    assert "Traceback" not in captured.err
    assert "error: " in captured.err and needle in captured.err, captured.err
    assert captured.out == ""
    assert not (tmp_path / "vtune-runs").exists()  # a failed start leaves no folder behind


def test_bad_case_table_is_complete(tmp_path):
    assert sorted(_bad_cases(tmp_path)) == sorted(BAD_CASE_NAMES)


# --------------------------------------------------------------------------------------------------
# What the CLI hands to tune(), with a stand-in for tune (nothing compiles)
# --------------------------------------------------------------------------------------------------


def _fake_result(status="ok") -> Result:
    diverged = status == "all_diverged"
    trials = [
        {"id": i, "config": {"learning_rate": 10.0 ** -i}, "bracket": 0,
         "status": "diverged" if diverged else "completed",
         "rungs": [{"epochs": 2, "val_score": float("-inf") if diverged else 0.5 + 0.1 * i}],
         "curve": [float("nan")] * 2 if diverged else [0.4, 0.5 + 0.1 * i]}
        for i in range(3)
    ]
    best = ({"id": None, "config": None, "val_score": None, "test_score": None} if diverged
            else {"id": 2, "config": trials[2]["config"], "val_score": 0.7, "test_score": 0.65})
    return Result(trials=trials, best=best, metric="accuracy", task="binary",
                  strategy={"name": "random", "num_trials": 3, "max_epochs": 2}, seed=0, model_epochs=6,
                  planned_model_epochs=6, wall_s=1.0, compile_s=0.5, num_compiles=1, data={"name": "xor"},
                  status=status, message="every trial diverged (loss became NaN or infinite)" if diverged else "")


@pytest.fixture
def fake_tune(monkeypatch):
    calls = []

    def tune(space=None, data="digits", **kw):
        calls.append({"space": space, "data": data, **kw})
        result = _fake_result(fake_tune_status[0])
        if kw.get("out") is not None:
            result.save(kw["out"])
        return result

    fake_tune_status = ["ok"]
    monkeypatch.setattr(vtune, "tune", tune)
    return calls, fake_tune_status


def test_checkpoint_every_bracket_runs_brackets_one_at_a_time(fake_tune, tmp_path):
    calls, _ = fake_tune
    out = tmp_path / "run"
    assert cli.main(["tune", "--dataset", "xor", "--out", str(out), "--quiet"]) == 0
    assert cli.main(["resume", str(out), "--checkpoint-every-bracket", "--quiet"]) == 0
    assert cli.main(["tune", "--dataset", "xor", "--out", str(tmp_path / "b"), "--checkpoint-every-bracket"]) == 0
    assert [c["brackets_together"] for c in calls] == [True, False, False]


def test_defaults_pass_none_through_and_new_folders(fake_tune, tmp_path, monkeypatch, capsys):
    calls, _ = fake_tune
    monkeypatch.chdir(tmp_path)
    assert cli.main(["tune", "--dataset", "xor", "--strategy", "random"]) == 0
    assert cli.main(["tune", "--dataset", "xor", "--strategy", "random"]) == 0
    first, second = calls
    for key in ("max_epochs", "eta", "trials", "chunk", "space"):
        assert first[key] is None, key
    assert first["data"] == "xor" and first["strategy"] == "random" and first["seed"] == 0
    assert first["compile_cache"] == "default" and first["progress"] is True
    assert first["out"] != second["out"]  # never reuses a folder by default
    for call in calls:
        assert re.fullmatch(r"xor-random-\d{8}-\d{6}(-\d+)?", pathlib.Path(call["out"]).name)
        assert pathlib.Path(call["out"]).parent.resolve() == (tmp_path / "vtune-runs").resolve()
    err = capsys.readouterr().err
    assert "writing to" in err


def test_csv_run_and_resume_repeat_the_same_arguments(fake_tune, tmp_path, monkeypatch, capsys):
    calls, _ = fake_tune
    csv = tmp_path / "t.csv"
    csv.write_text("a,b,label\n" + "".join(f"{i},{i % 3},{'xy'[i % 2]}\n" for i in range(40)))
    space = tmp_path / "s.json"
    space.write_text('{"learning_rate": {"float": [0.001, 0.1], "scale": "log"}, "batch_size": 4}')
    out = tmp_path / "out"
    argv = ["tune", "--data", csv, "--target", "label", "--strategy", "halving", "--eta", 2, "--trials", 8,
            "--max-epochs", 4, "--seed", 3, "--chunk", 4, "--space", space, "--out", out, "--quiet",
            "--compile-cache", "none"]
    assert cli.main([str(a) for a in argv]) == 0
    space.unlink()  # resume needs neither the space file nor the working directory
    monkeypatch.chdir(tmp_path / "out")
    assert cli.main(["resume", str(out), "--quiet", "--compile-cache", "none"]) == 0
    first, again = calls
    assert isinstance(first["data"], Dataset) and first["data"].name == "t"
    assert isinstance(again["data"], Dataset) and again["data"].n_features == 2
    for key in ("strategy", "seed", "max_epochs", "eta", "trials", "chunk"):
        assert first[key] == again[key]
    assert (first["strategy"], first["seed"], first["max_epochs"], first["eta"], first["trials"], first["chunk"]) == (
        "halving", 3, 4, 2, 8, 4)
    assert first["space"].to_json() == again["space"].to_json()
    assert pathlib.Path(first["out"]) == out and pathlib.Path(again["out"]) == out
    assert first["progress"] is False and first["compile_cache"] == "none"
    spec = json.loads((out / "run.json").read_text())
    assert spec["data"] == str(csv.resolve()) and spec["target"] == "label"


def test_existing_checkpoint_is_announced(fake_tune, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "checkpoint").mkdir(parents=True)
    (out / "checkpoint" / "state.json").write_text("{}")
    assert cli.main(["tune", "--dataset", "xor", "--strategy", "random", "--out", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "holds a checkpoint" in err and "resuming" in err


def test_all_diverged_exits_1_and_still_writes(fake_tune, tmp_path, capsys):
    _, status = fake_tune
    status[0] = "all_diverged"
    out = tmp_path / "out"
    assert cli.main(["tune", "--dataset", "xor", "--strategy", "random", "--out", str(out), "--quiet"]) == 1
    captured = capsys.readouterr()
    assert "all trials diverged" in captured.err and "every trial diverged" in captured.err
    assert "Traceback" not in captured.err
    assert "status: all_diverged" in captured.out and "diverged" in captured.out
    assert (out / "results.json").is_file() and (out / "trials.csv").is_file() and (out / "curves.png").is_file()


def test_keyboard_interrupt_says_how_to_resume(fake_tune, tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(vtune, "tune", interrupted)
    out = tmp_path / "out"
    assert cli.main(["tune", "--dataset", "xor", "--out", str(out), "--quiet"]) == 130
    err = capsys.readouterr().err
    assert err == f"interrupted; resume with: vtune resume {out}\n"
    assert (out / "run.json").is_file()  # so the resume it suggests can work


def test_error_inside_tune_is_one_line(fake_tune, tmp_path, monkeypatch, capsys):
    from vtune.checkpoint import CheckpointError

    def refuses(*args, **kw):
        raise CheckpointError("a checkpoint of a different search\nuse a new --out folder")

    monkeypatch.setattr(vtune, "tune", refuses)
    out = tmp_path / "out"
    out.mkdir()
    assert cli.main(["tune", "--dataset", "xor", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err == "vtune: error: a checkpoint of a different search use a new --out folder\n"
    assert not (out / "run.json").exists()  # the run.json this call wrote is taken back
