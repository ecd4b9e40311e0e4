"""A plain, one-member MLP trainer on the *true* (unpadded) shapes: the independent twin of the engine.

Nothing here is padded, masked, vmapped or accumulated. The network is a list of ``{"w", "b"}`` dicts of
the member's real widths, the forward pass writes each activation out, the loss is a hand-written softmax
cross-entropy differentiated by ``jax.grad``, every update sees a *real* batch of ``batch_size`` rows
(``drop_last``: ``⌊N / batch_size⌋`` updates per epoch), and the optimizer is the plain optax one
(:func:`vtune.optim.reference_optax`) driven by an optax-style schedule ``count -> lr`` written here from
the formulas in the :mod:`vtune.schedules` docstring (time in epochs = count / updates per epoch).

From vtune it borrows only the random numbers and the data order, which it must share with the engine to be
comparable at all:

* the initial weights (the engine's, sliced to the true block: :func:`true_params`);
* the dropout masks: the number at ``(row, unit)`` of layer ``l`` at micro-step ``j`` of an epoch is
  ``vtune.rng.uniform(vtune.rng.combine(vtune.model.dropout_key(seed, epoch, j), l), micro_batch, units_l)``,
  kept where it is below ``1 - rate`` and scaled by ``1 / (1 - rate)``; a real batch of ``k`` micro-batches
  stacks the masks of its ``k`` micro-steps;
* the order of the training rows: ``jax.random.permutation(fold_in(key(data_seed), epoch), N)`` for a shared
  order, ``permutation(fold_in(fold_in(key(seed), 2), epoch), N)`` for a member's own order.

Example:
    >>> ref = train_reference(config, dataset, init=true_params(flat, layout, config), seed=0,
    ...                       micro_batch=8, epochs=2)            # doctest: +SKIP
    >>> ref.params["out"]["w"].shape, ref.scores                  # doctest: +SKIP
"""

from __future__ import annotations

import collections
import functools
import math
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vtune import rng
from vtune.hparams import MAX_LAYERS, complete_config
from vtune.model import Layout, dropout_key, unflatten
from vtune.optim import reference_optax

_MEMBER_ORDER_TAG = 2  # train.py: fold_in(fold_in(key(seed), 2), epoch) for shared_order=False
# The reference runs on a few hundred rows: compile it fast (XLA -O0) rather than run it fast.
_FAST_COMPILE = {"xla_backend_optimization_level": 0}


# ------------------------------------------------------------------------------------------ activations
def _gelu(z):
    # jax.nn.gelu's default (approximate=True): the tanh form.
    return 0.5 * z * (1.0 + jnp.tanh(math.sqrt(2.0 / math.pi) * (z + 0.044715 * z**3)))


ACTIVATIONS: dict[str, Callable] = {
    "relu": lambda z: jnp.maximum(z, 0.0),
    "tanh": jnp.tanh,
    "sigmoid": lambda z: 1.0 / (1.0 + jnp.exp(-z)),
    "elu": lambda z: jnp.where(z > 0, z, jnp.expm1(jnp.minimum(z, 0.0))),
    "gelu": _gelu,
    "leaky_relu": lambda z: jnp.where(z >= 0, z, 0.01 * z),
    "identity": lambda z: z,
}


