"""Population throughput against the machine's measured matmul peak, along two code paths.

``--path vmap`` (the default): populations of ``P`` MLPs trained by ONE compiled
``MLPTrainable.train_epoch`` (``jax.jit`` over the trainable and the stacked ``[P, ...]`` state, the members
side by side under ``vmap`` on one device; ``width_tiers=()`` so the padded program is what runs).

``--path engine``: the population trained the way ``vtune.tune`` trains a stage: the compiled bracket
program (``vtune.engine.Engine``, ``bracket_program``) with ``chunk = vtune.tune.CPU_CHUNK`` on a CPU backend
(the whole population elsewhere), one rung of ``P`` configurations for ``--epochs`` epochs
(``vtune.plan.single_rung``). On a CPU, ``import vtune`` gives JAX one device per core (``vtune.devices``)
and the engine splits each chunk over them with ``shard_map``: one member per core, unbatched, at the
narrowest compiled width tier that holds it (``MLPTrainable.train_epochs``; the default tiers,
``default_width_tiers``: 64 and 128 for 256 units, or ``--tiers``), with its inactive layers skipped
(``lax.cond``). The trainable is built as ``tune`` builds it for a space with these fixed choices (the
tiers, the task's default loss only, no accumulation); the hyperparameters are ``trainable.host_init(encode_hparams(...))``
padded with ``vtune.train.pad_hparams`` to the engine's capacity (``P`` rounded up to a whole number of
members per device; a padding slot trains no epoch). Unlike ``tune``'s ``width_tiers="auto"``, the tiers
are kept for every ``P`` (``tune`` keeps, out of the finer ladder ``vtune.train.tier_candidates``, only
those whose compile time the padded FLOPs they save repay: see ``TIER_MIN_FLOPS``).

Both paths measure:

* the machine's dense matmul peak in the same run: median GFLOP/s of a jitted float32 ``2048x2048 @
  2048x2048`` (and ``1024``), measured at the start and again at the end; the peak used for the fractions is
  the median of all 2048 samples (start and end pooled);
* for each configuration and each population size ``P``: model-epochs per second, useful GFLOP/s (each
  member's TRUE architecture: ``6 x useful_weights x samples`` per epoch, where ``samples = micro_steps x
  micro_batch``; forward + backward is about 6 flops per weight per sample), computed ("padded") GFLOP/s
  (vmap: every member at the padded ``max_layers x max_units``; engine: each member at its width tier, its
  own depth), the useful fraction of the peak, compile seconds, the number of XLA backend compilations
  seen while compiling *and* running the point (one per program; more means a recompilation), and memory
  per member (see below).

Configurations: ``W32``, ``W128``, ``W256`` (uniform: every member 2 hidden layers of W units; no padding in
the vmap path, so useful = padded; ``--depths 1,2,3`` adds ``W32xD1``, ``W32xD3``, ... : every width at every
depth, each in a program of exactly that depth) and ``mixed`` (units log-uniform 16..256, the same width in every layer,
depth uniform in 1..3; padded to 256 x 3, or to its tier in the engine path).

How the vmap path measures: each point's initial state comes from one ``init`` compile per configuration
(the first ``P`` rows of the largest population; members are independent); the epoch program is compiled
ahead of time (``lower().compile()``) with the state donated; one warm-up epoch, then ``--repeats`` timed
epochs (``jax.block_until_ready``). Memory: ``vtune.memory.estimate_bytes`` resident / P, and the measured
bytes of the state's arrays / P. The epoch time includes the validation pass over the validation split (not
counted as useful FLOPs; keep ``--val-rows`` small). At ``P = 1`` ``train_epoch`` runs the member unbatched,
so ``lax.cond`` really skips a mixed member's inactive layers and the padded count over-states that
point's work.

How the engine path measures: per point, the host-side encoding (``host_init``: the initial weights drawn
with numpy, member by member; timed as ``host_init_s``, not part of the rates) and one AOT compile through
``engine.compiled(trainable, hparams)`` (timed, and counted); then ``--repeats`` timed calls of
``engine.run(trainable, hparams, bracket)``, each a whole stage: host-to-device transfer of the
hyperparameters and initial weights, ``init``, ``P x E`` member-epochs (each epoch ends with its validation
pass, not counted as useful FLOPs), the ranking and the results back to the host, as ``tune`` pays it. Every
run starts from the same initial state. The first run is a warm-up (``warmup_s``; its one-off costs are
~0.1 s, which matters at small ``P``) unless it takes over ``--long-epoch-seconds``; then it is the first of
``min(--repeats, 3)`` timed runs. ``cores`` is process CPU seconds over wall seconds during the runs.
Memory: ``estimate_bytes(trainable, capacity, chunk, devices)`` resident / P (the estimate ``tune`` checks before a
search), and the compiled program's own ``memory_analysis()`` (arguments + outputs + temporaries - aliased,
per device) times the devices that share the host's RAM (every CPU device; 1 on an accelerator) / P; the
process's peak resident set size while the point ran is recorded too (``rss_peak_bytes``, Linux). On a
CPU every device holds the whole population's state (it is split over the devices only inside the
``shard_map``), so the program needs about ``jax.device_count()`` times the estimate.

Both paths report min/median/max of the timed calls (rates use the median), and count compilations with a
``jax.monitoring`` listener on ``/jax/core/compile/backend_compile_duration``. The machine is shared and
noisy, so a 1024 matmul is also timed twice before and twice after each point's timed calls (``mm1024``
in the table) to show how fast the machine was meanwhile. A point is skipped, with a note, when the
previous ``P`` predicts more than ``--max-point-seconds`` (compile, host encoding and every timed call), or
when its memory exceeds ``--max-memory-fraction`` of RAM: vmap, ``estimate_bytes(...)["total"]``; engine,
that estimate or the previous ``P``'s program bytes plus host-side hyperparameters scaled to this capacity,
and after compiling, this point's own (then the point keeps its compile numbers and is not run).

Run (from the repository root)::

    python -m bench.throughput --quick   # P in 1, 16, 256; 1024 train rows; 2 repeats: about 3 minutes
    python -m bench.throughput --full    # P in 1, 4, ..., 4096 where memory and --max-point-seconds allow;
                                         # 4096 train rows; 5 repeats (3 for epochs over 20 s): about 30+ min
    python -m bench.throughput --path engine --dataset digits --populations 1,16 --repeats 1  # smoke

Writes ``bench/results/throughput[_engine][_quick].json`` and ``.png`` (the JSON's ``path`` says which path
was measured) and prints a table. ``bench/`` is never imported by the library.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp
import numpy as np

from bench import common
from vtune.data import Dataset, from_splits
from vtune.engine import Engine
from vtune.hparams import DEFAULT_LOSS
from vtune.memory import estimate_bytes, total_memory_bytes
from vtune.model import Layout, padded_weights, useful_weights
from vtune.plan import single_rung
from vtune.train import MLPTrainable, encode_hparams, pad_hparams
from vtune.tune import CPU_CHUNK

RESULTS = Path(__file__).resolve().parent / "results"
NUM_FEATURES = 64
NUM_CLASSES = 10
POPULATIONS = (1, 4, 16, 64, 256, 1024, 4096)
WIDTHS = (32, 128, 256)
UNIFORM_DEPTH = 2
MIXED_UNITS = (16, 256)
MIXED_DEPTHS = (1, 3)
MIN_REPEATS_LONG = 3  # timed epochs of a point whose warm-up epoch exceeds --long-epoch-seconds
QUICK_POPULATIONS = (1, 16, 256)
PATHS = {
    "vmap": "one compiled MLPTrainable.train_epoch over the vmapped population, padded (width_tiers=())",
    "engine": "vtune.tune's compiled bracket program (Engine, one rung of P configs): chunks of CPU_CHUNK "
              "members on a CPU, split over one JAX device per core with shard_map, each member at its "
              "width tier with inactive layers skipped",
}
_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


# ----------------------------------------------------------------------------------------------------
# Counting compilations
# ----------------------------------------------------------------------------------------------------

_compiles = [0]


def _on_event(event: str, duration: float, **_: Any) -> None:
    if event == _COMPILE_EVENT:
        _compiles[0] += 1


jax.monitoring.register_event_duration_secs_listener(_on_event)


def compile_count() -> int:
    """XLA backend compilations since the start of the process (every program, every shape)."""
    return _compiles[0]


# ----------------------------------------------------------------------------------------------------
# Data and populations
# ----------------------------------------------------------------------------------------------------


def make_dataset(train_rows: int, val_rows: int, *, seed: int = 0) -> Dataset:
    """``make_classification(n_features=64, n_informative=32, n_classes=10, random_state=seed)`` split in
    order into ``train_rows`` / ``val_rows`` / 64 test rows, standardised on the training split.

    Example:
        >>> make_dataset(256, 64).x_train.shape
        (256, 64)
    """
    from sklearn.datasets import make_classification

    for name, value in (("train_rows", train_rows), ("val_rows", val_rows)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {name}={value!r}")
    test_rows = 64
    n = train_rows + val_rows + test_rows
    # n_informative=32: 10 classes x 2 clusters need 2**n_informative >= 20 (as bench/common.py's "large").
    x, y = make_classification(n_samples=n, n_features=NUM_FEATURES, n_informative=32, n_classes=NUM_CLASSES,
                               random_state=seed)
    a, b = train_rows, train_rows + val_rows
    return from_splits(x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:], task="classification",
                       name="make_classification", scaling="standard")


def uniform_name(width: int, depth: int, depths: Sequence[int] = (UNIFORM_DEPTH,)) -> str:
    """A uniform configuration's name: ``W128`` when every uniform population has the default depth 2 (the
    name earlier result files use), ``W128xD3`` when the run measures other depths (``depths``).

        >>> uniform_name(128, 2), uniform_name(128, 2, (1, 2, 3)), uniform_name(128, 3, (1, 3))
        ('W128', 'W128xD2', 'W128xD3')
    """
    return f"W{width}" if tuple(depths) == (UNIFORM_DEPTH,) else f"W{width}xD{depth}"


def uniform_members(num: int, width: int, depth: int) -> list[tuple[int, int]]:
    """``num`` copies of ``(num_layers, units)``."""
    return [(depth, width)] * num


def mixed_members(num: int, *, seed: int = 0) -> list[tuple[int, int]]:
    """``num`` draws of ``(num_layers, units)``: depth uniform in 1..3, units log-uniform 16..256 (rounded).

    The draws are nested: the first ``k`` members of a larger population are the population of size ``k``.

    Example:
        >>> mixed_members(2)
        [(3, 34), (2, 18)]
    """
    rng = np.random.default_rng(seed)
    lo, hi = MIXED_UNITS
    out = []
    for _ in range(num):
        depth = int(rng.integers(MIXED_DEPTHS[0], MIXED_DEPTHS[1] + 1))
        units = int(np.clip(np.rint(np.exp(rng.uniform(math.log(lo), math.log(hi)))), lo, hi))
        out.append((depth, units))
    return out


def configs_for(members: Sequence[tuple[int, int]], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Configuration dicts (canonical names, ``vtune/hparams.py``) for ``(num_layers, units)`` members."""
    return [{"num_layers": depth, "units": units, "batch_size": args.batch, "optimizer": args.optimizer,
             "activation": args.activation, "schedule": args.schedule, "dropout": args.dropout,
             "learning_rate": args.learning_rate} for depth, units in members]


