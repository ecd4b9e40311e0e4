"""Search-speed benchmark: one Hyperband search by vtune against the tools users would pick instead.

Every tool solves the same task (:mod:`bench.common`: data, space, R = 27, eta = 3) in a fresh Python
process, so no warm cache or already-compiled program helps it; peers run with JAX's persistent
compilation cache off. vtune runs twice per repeat with one fresh cache directory: ``vtune_cold`` (empty
compile cache) and ``vtune_warm`` (the same directory, now filled).

Usage::

    python -m bench.search_speed --task digits --peers sklearn,sequential,optuna,keras,vtune --repeats 3
    python -m bench.search_speed --task digits --smoke            # R = 3: checks that everything runs

``--repeats`` applies to the fast tools (``--repeat-peers``, default sklearn, sequential, vtune); the
slow ones (optuna, keras) run once. Raw results and machine information go to
``bench/results/search_speed_<task>.json`` (``..._smoke.json`` with ``--smoke``), rewritten after every
run; the table printed at the end gives vtune's speed-up over each peer (the ratio of median wall times
measured in this same invocation) and the accuracy gap (vtune minus peer, percentage points).

vtune's run comes from ``run_vtune(task_name, seed, cache_dir)`` in ``bench/peers/vtune_run.py``; when
that file is missing vtune is skipped with a message.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from bench import common
from bench.peers import PEERS

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
ALL_TOOLS = (*PEERS, "vtune")
DEFAULT_REPEAT_PEERS = ("sklearn", "sequential", "vtune")
VTUNE_MODULE = "bench.peers.vtune_run"
_JAX_CACHE_VARS = (
    "JAX_ENABLE_COMPILATION_CACHE",
    "JAX_COMPILATION_CACHE_DIR",
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES",
)


def parse_tools(text: str) -> list[str]:
    """``"sklearn,vtune"`` -> ``["sklearn", "vtune"]``, checked against the known tools.

    Example::

        >>> parse_tools("sequential, vtune")
        ['sequential', 'vtune']
    """
    tools = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in tools if t not in ALL_TOOLS]
    if unknown or not tools:
        raise ValueError(f"--peers must name some of {', '.join(ALL_TOOLS)}, got {text!r}")
    return tools


def child_env(*, cache_dir: str | None, blas_threads: int | None) -> dict[str, str]:
    """Environment of one child process: the repo importable; JAX's persistent cache off unless
    ``cache_dir`` (vtune's runs) names the directory to use."""
    env = dict(os.environ)
    for var in _JAX_CACHE_VARS:
        env.pop(var, None)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    if cache_dir is None:
        env["JAX_ENABLE_COMPILATION_CACHE"] = "false"
    else:
        env["JAX_ENABLE_COMPILATION_CACHE"] = "true"
        env["JAX_COMPILATION_CACHE_DIR"] = cache_dir
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
        env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    if blas_threads is not None:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(blas_threads)
    return env


def run_child(argv: list[str], env: dict[str, str], timeout_s: float) -> dict[str, Any]:
    """Run ``python -m ...argv --json TMP`` in a fresh process; return its result dict.

    Adds ``process_s`` (the child's whole life: interpreter start, imports, data, search). A failed
    or timed-out child gives ``{"error": ...}`` with the tail of its output instead.
    """
    fd, json_path = tempfile.mkstemp(suffix=".json", prefix="bench_")
    os.close(fd)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", *argv, "--json", json_path],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        process_s = time.perf_counter() - t0
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr)[-3000:]
            return {"error": f"exit code {proc.returncode}", "output_tail": tail, "process_s": process_s}
        with open(json_path) as f:
            result = json.load(f)
        result["process_s"] = process_s
        return result
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f}s", "process_s": time.perf_counter() - t0}
    finally:
        os.unlink(json_path)


def vtune_available() -> bool:
    try:
        return importlib.util.find_spec(VTUNE_MODULE) is not None
    except ModuleNotFoundError:
        return False


def vtune_child(task: str, seed: int, cache_dir: str, json_path: str, *, smoke: bool) -> None:
    """Child side of a vtune run: call ``run_vtune`` and write its dict (``tool`` defaults to "vtune")."""
    run_vtune = importlib.import_module(VTUNE_MODULE).run_vtune
    kwargs: dict[str, Any] = {}
    if smoke:
        if "max_epochs" not in inspect.signature(run_vtune).parameters:
            raise ValueError("--smoke needs run_vtune(..., max_epochs=...); it takes no max_epochs")
        kwargs["max_epochs"] = common.SMOKE_MAX_EPOCHS
    result = dict(run_vtune(task, seed, cache_dir, **kwargs))
    result.setdefault("tool", "vtune")
    result["smoke"] = smoke
    with open(json_path, "w") as f:
        json.dump(result, f, indent=2)


