"""The compiled core: a whole bracket — train every rung, score, select, gather, train on — in one program.

``run_bracket`` is generic over the *trainable* (anything with ``init(hparams) -> state``,
``train_epoch(state, epoch) -> (state, scores [P])`` and ``score(state) -> [P]``, all over stacked member
states; the trainable itself is a pytree so its data are program arguments). The bracket's plan — rung
sizes, rung epochs, survivors — is *data*, not shape: every bracket of a Hyperband run, every round of
coarse-to-fine search and every grid/random batch of the same capacity reuses **one** compiled program.

How a rung runs inside the program, with static shapes only:

* The population lives in ``capacity`` slots (a multiple of ``chunk``). Slots ``[0, n_i)`` are the rung's
  members. The rung trains ``⌈n_i / chunk⌉`` chunks of ``chunk`` members one after another
  (``fori_loop`` with a traced trip count), each for ``r_i − r_{i−1}`` epochs (another traced loop), so
  the training code is compiled once, for ``chunk`` members, and the later, smaller rungs do not pay for
  the first rung's width. Within a chunk, members train side by side under ``vmap``.
* After the rung, every slot is ranked by (active first, score descending, trial id ascending) with a
  stable ``lexsort`` — NaN scores count as −inf — and the population is permuted so the top ``⌊n_i/η⌋``
  occupy the first slots: a static-shape gather. Ties go to the lower trial id.
* Every epoch's validation score lands in a ``[capacity, max_epochs]`` curve table, every rung's score in a
  ``[capacity, max_rungs]`` table, both indexed by trial. The state of the best (trial, rung) seen so far
  is kept aside (ties: the later rung, then the lower trial id), so the best model never needs retraining.

``chunk`` trades vectorisation against the padding of small rungs: a rung of ``n_i`` members computes
``⌈n_i/chunk⌉·chunk`` members. ``chunk = capacity`` is the fully vectorised program (best on accelerators).

Devices: with more than one device, each chunk is sharded over a one-axis mesh ``("pop",)`` (``jax.jit``
with ``NamedSharding``; a chunk is rounded up to a whole number of members per device). Members are
independent, so sharding changes where they train, never what they compute.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from vtune.plan import Bracket


def _take(tree, idx):
    return jax.tree.map(lambda x: jnp.take(x, idx, axis=0), tree)


def _slice(tree, start, size):
    return jax.tree.map(lambda x: jax.lax.dynamic_slice_in_dim(x, start, size, axis=0), tree)


def _update(tree, part, start):
    return jax.tree.map(lambda x, p: jax.lax.dynamic_update_slice_in_dim(x, p, start, axis=0), tree, part)


def train_epochs(trainable, state, first, count, carry, on_epoch):
    """Train ``count`` epochs from epoch ``first``; ``on_epoch(carry, epoch, scores)`` after each one.

    A trainable may provide its own ``train_epochs`` (the MLP picks a narrower compiled variant for a chunk
    of narrow members); otherwise this loops over ``train_epoch``.
    """
    own = getattr(trainable, "train_epochs", None)
    if own is not None:
        return own(state, first, count, carry, on_epoch)
    return epoch_loop(trainable, state, first, count, carry, on_epoch)


def epoch_loop(trainable, state, first, count, carry, on_epoch):
    """``fori_loop`` of ``train_epoch`` with a traced trip count."""

    def body(e, c):
        state, carry = c
        state, scores = trainable.train_epoch(state, first + e)
        return state, on_epoch(carry, first + e, scores)

    return jax.lax.fori_loop(0, count, body, (state, carry))


def rank_slots(scores, trial_ids, num_active):
    """Slot order: active slots first, by score descending (NaN as −inf), ties by lower trial id."""
    slots = jnp.arange(scores.shape[0])
    active = slots < num_active
    s = jnp.where(jnp.isnan(scores), -jnp.inf, scores)
    s = jnp.where(active, s, -jnp.inf)
    # lexsort: the last key is the primary one.
    return jnp.lexsort((trial_ids, -s, ~active))


def bracket_program(trainable, hparams, sizes, epochs, num_rungs, *, capacity: int, chunk: int,
                    max_rungs: int, max_epochs: int, mesh=None):
    """The traced body of one bracket (see module docstring). Returns a dict of arrays.

    Args (traced): ``hparams`` ``[capacity]`` leaves; ``sizes``/``epochs`` ``int32 [max_rungs]`` (rung sizes
    and cumulative epochs); ``num_rungs`` int32 scalar.
    """
    state = trainable.init(hparams)
    trial = jnp.arange(capacity, dtype=jnp.int32)
    curves = jnp.full((capacity, max_epochs), jnp.nan, jnp.float32)
    rung_scores = jnp.full((capacity, max_rungs), jnp.nan, jnp.float32)
    best_member = _take(state, jnp.zeros((), jnp.int32))
    best = (jnp.float32(-jnp.inf), jnp.int32(-1), jnp.int32(-1), best_member)
    trained = jnp.int32(0)  # member-epochs actually trained (live members only)

    def rung_body(i, carry):
        state, trial, curves, rung_scores, best, trained = carry
        n_i = sizes[i]
        done = jnp.where(i > 0, epochs[jnp.maximum(i - 1, 0)], 0)
        todo = epochs[i] - done
        num_chunks = (n_i + chunk - 1) // chunk

        def chunk_body(j, carry):
            state, curves = carry
            start = j * chunk
            part = _slice(state, start, chunk)
            if mesh is not None:
                # Spread the chunk's members over every device: each trains its share of the population.
                spec = NamedSharding(mesh, PartitionSpec("pop"))
                part = jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, spec), part)
            ids = jax.lax.dynamic_slice_in_dim(trial, start, chunk)
            live = (start + jnp.arange(chunk)) < n_i
            rows = jnp.where(live, ids, capacity)  # out of range: dropped

            def record(curves, epoch, scores):
                return curves.at[rows, epoch].set(scores, mode="drop")

            part, curves = train_epochs(trainable, part, done, todo, curves, record)
            return _update(state, part, start), curves

        state, curves = jax.lax.fori_loop(0, num_chunks, chunk_body, (state, curves))
        trained = trained + n_i * todo
        scores = trainable.score(state)
        order = rank_slots(scores, trial, n_i)
        live = jnp.arange(capacity) < n_i
        rung_scores = rung_scores.at[jnp.where(live, trial, capacity), i].set(
            jnp.where(jnp.isnan(scores), -jnp.inf, scores), mode="drop")
        top = order[0]
        top_score = jnp.where(jnp.isnan(scores[top]), -jnp.inf, scores[top])
        best_score, best_trial, best_rung, best_member = best
        better = top_score >= best_score
        best = (
            jnp.where(better, top_score, best_score),
            jnp.where(better, trial[top], best_trial),
            jnp.where(better, i, best_rung),
            jax.tree.map(lambda new, old: jnp.where(better, new, old), _take(state, top), best_member),
        )
        return _take(state, order), trial[order], curves, rung_scores, best, trained

    carry = (state, trial, curves, rung_scores, best, trained)
    _, _, curves, rung_scores, best, trained = jax.lax.fori_loop(0, num_rungs, rung_body, carry)
    best_score, best_trial, best_rung, best_member = best
    return {
        "curves": curves,
        "rung_scores": rung_scores,
        "best_score": best_score,
        "best_trial": best_trial,
        "best_rung": best_rung,
        "best_member": best_member,
        "model_epochs": trained,
    }


@dataclass
class CompileStats:
    """Compilations performed by an :class:`Engine`, and the seconds they took."""

    count: int = 0
    seconds: float = 0.0


class Engine:
    """Compiles the bracket program once per (trainable geometry, capacity, chunk) and runs brackets on it.

    Example:
        >>> engine = Engine(capacity=32, chunk=8, max_rungs=4, max_epochs=27)   # doctest: +SKIP
        >>> out = engine.run(trainable, hparams, bracket)                        # doctest: +SKIP
    """

    def __init__(self, *, capacity: int, chunk: int, max_rungs: int, max_epochs: int, mesh: Mesh | None = None):
        for name, value in (("capacity", capacity), ("chunk", chunk), ("max_rungs", max_rungs),
                            ("max_epochs", max_epochs)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if mesh is None and jax.device_count() > 1:
            mesh = Mesh(np.array(jax.devices()), ("pop",))
        num_devices = 1 if mesh is None else mesh.size
        chunk = min(int(chunk), int(capacity))
        # A chunk spreads over every device, so it holds a whole number of members per device.
        chunk = -(-chunk // num_devices) * num_devices
        self.mesh = mesh
        self.chunk = chunk
        self.capacity = -(-int(capacity) // chunk) * chunk
        self.max_rungs = int(max_rungs)
        self.max_epochs = int(max_epochs)
        self.stats = CompileStats()
        self._compiled: dict[Any, Any] = {}
        self._jitted = jax.jit(
            lambda tr, hp, sizes, epochs, num_rungs: bracket_program(
                tr, hp, sizes, epochs, num_rungs, capacity=self.capacity, chunk=self.chunk,
                max_rungs=self.max_rungs, max_epochs=self.max_epochs, mesh=self.mesh),
        )

    def plan_arrays(self, bracket: Bracket):
        """Rung sizes, cumulative epochs and rung count of ``bracket`` as int32 arrays."""
        rungs = bracket.rungs
        if len(rungs) > self.max_rungs:
            raise ValueError(f"bracket has {len(rungs)} rungs, the engine was built for {self.max_rungs}")
        if rungs[0].num_configs > self.capacity:
            raise ValueError(f"bracket has {rungs[0].num_configs} configs, capacity is {self.capacity}")
        if rungs[-1].epochs > self.max_epochs:
            raise ValueError(f"bracket trains {rungs[-1].epochs} epochs, the engine holds {self.max_epochs}")
        sizes = np.zeros(self.max_rungs, np.int32)
        epochs = np.zeros(self.max_rungs, np.int32)
        for i, r in enumerate(rungs):
            sizes[i], epochs[i] = r.num_configs, r.epochs
        return sizes, epochs, np.int32(len(rungs))

    def compiled(self, trainable, hparams):
        """The compiled program for this geometry (AOT: lower + compile, timed and counted)."""
        leaves, treedef = jax.tree.flatten((trainable, hparams))
        key = (treedef, tuple((np.shape(x), np.asarray(x).dtype if not hasattr(x, "dtype") else x.dtype) for x in leaves))
        if key not in self._compiled:
            sizes = np.zeros(self.max_rungs, np.int32)
            t0 = time.perf_counter()
            lowered = self._jitted.lower(trainable, hparams, sizes, sizes, np.int32(1))
            self._compiled[key] = lowered.compile()
            self.stats.count += 1
            self.stats.seconds += time.perf_counter() - t0
        return self._compiled[key]

    def run(self, trainable, hparams: Mapping[str, Any], bracket: Bracket) -> dict:
        """Run one bracket on ``hparams`` (``capacity`` rows, already padded); returns numpy results."""
        sizes, epochs, num_rungs = self.plan_arrays(bracket)
        program = self.compiled(trainable, hparams)
        out = program(trainable, hparams, sizes, epochs, num_rungs)
        return jax.device_get(out)