# ----------------------------------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------------------------------


def summarize(samples: Sequence[float]) -> dict[str, float]:
    """``{"min", "median", "max"}`` of a list of numbers."""
    return {"min": float(min(samples)), "median": float(statistics.median(samples)), "max": float(max(samples))}


def make_matmul_probe(n: int) -> Callable[[], float]:
    """A compiled float32 ``[n, n] @ [n, n]`` (``2 n^3`` flops), warmed up; each call times one run: GFLOP/s."""
    ka, kb = jax.random.split(jax.random.key(0))
    a = jax.random.normal(ka, (n, n), jnp.float32)
    b = jax.random.normal(kb, (n, n), jnp.float32)
    f = jax.jit(jnp.matmul).lower(a, b).compile()
    jax.block_until_ready(f(a, b))

    def sample() -> float:
        t0 = time.perf_counter()
        jax.block_until_ready(f(a, b))
        return 2.0 * n ** 3 / (time.perf_counter() - t0) / 1e9

    return sample


def matmul_peak(probe: Callable[[], float], n: int, repeats: int) -> dict[str, Any]:
    """``repeats`` samples of ``probe`` (see :func:`make_matmul_probe`): raw GFLOP/s and min/median/max."""
    rates = [probe() for _ in range(repeats)]
    return {"n": n, "gflops": rates, **{f"{k}_gflops": v for k, v in summarize(rates).items()}}


