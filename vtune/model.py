"""The population MLP: padded, masked, depth-gated dense networks as plain functions over stacked arrays.

One member's parameters are ``{"hidden": ({"w": [D, W], "b": [W]}, {"w": [W, W], "b": [W]}, ...),
"out": {"w": [W, C], "b": [C]}}`` with ``L = len(hidden)`` hidden layers padded to the largest depth and
``W`` units padded to the largest width of the population; a population stacks a leading ``[P]`` axis on
every leaf. Each member's true architecture is data:

* ``units`` ``int32 [L]`` — the true width of each hidden layer. Activations are masked *after* the
  activation function (sigmoid(0) ≠ 0), so padded units are exactly zero; padded rows and columns of the
  weights start at zero and receive exactly zero gradient, so they stay zero through training.
* ``num_layers`` ``int32`` — layers past it are identity (``h = where(on, layer(h), h)``), start at zero and
  never receive a gradient.

Randomness never depends on the padding: row ``r`` of a weight matrix is drawn from its own key
(``fold_in(layer_key, r)``) as a 1-D vector, and JAX's partitionable threefry makes the first ``u`` entries
of a length-``W`` draw equal a length-``u`` draw. So a member padded inside a population starts from, and
drops out, exactly the numbers it would use alone. Dropout masks use the same per-row scheme.

Activation, initialiser and loss ids select among the formulas with ``jnp.where``: every member evaluates
the (cheap, elementwise) candidates that the static ``activations`` tuple lists.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import jax
import jax.numpy as jnp

from vtune.hparams import ACTIVATIONS, INITS

ACTIVATION_IDS = {name: i for i, name in enumerate(ACTIVATIONS)}
INIT_IDS = {name: i for i, name in enumerate(INITS)}
_TRUNC_STD = 0.87962566103423978  # std of a unit normal truncated to [-2, 2] (as flax / Keras variance scaling)

_ACT_FNS = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "elu": jax.nn.elu,
    "gelu": jax.nn.gelu,
    "leaky_relu": jax.nn.leaky_relu,
    "identity": lambda x: x,
}


def activate(z, act_id, activations: Sequence[str] = ACTIVATIONS):
    """Apply the activation with id ``act_id`` (a traced int) to ``z``; only ``activations`` are built."""
    out = None
    for name in activations:
        y = _ACT_FNS[name](z)
        out = y if out is None else jnp.where(act_id == ACTIVATION_IDS[name], y, out)
    return out


def _row_draws(key, num_rows: int, num_cols: int):
    """Per-row uniform(−1, 1) and truncated-normal draws ``[num_rows, num_cols]`` (prefix-stable in both axes)."""
    rows = jnp.arange(num_rows)

    def one(r):
        k = jax.random.fold_in(key, r)
        ku, kn = jax.random.split(k)
        u = jax.random.uniform(ku, (num_cols,), minval=-1.0, maxval=1.0)
        n = jax.random.truncated_normal(kn, -2.0, 2.0, (num_cols,)) / _TRUNC_STD
        return u, n

    return jax.vmap(one)(rows)


def init_scale(init_id, fan_in, fan_out, uniform_a):
    """(uniform limit, normal std) of initialiser ``init_id`` for the true fans (scalars)."""
    fan_in = jnp.maximum(fan_in.astype(jnp.float32), 1.0)
    fan_out = jnp.maximum(fan_out.astype(jnp.float32), 1.0)
    avg = (fan_in + fan_out) / 2.0
    table_limit = {
        "uniform": uniform_a,
        "glorot_uniform": jnp.sqrt(3.0 / avg),
        "he_uniform": jnp.sqrt(6.0 / fan_in),
        "lecun_uniform": jnp.sqrt(3.0 / fan_in),
    }
    table_std = {
        "glorot_normal": jnp.sqrt(1.0 / avg),
        "he_normal": jnp.sqrt(2.0 / fan_in),
        "lecun_normal": jnp.sqrt(1.0 / fan_in),
    }
    limit = jnp.float32(0.0)
    std = jnp.float32(0.0)
    for name, value in table_limit.items():
        limit = jnp.where(init_id == INIT_IDS[name], value, limit)
    for name, value in table_std.items():
        std = jnp.where(init_id == INIT_IDS[name], value, std)
    return limit, std


def layer_in_units(hp: Mapping[str, jnp.ndarray], num_features: int, max_layers: int):
    """``int32 [L+1]`` true input width of hidden layers 0..L-1 and of the output layer (one member)."""
    units = hp["units"]
    hidden_in = jnp.concatenate([jnp.array([num_features], jnp.int32), units[:-1]])
    last = units[jnp.clip(hp["num_layers"] - 1, 0, max_layers - 1)]
    return jnp.concatenate([hidden_in, last[None]])


def init_member(key, hp: Mapping[str, jnp.ndarray], *, num_features: int, num_outputs: int,
                max_layers: int, max_units: int):
    """Parameters of one member (padded to ``max_layers`` × ``max_units``); biases start at zero.

    ``hp`` holds scalars ``num_layers``, ``init``, ``init_scale`` and ``units int32 [max_layers]``.
    """
    d, w_max, c, L = num_features, max_units, num_outputs, max_layers
    ins = layer_in_units(hp, d, L)
    hidden = []
    for l in range(L):
        rows = d if l == 0 else w_max
        u, n = _row_draws(jax.random.fold_in(key, l), rows, w_max)
        fan_in, fan_out = ins[l], hp["units"][l]
        limit, std = init_scale(hp["init"], fan_in, fan_out, hp["init_scale"])
        is_uniform = jnp.isin(hp["init"], jnp.array([INIT_IDS[i] for i in INITS if i.endswith("uniform")]))
        w = jnp.where(is_uniform, u * limit, n * std)
        on = l < hp["num_layers"]
        mask = (jnp.arange(rows)[:, None] < fan_in) & (jnp.arange(w_max)[None, :] < fan_out) & on
        hidden.append({"w": jnp.where(mask, w, 0.0), "b": jnp.zeros((w_max,), jnp.float32)})
    u, n = _row_draws(jax.random.fold_in(key, L), w_max, c)
    limit, std = init_scale(hp["init"], ins[L], jnp.int32(c), hp["init_scale"])
    is_uniform = jnp.isin(hp["init"], jnp.array([INIT_IDS[i] for i in INITS if i.endswith("uniform")]))
    w = jnp.where(is_uniform, u * limit, n * std)
    w = jnp.where(jnp.arange(w_max)[:, None] < ins[L], w, 0.0)
    return {"hidden": tuple(hidden), "out": {"w": w, "b": jnp.zeros((c,), jnp.float32)}}


def dropout_mask(key, rate, shape):
    """Inverted-dropout multiplier ``[B, W]`` drawn row by row (prefix-stable along W)."""
    keep = 1.0 - rate

    def row(r):
        return jax.random.bernoulli(jax.random.fold_in(key, r), keep, (shape[1],))

    bits = jax.vmap(row)(jnp.arange(shape[0]))
    return jnp.where(bits, 1.0 / jnp.maximum(keep, 1e-12), 0.0)


def forward(params, hp: Mapping[str, jnp.ndarray], x, *, activations: Sequence[str] = ACTIVATIONS,
            dropout_key=None):
    """Outputs ``[B, C]`` of one member for inputs ``x [B, D]``; dropout when ``dropout_key`` is given."""
    h = x
    w_max = params["hidden"][0]["w"].shape[1]
    cols = jnp.arange(w_max)
    for l, layer in enumerate(params["hidden"]):
        z = h @ layer["w"] + layer["b"]
        a = jnp.where(cols < hp["units"][l], activate(z, hp["activation"], activations), 0.0)
        if dropout_key is not None:
            a = a * dropout_mask(jax.random.fold_in(dropout_key, l), hp["dropout"], a.shape)
        h = a if l == 0 else jnp.where(l < hp["num_layers"], a, h)
    return h @ params["out"]["w"] + params["out"]["b"]


def weight_mask(params):
    """Pytree of bools: True on weight matrices (weight decay applies), False on biases."""
    return jax.tree_util.tree_map_with_path(lambda path, _: path[-1].key == "w", params)


def useful_weights(num_features: int, num_outputs: int, num_layers: int, units: Sequence[int]) -> int:
    """Multiply-adds per sample of one member's *true* architecture (no padding)."""
    widths = [num_features] + [int(u) for u in units[:num_layers]] + [num_outputs]
    return sum(a * b for a, b in zip(widths[:-1], widths[1:]))


def padded_weights(num_features: int, num_outputs: int, max_layers: int, max_units: int) -> int:
    """Multiply-adds per sample that the padded program computes for one member."""
    return num_features * max_units + (max_layers - 1) * max_units * max_units + max_units * num_outputs


def param_count(num_features: int, num_outputs: int, max_layers: int, max_units: int) -> int:
    """Floats in one member's padded parameters."""
    return padded_weights(num_features, num_outputs, max_layers, max_units) + max_layers * max_units + num_outputs


__all__ = [
    "activate",
    "dropout_mask",
    "forward",
    "init_member",
    "init_scale",
    "layer_in_units",
    "param_count",
    "padded_weights",
    "useful_weights",
    "weight_mask",
]
