"""The MLP population as a *trainable*: ``init`` / ``train_epoch`` / ``score`` over stacked member states.

``MLPTrainable`` is a ``flax.struct.PyTreeNode``: the data splits are pytree leaves (so a compiled program
takes them as arguments, never as baked-in constants) and everything that fixes a shape or a loop length is
a static field. Two trainables with the same static fields and array shapes share one compiled program.

Batch sizes. Every member's batch is a multiple ``k`` of the static ``micro_batch`` (the smallest batch in the
space). The loop steps over micro-batches; a member with batch ``k·micro_batch`` sums the gradients of ``k``
consecutive micro-batches and applies one update with their mean — the same arithmetic as a real batch of
that size, up to float reassociation. Like a ``drop_last`` data loader, a member runs ``⌊N / batch⌋``
updates per epoch; the trailing micro-batches that do not fill a batch are discarded.

Data order. By default the whole population shares one mini-batch order per epoch (common random numbers:
configurations are compared on the same batches, and the first layer of every member reads the same
``[B, D]`` rows, which XLA fuses into one wide ``[B, D] @ [D, P·W]`` product). ``shared_order=False`` gives
each member its own order drawn from its seed.

Divergence. A member whose training loss or validation score turns NaN/inf is frozen (no further updates),
flagged ``diverged`` and scores ``-inf``; members are independent, so the others' numbers are untouched.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from vtune import hparams as hpmod
from vtune import rng
from vtune.devices import host_array
from vtune.losses import LOSS_IDS, loss_fn, score as score_fn, task_loss
from vtune.engine import epoch_loop
from vtune.model import (ACTIVATION_IDS, INIT_IDS, Layout, dropout_key, forward, init_member,
                          from_views, init_population_host, narrow_views, tier_weights, tier_width, to_views,
                          widen,
                          weight_mask, widest_layer)
from vtune.packed import PackedHParams
from vtune.optim import OPTIMIZER_IDS, PopulationOptState, init_state_for, population_optimizer
from vtune.schedules import SCHEDULE_IDS, learning_rate

_ORDER_TAG = 2

#: Fixed cost of a member's micro-step, in multiply-adds per row (see :meth:`MLPTrainable.cost`): the
#: kernels of a step cost time whatever their size. Fitted on the 2-core development CPU (digits, one
#: member alone on one core, batch 64): an epoch takes about 1.5 ms plus 2.6e-4 ms per padded
#: multiply-add per row, from 2.7 ms (16 units in the 64 tier, 1 layer) to 43 ms (256 units, 3 layers);
#: 1.5 ms is the time of about 5,800 multiply-adds per row. Re-checked on the Zen 5 development CPU
#: (2026-11-25; only the deal depends on it, never the numbers): the 20,000-row benchmark search, two
#: warm runs per setting, two rounds alternating, warm s: 2,000 → 5.87 5.90 / 5.75 5.88; 6,000 → 5.70
#: 5.75 / 5.65 5.70; 20,000 → 5.83 5.73 / 5.97 5.89; 60,000 → 5.92 5.92 / 5.82 5.71 — none better.
STEP_FLOOR = 6000.0

#: Float hyperparameters the engine reads (arrays ``float32 [P]``).
FLOAT_HPARAMS = (
    "learning_rate", "momentum", "beta2", "rho", "eps", "init_scale", "dropout", "weight_decay",
    "decay_rate", "step_factor", "step_epochs", "warmup_epochs", "cosine_epochs", "restart_epochs",
    "restart_mult", "min_lr_ratio", "huber_delta", "min_delta",
)
_ID_TABLES = {
    "optimizer": OPTIMIZER_IDS,
    "activation": ACTIVATION_IDS,
    "init": INIT_IDS,
    "schedule": SCHEDULE_IDS,
    "loss": LOSS_IDS,
}


class MemberState(NamedTuple):
    """Training state of one member (a population adds a leading ``[P]`` axis to every leaf)."""

    # float32 [num_params]: the flat parameter vector (see vtune.model.Layout); inside an epoch loop this and
    # every other parameter-sized buffer are in vtune.model.to_views form (one array per weight matrix).
    params: Any
    opt: PopulationOptState
    acc: Any  # summed micro-batch gradients (None when no member accumulates)
    best_params: Any  # params at the best validation score (None without restore_best)
    best_score: jnp.ndarray  # float32
    best_loss: jnp.ndarray  # float32: validation loss at the best epoch (the tie-break; +inf before any)
    bad_epochs: jnp.ndarray  # int32: epochs since the last improvement
    stopped: jnp.ndarray  # bool: early-stopped
    diverged: jnp.ndarray  # bool: loss became NaN/inf
    epochs: jnp.ndarray  # int32: epochs trained
    last_score: jnp.ndarray  # float32: validation score after the latest epoch (NaN if diverged)
    last_loss: jnp.ndarray  # float32: validation loss after the latest epoch
    hp: Mapping[str, jnp.ndarray]  # vtune.packed.PackedHParams: two arrays, read like a dict


# The engine keeps lowered bracket programs with ``jax.export`` (see vtune.engine); their outputs hold
# these named tuples, which export serialises only under registered names.
jax.export.register_namedtuple_serialization(MemberState, serialized_name="vtune.train.MemberState")
jax.export.register_namedtuple_serialization(PopulationOptState, serialized_name="vtune.optim.PopulationOptState")


def encode_hparams(configs: Sequence[Mapping[str, Any]], *, task: str, max_layers: int, micro_batch: int,
                   max_epochs: int | None = None, seeds: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """Complete, check and stack configurations into the ``hparams`` pytree (numpy, leading ``[P]`` axis).

    Raises ``ValueError``/``TypeError`` naming the field for any bad value.
    """
    if len(configs) == 0:
        raise ValueError("a population needs at least one configuration, got 0")
    full = [hpmod.complete_config(c, task=task, max_epochs=max_epochs) for c in configs]
    out: dict[str, np.ndarray] = {}
    for name in FLOAT_HPARAMS:
        out[name] = np.array([c[name] for c in full], np.float32)
    for name, table in _ID_TABLES.items():
        out[name] = np.array([table[c[name]] for c in full], np.int32)
    out["num_layers"] = np.array([c["num_layers"] for c in full], np.int32)
    if out["num_layers"].max() > max_layers:
        raise ValueError(f"num_layers={int(out['num_layers'].max())} exceeds max_layers={max_layers}")
    out["units"] = np.array([[c[f"units_{i + 1}"] for i in range(max_layers)] for c in full], np.int32)
    batch = np.array([c["batch_size"] for c in full], np.int64)
    if np.any(batch % micro_batch):
        bad = int(batch[np.argmax(batch % micro_batch != 0)])
        raise ValueError(f"batch_size={bad} is not a multiple of the micro-batch {micro_batch}")
    out["accum"] = (batch // micro_batch).astype(np.int32)
    out["patience"] = np.array([c["patience"] for c in full], np.int32)
    if seeds is None:
        seeds = range(len(full))
    out["seed"] = np.asarray(list(seeds), np.uint32)
    return out


class MLPTrainable(struct.PyTreeNode):
    """A population of padded MLPs on one data set. Build with :meth:`create`.

    Example:
        >>> import vtune, numpy as np
        >>> from vtune.train import MLPTrainable, encode_hparams
        >>> ds = vtune.data.load_dataset("xor")
        >>> tr = MLPTrainable.create(ds, max_layers=1, max_units=8, micro_batch=4)
        >>> hp = encode_hparams([{"units": 8, "num_layers": 1, "batch_size": 4}], task=ds.task,
        ...                     max_layers=1, micro_batch=4)
        >>> state = tr.init(hp)
        >>> state, scores = tr.train_epoch(state, 0)
    """

    x_train: jax.Array
    y_train: jax.Array
    x_val: jax.Array
    y_val: jax.Array
    data_seed: jax.Array  # uint32 [] seed of the shared mini-batch order
    task: str = struct.field(pytree_node=False)
    num_features: int = struct.field(pytree_node=False)
    num_outputs: int = struct.field(pytree_node=False)
    max_layers: int = struct.field(pytree_node=False)
    max_units: int = struct.field(pytree_node=False)
    micro_batch: int = struct.field(pytree_node=False)
    optimizers: tuple = struct.field(pytree_node=False, default=hpmod.OPTIMIZERS)
    activations: tuple = struct.field(pytree_node=False, default=hpmod.ACTIVATIONS)
    schedules: tuple = struct.field(pytree_node=False, default=hpmod.SCHEDULES)
    losses: tuple = struct.field(pytree_node=False, default=("cross_entropy",))
    use_dropout: bool = struct.field(pytree_node=False, default=True)
    accumulate: bool = struct.field(pytree_node=False, default=True)
    shared_order: bool = struct.field(pytree_node=False, default=True)
    restore_best: bool = struct.field(pytree_node=False, default=True)
    eval_block: int = struct.field(pytree_node=False, default=2048)
    width_tiers: tuple = struct.field(pytree_node=False, default=())
    fuse_rules: bool = struct.field(pytree_node=False, default=False)  # see vtune.optim.FUSE_RULES
    # int32 [epochs, N]: the shared order of every epoch, drawn once per program (see :meth:`prepare`);
    # None: each epoch draws its own.
    orders: Any = struct.field(default=None)

    @classmethod
    def create(cls, dataset, *, max_layers: int, max_units: int, micro_batch: int, data_seed: int = 0,
               optimizers: Sequence[str] = hpmod.OPTIMIZERS, activations: Sequence[str] = hpmod.ACTIVATIONS,
               schedules: Sequence[str] = hpmod.SCHEDULES, losses: Sequence[str] | None = None,
               use_dropout: bool = True, accumulate: bool = True, shared_order: bool = True,
               restore_best: bool = True, width_tiers: Sequence[int] | None = None) -> "MLPTrainable":
        """A trainable for ``dataset`` (a :class:`vtune.data.Dataset`) with the given static geometry."""
        for name, value in (("max_layers", max_layers), ("max_units", max_units), ("micro_batch", micro_batch)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if max_layers > hpmod.MAX_LAYERS:
            raise ValueError(f"max_layers={max_layers} exceeds the supported {hpmod.MAX_LAYERS}")
        n_train = len(dataset.x_train)
        if micro_batch > n_train:
            raise ValueError(
                f"batch_size={micro_batch} is larger than the training split ({n_train} rows)"
            )
        if losses is None:
            losses = hpmod.TASK_LOSSES[dataset.task]
        y_dtype = jnp.int32 if dataset.task in ("classification", "binary") else jnp.float32
        return cls(
            x_train=jnp.asarray(dataset.x_train, jnp.float32),
            y_train=jnp.asarray(dataset.y_train, y_dtype),
            x_val=jnp.asarray(dataset.x_val, jnp.float32),
            y_val=jnp.asarray(dataset.y_val, y_dtype),
            data_seed=jnp.uint32(data_seed),
            task=dataset.task,
            num_features=int(dataset.n_features),
            num_outputs=int(dataset.n_outputs),
            max_layers=int(max_layers),
            max_units=int(max_units),
            micro_batch=int(micro_batch),
            optimizers=tuple(optimizers),
            activations=tuple(activations),
            schedules=tuple(schedules),
            losses=tuple(losses),
            use_dropout=bool(use_dropout),
            accumulate=bool(accumulate),
            shared_order=bool(shared_order),
            restore_best=bool(restore_best),
            width_tiers=default_width_tiers(int(max_units)) if width_tiers is None else tuple(
                sorted(int(w) for w in width_tiers if int(w) < int(max_units))),
        )

    def program_key(self) -> str:
        """The static fields, as text: with the array shapes they fix the compiled program (the engine's
        export cache keys on it)."""
        return json.dumps({f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                           if not f.metadata.get("pytree_node", True)}, sort_keys=True, default=list)

    # ----------------------------------------------------------------------------------- geometry
    @property
    def micro_steps(self) -> int:
        """Micro-batches per epoch (static)."""
        return self.x_train.shape[0] // self.micro_batch

    @property
    def layout(self) -> Layout:
        return Layout(self.num_features, self.max_layers, self.max_units, self.num_outputs)

    def _opt(self):
        return population_optimizer(optimizers=self.optimizers, decay_mask=weight_mask(self.layout),
                                    fuse=self.fuse_rules)

    # ----------------------------------------------------------------------------------- init
    def init(self, hparams: Mapping[str, jnp.ndarray]) -> MemberState:
        """Stacked initial states ``[P]`` for ``hparams`` (each member keyed by its own ``seed``).

        If ``hparams`` holds ``params0 [P, num_params]`` (see :meth:`host_init`), those are the initial
        weights; otherwise they are drawn inside the program (the same numbers, up to float rounding).
        """
        hparams = dict(hparams)
        params0 = hparams.pop("params0", None)
        hparams = PackedHParams.pack(hparams, batch_dims=1)
        if params0 is None:
            params0 = jax.vmap(lambda hp: init_member(hp["seed"], hp, self.layout))(hparams)
        return jax.vmap(self._init_member)(hparams, params0)

    def host_init(self, hparams: Mapping[str, np.ndarray]) -> dict:
        """``hparams`` plus ``params0``: the initial weights drawn on the host with numpy."""
        return {**hparams, "params0": init_population_host(hparams, self.layout)}

    def _init_member(self, hp, params) -> MemberState:
        opt = init_state_for(self._opt(), params, hp["optimizer"])
        zeros = jnp.zeros_like(params)
        return MemberState(
            params=params,
            opt=opt,
            acc=zeros if self.accumulate else None,
            best_params=params if self.restore_best else None,
            best_score=jnp.float32(-jnp.inf),
            best_loss=jnp.float32(jnp.inf),
            bad_epochs=jnp.int32(0),
            stopped=jnp.bool_(False),
            diverged=jnp.bool_(False),
            epochs=jnp.int32(0),
            last_score=jnp.float32(jnp.nan),
            last_loss=jnp.float32(jnp.nan),
            hp=hp,
        )

    # ----------------------------------------------------------------------------------- training
    def _member_step(self, st: MemberState, xb, yb, epoch, j) -> MemberState:
        """One micro-batch step of one member whose buffers are in :func:`vtune.model.to_views` form."""
        hp = st.hp
        dkey = dropout_key(hp["seed"], epoch, j) if self.use_dropout else None

        def loss_of(params):
            out = forward(params, hp, xb, self.layout, activations=self.activations, dropout_key=dkey)
            return loss_fn(out, yb, hp["loss"], hp["huber_delta"], losses=self.losses)

        loss, grads = jax.value_and_grad(loss_of)(st.params)
        k = hp["accum"]
        if self.accumulate:
            acc = jax.tree.map(lambda g, a: jnp.where((j % k) == 0, g, a + g), grads, st.acc)
            apply = (j % k) == (k - 1)
            grads = jax.tree.map(lambda a: a / k.astype(a.dtype), acc)
        else:
            acc, apply = st.acc, jnp.bool_(True)
        updates_per_epoch = jnp.maximum(self.x_train.shape[0] // (k * self.micro_batch), 1)
        t = st.opt.count.astype(jnp.float32) / updates_per_epoch.astype(jnp.float32)
        lr = learning_rate(t, hp, schedules=self.schedules)
        # A NaN/inf loss makes the member diverged and skips its update (its weights stay as they were).
        # Nothing else is checked per step: a finite loss whose update overflows the weights (or whose
        # gradient is NaN) gives a non-finite loss at the next step, or a non-finite validation score at
        # the end of the epoch, so the member is flagged diverged in the same epoch either way. Checking
        # the new weights for inf/NaN at every step cost a reduction over all parameters between the
        # update and its selection (measured: 18% of a width-128 member's epoch on digits).
        active = ~(st.stopped | st.diverged)
        finite = jnp.isfinite(loss)
        do = active & apply & finite
        params, opt = self._update(grads, st.opt, st.params, hp, lr, do)
        return st._replace(params=params, opt=opt, acc=acc, diverged=st.diverged | (active & ~finite))

    def _update(self, grads, opt_state, params, hp, lr, do):
        """The optimizer step on :func:`vtune.model.to_views` buffers, skipping the hidden layers past the
        member's depth, and skipping it all on a micro-step that applies no update (``do`` false: a
        micro-batch being accumulated, or a stopped or diverged member). Alone on its core the ``cond``
        is a real branch; it replaced a select of old and new values per buffer (plus a copy), a pass
        over every buffer each micro-step.

        Alone on its device (the CPU path) a member's ``cond`` really skips them: a depth-1 member in a
        3-layer program no longer runs its optimizer, nor the selections, over the two ``W x W`` matrices
        it does not use (measured at width 256 on the 20k-row task: 254 -> 107 ms per epoch; a depth-3
        member gains too, 576 -> 499 ms, as its weights are no longer sliced out of one vector and their
        gradients concatenated back every step). Under ``vmap`` the ``cond`` is a select: the same numbers.
        A padded layer's weights are exact zeros with zero gradients, so its update would be zero anyway;
        its optimizer buffers keep their starting values, and the step count is the member's, shared.
        """
        count = opt_state.count
        bufs = (params, opt_state.m, opt_state.v, opt_state.w)  # an optimizer buffer no rule reads is None

        def update(mask, g, p, m, v, w):
            opt = population_optimizer(optimizers=self.optimizers, decay_mask=mask, fuse=self.fuse_rules)
            upd, new = opt.update(g, PopulationOptState(count=count, m=m, v=v, w=w), p, hparams=hp,
                                  learning_rate=lr)
            return jax.tree.map(jnp.add, p, upd), new.m, new.v, new.w

        skip = lambda g, p, m, v, w: (p, m, v, w)

        def pieces(get, trees):
            return tuple(None if t is None else get(t) for t in trees)

        last = self.max_layers  # index of the output layer's matrix in views["w"]
        ws = [None if t is None else list(t["w"]) for t in bufs]
        bs = [None if t is None else t["b"] for t in bufs]
        # Always present: hidden layer 0, the output layer and every bias (one small vector).
        head = lambda t: (t["w"][0], t["w"][last], t["b"])
        head_out = jax.lax.cond(do, functools.partial(update, (True, True, False)), skip, head(grads),
                                *pieces(head, bufs))
        for k, r in enumerate(head_out):
            if r is not None:
                ws[k][0], ws[k][last], bs[k] = r
        for l in range(1, self.max_layers):
            layer = lambda t: t["w"][l]
            res = jax.lax.cond(do & (l < hp["num_layers"]), functools.partial(update, True), skip,
                               layer(grads), *pieces(layer, bufs))
            for k, r in enumerate(res):
                if r is not None:
                    ws[k][l] = r
        new = [None if t is None else {"w": tuple(ws[k]), "b": bs[k]} for k, t in enumerate(bufs)]
        new_count = jnp.where(do, optax.safe_increment(count), count)
        return new[0], PopulationOptState(count=new_count, m=new[1], v=new[2], w=new[3])

    def train_epoch(self, state: MemberState, epoch) -> tuple[MemberState, jnp.ndarray]:
        """Train every member for one epoch, then validate: ``(state, scores float32 [P])``.

        ``epoch`` (int, may be traced) is the index of the epoch being trained; it seeds the mini-batch
        order and dropout. ``scores`` are this epoch's validation scores (NaN for diverged members).
        """
        if not isinstance(state.params, Mapping):  # the resident (flat) state: this epoch on views
            state, scores = self.train_epoch(self._to_views(state), epoch)
            return self._to_flat(state), scores
        n, b = self.x_train.shape[0], self.micro_batch
        epoch = jnp.asarray(epoch, jnp.int32)
        if self.shared_order:
            order = self.shared_order_of(epoch) if self.orders is None else self.orders[epoch]
        else:
            def member_order(seed):
                k = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), _ORDER_TAG), epoch)
                return jax.random.permutation(k, n)
            order = jax.vmap(member_order)(state.hp["seed"])  # [P, N]

        if state.epochs.shape[0] == 1:
            # One member per chunk: run it unbatched, so per-layer ``cond`` really skips inactive layers.
            def step_fn(st, xb, yb, epoch, j):
                one = jax.tree.map(lambda x: x[0], st)
                if not self.shared_order:
                    xb, yb = xb[0], yb[0]
                return jax.tree.map(lambda x: x[None], self._member_step(one, xb, yb, epoch, j))
        else:
            step_fn = jax.vmap(self._member_step, in_axes=(0, None if self.shared_order else 0,
                                                             None if self.shared_order else 0, None, None))

        def body(st, j):
            if self.shared_order:
                idx = jax.lax.dynamic_slice(order, (j * b,), (b,))
            else:
                idx = jax.lax.dynamic_slice(order, (0, j * b), (order.shape[0], b))
            st = step_fn(st, self.x_train[idx], self.y_train[idx], epoch, j)
            return st, None

        state, _ = jax.lax.scan(body, state, jnp.arange(self.micro_steps, dtype=jnp.int32))
        scores, losses = self.validate_with_loss(state.params, state.hp)
        return self._after_epoch(state, scores, losses)

    def shared_order_of(self, epoch) -> jnp.ndarray:
        """``int32 [N]``: the shared mini-batch order of ``epoch`` (a permutation of the training rows)."""
        key = jax.random.fold_in(jax.random.key(self.data_seed), jnp.asarray(epoch, jnp.int32))
        return jax.random.permutation(key, self.x_train.shape[0]).astype(jnp.int32)

    def with_orders(self, epochs: int) -> "MLPTrainable":
        """This trainable holding the shared order of epochs ``0 … epochs − 1`` (:meth:`shared_order_of`),
        computed on the host with numpy (:func:`vtune.rng.jax_permutation`, the same numbers; ``vtune.tune``
        calls it before a search). A program then takes the orders as data: drawn inside it (threefry and
        a sort, :meth:`prepare`), they cost the digits search 0.17-0.3 s of compile (alternating cold
        runs, 2026-11-25). ``vtune.tune`` calls it up to ``HOST_ORDERS_MAX`` entries (epochs x rows)."""
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
        if not self.shared_order:
            return self
        n, seed = self.x_train.shape[0], int(np.asarray(self.data_seed))
        rows = [rng.jax_permutation(seed, e, n) for e in range(int(epochs))]
        if any(r is None for r in rows):  # a JAX configuration the numpy twin does not follow: ask JAX
            return self.replace(orders=None).prepare(int(epochs))
        return self.replace(orders=np.stack(rows))

    def prepare(self, max_epochs: int) -> "MLPTrainable":
        """This trainable with the shared order of epochs ``0 … max_epochs − 1`` drawn up front (the engine
        calls it once at the top of a program), unless it holds them already (:meth:`with_orders`). The
        same permutations as drawing each epoch's inside the epoch loop, but the shuffle is compiled once
        instead of once per width tier, and runs once per bracket instead of once per member and epoch."""
        if not self.shared_order or (self.orders is not None and self.orders.shape[0] >= max_epochs):
            return self
        return self.replace(orders=jax.vmap(self.shared_order_of)(jnp.arange(max_epochs, dtype=jnp.int32)))

    # ----------------------------------------------------------------------------------- width tiers
    def train_epochs(self, state: MemberState, first, count, carry, on_epoch):
        """Train a chunk ``count`` epochs, compiled at the narrowest width tier that holds its widest member.

        ``lax.switch`` on a chunk-level index is a real branch (not a vmapped select): a chunk of narrow
        members runs the narrow variant, whose matrices and optimizer buffers are a fraction of the
        padded ones. Repacking the buffers happens once per rung, not per step. Results are identical to
        the padded program (the padded entries are exact zeros either way).
        """
        if not self.width_tiers:
            views, carry = epoch_loop(self, self._to_views(state), first, count, carry, on_epoch)
            return self._to_flat(views), carry
        hp = state.hp
        need = jnp.max(widest_layer(hp["num_layers"], hp["units"]))
        tiers = tuple(self.width_tiers) + (self.max_units,)
        index = sum((need > w).astype(jnp.int32) for w in tiers[:-1])

        def branch(width):
            def run(state, carry):
                if width == self.max_units:
                    return self.replace(width_tiers=()).train_epochs(state, first, count, carry, on_epoch)
                inner = self.replace(max_units=width, width_tiers=())
                full, small = self.layout, inner.layout
                views = self._map_buffers(lambda x: narrow_views(x, full, small), state, state)
                views, carry = epoch_loop(inner, views, first, count, carry, on_epoch)
                return self._map_buffers(lambda v: widen(v, full, small), views, views), carry
            return run

        return jax.lax.switch(index, [branch(w) for w in tiers], state, carry)

    def _map_buffers(self, fn, target: MemberState, *sources: MemberState) -> MemberState:
        """``target`` with every parameter-sized buffer replaced by ``fn(*that buffer of each source)``."""
        get = {
            "params": lambda st: st.params,
            "m": lambda st: st.opt.m,
            "v": lambda st: st.opt.v,
            "w": lambda st: st.opt.w,
        }
        if self.accumulate:
            get["acc"] = lambda st: st.acc
        if self.restore_best:
            get["best_params"] = lambda st: st.best_params
        new = {name: (None if g(sources[0]) is None else fn(*(g(src) for src in sources)))
               for name, g in get.items()}
        opt = target.opt._replace(m=new.pop("m"), v=new.pop("v"), w=new.pop("w"))
        return target._replace(opt=opt, **new)

    def _to_views(self, state: MemberState) -> MemberState:
        """Every parameter-sized buffer in :func:`vtune.model.to_views` form, for the epoch loop (once per
        call of :meth:`train_epochs`, not per step)."""
        return self._map_buffers(lambda x: to_views(x, self.layout), state, state)

    def _to_flat(self, state: MemberState) -> MemberState:
        """Inverse of :meth:`_to_views`: the flat vectors the bracket program keeps."""
        return self._map_buffers(lambda x: from_views(x, self.layout), state, state)

    def _after_epoch(self, state: MemberState, scores, losses):
        """Early-stopping bookkeeping after an epoch.

        An epoch *improves* on the best when its score beats the best by more than ``min_delta``, or equals
        the best exactly with a lower validation loss. Accuracy on a few hundred validation rows moves in
        steps of 1/N_val, so exact ties are common; the loss breaks them in favour of the more confident
        (lower cross-entropy) weights, for the restore point as for selection (see :meth:`tiebreak`).
        """
        diverged = state.diverged | ~jnp.isfinite(scores)
        scores = jnp.where(diverged, jnp.nan, scores)
        losses = jnp.where(diverged | ~jnp.isfinite(losses), jnp.inf, losses)
        improved = ~diverged & ((scores > state.best_score + state.hp["min_delta"])
                                | ((scores == state.best_score) & (losses < state.best_loss)))
        best_score = jnp.where(improved, scores, state.best_score)
        best_loss = jnp.where(improved, losses, state.best_loss)
        best_params = state.best_params
        if self.restore_best:
            best_params = jax.tree.map(
                lambda p, b: jnp.where(improved.reshape((-1,) + (1,) * (p.ndim - 1)), p, b),
                state.params, state.best_params)
        bad = jnp.where(improved, 0, state.bad_epochs + 1)
        patience = state.hp["patience"]
        stopped = state.stopped | ((patience > 0) & (bad >= patience))
        state = state._replace(best_params=best_params, best_score=best_score, best_loss=best_loss,
                               bad_epochs=bad, stopped=stopped, diverged=diverged, epochs=state.epochs + 1,
                               last_score=scores, last_loss=losses)
        return state, scores

    def moving(self, state: MemberState) -> MemberState:
        """The part of a state that training changes: all of it but the hyperparameters (see
        :func:`vtune.engine.moving_part`)."""
        return state._replace(hp=None)

    def score(self, state: MemberState) -> jnp.ndarray:
        """Selection score ``[P]``: best validation score so far (restore_best) or the latest; −inf if diverged."""
        s = state.best_score if self.restore_best else state.last_score
        return jnp.where(state.diverged | ~jnp.isfinite(s), -jnp.inf, s)

    def cost(self, state: MemberState) -> jnp.ndarray:
        """Relative cost of an epoch ``[P]``, in multiply-adds per training row: the padded products a member
        really computes (its own layers, at the width of the tier it trains in) plus :data:`STEP_FLOOR`.
        The engine deals members to devices by it (:func:`vtune.engine.deal`), so that the devices finish a
        rung close together."""
        hp = state.hp
        tiers = jnp.asarray(tuple(self.width_tiers) + (self.max_units,), jnp.int32)
        at = tier_width(widest_layer(hp["num_layers"], hp["units"]), tiers).astype(jnp.float32)
        depth = jnp.clip(hp["num_layers"], 1, self.max_layers).astype(jnp.float32)
        return tier_weights(self.num_features, self.num_outputs, depth, at) + STEP_FLOOR

    def tiebreak(self, state: MemberState) -> jnp.ndarray:
        """Secondary selection key ``[P]`` (higher is better): minus the validation loss of the weights that
        :meth:`score` describes. Members with equal scores are ranked by it before the trial id."""
        loss = state.best_loss if self.restore_best else state.last_loss
        return jnp.where(state.diverged | ~jnp.isfinite(loss), -jnp.inf, -loss)

    # ----------------------------------------------------------------------------------- evaluation
    def validate(self, params, hp) -> jnp.ndarray:
        """Validation scores ``[P]`` of stacked ``params``."""
        return self.validate_with_loss(params, hp)[0]

    def validate_with_loss(self, params, hp):
        """Validation ``(scores [P], losses [P])`` of stacked ``params`` (losses: :func:`task_loss`)."""
        return jax.vmap(lambda p, h: self.evaluate_member(p, h, self.x_val, self.y_val, with_loss=True))(params, hp)

    def evaluate_member(self, params, hp, x, y, *, with_loss: bool = False):
        """Score (accuracy or R²) of one member on ``x [N, D]``, ``y``, evaluated in row blocks; with
        ``with_loss`` also the task's reference loss (:func:`vtune.losses.task_loss`), as ``(score, loss)``."""
        n = x.shape[0]
        block = min(self.eval_block, n)
        fwd = lambda xb: forward(params, hp, xb, self.layout, activations=self.activations)
        num_blocks = -(-n // block)
        pad = num_blocks * block - n
        xp = jnp.pad(x, ((0, pad), (0, 0))).reshape(num_blocks, block, -1)
        if n <= block or self.task == "regression":
            # R² needs every output at once: compute them block by block, then score the [N, T] whole.
            out = fwd(x) if n <= block else jax.lax.map(fwd, xp).reshape(num_blocks * block, -1)[:n]
            s = score_fn(self.task, out, y)
            return (s, task_loss(self.task, out, y)) if with_loss else s
        yp = jnp.pad(y, (0, pad)).reshape(num_blocks, block)
        valid = (jnp.arange(num_blocks * block) < n).reshape(num_blocks, block)

        def body(totals, args):
            correct, loss = totals
            xb, yb, vb = args
            out = fwd(xb)
            pred = jnp.argmax(out, -1) if self.task == "classification" else (out[:, 0] > 0).astype(jnp.int32)
            rows = task_loss(self.task, out, yb, reduce=False)
            return (correct + jnp.sum((pred == yb) & vb), loss + jnp.sum(jnp.where(vb, rows, 0.0))), None

        (correct, loss), _ = jax.lax.scan(body, (jnp.int32(0), jnp.float32(0.0)), (xp, yp, valid))
        s = correct.astype(jnp.float32) / n
        return (s, loss / n) if with_loss else s

    def export(self, member: MemberState):
        """``(params, hp)`` of one member's model: its best weights under restore_best, else the latest."""
        params = member.best_params if self.restore_best else member.params
        return params, member.hp

    def predict_member(self, params, hp, x) -> jnp.ndarray:
        """Raw outputs ``[N, C]`` of one member."""
        return forward(params, hp, x, self.layout, activations=self.activations)


#: At most this many candidate tiers for ``vtune.tune``'s automatic choice (it scores every subset).
MAX_TIER_CANDIDATES = 8


def tier_candidates(max_units: int) -> tuple:
    """The width tiers ``vtune.tune``'s automatic choice (``width_tiers="auto"``) picks from: every width
    of the ladder 32, 48, 64, 96, 128, 192, … (ratio ≈ 1.5) below ``max_units`` — powers of two alone where
    that ladder has more than :data:`MAX_TIER_CANDIDATES` rungs. Finer than :func:`default_width_tiers`, so
    that a long search can cut padding further (a member of 150 units pads to 192, not 256); a short one
    keeps no more tiers than their compile time repays (``_Setup.auto_tiers``).

        >>> tier_candidates(256), tier_candidates(64), tier_candidates(32)
        ((32, 48, 64, 96, 128, 192), (32, 48), ())
    """
    max_units = int(max_units)
    ladder = sorted({w for p in range(5, 40) for w in (2**p, 3 * 2 ** (p - 1)) if 32 <= w < max_units})
    if len(ladder) > MAX_TIER_CANDIDATES:
        ladder = [w for w in ladder if w & (w - 1) == 0][-MAX_TIER_CANDIDATES:]
    return tuple(ladder)


def default_width_tiers(max_units: int) -> tuple:
    """Narrower compiled variants for chunks of narrow members: ``max_units/4`` and ``max_units/2``, when
    at least 32 wide (each variant costs one more compile of the training step, so two is the default)."""
    return tuple(w for w in (max_units // 4, max_units // 2) if w >= 32)


def pad_hparams(hparams: Mapping[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """Repeat members cyclically so that every leaf has ``size`` rows (padding slots compute valid numbers).
    Leaves already ``size`` long are kept as they are; padded ones are aligned for JAX's CPU devices to read
    in place (:func:`vtune.devices.host_array`)."""
    n = len(next(iter(hparams.values())))
    if n == size:
        return dict(hparams)
    idx = np.arange(size) % n

    def pad(v):
        v = np.asarray(v)
        return np.take(v, idx, axis=0, out=host_array((size,) + v.shape[1:], v.dtype))

    return {k: pad(v) for k, v in hparams.items()}