def _epoch_fn(trainable: MLPTrainable, state, epoch):
    return trainable.train_epoch(state, epoch)


def tree_bytes(tree) -> int:
    """Bytes of every array leaf of ``tree``."""
    return int(sum(x.nbytes for x in jax.tree.leaves(tree) if hasattr(x, "nbytes")))


def make_trainable(dataset: Dataset, layout: Layout, args: argparse.Namespace) -> MLPTrainable:
    """The trainable of ``layout`` (one optimizer, activation and schedule; no accumulation).

    vmap path: the padded program (no width tiers). Engine path: as ``vtune.tune`` builds it for a space
    with these fixed choices: the width tiers of ``--tiers`` (default: the trainable's defaults), the task's
    default loss only, and the shared mini-batch orders computed on the host (``with_orders``).
    """
    common = dict(max_layers=layout.max_layers, max_units=layout.max_units, micro_batch=args.batch,
                  optimizers=(args.optimizer,), activations=(args.activation,), schedules=(args.schedule,),
                  use_dropout=args.dropout > 0, accumulate=False)
    if args.path == "vmap":
        return MLPTrainable.create(dataset, **common, width_tiers=())
    return MLPTrainable.create(dataset, **common, losses=(DEFAULT_LOSS[dataset.task],),
                               width_tiers=args.tiers).with_orders(args.epochs)


def encoded_hparams(trainable: MLPTrainable, members: Sequence[tuple[int, int]], args: argparse.Namespace,
                    **kw) -> dict[str, np.ndarray]:
    """``encode_hparams`` of ``members`` (numpy, leading ``[P]`` axis; seeds ``0..P-1``)."""
    return encode_hparams(configs_for(members, args), task=trainable.task, max_layers=trainable.max_layers,
                          micro_batch=args.batch, **kw)


def initial_states(trainable: MLPTrainable, members: Sequence[tuple[int, int]], args: argparse.Namespace):
    """Host (numpy) initial state ``[P_max]`` of ``members``; a population of the first ``P`` members is its
    first ``P`` rows (members are independent), so one ``init`` compile serves every ``P``."""
    return jax.device_get(jax.jit(trainable.init)(encoded_hparams(trainable, members, args)))


def weights_per_sample(trainable: MLPTrainable, members: Sequence[tuple[int, int]], path: str) -> tuple[int, int]:
    """``(useful, computed)`` multiply-adds per sample summed over ``members``: their true architectures,
    and what the path's program multiplies (vmap: the padded layout; engine: each member's own depth at the
    narrowest width tier that holds it)."""
    d, c = trainable.num_features, trainable.num_outputs
    useful = sum(useful_weights(d, c, depth, [units] * depth) for depth, units in members)
    if path == "vmap":
        return useful, len(members) * padded_weights(trainable.layout)
    tiers = tuple(trainable.width_tiers) + (trainable.max_units,)
    computed = sum(useful_weights(d, c, depth, [min(w for w in tiers if w >= units)] * depth)
                   for depth, units in members)
    return useful, computed


