"""The ``vtune`` command line: ``tune``, ``plan``, ``resume`` and ``show``.

::

    vtune tune --dataset digits                       # Hyperband, R=27, eta=3, results in ./vtune-runs/...
    vtune tune --data train.csv --target label --strategy random --trials 64 --max-epochs 20
    vtune plan --max-epochs 81 --eta 3 --sizing table # the bracket table, nothing trained
    vtune resume ./vtune-runs/digits-hyperband-20250101-120000
    vtune show ./vtune-runs/digits-hyperband-20250101-120000

``vtune tune`` writes ``run.json`` (the arguments that repeat the search, the space inline) into its
output folder *before* the search starts, then ``checkpoint/`` after every stage and, at the end,
``results.json``, ``trials.csv``, ``curves.png`` and ``best_model/``. ``vtune resume DIR`` reads
``run.json`` and calls :func:`vtune.tune` again with ``out=DIR``, which continues after the last finished
stage (or, for a finished search, just rebuilds the result).

Scores are "higher is better" everywhere: accuracy (classification), R² (regression), −f (Beale).

Exit status: 0 success · 1 every trial diverged (the files are still written) · 2 bad input (one line
``vtune: error: ...`` on stderr, no traceback; argparse usage errors too) · 130 interrupted. Set
``VTUNE_DEBUG=1`` to get the traceback of an input error instead.
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import json
import os
import pathlib
import re
import shlex
import sys
from typing import Any, Mapping, Sequence

from vtune import __version__
from vtune.data import DATASETS
from vtune.strategies import STRATEGIES

#: ``run.json``: what ``vtune resume`` needs to repeat a ``vtune tune`` search.
RUN_FILE = "run.json"
RUN_FORMAT = 1

EXIT_OK = 0
EXIT_DIVERGED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: Data set names ``--dataset`` takes: the bundled ones plus Beale's function.
DATASET_NAMES = (*DATASETS, "beale")
#: Strategies whose ``--trials`` means something, and the setting it fills.
TRIALS_MEANING = {"random": "trials", "halving": "first-rung configurations", "coarse-to-fine": "trials per round"}
#: Strategies that have a reduction factor ``eta``.
ETA_STRATEGIES = ("hyperband", "halving")
#: What each metric is called in the output, and what it means.
METRIC_LABELS = {"accuracy": "accuracy", "r2": "R²", "-f": "−f"}
METRIC_MEANINGS = {"accuracy": "fraction of correct labels", "r2": "coefficient of determination",
                   "-f": "minus Beale's function value"}
#: Errors that are the user's input, reported as one line with exit status 2.
INPUT_ERRORS = (ValueError, TypeError, OSError)

_RUN_KEYS = ("dataset", "data", "target", "strategy", "max_epochs", "eta", "trials", "seed", "space", "chunk")


# ----------------------------------------------------------------------------------------------------
# Argument parsing
# ----------------------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {_one_line(message)} (see '{self.prog} --help')\n")


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """The ``vtune`` argument parser (subcommands ``tune``, ``plan``, ``resume``, ``show``)."""
    parser = _Parser(
        prog="vtune",
        description="Vectorized, JAX-compiled hyperparameter tuning for multilayer perceptrons.",
        epilog="Scores are higher-is-better everywhere: accuracy, R², or −f for Beale's function.",
    )
    parser.add_argument("--version", action="version", version=f"vtune {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    tune = commands.add_parser(
        "tune", help="run a search and save its results",
        description="Tune an MLP on a bundled data set or a CSV file. Writes run.json, checkpoint/, "
                    "results.json, trials.csv, curves.png and best_model/ into the --out folder.",
    )
    source = tune.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", choices=DATASET_NAMES, metavar="NAME",
                        help=f"a bundled data set: {', '.join(DATASET_NAMES)}")
    source.add_argument("--data", metavar="FILE.csv", help="a CSV file with a header row (needs --target)")
    tune.add_argument("--target", metavar="COLUMN", help="the CSV column to predict")
    tune.add_argument("--strategy", choices=tuple(STRATEGIES), default="hyperband",
                      help="search strategy (default: hyperband)")
    tune.add_argument("--max-epochs", type=_int_at_least(1), metavar="N",
                      help="epochs of the longest-trained trial (Hyperband's R); default 27 for hyperband and "
                           "halving, 20 for the others")
    tune.add_argument("--eta", type=_int_at_least(2), metavar="N",
                      help="reduction factor of hyperband and halving (default 3)")
    tune.add_argument("--trials", type=_int_at_least(1), metavar="N",
                      help="random: trials (default 32); halving: first-rung configurations (27); "
                           "coarse-to-fine: trials per round (16)")
    tune.add_argument("--seed", type=_int_at_least(0), default=0, metavar="N", help="search seed (default 0)")
    tune.add_argument("--out", metavar="DIR",
                      help="output folder (default: a new ./vtune-runs/<dataset>-<strategy>-<time>); a folder "
                           "holding a checkpoint of the same search is resumed")
    tune.add_argument("--space", metavar="FILE.json", help="search-space file (default: vtune's default space)")
    _add_run_options(tune)
    tune.add_argument("--chunk", type=_int_at_least(1), metavar="N",
                      help="members trained side by side per chunk (default: one member at a time on each CPU "
                           "core, the whole stage on accelerators)")

    plan = commands.add_parser("plan", help="print a Hyperband bracket table",
                               description="Print the Hyperband plan (configurations and epochs per rung).")
    plan.add_argument("--max-epochs", type=_int_at_least(1), required=True, metavar="R",
                      help="maximum epochs per configuration (R)")
    plan.add_argument("--eta", type=_int_at_least(2), default=3, metavar="N", help="reduction factor (default 3)")
    plan.add_argument("--sizing", choices=("formula", "table"), default="formula",
                      help="first-rung sizes from the paper's formula (default) or its Table 1")

    resume = commands.add_parser("resume", help="continue (or repeat) the search recorded in a folder",
                                 description="Re-run the search recorded in DIR/run.json with out=DIR: it "
                                             "continues after the last checkpointed stage.")
    resume.add_argument("dir", metavar="DIR", help="a folder written by 'vtune tune'")
    _add_run_options(resume)

    show = commands.add_parser("show", help="print the summary of a finished search",
                               description="Print the summary and the best trials of DIR/results.json.")
    show.add_argument("dir", metavar="DIR", help="a folder holding results.json")
    return parser


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--compile-cache", default="default", metavar="DIR|none",
                   help="persistent XLA compilation cache folder; 'none' turns it off (default: a per-user "
                        "folder, or $VTUNE_COMPILE_CACHE)")
    p.add_argument("--quiet", action="store_true", help="no progress display (the summary is still printed)")
    p.add_argument("--checkpoint-every-bracket", action="store_true",
                   help="run Hyperband's brackets one at a time, checkpointing after each (slower on a "
                        "multi-core CPU; by default they train side by side and the checkpoint is written "
                        "when all are done)")


# ----------------------------------------------------------------------------------------------------
# run.json
# ----------------------------------------------------------------------------------------------------


def run_spec(args: argparse.Namespace) -> dict:
    """The ``run.json`` object of a ``vtune tune`` command line; checks the options that go together.

    The space file is read and checked here and stored inline (its JSON object), the CSV path is made
    absolute, so the folder repeats the search from anywhere.
    """
    from vtune.space import Space

    if args.data is not None and args.target is None:
        raise ValueError(f"--data {args.data} needs --target COLUMN (the column to predict)")
    if args.target is not None and args.data is None:
        raise ValueError(f"--target {args.target} applies only with --data FILE.csv")
    if args.eta is not None and args.strategy not in ETA_STRATEGIES:
        raise ValueError(f"--eta applies only to {' and '.join(ETA_STRATEGIES)}, not to --strategy {args.strategy}")
    if args.trials is not None and args.strategy not in TRIALS_MEANING:
        raise ValueError(
            f"--trials does not apply to --strategy {args.strategy}; it applies to {', '.join(TRIALS_MEANING)}")
    space = None
    if args.space is not None:
        Space.from_file(args.space)  # every check, with the file's name in the message
        with open(args.space, encoding="utf-8") as fh:
            space = json.load(fh)
    return {
        "format": RUN_FORMAT,
        "version": __version__,
        "dataset": args.dataset,
        "data": None if args.data is None else str(pathlib.Path(args.data).resolve()),
        "target": args.target,
        "strategy": args.strategy,
        "max_epochs": args.max_epochs,
        "eta": args.eta,
        "trials": args.trials,
        "seed": args.seed,
        "space": space,
        "chunk": args.chunk,
    }


def read_run_spec(directory: str | os.PathLike) -> dict:
    """Read and check ``directory/run.json``; ``FileNotFoundError``/``ValueError`` name the problem."""
    d = pathlib.Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"{d} is not a folder")
    path = d / RUN_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {d} is not a folder written by 'vtune tune'")
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(spec, dict) or spec.get("format") != RUN_FORMAT:
        raise ValueError(f"{path} is not a vtune run file of format {RUN_FORMAT}")
    missing = [k for k in _RUN_KEYS if k not in spec]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}")
    if (spec["dataset"] is None) == (spec["data"] is None):
        raise ValueError(f"{path} must name exactly one of dataset and data, got dataset={spec['dataset']!r}, "
                         f"data={spec['data']!r}")
    if spec["dataset"] is not None and spec["dataset"] not in DATASET_NAMES:
        raise ValueError(f"{path}: dataset={spec['dataset']!r} is not one of {', '.join(DATASET_NAMES)}")
    if spec["data"] is not None and not (isinstance(spec["data"], str) and isinstance(spec["target"], str)):
        raise ValueError(f"{path}: data and target must be strings, got data={spec['data']!r}, "
                         f"target={spec['target']!r}")
    if spec["strategy"] not in STRATEGIES:
        raise ValueError(f"{path}: strategy={spec['strategy']!r} is not one of {', '.join(STRATEGIES)}")
    for key, low, optional in (("max_epochs", 1, True), ("eta", 2, True), ("trials", 1, True),
                               ("chunk", 1, True), ("seed", 0, False)):
        value = spec[key]
        if value is None and optional:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{path}: {key} must be an integer >= {low}, got {key}={value!r}")
    if spec["space"] is not None and not isinstance(spec["space"], dict):
        raise ValueError(f"{path}: space must be a JSON object or null, got {type(spec['space']).__name__}")
    return spec


def _same_search(old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """None when two run specs describe the same search, else the first difference as text."""
    for key in _RUN_KEYS:
        if old.get(key) != new.get(key):
            return f"{key}={old.get(key)!r} there, {key}={new.get(key)!r} now"
    return None


# ----------------------------------------------------------------------------------------------------
# Output folder
# ----------------------------------------------------------------------------------------------------


def _default_out(name: str, strategy: str) -> list[pathlib.Path]:
    """Create a new ``./vtune-runs/<name>-<strategy>-<YYYYmmdd-HHMMSS>[-k]`` (never an old one).

    Returns the folders created, the new output folder first (then ``vtune-runs`` if it was made too).
    """
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "data"
    base = pathlib.Path("vtune-runs") / f"{safe}-{strategy}-{stamp}"
    created = [] if base.parent.is_dir() else [base.parent]
    base.parent.mkdir(parents=True, exist_ok=True)
    for k in range(1, 1000):
        path = base if k == 1 else base.with_name(f"{base.name}-{k}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return [path, *created]
    raise FileExistsError(f"could not create a new output folder next to {base}")


def _has_checkpoint(out: pathlib.Path) -> bool:
    from vtune.checkpoint import Checkpoint

    return Checkpoint(out, "").exists


# ----------------------------------------------------------------------------------------------------
# Running a search
# ----------------------------------------------------------------------------------------------------


def _load_inputs(spec: Mapping[str, Any]):
    """``(space, data)`` for :func:`vtune.tune` from a run spec (reads and checks the CSV)."""
    from vtune.data import from_csv
    from vtune.space import Space

    space = None if spec["space"] is None else Space.from_json(spec["space"])
    data = spec["dataset"] if spec["dataset"] is not None else from_csv(spec["data"], spec["target"])
    return space, data


def _search(spec: Mapping[str, Any], out: pathlib.Path, *, inputs, compile_cache: str, quiet: bool,
            cleanup: list[pathlib.Path], every_bracket: bool = False) -> int:
    """Run :func:`vtune.tune` for ``spec`` into ``out``, print the outcome, return the exit status.

    ``cleanup`` lists what this command created (run.json, the folder): removed again when the search
    fails on its input before its first checkpoint, so a typo leaves no half-made folder behind.
    """
    import vtune

    space, data = inputs
    try:
        result = vtune.tune(
            space, data, strategy=spec["strategy"], seed=spec["seed"], max_epochs=spec["max_epochs"],
            eta=spec["eta"], trials=spec["trials"], out=out, chunk=spec["chunk"], compile_cache=compile_cache,
            progress=not quiet, brackets_together=not every_bracket,
        )
    except KeyboardInterrupt:
        print(f"interrupted; resume with: vtune resume {shlex.quote(str(out))}", file=sys.stderr)
        raise _Interrupted from None
    except INPUT_ERRORS as err:
        from vtune.checkpoint import CheckpointError

        # Keep what a checkpoint of this search needs to resume; drop what only a failed start made.
        if isinstance(err, CheckpointError) or not _has_checkpoint(out):
            for path in cleanup:
                _remove_quietly(path)
        raise
    _print_result(result, out)
    if result.status == "all_diverged":
        print(f"vtune: all trials diverged: {_one_line(result.message)}", file=sys.stderr)
        return EXIT_DIVERGED
    return EXIT_OK


def _remove_quietly(path: pathlib.Path) -> None:
    try:
        if path.is_dir():
            path.rmdir()  # only when empty
        else:
            path.unlink()
    except OSError:
        pass


def _strategy_text(strategy: Any) -> str:
    if not isinstance(strategy, Mapping):
        return str(strategy)
    settings = ", ".join(f"{k}={v}" for k, v in strategy.items() if k != "name")
    return f"{strategy.get('name', '?')} ({settings})" if settings else str(strategy.get("name", "?"))


def _print_result(result, out: pathlib.Path | None) -> None:
    """Summary, best-trials table and (with ``out``) the files written, on stdout."""
    from rich.console import Console

    from vtune import report

    label = METRIC_LABELS.get(result.metric, result.metric)
    summary = result.summary()
    summary["strategy"] = _strategy_text(summary["strategy"])
    summary["metric"] = label
    data_name = (result.data or {}).get("name")
    lines = [report.format_summary(summary)]
    if data_name:
        lines.append(f"data: {data_name}" + (f" ({result.task})" if result.task != data_name else ""))
    meaning = METRIC_MEANINGS.get(result.metric)
    lines.append(f"metric: validation {label}" + (f" ({meaning})" if meaning else "")
                 + ", higher is better; the best trial is the highest")
    if result.status != "ok":
        lines.append(f"status: {result.status}: {_one_line(result.message)}")
    print("\n".join(lines))
    # Off a terminal rich would fold the table into 80 columns; logs and pipes get room instead.
    wide = sys.stdout.isatty() or "COLUMNS" in os.environ
    console = Console(file=sys.stdout, width=None if wide else 160)
    console.print(report.trials_table(result.trials, top=10, metric=label))
    if out is not None:
        written = [out / n for n in ("results.json", "trials.csv", "curves.png") if (out / n).is_file()]
        if (out / "best_model").is_dir():
            written.append(out / "best_model")
        print("files:")
        for path in written:
            print(f"  {path}{os.sep if path.is_dir() else ''}")
    sys.stdout.flush()


# ----------------------------------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------------------------------


def _cmd_tune(args: argparse.Namespace) -> int:
    from vtune import io

    spec = run_spec(args)
    inputs = _load_inputs(spec)  # checks the space and the CSV before any folder is made
    cleanup: list[pathlib.Path] = []
    if args.out is None:
        name = spec["dataset"] or pathlib.Path(spec["data"]).stem
        cleanup = _default_out(name, spec["strategy"])
        out = cleanup[0]
    else:
        out = pathlib.Path(args.out)
        if out.exists() and not out.is_dir():
            raise FileExistsError(f"--out {out} exists and is not a folder")
        if (out / RUN_FILE).is_file():
            difference = _same_search(read_run_spec(out), spec)
            if difference is not None:
                raise ValueError(f"--out {out} holds a different search ({difference}); pass a new --out "
                                 f"folder, or continue that search with: vtune resume {shlex.quote(str(out))}")
        elif not out.exists():
            out.mkdir(parents=True)
            cleanup.append(out)
        if _has_checkpoint(out):
            print(f"vtune: {out} holds a checkpoint of this search; resuming it", file=sys.stderr)
    if not (out / RUN_FILE).is_file():
        io.write_json(out / RUN_FILE, spec)
        cleanup.insert(0, out / RUN_FILE)
    if not args.quiet:
        print(f"vtune: writing to {out}", file=sys.stderr)
    return _search(spec, out, inputs=inputs, compile_cache=args.compile_cache, quiet=args.quiet, cleanup=cleanup,
                   every_bracket=args.checkpoint_every_bracket)


def _cmd_resume(args: argparse.Namespace) -> int:
    out = pathlib.Path(args.dir)
    spec = read_run_spec(out)
    inputs = _load_inputs(spec)
    if _has_checkpoint(out):
        print(f"vtune: resuming the search checkpointed in {out}", file=sys.stderr)
    else:
        print(f"vtune: {out} has no checkpoint yet; running its search from the start", file=sys.stderr)
    return _search(spec, out, inputs=inputs, compile_cache=args.compile_cache, quiet=args.quiet, cleanup=[],
                   every_bracket=args.checkpoint_every_bracket)


def _cmd_plan(args: argparse.Namespace) -> int:
    from vtune.plan import hyperband

    print(hyperband(args.max_epochs, args.eta, sizing=args.sizing).table())
    return EXIT_OK


def _cmd_show(args: argparse.Namespace) -> int:
    import vtune

    _print_result(vtune.load(args.dir), None)
    return EXIT_OK


class _Interrupted(Exception):
    """A search stopped by Ctrl-C; the line saying how to resume it is already printed."""


_COMMANDS = {"tune": _cmd_tune, "plan": _cmd_plan, "resume": _cmd_resume, "show": _cmd_show}


def _one_line(text: Any) -> str:
    return " ".join(str(text).split()) or "(no message)"


def _leave(code: int) -> None:
    """End the process now with status ``code``: the ``atexit`` handlers run and the standard streams are
    flushed, then ``os._exit`` skips the interpreter's teardown (vtune writes every file synchronously and
    starts no thread of its own, so nothing is left to finish)."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that went away (`vtune ... | head`), a closed stream
            pass
    os._exit(code if isinstance(code, int) else EXIT_USAGE)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``vtune`` command line on ``argv`` (default ``sys.argv[1:]``); return the exit status.

    Run as the program (``argv`` None), a search stopped by Ctrl-C ends the process at once with status
    130 (``os._exit`` after flushing): XLA can crash in interpreter teardown while a computation it was
    interrupted in is still in flight, which would turn 130 into a segmentation fault. A command that
    ends normally also leaves at once, its exit handlers run and its output flushed (:func:`_leave`):
    the interpreter's teardown after a search — freeing JAX's compiled programs and XLA's runtime —
    took 0.25–0.33 s of the ≈ 4.8 s ``vtune tune --dataset digits`` on the 2-core development CPU.

    Example:
        >>> main(["plan", "--max-epochs", "9", "--eta", "3"])   # doctest: +SKIP
        0
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version and usage errors: argparse has printed its text
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    try:
        code = _COMMANDS[args.command](args)
        if argv is None:
            _leave(code)
        return code
    except _Interrupted:
        if argv is None:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(EXIT_INTERRUPTED)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except INPUT_ERRORS as err:
        if os.environ.get("VTUNE_DEBUG", "") not in ("", "0"):
            raise
        print(f"vtune: error: {_one_line(err) if str(err) else type(err).__name__}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