def summarise(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per tool: number of good runs, median/min wall and process seconds, and the first run's numbers."""
    summary = {}
    for tool, results in runs.items():
        good = [r for r in results if "error" not in r]
        if not good:
            summary[tool] = {"runs": 0, "errors": len(results)}
            continue
        walls = [r["wall_s"] for r in good]
        summary[tool] = {
            "runs": len(good),
            "errors": len(results) - len(good),
            "wall_s_median": statistics.median(walls),
            "wall_s_min": min(walls),
            "process_s_median": statistics.median(r["process_s"] for r in good),
            "model_epochs": good[0]["model_epochs"],
            "num_trials": good[0]["num_trials"],
            "best_val_acc": statistics.median(r["best_val_acc"] for r in good),
            "test_acc": statistics.median(r["test_acc"] for r in good),
        }
    return summary


def format_table(summary: dict[str, dict[str, Any]]) -> str:
    """The printed table: one line per tool, with vtune's speed-up and accuracy gap against it."""
    refs = [t for t in ("vtune_cold", "vtune_warm") if summary.get(t, {}).get("runs")]
    head = f"{'tool':<24}{'runs':>5}{'wall s':>9}{'proc s':>9}{'epochs':>8}{'cfgs':>6}{'val':>8}{'test':>8}"
    for ref in refs:
        head += f"{'x ' + ref[6:]:>9}{'dtest ' + ref[6:]:>12}"
    lines = [head, "-" * len(head)]
    for tool, s in summary.items():
        if not s.get("runs"):
            lines.append(f"{tool:<24}{0:>5}   failed ({s.get('errors', 0)} errors)")
            continue
        line = (
            f"{tool:<24}{s['runs']:>5}{s['wall_s_median']:>9.1f}{s['process_s_median']:>9.1f}"
            f"{s['model_epochs']:>8}{s['num_trials']:>6}{s['best_val_acc']:>8.4f}{s['test_acc']:>8.4f}"
        )
        for ref in refs:
            r = summary[ref]
            speedup = s["wall_s_median"] / r["wall_s_median"] if r["wall_s_median"] > 0 else float("inf")
            gap = 100.0 * (r["test_acc"] - s["test_acc"])
            line += f"{speedup:>9.2f}{gap:>+12.2f}"
        lines.append(line)
    if refs:
        lines.append(
            "x cold/warm: peer median wall / vtune median wall (same invocation); "
            "dtest: vtune test acc minus the tool's, percentage points"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="vtune's search-speed benchmark against peer tools")
    parser.add_argument("--task", choices=common.TASKS, default="digits")
    parser.add_argument("--peers", default=",".join(ALL_TOOLS), help=f"comma list of {', '.join(ALL_TOOLS)}")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each tool in --repeat-peers")
    parser.add_argument("--repeat-peers", default=",".join(DEFAULT_REPEAT_PEERS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help=f"R = {common.SMOKE_MAX_EPOCHS}: a quick check")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed to one child run")
    parser.add_argument("--blas-threads", type=int, default=None, help="set OMP/OPENBLAS/MKL threads in children")
    parser.add_argument("--out", default=None, help="result file (default bench/results/search_speed_<task>.json)")
    parser.add_argument("--vtune-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json", dest="json_path", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.vtune_child:
        vtune_child(args.task, args.seed, args.cache_dir, args.json_path, smoke=args.smoke)
        return {}
    if args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats=}")
    tools = parse_tools(args.peers)
    repeat_tools = set(parse_tools(args.repeat_peers))
    out = Path(args.out) if args.out else RESULTS_DIR / f"search_speed_{args.task}{'_smoke' if args.smoke else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict[str, Any]]] = {}
    record: dict[str, Any] = {
        "benchmark": "search_speed",
        "task": args.task,
        "seed": args.seed,
        "smoke": args.smoke,
        "max_epochs": common.SMOKE_MAX_EPOCHS if args.smoke else common.MAX_EPOCHS,
        "eta": common.ETA,
        "hyperband_budget": dict(zip(("num_configs", "model_epochs"), common.hyperband_budget(
            common.SMOKE_MAX_EPOCHS if args.smoke else common.MAX_EPOCHS, common.ETA))),
        "machine": common.machine_info(),
        "load_average_start": os.getloadavg(),
        "blas_threads": args.blas_threads,
        "skipped": {},
        "runs": runs,
    }

    def save() -> None:
        record["summary"] = summarise(runs)
        record["load_average_end"] = os.getloadavg()
        out.write_text(json.dumps(record, indent=2) + "\n")

    common_args = ["--task", args.task, "--seed", str(args.seed)] + (["--smoke"] if args.smoke else [])
    for tool in tools:
        repeats = args.repeats if tool in repeat_tools else 1
        if tool == "vtune":
            if not vtune_available():
                msg = f"skipping vtune: {VTUNE_MODULE} (bench/peers/vtune_run.py) is missing"
                print(msg, flush=True)
                record["skipped"]["vtune"] = msg
                continue
            for i in range(repeats):
                cache_dir = tempfile.mkdtemp(prefix="vtune_bench_cache_")
                try:
                    for label in ("vtune_cold", "vtune_warm"):
                        env = child_env(cache_dir=cache_dir, blas_threads=args.blas_threads)
                        argv = ["bench.search_speed", "--vtune-child", "--cache-dir", cache_dir, *common_args]
                        print(f"[{label} {i + 1}/{repeats}] ...", flush=True)
                        result = run_child(argv, env, args.timeout)
                        result["cache"] = label[6:]
                        runs.setdefault(label, []).append(result)
                        _print_run(label, result)
                        save()
                finally:
                    shutil.rmtree(cache_dir, ignore_errors=True)
            continue
        module = f"bench.peers.{PEERS[tool]}"
        for i in range(repeats):
            print(f"[{tool} {i + 1}/{repeats}] ...", flush=True)
            result = run_child([module, *common_args], child_env(cache_dir=None, blas_threads=args.blas_threads),
                               args.timeout)
            runs.setdefault(tool, []).append(result)
            _print_run(tool, result)
            save()
    save()
    print()
    print(format_table(record["summary"]))
    print(f"\nwrote {out}")
    return record


def _print_run(label: str, result: dict[str, Any]) -> None:
    if "error" in result:
        print(f"  {label}: FAILED ({result['error']})\n{result.get('output_tail', '')}", flush=True)
    else:
        print(
            f"  {label}: wall {result['wall_s']:.1f}s (process {result['process_s']:.1f}s), "
            f"{result['model_epochs']} model-epochs, val {result['best_val_acc']:.4f}, test {result['test_acc']:.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