def rates(members: Sequence[tuple[int, int]], trainable: MLPTrainable, path: str, epochs: int,
          times: Sequence[float]) -> dict[str, Any]:
    """Model-epochs/s and GFLOP/s of ``len(members) x epochs`` member-epochs that took ``times`` seconds."""
    num = len(members)
    samples = trainable.micro_steps * trainable.micro_batch
    useful, computed = weights_per_sample(trainable, members, path)
    useful_flop = 6.0 * useful * samples * epochs
    padded_flop = 6.0 * computed * samples * epochs
    secs = summarize(times)
    return {
        "micro_steps": trainable.micro_steps, "samples": samples,
        "model_epochs_per_s": num * epochs / secs["median"],
        "useful_gflop_per_epoch": useful_flop / epochs / 1e9, "padded_gflop_per_epoch": padded_flop / epochs / 1e9,
        "useful_gflops": useful_flop / secs["median"] / 1e9,
        "useful_gflops_best": useful_flop / secs["min"] / 1e9,
        "padded_gflops": padded_flop / secs["median"] / 1e9,
        "useful_over_padded": useful / computed,
        "mean_units": float(np.mean([u for _, u in members])),
        "mean_depth": float(np.mean([d for d, _ in members])),
    }


def measure_point(name: str, members: Sequence[tuple[int, int]], trainable: MLPTrainable, host_state,
                  args: argparse.Namespace, probe: Callable[[], float]) -> dict[str, Any]:
    """vmap path: compile and time one configuration at one population size ``P = len(members)``;
    ``host_state`` holds the initial state of at least ``P`` members (numpy, leading axis). ``probe`` (a 1024
    matmul) is sampled twice before and twice after the timed epochs: the machine's speed while this point
    ran."""
    num = len(members)
    layout = trainable.layout
    state = jax.device_put(jax.tree.map(lambda x: x[:num], host_state))
    jax.block_until_ready(state)
    state_bytes = tree_bytes(state)

    before = compile_count()
    epoch0 = np.int32(0)  # a numpy scalar: no conversion program to compile
    t0 = time.perf_counter()
    lowered = jax.jit(_epoch_fn, donate_argnums=1).lower(trainable, state, epoch0)
    t1 = time.perf_counter()
    c1 = time.process_time()
    step = lowered.compile()
    t2 = time.perf_counter()
    compile_cpu = time.process_time() - c1

    w0 = time.perf_counter()
    state, scores = step(trainable, state, epoch0)  # warm-up
    jax.block_until_ready((state, scores))
    warmup = time.perf_counter() - w0
    repeats = args.repeats if warmup < args.long_epoch_seconds else min(args.repeats, MIN_REPEATS_LONG)
    local = [probe(), probe()]
    times, cpu = [], []
    for r in range(repeats):
        epoch = np.int32(r + 1)
        c = time.process_time()
        t = time.perf_counter()
        state, scores = step(trainable, state, epoch)
        jax.block_until_ready((state, scores))
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    local += [probe(), probe()]
    compilations = compile_count() - before

    secs = summarize(times)
    est = estimate_bytes(trainable, num, num)
    return {
        "config": name, "P": num, "max_layers": layout.max_layers, "max_units": layout.max_units,
        "num_params_padded": layout.num_params, "devices": 1,
        "warmup_s": warmup, "repeats": repeats, "epoch_s": times, **{f"epoch_s_{k}": v for k, v in secs.items()},
        **rates(members, trainable, "vmap", 1, times),
        "lower_s": t1 - t0, "compile_s": t2 - t1, "compile_cpu_s": compile_cpu,
        "epoch_cpu_s_median": float(statistics.median(cpu)),
        "local_matmul_1024_gflops": local, "local_matmul_1024_gflops_median": float(statistics.median(local)),
        "compilations": compilations,
        "est_resident_bytes_per_member": est["resident"] / num,
        "est_total_bytes": est["total"],
        "state_bytes_per_member": state_bytes / num,
        "val_score_median": float(np.nanmedian(np.asarray(scores))),
        "seconds_per_member": secs["median"] / num,
    }


def make_engine(num: int, args: argparse.Namespace) -> Engine:
    """The engine ``vtune.tune`` builds for a stage of ``num`` configurations: chunks of ``CPU_CHUNK`` on a
    CPU (the whole stage elsewhere), one rung, ``--epochs`` epochs."""
    chunk = CPU_CHUNK if jax.default_backend() == "cpu" else num
    return Engine(capacity=num, chunk=chunk, max_rungs=1, max_epochs=args.epochs)


def host_ram_devices() -> int:
    """Devices whose memory is the host's RAM: every device of a CPU backend, none of an accelerator's
    (its program memory is then counted once, as one device's)."""
    return jax.device_count() if jax.default_backend() == "cpu" else 1


def program_bytes(program) -> int | None:
    """Bytes one device holds for a compiled program (arguments + outputs + temporaries - aliased), or None
    when the backend does not say."""
    try:
        m = program.memory_analysis()
        return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
                   - m.alias_size_in_bytes)
    except Exception:  # noqa: BLE001 - optional backend feature
        return None


def reset_peak_rss() -> None:
    """Reset the process's peak resident set size (Linux ``clear_refs``; elsewhere a no-op)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_rss_bytes() -> int | None:
    """Peak resident set size since the last :func:`reset_peak_rss` (Linux ``VmHWM``), or None."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def engine_devices(engine) -> int:
    """Devices the engine's state is replicated on (each holds the whole population)."""
    return 1 if engine.mesh is None else engine.mesh.size