# ------------------------------------------------------------------------------------------ schedules
def reference_schedule(cfg: Mapping[str, Any], updates_per_epoch: int, *, horizon: float = 100.0) -> Callable:
    """optax-style schedule ``count -> lr`` of a completed configuration (time t = count / updates_per_epoch).

    Written from the table in the vtune.schedules docstring; sgdr finds its cycle by walking the periods
    ``T0, T0·m, T0·m², …`` up to ``horizon`` epochs (no logarithms), so it is independent of the engine's
    closed form.
    """
    f32 = jnp.float32
    name = cfg["schedule"]
    lr0, alpha = f32(cfg["learning_rate"]), f32(cfg["min_lr_ratio"])

    def cosine(frac):
        frac = jnp.minimum(jnp.maximum(frac, 0.0), 1.0)
        return lr0 * (alpha + (1.0 - alpha) * 0.5 * (1.0 + jnp.cos(f32(math.pi) * frac)))

    def fn(count):
        t = jnp.asarray(count, f32) / f32(updates_per_epoch)
        if name == "constant":
            return lr0 * jnp.ones_like(t)
        if name == "exponential":
            return lr0 * jnp.exp(-f32(cfg["decay_rate"]) * t)
        if name == "inverse_time":
            return lr0 / (1.0 + f32(cfg["decay_rate"]) * t)
        if name == "step":
            return lr0 * f32(cfg["step_factor"]) ** jnp.floor(t / f32(cfg["step_epochs"]))
        if name == "cosine":
            big_t = f32(cfg["cosine_epochs"])
            return cosine(jnp.minimum(t, big_t) / big_t)
        if name == "warmup_cosine":
            w, big_t = f32(cfg["warmup_epochs"]), f32(cfg["cosine_epochs"])
            return jnp.where(t < w, lr0 * t / w, cosine((t - w) / (big_t - w)))
        if name == "sgdr":
            t0, mult = float(cfg["restart_epochs"]), float(cfg["restart_mult"])
            start, period = 0.0, t0
            lr = cosine((t - f32(start)) / f32(period))
            while start + period <= horizon:  # walk the cycles; a later cycle wins where t has reached it
                start, period = start + period, period * mult
                lr = jnp.where(t >= f32(start), cosine((t - f32(start)) / f32(period)), lr)
            return lr
        raise ValueError(f"unknown schedule {name!r}")

    return fn


# ------------------------------------------------------------------------------------------ network
def true_params(flat, layout: Layout, config: Mapping[str, Any]) -> dict:
    """The true-shaped block ``{"hidden": [{"w", "b"}, ...], "out": {"w", "b"}}`` of one padded member.

    ``flat`` is the member's ``[num_params]`` vector in the engine's ``layout``; ``config`` gives its true
    depth and widths (completed or not).
    """
    cfg = complete_config(config)
    widths = [cfg[f"units_{l + 1}"] for l in range(cfg["num_layers"])]
    full = unflatten(jnp.asarray(flat), layout)
    ins = [layout.num_features] + widths
    hidden = [{"w": full["hidden"][l]["w"][: ins[l], : widths[l]], "b": full["hidden"][l]["b"][: widths[l]]}
              for l in range(len(widths))]
    return {"hidden": hidden, "out": {"w": full["out"]["w"][: widths[-1], :], "b": full["out"]["b"]}}


def forward(params, x, activation: str, masks=None):
    """Logits ``[B, C]`` of the true-shaped network; ``masks[l]`` ``[B, units_l]`` multiplies layer l's output."""
    act = ACTIVATIONS[activation]
    h = x
    for l, layer in enumerate(params["hidden"]):
        h = act(h @ layer["w"] + layer["b"][None, :])
        if masks is not None:
            h = h * masks[l]
    return h @ params["out"]["w"] + params["out"]["b"][None, :]


def cross_entropy(logits, y):
    """Mean softmax cross-entropy of ``logits [B, C]`` against integer labels ``y [B]``."""
    top = jnp.max(logits, axis=1, keepdims=True)
    lse = top[:, 0] + jnp.log(jnp.sum(jnp.exp(logits - top), axis=1))
    picked = jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0]
    return jnp.mean(lse - picked)


@functools.partial(jax.jit, static_argnames=("activation",), compiler_options=_FAST_COMPILE)
def accuracy(params, x, y, activation: str):
    """Fraction of rows of ``x`` whose arg-max logit is the label ``y``."""
    return jnp.mean(jnp.argmax(forward(params, x, activation), axis=1) == y)


