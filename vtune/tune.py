"""``vtune.tune``: one call from a space and data to a tuned model, with every trial on record.

The search runs stage by stage (a Hyperband bracket, a halving bracket, a batch of random/grid trials, a
coarse-to-fine round). Each stage is **one dispatch** of one compiled program, and every stage of a search
reuses the same program (the stage's plan is data), so a full Hyperband run compiles once. After every
stage the search state is written atomically to ``out/checkpoint/``; re-running the same call with the
same ``out`` resumes after the last finished stage and ends with the same numbers as an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import pathlib
import time
from typing import Any, Mapping

import jax
import numpy as np

from vtune import data as datamod
from vtune import hparams as hpmod
from vtune import io
from vtune.cache import configure_compile_cache
from vtune.checkpoint import Checkpoint
from vtune.engine import FAST_COMPILE_OPTIONS, Engine, milestones
from vtune.losses import METRICS, score as score_fn
from vtune.model import ACTIVATIONS, tier_weights, tier_width, widest_layer
from vtune.optim import FUSE_RULES
from vtune.result import Model, Result
from vtune.space import Choice, Float, Space, default_space
from vtune.strategies import STRATEGIES, Strategy
from vtune.strategies.base import trial_seeds
from vtune.trainable import BealeTrainable, FunctionTrainable, beale_hparams, encode_generic
from vtune.train import MLPTrainable, encode_hparams, tier_candidates

#: Members trained side by side in one chunk on a CPU backend (see ``engine``); accelerators use the
#: whole stage. Measured on a 2-core machine (digits, 2 hidden layers, batch 64): the time per
#: member-epoch is the same for chunks of 1, 4 and 16 members (the CPU is compute-bound either way), so
#: one member per chunk costs nothing in throughput, never pads a small rung, and lets each member run
#: the narrowest width tier that holds it with its inactive layers skipped (Hyperband R=27 on digits:
#: 219 s with chunks of 16, 53 s with chunks of 1 before width tiers). Re-checked on the Zen 5 CPU
#: (2026-11-25): a bare Adam MLP step vmapped over two members per core runs 1.2-1.5x faster per member
#: than one member alone (widths 64-256, batch 64), but in the engine a vmapped chunk computes every layer
#: and rule of its widest, deepest member (``cond`` becomes a select): the 20,000-row benchmark search with
#: the same width tiers, two members per core against one, 16.2 s cold / 10.7 s warm against 10.8 / 6.3.
CPU_CHUNK = 1

#: Padded FLOPs a width tier must save over a search to repay compiling it (see ``_Setup.auto_tiers``).
#: A tier is compiled once and every later run of the same search loads it from the compile cache, so its
#: compile time is charged over two runs, the first and one rerun: compile s per tier / (2 × training s
#: per padded FLOP). Calibrated on the 2-core development CPU, a Zen 5 (AVX-512) since 2026-11-25 (the
#: benchmark's space, Hyperband R=27, a cold then a warm run per setting, settings alternating): digits,
#: the 128 tier (1.24e11 fewer padded FLOPs) +0.64 s cold, -0.32 s warm: 0.96 s of compile to save 0.32 s
#: a run (2.5e-12 s per FLOP), break-even 1.9e11; the 20,000-row task, the 128 tier alone (1.38e12 fewer)
#: 1.2 s to save 5.1 s a run (3.7e-12), 1.6e11; the 64 tier on top (2.7e11 fewer) 1.45 s to save 0.97 s
#: (3.5e-12), 2.1e11. Hence 1.9e11: the digits search compiles no tier (medians of 4: 4.8 s cold, 1.5 s
#: warm, against 5.7 s and 1.3 s with the 128 tier), the 20,000-row one keeps 64 and 128. The previous
#: development CPU (AVX2, matmul peak ≈ 67 GFLOP/s against ≈ 460 here) trained 6-9x slower per FLOP but
#: compiled only ≈ 2.5x slower, and tiers paid there from 0.9e11 (the 128 tier on digits: 4.0 s of compile
#: for 3.05 s of training a run); on such a machine this value drops tiers that would pay.
TIER_MIN_FLOPS = 1.9e11
#: Padded training FLOPs per compiled epoch-loop variant up to which a search fuses its optimizer rules
#: (``_Setup.auto_fuse``). Measured on the 2-core development CPU, 2026-11-24: fusing three rules saved
#: 1.26 s of XLA compile on the digits search's two variants (0.63 s each) and made training 7–9% slower;
#: training costs ≈ 4.1e-11 (digits, 1.06e11 padded FLOPs, 4.3 s) to 5.0e-11 s (20,000-row task, 9.1e11,
#: ≈ 45 s) per padded FLOP, so fusing pays up to 0.63 / (0.08 × 4.5e-11) ≈ 1.8e11 FLOPs per variant:
#: the digits search fuses (3.6e11 allowed), the 20,000-row one does not (5.4e11 allowed). Re-checked on
#: a Zen 5 CPU (2026-11-25): fusing the 20,000-row search's rules saved nothing cold (12.1/12.8 s against
#: 12.8/12.3) and cost warm runs 0.2-0.5 s.
FUSE_MAX_FLOPS = 1.8e11
#: Padded training FLOPs up to which a CPU search compiles with ``vtune.engine.FAST_COMPILE_OPTIONS``
#: (``_Setup.fast_compile``): XLA's loop emitters instead of its fusion emitters, less compile, slower
#: kernels. Charged like a tier, over a first run and one rerun. Measured on the Zen 5 development CPU
#: (2026-11-25, the benchmark's space, Hyperband R=27, a cold and a warm run per setting, settings
#: alternating, medians): digits (2.3e11 padded FLOPs, 4 pairs) compile 3.37 -> 2.86 s, cold run
#: 4.57 -> 4.11 s, warm 1.43 -> 1.52 s (+3.9e-13 s per padded FLOP); the 20,000-row task (9.1e11, 3
#: pairs) cold 11.8 -> 13.1 s, warm 6.4 -> 7.0 s (+6.6e-13 s per FLOP), no compile saved beyond the noise.
#: With ≈ 0.5 s saved, break-even lies between 0.5 / (2 × 6.6e-13) = 3.8e11 and 0.5 / (2 × 3.9e-13) =
#: 6.4e11 FLOPs; hence 5e11. The choice changes kernels only: trials can differ in the last bits.
FAST_COMPILE_MAX_FLOPS = 5e11
#: The most shared-order entries (epochs × training rows) computed on the host before a search
#: (``MLPTrainable.with_orders``); a larger search's program draws its orders itself, as before. Drawn in
#: the program, the shuffle cost the digits search 0.17-0.3 s of compile (and a sort per epoch at run
#: time); computed with numpy it costs ≈ 140 ns per entry on the development CPU (27 epochs of 1,257 /
#: 14,000 / 60,000 rows: 5 ms / 49 ms / 0.23 s), so past about two million entries the host pays more.
HOST_ORDERS_MAX = 2_000_000
#: Configurations drawn (fixed seed) to estimate how many members fall in each tier's band.
TIER_SAMPLE = 2048


def beale_space() -> Space:
    """Default space of the Beale task: an optimizer and its knobs."""
    return Space({
        "optimizer": Choice(list(hpmod.OPTIMIZERS)),
        "learning_rate": Float(1e-4, 1.0, scale="log"),
        "momentum": Float(0.5, 0.999, scale="reverse_log"),
        "beta2": Float(0.9, 0.9999, scale="reverse_log"),
    })


def _values(space: Space, name: str) -> list:
    """Every value a choice-like hyperparameter can take in ``space``."""
    if name in space.dimensions:
        dim = space[name]
        if isinstance(dim, Choice):
            return list(dim.values)
        return [dim.low, dim.high]
    if name in space.fixed:
        return [space.fixed[name]]
    return [hpmod.HPARAMS[name][1]]


def _static_choices(space: Space, task: str) -> dict:
    optimizers = set(_values(space, "optimizer"))
    if "momentum" in optimizers and True in _values(space, "nesterov"):
        optimizers.add("nesterov")
    losses = [v for v in _values(space, "loss") if v is not None] or [hpmod.DEFAULT_LOSS[task]]
    for loss in losses:
        if loss not in hpmod.TASK_LOSSES[task]:
            raise ValueError(f"loss={loss!r} does not fit a {task} task; use one of {', '.join(hpmod.TASK_LOSSES[task])}")
    dropout = _values(space, "dropout")
    return {
        "optimizers": tuple(o for o in hpmod.OPTIMIZERS if o in optimizers),
        "activations": tuple(a for a in hpmod.ACTIVATIONS if a in set(_values(space, "activation"))),
        "schedules": tuple(s for s in hpmod.SCHEDULES if s in set(_values(space, "schedule"))),
        "losses": tuple(l for l in hpmod.LOSSES if l in set(losses)),
        "use_dropout": any(float(d) > 0 for d in dropout),
    }


def _resolve_strategy(strategy, *, max_epochs, eta, trials) -> Strategy:
    if isinstance(strategy, Strategy):
        return strategy
    if not isinstance(strategy, str):
        raise TypeError(f"strategy must be a name or a Strategy, got {strategy!r}")
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    kw: dict[str, Any] = {}
    if max_epochs is not None:
        kw["max_epochs"] = max_epochs
    if eta is not None:
        if strategy not in ("hyperband", "halving"):
            raise ValueError(f"eta does not apply to strategy {strategy!r} (only hyperband and halving)")
        kw["eta"] = eta
    if trials is not None:
        key = {"random": "num_trials", "halving": "num_configs", "coarse-to-fine": "trials_per_round"}.get(strategy)
        if key is None:
            raise ValueError(f"--trials does not apply to strategy {strategy!r}")
        kw[key] = trials
    return STRATEGIES[strategy](**kw)


def _fingerprint(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _data_fingerprint(ds) -> str:
    h = hashlib.sha256()
    for arr in (ds.x_train, ds.y_train, ds.x_val, ds.y_val):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()[:16]


class _Setup:
    """Everything ``tune`` derives from its inputs before training: trainable, encoder, metric."""

    def __init__(self, space, data, *, max_epochs, data_seed, shared_order, restore_best, steps_per_epoch,
                 width_tiers=None):
        self.dataset = None
        if isinstance(data, str):
            if data == "beale":
                data = BealeTrainable.create(steps_per_epoch=steps_per_epoch)
            else:
                data = datamod.load_dataset(data)
        if isinstance(data, datamod.Dataset):
            self.dataset = data
            self.kind = "mlp"
            self.task = data.task
            self.metric = METRICS[data.task]
            self.space = _as_space(space) if space is not None else default_space(data)
            geometry = self._mlp_geometry(self.space, data)
            statics = _static_choices(self.space, data.task)
            self.micro_batch = geometry["micro_batch"]
            self.max_layers = geometry["max_layers"]
            self.trainable = MLPTrainable.create(
                data, max_layers=geometry["max_layers"], max_units=geometry["max_units"],
                micro_batch=geometry["micro_batch"], data_seed=data_seed, accumulate=geometry["accumulate"],
                shared_order=shared_order, restore_best=restore_best,
                # None: the automatic choice, made by auto_tiers from the finer ladder of candidates
                width_tiers=tier_candidates(geometry["max_units"]) if width_tiers is None else width_tiers,
                **statics)
            if max_epochs * data.n_train <= HOST_ORDERS_MAX:  # the shared orders as data (see with_orders)
                self.trainable = self.trainable.with_orders(max_epochs)
            self.data_info = {"name": data.name, "task": data.task, "n_train": data.n_train, "n_val": data.n_val,
                              "n_test": data.n_test, "n_features": data.n_features, "n_outputs": data.n_outputs,
                              "fingerprint": _data_fingerprint(data)}
        elif isinstance(data, BealeTrainable):
            self.kind = "beale"
            self.task = "beale"
            self.metric = "-f"
            self.space = _as_space(space) if space is not None else beale_space()
            statics = _static_choices(self.space, "regression")
            self.trainable = data.replace(optimizers=statics["optimizers"], schedules=statics["schedules"])
            self.data_info = {"name": "beale", "task": "beale", "start": list(map(float, data.start)),
                              "steps_per_epoch": data.steps_per_epoch}
        elif all(hasattr(data, m) for m in ("init", "train_epoch", "score")):
            if space is None:
                raise ValueError("a custom trainable needs an explicit space")
            self.kind = "custom"
            self.task = "custom"
            self.metric = getattr(data, "metric", "score")
            self.space = _as_space(space)
            self.trainable = data
            self.data_info = {"name": type(data).__name__, "task": "custom"}
        else:
            raise TypeError(
                "data must be a Dataset, a bundled data set name, 'beale', or a trainable with "
                f"init/train_epoch/score; got {type(data).__name__}")
        self.max_epochs = max_epochs

    @staticmethod
    def _mlp_geometry(space: Space, ds) -> dict:
        batches = space.batch_sizes()
        micro = min(batches)
        if micro > ds.n_train:
            raise ValueError(f"batch_size={micro} is larger than the training split ({ds.n_train} rows)")
        bad = [b for b in batches if b % micro]
        if bad:
            raise ValueError(
                f"batch_size values must all be multiples of the smallest ({micro}); {bad[0]} is not — "
                "use a Choice of powers of two, e.g. {\"choice\": [32, 64, 128]}")
        if max(batches) > ds.n_train:
            raise ValueError(f"batch_size={max(batches)} is larger than the training split ({ds.n_train} rows)")
        return {"micro_batch": micro, "accumulate": max(batches) > micro, "max_layers": space.max_layers(),
                "max_units": space.max_units()}

    def auto_tiers(self, model_epochs: int, per_device: int) -> None:
        """Keep the set of width tiers whose compile time the padded work they save repays (none when
        ``per_device``, the members each device trains side by side, is over one: a vmapped chunk pads to
        its widest member anyway).

        Each tier is one more compiled copy of the training step (seconds on a 2-core CPU). A member
        trains at the narrowest kept width that holds its widest layer, so a set of tiers ``T`` costs
        ``model_epochs × rows × 6 × mean(padded weights of each member's own layers at its width)`` padded
        FLOPs of training (alone on its core a member skips the layers it does not have)
        plus ``|T| × TIER_MIN_FLOPS`` for compiling; every subset of the trainable's tiers (in ``tune``'s
        automatic mode the candidates of ``vtune.train.tier_candidates``) is scored and the cheapest kept
        (ties: fewer tiers). The mean is over ``TIER_SAMPLE`` configurations drawn from the
        space with a fixed seed, so the choice is a function of the search alone: tiers change no number
        beyond float rounding, but a search should compile the same program wherever it runs.
        """
        tr = self.trainable
        if per_device != 1 or not tr.width_tiers:
            self.trainable = tr.replace(width_tiers=())
            return
        cost = lambda tiers: self.training_flops(model_epochs, tiers) + len(tiers) * TIER_MIN_FLOPS
        candidates = [list(c) for k in range(len(tr.width_tiers) + 1)
                      for c in itertools.combinations(sorted(tr.width_tiers), k)]
        best = min(candidates, key=lambda c: (cost(c), len(c)))
        self.trainable = tr.replace(width_tiers=tuple(best))

    def training_flops(self, model_epochs: int, tiers) -> float:
        """Padded FLOPs of training ``model_epochs`` member-epochs with width ``tiers``: ``model_epochs ×
        rows × 6 × mean(padded weights of each member's own layers at its width)`` over
        ``TIER_SAMPLE`` configurations of the space (alone on its core a member computes and updates only
        its own layers, at the narrowest width that holds it)."""
        tr = self.trainable
        need, depth = self._sampled_architectures()
        at = tier_width(need, sorted(tiers) + [tr.max_units], xp=np)
        padded = tier_weights(tr.num_features, tr.num_outputs, depth.astype(np.int64), at.astype(np.int64))
        return model_epochs * self.dataset.n_train * 6 * float(np.mean(padded))

    def auto_fuse(self, model_epochs: int, per_device: int) -> None:
        """Fuse the optimizer's rules (:data:`vtune.optim.FUSE_RULES`) when the compile time it saves beats
        the slower steps it costs for this search: at most ``FUSE_MAX_FLOPS`` padded training FLOPs per
        compiled epoch-loop variant (one per width tier and the full width), one member per device
        (``per_device``) at a time."""
        tr = self.trainable
        variants = len(tr.width_tiers) + 1
        fuse = (per_device == 1 and len(tr.optimizers) <= FUSE_RULES
                and self.training_flops(model_epochs, tr.width_tiers) <= variants * FUSE_MAX_FLOPS)
        self.trainable = tr.replace(fuse_rules=bool(fuse))

    def fast_compile(self, model_epochs: int) -> bool:
        """Whether this search's program compiles with :data:`vtune.engine.FAST_COMPILE_OPTIONS`: at most
        ``FAST_COMPILE_MAX_FLOPS`` padded training FLOPs, so that the compile seconds saved beat the slower
        training of a first run and one rerun."""
        return self.training_flops(model_epochs, self.trainable.width_tiers) <= FAST_COMPILE_MAX_FLOPS

    def _sampled_architectures(self) -> tuple[np.ndarray, np.ndarray]:
        """``(widest live layer, depth)`` of ``TIER_SAMPLE`` configurations drawn from the space (fixed
        seed; drawn once per search)."""
        if getattr(self, "_sample", None) is None:
            u = np.random.default_rng(0).random((TIER_SAMPLE, self.space.num_dims))
            hp = encode_hparams(self.space.from_unit_batch(u), task=self.task, max_layers=self.max_layers,
                                micro_batch=self.micro_batch)
            self._sample = widest_layer(hp["num_layers"], hp["units"], xp=np), hp["num_layers"]
        return self._sample

    def encode(self, configs, seeds, max_epochs):
        if self.kind == "mlp":
            return self.trainable.host_init(encode_hparams(
                configs, task=self.task, max_layers=self.max_layers, micro_batch=self.micro_batch,
                max_epochs=max_epochs, seeds=seeds))
        if self.kind == "beale":
            return beale_hparams(configs, seeds=seeds, max_epochs=max_epochs)
        return encode_generic(configs, self.space, seeds=seeds)


def _as_space(space) -> Space:
    if isinstance(space, Space):
        return space
    if isinstance(space, Mapping):
        return Space(space)
    if isinstance(space, (str, os.PathLike)):
        return Space.from_file(space)
    raise TypeError(f"space must be a Space, a mapping or a JSON file path, got {type(space).__name__}")


def _trial_records(out, configs, stage_index, bracket, id_offset):
    """Per-trial records of one finished stage from the engine's numpy output."""
    records = []
    rungs = bracket.rungs
    last = len(rungs) - 1
    for j, config in enumerate(configs):
        history = []
        for i, rung in enumerate(rungs):
            value = out["rung_scores"][j, i]
            if np.isnan(value):
                break
            history.append({"epochs": int(rung.epochs), "val_score": float(value)})
        curve = [float(v) for v in out["curves"][j, : history[-1]["epochs"] if history else 0]]
        diverged = any(not math.isfinite(h["val_score"]) for h in history)
        status = "diverged" if diverged else ("completed" if len(history) == last + 1 else "pruned")
        records.append({"id": id_offset + j, "config": dict(config), "bracket": stage_index, "rungs": history,
                        "status": status, "curve": curve})
    return records


def tune(space=None, data="digits", *, strategy: str | Strategy = "hyperband", seed: int = 0,
         max_epochs: int | None = None, eta: int | None = None, trials: int | None = None,
         out: str | os.PathLike | None = None, chunk: int | None = None, data_seed: int | None = None,
         shared_order: bool = True, restore_best: bool = True, compile_cache: str | None = "default",
         progress: bool = False, steps_per_epoch: int = 10, max_memory_gb: float | None = None,
         width_tiers: str | tuple = "auto", brackets_together: bool = True) -> Result:
    """Tune an MLP (or any trainable population) and return a :class:`Result`.

    Args:
        space: a :class:`Space`, a mapping of names to dimensions/values, a JSON file path, or None for
            ``default_space(data)``.
        data: a :class:`vtune.data.Dataset`, a bundled data set name ("digits", "breast_cancer", "wine",
            "diabetes", "xor"), "beale" (tune an optimizer on Beale's function), or a trainable population.
        strategy: "hyperband" (default), "halving", "random", "grid", "coarse-to-fine", or a Strategy.
        seed: the search seed; the data order seed (``data_seed``) defaults to it.
        max_epochs, eta, trials: shortcuts for the named strategy's settings.
        out: folder for checkpoints and the result files; an existing checkpoint there is resumed.
        chunk: members trained side by side per chunk (default: 1 on CPU, the whole stage elsewhere).
        compile_cache: "default" (a per-user folder, or ``$VTUNE_COMPILE_CACHE``), a folder, or None/"none".
        progress: show a live progress display on stderr.
        max_memory_gb: refuse a search whose estimated device memory exceeds this (default: 75% of RAM).
        width_tiers: narrower compiled variants of the training step for narrow members (CPU chunks of
            one): "auto" (the tiers, out of ``vtune.train.tier_candidates`` — 32, 48, 64, 96, 128, 192 below
            256 units — whose compile time the padded training they save repays, estimated from the space and
            the budget: see ``TIER_MIN_FLOPS``), () for none, or a tuple of widths.
        brackets_together: train brackets that do not depend on each other (Hyperband's) in one program,
            side by side: the same numbers, faster on a multi-core CPU (no core waits through a bracket's
            last rung of one member), but the checkpoint is written once they are all done; ``False`` runs
            and checkpoints one bracket at a time (for long searches that should lose little to a crash).
            Brackets that would not fit the memory limit together also run one at a time.

    Example:
        >>> import vtune
        >>> result = vtune.tune({"learning_rate": vtune.Float(1e-3, 1e-1, scale="log"), "units": 16,
        ...                      "num_layers": 1, "batch_size": 4}, "xor", strategy="random",
        ...                     trials=4, max_epochs=2, compile_cache=None)   # doctest: +SKIP
        >>> result.best_config["learning_rate"]                               # doctest: +SKIP
    """
    t_start = time.perf_counter()
    configure_compile_cache(compile_cache)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got seed={seed!r}")
    if not isinstance(brackets_together, (bool, np.bool_)):
        raise TypeError(f"brackets_together must be True or False, got {brackets_together!r}")
    strat = _resolve_strategy(strategy, max_epochs=max_epochs, eta=eta, trials=trials)
    on_cpu = jax.default_backend() == "cpu"
    setup = _Setup(space, data, max_epochs=strat.max_epochs, data_seed=seed if data_seed is None else data_seed,
                   shared_order=shared_order, restore_best=restore_best, steps_per_epoch=steps_per_epoch,
                   width_tiers=None if width_tiers == "auto" else tuple(width_tiers))
    space = setup.space
    stages = strat.stages(space)
    # Brackets that do not depend on each other's results train together, in one program (see
    # vtune.engine.milestones): no core waits through a bracket's last rung of one or two members.
    together = bool(brackets_together) and bool(getattr(strat, "independent_stages", False)) and len(stages) > 1
    # The population a program holds; off CPU a chunk is all of it by default (one vmap per rung).
    population = {True: sum(s.num_configs for s in stages), False: max(s.num_configs for s in stages)}
    chunk_of = lambda capacity: chunk if chunk is not None else (CPU_CHUNK if on_cpu else capacity)
    planned = sum(s.model_epochs for s in stages)
    # The engine spreads a chunk over every device: what the tiers and the fused rules depend on is how
    # many members each device trains side by side (``chunk=2`` on two cores is one member per core, as
    # the default is, and keeps the same tiers).
    per_device = -(-chunk_of(population[together]) // jax.device_count())
    if setup.kind == "mlp" and width_tiers == "auto":
        setup.auto_tiers(planned, per_device)
    if setup.kind == "mlp":
        setup.auto_fuse(planned, per_device)
    options = FAST_COMPILE_OPTIONS if on_cpu and setup.kind == "mlp" and setup.fast_compile(planned) else None
    engine = None
    if together:
        engine = _engine(capacity=population[True], chunk=chunk_of(population[True]),
                         max_rungs=len(milestones(stages)), max_epochs=strat.max_epochs, compiler_options=options)
        if setup.kind == "mlp" and not _fits(setup, engine, max_memory_gb):
            together, engine = False, None  # one bracket at a time holds fewer members at once
    if engine is None:
        engine = _engine(capacity=population[False], chunk=chunk_of(population[False]),
                         max_rungs=max(len(s.rungs) for s in stages), max_epochs=strat.max_epochs,
                         compiler_options=options)
    compiles_before = (engine.stats.count, engine.stats.seconds)
    if setup.kind == "mlp":
        _check_memory(setup, engine, max_memory_gb)
    # The chunk size is not part of the fingerprint: it changes the numbers by float rounding only (a
    # vmapped product rounds differently from one member's), so a search started on one machine may
    # resume on another.
    settings = {"strategy": strat.to_json(), "space": space.to_json(), "seed": int(seed), "data": setup.data_info,
                "shared_order": shared_order, "restore_best": restore_best,
                "data_seed": int(seed if data_seed is None else data_seed)}
    ckpt = Checkpoint(out, _fingerprint(settings)) if out is not None else None
    state = ckpt.load(setup) if ckpt is not None else None
    trials_done: list = state["trials"] if state else []
    done_stages = state["stages_done"] if state else 0
    best = state["best"] if state else None  # {"score", "stage", "trial", "params", "hp"} or member state
    model_epochs = state["model_epochs"] if state else 0
    from vtune.report import ProgressDisplay

    display = ProgressDisplay(planned, enabled=progress, metric=setup.metric)
    with display:
        display.advance(sum(s.model_epochs for s in stages[:done_stages]))
        remaining = list(range(done_stages, len(stages)))
        for group in ([remaining] if together and remaining else [[i] for i in remaining]):
            brackets = [stages[i] for i in group]
            marks = milestones(brackets)
            sizes = engine.plan_arrays(brackets)[0]  # [bracket, rung]: live members
            display.start_bracket(group[0], len(stages), [(int(sizes[:, i].sum()), m) for i, m in enumerate(marks)],
                                  last=group[-1])
            configs = [strat.configs(i, space, seed, trials_done) for i in group]
            # Every bracket's members, then the engine's padding slots (members repeated, as pad_hparams
            # pads: they train nothing), encoded at once: the initial weights are drawn straight into
            # the program's input, not concatenated and padded after (two more copies of every member's
            # weights: 6-80 ms for a digits search in a fresh process, mostly page faults).
            flat = [c for cs in configs for c in cs]
            seeds = np.concatenate([trial_seeds(seed, i, len(c)) for i, c in zip(group, configs)])
            rows = np.arange(engine.capacity) % len(flat)
            hp = setup.encode([flat[r] for r in rows], seeds[rows], strat.max_epochs)
            out_np = engine.run_together(setup.trainable, hp, brackets)
            model_epochs += int(out_np["model_epochs"])
            offset = 0
            for g, (index, bracket, cfgs) in enumerate(zip(group, brackets, configs)):
                columns = [marks.index(r.epochs) for r in bracket.rungs]
                part = {"rung_scores": out_np["rung_scores"][offset:offset + len(cfgs)][:, columns],
                        "curves": out_np["curves"][offset:offset + len(cfgs)]}
                trials_done = trials_done + _trial_records(part, cfgs, index, bracket, len(trials_done))
                score, tiebreak = float(out_np["best_score"][g]), float(out_np["best_tiebreak"][g])
                # An earlier stage keeps the lead on an exact tie of (score, tie-break).
                if best is None or (score, tiebreak) > (best["score"], best["tiebreak"]):
                    member = jax.tree.map(lambda x: x[g], out_np["best_member"])
                    best = {"score": score, "tiebreak": tiebreak, "stage": index, "trial": len(trials_done)
                            - len(cfgs) + int(out_np["best_trial"][g]) - offset, "member": member}
                offset += len(cfgs)
            if math.isfinite(best["score"]):
                display.set_best(best["score"])
            display.advance(sum(b.model_epochs for b in brackets))
            if ckpt is not None:
                ckpt.save(trials_done, group[-1] + 1, best, model_epochs)
    compiles = (engine.stats.count - compiles_before[0], engine.stats.seconds - compiles_before[1])
    result = _finish(setup, strat, seed, trials_done, best, model_epochs, planned, compiles,
                     time.perf_counter() - t_start)
    if out is not None:
        result.save(out)
    return result


def _check_memory(setup, engine, limit_gb) -> None:
    """Refuse (``ValueError``, with the estimate) an ``engine`` population of ``setup``'s trainable over
    the memory limit."""
    from vtune.memory import check_memory

    check_memory(setup.trainable, engine.capacity, engine.chunk, limit_gb=limit_gb,
                 devices=1 if engine.mesh is None else engine.mesh.size)


def _fits(setup, engine, limit_gb) -> bool:
    """Whether ``engine``'s population of ``setup``'s trainable fits the memory limit."""
    try:
        _check_memory(setup, engine, limit_gb)
    except ValueError:
        return False
    return True


#: Engines (each holding its compiled programs) reused by later searches of the same geometry in this
#: process, so a notebook or benchmark loop does not re-trace and re-compile the same program.
_ENGINES: dict = {}


def _engine(**kw) -> Engine:
    key = tuple(sorted((k, tuple(sorted(v.items())) if isinstance(v, Mapping) else v) for k, v in kw.items()))
    if key not in _ENGINES:
        _ENGINES[key] = Engine(**kw)
    return _ENGINES[key]


def _finish(setup, strat, seed, trials, best, model_epochs, planned, compiles, wall) -> Result:
    model = None
    best_info: dict = {"id": None, "config": None, "val_score": None, "test_score": None}
    status, message = "ok", ""
    if best is None or not math.isfinite(best["score"]):
        status = "all_diverged"
        message = ("every trial diverged (loss became NaN or infinite): lower the learning-rate range or "
                   "check the data scaling")
    else:
        record = trials[best["trial"]]
        best_info = {"id": record["id"], "config": record["config"], "val_score": best["score"], "test_score": None}
        member = best["member"]
        if setup.kind == "mlp":
            params, hp = setup.trainable.export(member)
            ds = setup.dataset
            # The model records its own activation only; its test score is what it predicts on the test
            # rows — in numpy, no compile (vtune.model.forward_host: a compiled JAX evaluation took
            # 0.15-0.17 s of a cold digits search until 2026-11-25, 0.03 s of a warm one).
            spec = {"task": ds.task, "num_features": ds.n_features, "num_outputs": ds.n_outputs,
                    "layout": list(setup.trainable.layout),
                    "activations": [ACTIVATIONS[int(np.asarray(hp["activation"]))]],
                    "shift": np.asarray(ds.shift).tolist(), "scale": np.asarray(ds.scale).tolist(),
                    "classes": None if ds.classes is None else np.asarray(ds.classes).tolist(),
                    "config": record["config"], "metric": setup.metric}
            model = Model(params, hp, spec)
            out = model.decision_function(np.asarray(ds.x_test), scaled=True)
            best_info["test_score"] = float(score_fn(ds.task, out, np.asarray(ds.y_test), xp=np))
    return Result(
        trials=trials, best=best_info, metric=setup.metric, task=setup.task, strategy=strat.to_json(),
        seed=int(seed), model_epochs=int(model_epochs), planned_model_epochs=int(planned), wall_s=float(wall),
        compile_s=float(compiles[1]), num_compiles=int(compiles[0]), data=setup.data_info,
        space=setup.space.to_json(), status=status, message=message, model=model,
        best_state=None if best is None else best["member"],
    )