def measure_engine_point(name: str, members: Sequence[tuple[int, int]], trainable: MLPTrainable,
                         args: argparse.Namespace, probe: Callable[[], float],
                         mem_limit: float) -> dict[str, Any]:
    """Engine path: encode, compile and time one configuration at ``P = len(members)`` (one rung of ``P``
    configurations x ``--epochs`` epochs; see the module docstring). ``probe`` as in :func:`measure_point`.
    A point whose program (all host-RAM devices) and host-side hyperparameters exceed ``mem_limit`` bytes
    is compiled but not run."""
    num = len(members)
    layout = trainable.layout
    engine = make_engine(num, args)
    reset_peak_rss()
    h0 = time.perf_counter()
    hp = pad_hparams(trainable.host_init(encoded_hparams(trainable, members, args, max_epochs=args.epochs)),
                     engine.capacity)
    host_init_s = time.perf_counter() - h0
    bracket = single_rung(num, args.epochs).brackets[0]

    before = compile_count()
    c0 = time.process_time()
    t0 = time.perf_counter()
    program = engine.compiled(trainable, hp)
    compile_s = time.perf_counter() - t0
    compile_cpu = time.process_time() - c0
    per_device = program_bytes(program)
    on_host = None if per_device is None else per_device * host_ram_devices()
    hp_bytes = tree_bytes(hp)
    needed = None if on_host is None else on_host + hp_bytes  # the program, and the host's copy of hparams
    est = estimate_bytes(trainable, engine.capacity, engine.chunk, engine_devices(engine))
    point = {
        "config": name, "P": num, "max_layers": layout.max_layers, "max_units": layout.max_units,
        "width_tiers": list(trainable.width_tiers), "num_params_padded": layout.num_params,
        "epochs": args.epochs, "devices": jax.device_count(), "capacity": engine.capacity, "chunk": engine.chunk,
        "host_init_s": host_init_s, "compile_s": compile_s, "compile_cpu_s": compile_cpu,
        "engine_compile_s": engine.stats.seconds, "engine_compiles": engine.stats.count,
        "est_resident_bytes_per_member": est["resident"] / num, "est_total_bytes": est["total"],
        "program_bytes_per_device": per_device, "program_bytes": on_host,
        "program_bytes_per_member": None if on_host is None else on_host / num,
        "hparams_bytes_per_member": hp_bytes / num, "memory_bytes": needed,
    }
    if needed is not None and needed > mem_limit:
        point["skipped"] = (f"not run: the compiled program and its inputs need {needed / 2**30:.1f} GiB "
                            f"> {args.max_memory_fraction:.0%} of RAM ({mem_limit / 2**30:.1f} GiB)")
        point["compilations"] = compile_count() - before
        return point

    local = [probe(), probe()]
    times, cpu = [], []

    def timed_run() -> dict:
        c, t = time.process_time(), time.perf_counter()
        out = engine.run(trainable, hp, bracket)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        return out

    out = timed_run()
    if times[0] < args.long_epoch_seconds:  # a short first run is a warm-up (its one-off costs show at small P)
        warmup = times.pop(0)
        cpu.pop(0)
        repeats = args.repeats
    else:  # a long one counts: the one-off costs are negligible beside it
        warmup, repeats = None, min(args.repeats, MIN_REPEATS_LONG)
    while len(times) < repeats:
        out = timed_run()
    local += [probe(), probe()]
    secs = summarize(times)
    final = np.asarray(out["curves"])[:num, args.epochs - 1]
    point.update({
        "warmup_s": warmup, "repeats": repeats, "run_s": times, **{f"run_s_{k}": v for k, v in secs.items()},
        **rates(members, trainable, "engine", args.epochs, times),
        "run_cpu_s": cpu, "cores_busy_median": float(statistics.median(c / t for c, t in zip(cpu, times))),
        "local_matmul_1024_gflops": local, "local_matmul_1024_gflops_median": float(statistics.median(local)),
        "compilations": compile_count() - before,
        "model_epochs_trained": int(out["model_epochs"]),
        "val_score_median": float(np.nanmedian(final)) if np.isfinite(final).any() else float("nan"),
        "rss_peak_bytes": peak_rss_bytes(),
        "seconds_per_member": secs["median"] / num,
    })
    return point


# ----------------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------------


def configurations(args: argparse.Namespace) -> list[tuple[str, Layout, Callable[[int], list]]]:
    """``(name, padded layout, members_of(P))`` for every configuration."""
    out = []
    for d in args.depths:
        for w in args.widths:
            out.append((uniform_name(w, d, args.depths), Layout(NUM_FEATURES, d, w, NUM_CLASSES),
                        lambda p, w=w, d=d: uniform_members(p, w, d)))
    if not args.no_mixed:
        out.append(("mixed", Layout(NUM_FEATURES, MIXED_DEPTHS[1], MIXED_UNITS[1], NUM_CLASSES),
                    lambda p: mixed_members(p, seed=args.seed)))
    return out


def machine_info() -> dict[str, Any]:
    """CPU count, platform, versions, memory, date, load average."""
    import jaxlib

    return {
        "cpu_count": os.cpu_count(), "cpu": common.cpu_description(), "platform": platform.platform(),
        "processor": platform.processor(),
        "python": platform.python_version(), "jax": jax.__version__, "jaxlib": jaxlib.__version__,
        "numpy": np.__version__, "backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()],
        "memory_bytes": total_memory_bytes(), "date": datetime.datetime.now().isoformat(timespec="seconds"),
    }