@functools.partial(jax.jit, static_argnames=("num_steps", "micro_batch", "widths"), compiler_options=_FAST_COMPILE)
def epoch_dropout_masks(seed, epoch, num_steps: int, micro_batch: int, widths: tuple, rate) -> list:
    """Per layer ``l``, the masks ``[num_steps, micro_batch, units_l]`` of micro-steps ``0..num_steps-1``.

    Entry ``(j, row, unit)`` keeps the unit where ``vtune.rng.uniform`` of the key
    ``combine(dropout_key(seed, epoch, j), l)`` at ``(row, unit)`` is below ``1 - rate``; kept units are
    scaled by ``1 / (1 - rate)``.
    """
    keep = 1.0 - jnp.asarray(rate, jnp.float32)
    keys = dropout_key(jnp.asarray(seed, jnp.uint32), epoch, jnp.arange(num_steps, dtype=jnp.int32))  # [S]
    masks = []
    for l, width in enumerate(widths):
        u = jax.vmap(lambda key: rng.uniform(rng.combine(key, l), micro_batch, width))(keys)
        masks.append(jnp.where(u < keep, 1.0 / keep, 0.0))
    return masks


def epoch_order(epoch: int, n: int, *, data_seed: int, seed: int, shared_order: bool) -> np.ndarray:
    """The row order of one epoch (shared by the population, or the member's own)."""
    if shared_order:
        key = jax.random.fold_in(jax.random.key(data_seed), epoch)
    else:
        key = jax.random.fold_in(jax.random.fold_in(jax.random.key(jnp.uint32(seed)), _MEMBER_ORDER_TAG), epoch)
    return np.asarray(jax.random.permutation(key, n))


@functools.lru_cache(maxsize=None)
def _reference_optimizer(cfg_items: tuple, updates_per_epoch: int, epochs: int):
    cfg = dict(cfg_items)
    schedule = reference_schedule(cfg, updates_per_epoch, horizon=float(epochs))
    hidden = [{"w": True, "b": False} for _ in range(cfg["num_layers"])]
    mask = {"hidden": hidden, "out": {"w": True, "b": False}}
    return reference_optax(cfg["optimizer"], schedule, cfg, decay_mask=mask)


@functools.lru_cache(maxsize=None)
def _reference_step(cfg_items: tuple, updates_per_epoch: int, epochs: int, micro_batch: int):
    """The jitted update of one configuration (cached, so a second run of it does not recompile)."""
    cfg = dict(cfg_items)
    schedule = reference_schedule(cfg, updates_per_epoch, horizon=float(epochs))
    opt = _reference_optimizer(cfg_items, updates_per_epoch, epochs)

    k = cfg["batch_size"] // micro_batch

    @functools.partial(jax.jit, compiler_options=_FAST_COMPILE)
    def step(params, state, xb, yb, epoch_masks, count):
        # A real batch of k micro-batches stacks the masks of its k micro-steps.
        update = count % updates_per_epoch
        masks = None if epoch_masks is None else [
            jax.lax.dynamic_slice_in_dim(m, update * k, k).reshape(k * micro_batch, m.shape[-1])
            for m in epoch_masks]
        grads = jax.grad(lambda p: cross_entropy(forward(p, xb, cfg["activation"], masks), yb))(params)
        updates, state = opt.update(grads, state, params)
        return jax.tree.map(lambda p, u: p + u, params, updates), state, schedule(count)

    return step


class ReferenceRun(NamedTuple):
    params: dict  # true-shaped final parameters
    scores: list  # validation accuracy after each epoch
    lrs: list  # the learning rate of every update, in order