def load_average() -> list[float] | None:
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def predicted_seconds(prev: dict[str, Any], num: int, args: argparse.Namespace) -> float:
    """Seconds a point of ``num`` members should take, from the previous measured point ``prev``: its time
    per member for every timed call and the warm-up, its compile time, and (engine) its host encoding per
    member."""
    call_s = prev["seconds_per_member"] * num
    calls = args.repeats if call_s < args.long_epoch_seconds else min(args.repeats, MIN_REPEATS_LONG)
    if args.path == "vmap" or call_s < args.long_epoch_seconds:
        calls += 1  # the warm-up (the vmap path always makes one)
    if args.path == "vmap":
        return prev["lower_s"] + prev["compile_s"] + calls * call_s
    return prev["compile_s"] + prev["host_init_s"] * num / prev["P"] + calls * call_s


def memory_note(trainable: MLPTrainable, num: int, prev: dict[str, Any] | None, args: argparse.Namespace,
                mem_limit: float) -> str | None:
    """Why a point of ``num`` members would not fit in ``mem_limit`` bytes (None if it should): vmap, the
    ``estimate_bytes`` total; engine, that estimate or the previous point's ``memory_bytes`` (its compiled
    program and host-side hyperparameters) scaled to this capacity."""
    limit = f"{args.max_memory_fraction:.0%} of RAM ({mem_limit / 2**30:.1f} GiB)"
    if args.path == "vmap":
        capacity, chunk, devices = num, num, 1
    else:
        engine = make_engine(num, args)
        capacity, chunk, devices = engine.capacity, engine.chunk, engine_devices(engine)
        if prev is not None and prev.get("memory_bytes"):
            scaled = prev["memory_bytes"] * capacity / prev["capacity"]
            if scaled > mem_limit:
                return (f"skipped: the compiled program and its inputs at P={prev['P']} scale to "
                        f"{scaled / 2**30:.1f} GiB > {limit}")
    est = estimate_bytes(trainable, capacity, chunk, devices)
    if est["total"] > mem_limit:
        return f"skipped: estimate_bytes total {est['total'] / 2**30:.1f} GiB > {limit}"
    return None


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure the peak and every (configuration, P) point; returns the JSON-able result."""
    start = time.perf_counter()
    info = machine_info()
    info["load_average_start"] = load_average()
    print(f"# {info['platform']}  cpus={info['cpu_count']}  jax {info['jax']}  devices={jax.device_count()}  "
          f"load={info['load_average_start']}", flush=True)
    print(f"# path {args.path}: {PATHS[args.path]}", flush=True)
    probes = {n: make_matmul_probe(n) for n in (1024, 2048)}
    peak_start = {n: matmul_peak(probes[n], n, args.peak_repeats) for n in (1024, 2048)}
    print("# matmul peak (start): " + "  ".join(
        f"{n}: {p['median_gflops']:.1f} GFLOP/s" for n, p in peak_start.items()), flush=True)

    if args.dataset == "digits":
        from vtune.data import load_dataset

        dataset = load_dataset("digits")  # 1,257 train rows, 64 features, 10 classes (issue 2's report)
    else:
        dataset = make_dataset(args.train_rows, args.val_rows, seed=args.seed)
    print(_header(args.path), flush=True)
    mem_limit = args.max_memory_fraction * total_memory_bytes()
    points: list[dict[str, Any]] = []

    def skip(name: str, num: int, note: str) -> None:
        points.append({"config": name, "P": num, "skipped": note})
        print_row(points[-1], 0.0)

    for name, layout, members_of in configurations(args):
        prev = None  # the last point measured (engine: or compiled) for this configuration
        trainable = make_trainable(dataset, layout, args)
        if args.path == "vmap":
            fits = [p for p in args.populations if memory_note(trainable, p, None, args, mem_limit) is None]
            host_state = initial_states(trainable, members_of(max(fits)), args) if fits else None
        for p in args.populations:
            note = memory_note(trainable, p, prev, args, mem_limit)
            if note is not None:
                skip(name, p, note)
                continue
            if prev is not None and "skipped" not in prev and args.max_point_seconds:
                predicted = predicted_seconds(prev, p, args)
                if predicted > args.max_point_seconds:
                    skip(name, p, f"skipped: predicted {predicted:.0f} s (from the previous P) > "
                                  f"--max-point-seconds {args.max_point_seconds:.0f}")
                    continue
            if args.path == "vmap":
                point = measure_point(name, members_of(p), trainable, host_state, args, probes[1024])
            else:
                point = measure_engine_point(name, members_of(p), trainable, args, probes[1024], mem_limit)
            points.append(point)
            prev = point
            print_row(point, peak_start[2048]["median_gflops"])

    peak_end = {n: matmul_peak(probes[n], n, args.peak_repeats) for n in (1024, 2048)}
    info["load_average_end"] = load_average()
    info["wall_s"] = time.perf_counter() - start
    peak = {}
    for n in (1024, 2048):
        pooled = peak_start[n]["gflops"] + peak_end[n]["gflops"]
        peak[str(n)] = {"start": peak_start[n], "end": peak_end[n], **{f"{k}_gflops": v for k, v in
                                                                       summarize(pooled).items()}}
    peak_gflops = peak["2048"]["median_gflops"]
    for point in points:
        if "useful_gflops" in point:
            point["useful_fraction_of_peak"] = point["useful_gflops"] / peak_gflops
            point["padded_fraction_of_peak"] = point["padded_gflops"] / peak_gflops
            point["useful_over_local_1024"] = point["useful_gflops"] / point["local_matmul_1024_gflops_median"]
    return {
        "path": args.path,
        "path_definition": PATHS[args.path],
        "machine": info,
        "settings": {**{k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()},
                     "train_rows": int(dataset.n_train)},
        "devices": jax.device_count(),
        "peak_gflops": peak_gflops,
        "peak_definition": "median of the jitted float32 2048x2048 @ 2048x2048 samples, start and end pooled",
        "peak": peak,
        "points": points,
    }


# ----------------------------------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------------------------------

def _header(path: str) -> str:
    if path == "vmap":
        return (f"{'config':>6} {'P':>5} {'epoch s (min/med/max)':>24} {'model-ep/s':>10} {'useful GF/s':>11} "
                f"{'padded GF/s':>11} {'%peak':>6} {'mm1024':>6} {'compile s':>9} {'#comp':>5} "
                f"{'MiB/member est|state':>21}")
    return (f"{'config':>6} {'P':>5} {'run s (min/med/max)':>24} {'model-ep/s':>10} {'useful GF/s':>11} "
            f"{'tier GF/s':>11} {'%peak':>6} {'mm1024':>6} {'compile s':>9} {'#comp':>5} {'cores':>5} "
            f"{'MiB/member est|prog':>21}")


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**20:.2f}"


def print_row(point: dict[str, Any], peak_gflops: float) -> None:
    if "skipped" in point:
        print(f"{point['config']:>6} {point['P']:>5}  {point['skipped']}", flush=True)
        return
    engine = "run_s_median" in point
    key = "run_s" if engine else "epoch_s"
    secs = f"{point[key + '_min']:.3f}/{point[key + '_median']:.3f}/{point[key + '_max']:.3f}"
    mem = _mib(point["est_resident_bytes_per_member"]) + "|" + _mib(
        point["program_bytes_per_member"] if engine else point["state_bytes_per_member"])
    frac = point.get("useful_fraction_of_peak", point["useful_gflops"] / peak_gflops)
    cores = f"{point['cores_busy_median']:>5.2f} " if engine else ""
    print(f"{point['config']:>6} {point['P']:>5} {secs:>24} {point['model_epochs_per_s']:>10.1f} "
          f"{point['useful_gflops']:>11.2f} {point['padded_gflops']:>11.2f} {100 * frac:>5.1f}% "
          f"{point['local_matmul_1024_gflops_median']:>6.1f} "
          f"{point.get('lower_s', 0.0) + point['compile_s']:>9.2f} {point['compilations']:>5} {cores}{mem:>21}",
          flush=True)


def print_table(result: dict[str, Any]) -> None:
    peak = result["peak"]
    path = result.get("path", "vmap")
    print()
    devices = result.get("devices", 1)
    print(f"path {path}: {PATHS[path]}; " + (f"{devices} JAX device(s)" if path == "engine"
                                             else f"on one of {devices} JAX device(s)"))
    print("matmul peak GFLOP/s (min/median/max, start+end pooled): " + "  ".join(
        f"{n}: {p['min_gflops']:.1f}/{p['median_gflops']:.1f}/{p['max_gflops']:.1f}" for n, p in peak.items()))
    print(_header(path))
    for point in result["points"]:
        print_row(point, result["peak_gflops"])
    if path == "engine":
        print(f"run s: one engine.run of P configurations x {result['settings']['epochs']} epoch(s); tier GF/s: "
              "each member at its width tier and depth; cores: CPU s / wall s during the runs; "
              "prog: the compiled program's bytes (all host-RAM devices) / P")
    print("mm1024: GFLOP/s of a 1024 matmul sampled around each point (the machine's speed meanwhile); "
          f"total {result['machine']['wall_s']:.0f} s, load average {result['machine']['load_average_start']} -> "
          f"{result['machine']['load_average_end']}")


def plot(result: dict[str, Any], path: Path) -> None:
    """Useful (solid) and padded (vmap) or width-tier (engine) (dashed, mixed only) GFLOP/s vs P with the
    peak line; model-epochs/s vs P."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    code_path = result.get("path", "vmap")
    computed = "padded" if code_path == "vmap" else "at width tier"
    names = list(dict.fromkeys(p["config"] for p in result["points"]))
    for i, name in enumerate(names):
        pts = [p for p in result["points"] if p["config"] == name and "skipped" not in p]
        if not pts:
            continue
        color = f"C{i}"
        ps = [p["P"] for p in pts]
        ax1.plot(ps, [p["useful_gflops"] for p in pts], "o-", color=color, label=f"{name} useful")
        if name == "mixed":
            ax1.plot(ps, [p["padded_gflops"] for p in pts], "o--", color=color, alpha=0.6,
                     label=f"{name} {computed}")
        ax2.plot(ps, [p["model_epochs_per_s"] for p in pts], "o-", color=color, label=name)
    peak = result["peak_gflops"]
    ax1.axhline(peak, color="k", lw=1)
    ax1.text(0.01, peak, f" 2048² matmul peak {peak:.0f} GFLOP/s", va="bottom", fontsize=8,
             transform=ax1.get_yaxis_transform())  # x in axes units: on the plot whatever P starts at
    ax1.set(xscale="log", xlabel="population size P", ylabel="GFLOP/s",
            title="Training throughput (useful = true architectures)")
    ax1.set_ylim(bottom=0, top=peak * 1.15)
    ax2.set(xscale="log", yscale="log", xlabel="population size P", ylabel="model-epochs / s",
            title=f"Model-epochs per second ({result['settings']['train_rows']} train rows)")
    for ax in (ax1, ax2):
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    m = result["machine"]
    how = "vmapped train_epoch" if code_path == "vmap" else f"tune's engine, {result.get('devices', 1)} JAX devices"
    cpu = (m.get("cpu") or {}).get("model")
    cpus = f"{m['cpu_count']} CPUs" + (f" ({cpu})" if cpu else "")
    fig.suptitle(f"vtune throughput ({how}) — {cpus}, jax {m['jax']}, {m['date']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _width_list(text: str) -> tuple[int, ...]:
    """Widths of the uniform populations; empty or ``none``: no uniform population (the mixed one only)."""
    return () if text.strip().lower() in ("", "none") else _int_list(text)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--path", choices=tuple(PATHS), default="vmap",
                    help="vmap: one compiled train_epoch over the vmapped, padded population; engine: "
                         "vtune.tune's bracket program (see the module docstring)")
    ap.add_argument("--epochs", type=int, default=1,
                    help="engine path: epochs of the one rung each timed engine.run trains")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true",
                      help="P in 1, 16, 256, 1024 train rows, 2 repeats (the default mode; about 3 minutes)")
    mode.add_argument("--full", action="store_true", help="P up to 4096, 4096 train rows, 5 repeats")
    ap.add_argument("--populations", type=_int_list, default=None, help="population sizes (overrides the mode)")
    ap.add_argument("--widths", type=_width_list, default=WIDTHS,
                    help="widths of the uniform populations ('none': the mixed population only)")
    ap.add_argument("--depths", type=_int_list, default=(UNIFORM_DEPTH,),
                    help="hidden layers of the uniform populations (each width at each depth; a program "
                         "holds exactly that depth)")
    ap.add_argument("--no-mixed", action="store_true", help="skip the mixed population")
    ap.add_argument("--tiers", type=_width_list, default=None,
                    help="engine path: the width tiers every member trains at (default: the trainable's "
                         "defaults, default_width_tiers; 'none': none, every member at the full width)")
    ap.add_argument("--train-rows", type=int, default=None, help="training rows (default 1024 quick, 4096 full)")
    ap.add_argument("--val-rows", type=int, default=256, help="validation rows (timed, not counted as FLOPs)")
    ap.add_argument("--dataset", choices=("generated", "digits"), default="generated",
                    help="generated make_classification rows, or scikit-learn's digits (train split)")
    ap.add_argument("--repeats", type=int, default=None,
                    help=f"timed epochs (vmap) or engine runs per point (default 2 quick, 5 full; at most "
                         f"{MIN_REPEATS_LONG} when the warm-up epoch / first run exceeds --long-epoch-seconds)")
    ap.add_argument("--long-epoch-seconds", type=float, default=20.0,
                    help=f"a point whose warm-up epoch (vmap) or first run (engine) takes longer gets "
                         f"min(--repeats, {MIN_REPEATS_LONG}) repeats")
    ap.add_argument("--peak-repeats", type=int, default=None, help="timed matmuls per peak size")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--optimizer", default="adam")
    ap.add_argument("--activation", default="relu")
    ap.add_argument("--schedule", default="constant")
    ap.add_argument("--dropout", type=float, default=0.0, help="dropout rate; > 0 compiles the dropout path")
    ap.add_argument("--learning-rate", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-memory-fraction", type=float, default=0.6,
                    help="skip a point whose estimate_bytes total (engine: or compiled program) exceeds "
                         "this fraction of RAM")
    ap.add_argument("--max-point-seconds", type=float, default=None,
                    help="skip a point predicted (from the previous P) to take longer (default 30 quick, 1200 full)")
    ap.add_argument("--out", type=Path, default=None, help="JSON path (the PNG goes beside it)")
    args = ap.parse_args(argv)
    quick = args.quick or not args.full
    if args.populations is None:
        args.populations = QUICK_POPULATIONS if quick else POPULATIONS
    if args.train_rows is None:
        args.train_rows = 1024 if quick else 4096
    if args.repeats is None:
        args.repeats = 2 if quick else 5
    if args.peak_repeats is None:
        args.peak_repeats = 5 if quick else 15
    if args.max_point_seconds is None:
        args.max_point_seconds = 30.0 if quick else 1200.0
    if args.out is None:
        args.out = RESULTS / ("throughput" + ("_engine" if args.path == "engine" else "")
                              + ("" if args.full else "_quick") + ".json")
    if args.repeats < 1:
        ap.error(f"--repeats must be at least 1, got {args.repeats}")
    if args.epochs < 1 or (args.path == "vmap" and args.epochs != 1):
        ap.error(f"--epochs must be at least 1, and 1 with --path vmap (one epoch per call), got {args.epochs}")
    if args.train_rows < args.batch:
        ap.error(f"--train-rows={args.train_rows} is smaller than --batch={args.batch}")
    if not 0.0 <= args.dropout < 1.0:
        ap.error(f"--dropout must lie in [0, 1), got {args.dropout}")
    if args.tiers is not None and args.path != "engine":
        ap.error("--tiers applies to --path engine (the vmap path trains every member at the full width)")
    if not args.widths and args.no_mixed:
        ap.error("--widths none with --no-mixed leaves nothing to measure")
    args.mode = "quick" if quick else "full"
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    result = run(args)
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result["settings"]["out"] = str(args.out)
    args.out.write_text(json.dumps(result, indent=1))
    png = args.out.with_suffix(".png")
    plot(result, png)
    print(f"\nwrote {args.out} and {png}")
    return result


if __name__ == "__main__":
    main()