def train_reference(config: Mapping[str, Any], dataset, *, init: dict, seed: int, micro_batch: int, epochs: int,
                    data_seed: int = 0, shared_order: bool = True, max_epochs: int | None = None) -> ReferenceRun:
    """Train one classification member for ``epochs`` epochs the plain way; see the module docstring.

    Args:
      config: the member's configuration (completed here with ``max_epochs`` for ``cosine_epochs``).
      dataset: a :class:`vtune.data.Dataset` (its ``x_train``, ``y_train``, ``x_val``, ``y_val``).
      init: true-shaped initial parameters (:func:`true_params` of the engine's init).
      seed: the member's seed (dropout masks and, without a shared order, its data order).
      micro_batch: the engine's micro-batch; only the dropout masks' row blocks depend on it.
    """
    if dataset.task != "classification":
        raise ValueError(f"the reference trains classification only, got task={dataset.task!r}")
    cfg = complete_config(config, task="classification", max_epochs=max_epochs or epochs)
    if cfg["num_layers"] > MAX_LAYERS:
        raise ValueError(f"num_layers={cfg['num_layers']} exceeds {MAX_LAYERS}")
    x, y = np.asarray(dataset.x_train, np.float32), np.asarray(dataset.y_train, np.int32)
    x_val, y_val = jnp.asarray(dataset.x_val, jnp.float32), jnp.asarray(dataset.y_val, jnp.int32)
    n, batch = x.shape[0], cfg["batch_size"]
    if batch % micro_batch:
        raise ValueError(f"batch_size={batch} is not a multiple of micro_batch={micro_batch}")
    updates_per_epoch = n // batch
    widths = [cfg[f"units_{l + 1}"] for l in range(cfg["num_layers"])]
    activation, rate = cfg["activation"], cfg["dropout"]

    step = _reference_step(tuple(sorted(cfg.items())), updates_per_epoch, epochs, micro_batch)
    params = jax.tree.map(jnp.asarray, init)
    state = _reference_optimizer(tuple(sorted(cfg.items())), updates_per_epoch, epochs).init(params)
    scores, lrs = [], []
    count = 0
    for epoch in range(epochs):
        order = epoch_order(epoch, n, data_seed=data_seed, seed=seed, shared_order=shared_order)
        masks = None
        if rate > 0:
            masks = epoch_dropout_masks(np.uint32(seed), np.int32(epoch), n // micro_batch, micro_batch,
                                        tuple(widths), np.float32(rate))
        for u in range(updates_per_epoch):
            rows = order[u * batch:(u + 1) * batch]
            params, state, lr = step(params, state, x[rows], y[rows], masks, np.int32(count))
            lrs.append(lr)
            count += 1
        scores.append(float(accuracy(params, x_val, y_val, activation)))
    return ReferenceRun(params=params, scores=scores, lrs=[float(lr) for lr in lrs])


# ------------------------------------------------------------------------------------------ shared test helpers
MICRO_BATCH = 8
EPOCHS = 3

#: How many times :func:`run_population` has been traced, by the static geometry it was traced for.
TRACES: collections.Counter = collections.Counter()


@functools.lru_cache(maxsize=None)
def small_digits(rows: int = 300):
    """The first ``rows`` digits (64 features, 10 classes), split 70/15/15 and standardised: 210/45/45 for 300."""
    from sklearn.datasets import load_digits

    from vtune.data import from_arrays

    bunch = load_digits()
    return from_arrays(bunch.data[:rows], bunch.target[:rows], task="classification", name=f"digits[:{rows}]", seed=0)


@functools.partial(jax.jit, static_argnames=("epochs",))
def run_population(trainable, hparams, epochs: int = EPOCHS):
    """``init`` then ``epochs`` × ``train_epoch`` as one compiled program (shared by the test modules).

    Returns ``(initial params [P, num_params], final state, scores [epochs, P], selection score [P])``.
    """
    TRACES[(trainable.max_layers, trainable.max_units, trainable.shared_order, len(hparams["seed"]), epochs)] += 1
    state = trainable.init(hparams)
    first = state.params
    state, scores = jax.lax.scan(lambda st, e: trainable.train_epoch(st, e), state,
                                 jnp.arange(epochs, dtype=jnp.int32))
    return first, state, scores, trainable.score(state)
