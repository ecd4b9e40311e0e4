"""The population MLP: padded, masked, depth-gated dense networks over one flat parameter vector per member.

A member's parameters are one ``float32 [num_params]`` vector (a population stacks ``[P, num_params]``);
:class:`Layout` names the static slices: hidden layer ``l`` has ``w [rows_l, W]`` (``rows_0 = D``, else
``W``) and ``b [W]``, the output layer ``w [W, C]`` and ``b [C]``. The flat vector is what a bracket
keeps per member (one array to rank, gather and restore); an epoch loop trains on :func:`to_views` of it —
one array per weight matrix, the biases together — so that the optimizer skips the layers a member does
not have and no step slices or concatenates the whole vector. Each member's true architecture is data:

* ``units`` ``int32 [L]`` — the true width of each hidden layer. Activations are masked *after* the
  activation function (sigmoid(0) ≠ 0), so padded units are exactly zero; padded rows and columns of the
  weights start at zero and receive exactly zero gradient, so they stay zero through training.
* ``num_layers`` ``int32`` — layers past it are identity (``h = where(on, layer(h), h)``), start at zero and
  never receive a gradient.

Randomness never depends on the padding: weights and dropout masks come from :mod:`vtune.rng`, where the
number at ``(row, col)`` is a hash of the key and ``(row, col)`` alone, so a member padded inside a
population starts from, and drops out, exactly the numbers it would use alone at its true width.
"""

from __future__ import annotations

import functools
from typing import Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from vtune import rng
from vtune.devices import host_array
from vtune.choose import choose
from vtune.hparams import ACTIVATIONS, INITS

ACTIVATION_IDS = {name: i for i, name in enumerate(ACTIVATIONS)}
INIT_IDS = {name: i for i, name in enumerate(INITS)}
_UNIFORM_INITS = tuple(INIT_IDS[i] for i in INITS if i.endswith("uniform"))
_TRUNC_STD = 0.87962566103423978  # std of a unit normal truncated to [-2, 2] (flax / Keras variance scaling)
_INIT_TAG = 0x1A17
_DROPOUT_TAG = 0xD409
_OUTPUT_TAG = 0x0C7

_ACT_FNS = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "elu": jax.nn.elu,
    "gelu": jax.nn.gelu,
    "leaky_relu": jax.nn.leaky_relu,
    "identity": lambda x: x,
}


class Layout(NamedTuple):
    """Static geometry of the padded member: D inputs, L hidden layers of W units, C outputs."""

    num_features: int
    max_layers: int
    max_units: int
    num_outputs: int

    def shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        d, L, w, c = self
        out = []
        for l in range(L):
            out += [(f"hidden_{l}_w", (d if l == 0 else w, w)), (f"hidden_{l}_b", (w,))]
        return out + [("out_w", (w, c)), ("out_b", (c,))]

    def offsets(self) -> dict[str, tuple[int, tuple[int, ...]]]:
        pos, table = 0, {}
        for name, shape in self.shapes():
            table[name] = (pos, shape)
            pos += int(np.prod(shape))
        return table

    @property
    def num_params(self) -> int:
        return sum(int(np.prod(s)) for _, s in self.shapes())


def unflatten(flat, layout: Layout) -> dict:
    """``{"hidden": ({"w", "b"}, ...), "out": {"w", "b"}}`` views of one member's flat vector."""
    table = layout.offsets()

    def get(name):
        start, shape = table[name]
        return jax.lax.slice_in_dim(flat, start, start + int(np.prod(shape)), axis=-1).reshape(
            flat.shape[:-1] + shape)

    hidden = tuple({"w": get(f"hidden_{l}_w"), "b": get(f"hidden_{l}_b")} for l in range(layout.max_layers))
    return {"hidden": hidden, "out": {"w": get("out_w"), "b": get("out_b")}}


def flatten(params: Mapping) -> jnp.ndarray:
    """Inverse of :func:`unflatten` for one member."""
    parts = []
    for layer in params["hidden"]:
        parts += [layer["w"].reshape(-1), layer["b"].reshape(-1)]
    parts += [params["out"]["w"].reshape(-1), params["out"]["b"].reshape(-1)]
    return jnp.concatenate(parts)


def to_views(flat, layout: Layout) -> dict:
    """The training loop's form of a flat vector (leading axes kept): ``{"w": (hidden_0, …, out), "b": all
    biases}``, each weight matrix its own array and the biases, which are small, one vector.

    Each weight matrix on its own lets the optimizer skip the hidden layers a member does not have (see
    ``MLPTrainable._update``) and the products read it without slicing; keeping the biases together keeps
    the number of distinct elementwise kernels, hence compile time, down (one leaf per bias cost ≈ 0.5 s of
    compile per program on a 2-core CPU).
    """
    return narrow_views(flat, layout, layout)


@functools.cache
def _view_indices(full: Layout, small: Layout):
    """Where each entry of :func:`narrow_views`' views lies in the ``full`` flat vector: one index array per
    weight matrix (``small``'s shapes) and one for the biases together (static numpy)."""
    table = full.offsets()
    d, L, w, c = small

    def at(name, rows, cols=None):
        start, shape = table[name]
        pos = start + np.arange(int(np.prod(shape))).reshape(shape)
        return pos[:rows] if cols is None else pos[:rows, :cols]

    ws = [at(f"hidden_{l}_w", d if l == 0 else w, w) for l in range(L)] + [at("out_w", w, c)]
    bs = [at(f"hidden_{l}_b", w) for l in range(L)] + [at("out_b", c)]
    return tuple(x.astype(np.int32) for x in ws), np.concatenate(bs).astype(np.int32)


@functools.cache
def _flat_sources(full: Layout, small: Layout) -> np.ndarray:
    """For each entry of the ``full`` flat vector, its position in the concatenation of ``small``'s views
    (weight matrices flattened in order, then the biases, then one zero): see :func:`widen`."""
    ws, b = _view_indices(full, small)
    src = np.full(full.num_params, sum(x.size for x in ws) + b.size, np.int32)  # the trailing zero
    src[np.concatenate([x.reshape(-1) for x in ws] + [b])] = np.arange(src.max(), dtype=np.int32)
    return src


def narrow_views(flat, full: Layout, small: Layout) -> dict:
    """:func:`to_views` of ``flat`` (layout ``full``, leading axes kept) cut down to the layout ``small``
    (``full`` itself, or a narrower width tier): each view is one gather from the flat vector with static
    indices — one kernel per view, where slicing each piece and concatenating the biases took two or
    three. (Re-checked on the Zen 5 CPU, 2026-11-25: views as slices, and :func:`widen` as pads and one
    concatenation, compiled the 20,000-row benchmark search 0.5-0.7 s slower — 6.41 / 6.49 s against
    5.75 / 6.01 — for 3% on the mixed population's one-epoch runs and nothing on digits; not kept.)"""
    ws, b = _view_indices(full, small)
    return {"w": tuple(flat[..., idx] for idx in ws), "b": flat[..., b]}


def widen(views, full: Layout, small: Layout):
    """Inverse of :func:`narrow_views`: the flat vector (layout ``full``, leading axes kept) of the views,
    zero outside them — one concatenation and one gather. Exact for every buffer the epoch loop keeps:
    a member trained at a width tier never reads or writes its buffers outside the tier's corner, and
    they are zero there (weights and biases outside a member's true shape start at zero and get zero
    gradients; optimizer buffers start at zero, but for Adagrad's accumulator, whose unread 0.1 outside
    the corner comes back as zero)."""
    lead = views["b"].shape[:-1]
    parts = [x.reshape(lead + (-1,)) for x in views["w"]] + [views["b"], jnp.zeros(lead + (1,), views["b"].dtype)]
    return jnp.concatenate(parts, axis=-1)[..., _flat_sources(full, small)]


def _bias_slices(layout: Layout):
    d, L, w, c = layout
    return [(l * w, w) for l in range(L)] + [(L * w, c)]


def layers_of(views, layout: Layout) -> dict:
    """:func:`unflatten`'s ``{"hidden": ..., "out": ...}`` form of :func:`to_views`' form (one member)."""
    bs = [jax.lax.slice_in_dim(views["b"], start, start + size, axis=-1) for start, size in _bias_slices(layout)]
    layers = [{"w": w, "b": b} for w, b in zip(views["w"], bs)]
    return {"hidden": tuple(layers[:-1]), "out": layers[-1]}


def from_views(views, layout: Layout):
    """Inverse of :func:`to_views` (leading axes kept)."""
    return widen(views, layout, layout)


def weight_mask(layout: Layout) -> jnp.ndarray:
    """``bool [num_params]``: True on weight matrices (weight decay applies), False on biases."""
    idx = jnp.arange(layout.num_params)
    mask = jnp.zeros(layout.num_params, bool)
    for name, (start, shape) in layout.offsets().items():
        if name.endswith("_w"):
            mask = mask | ((idx >= start) & (idx < start + int(np.prod(shape))))
    return mask


def activate(z, act_id, activations: Sequence[str] = ACTIVATIONS):
    """Apply the activation with id ``act_id`` (a traced int) to ``z``; only ``activations`` are built.

    One member alone computes only its own activation (see :mod:`vtune.choose`). With a choice, each
    variant is rematerialised (``jax.checkpoint``): differentiating a conditional otherwise makes every
    branch write every branch's residuals (relu's mask, tanh's output, ...) as outputs of the forward
    conditional, and for a ``[B, W]`` activation those extra writes cost more than recomputing the
    activation from ``z`` in the backward one. Recomputing runs the same operations, so the gradients are
    unchanged. A single activation is called as it is: no conditional, nothing to save on.
    """
    if len(activations) == 1:
        return _ACT_FNS[activations[0]](z)
    return choose(act_id, ACTIVATION_IDS, activations, lambda name: jax.checkpoint(_ACT_FNS[name]), z)


def init_scale(init_id, fan_in, fan_out, uniform_a, xp=jnp):
    """(uniform limit, normal std) of initialiser ``init_id`` for the true fans (scalars)."""
    fan_in = xp.maximum(xp.asarray(fan_in).astype(xp.float32), xp.float32(1.0))
    fan_out = xp.maximum(xp.asarray(fan_out).astype(xp.float32), xp.float32(1.0))
    avg = (fan_in + fan_out) / xp.float32(2.0)
    three, six, one, two = (xp.float32(v) for v in (3.0, 6.0, 1.0, 2.0))
    limits = {
        "uniform": xp.asarray(uniform_a).astype(xp.float32),
        "glorot_uniform": xp.sqrt(three / avg),
        "he_uniform": xp.sqrt(six / fan_in),
        "lecun_uniform": xp.sqrt(three / fan_in),
    }
    stds = {
        "glorot_normal": xp.sqrt(one / avg),
        "he_normal": xp.sqrt(two / fan_in),
        "lecun_normal": xp.sqrt(one / fan_in),
    }
    limit = xp.float32(0.0)
    std = xp.float32(0.0)
    for name, value in limits.items():
        limit = xp.where(init_id == INIT_IDS[name], value, limit)
    for name, value in stds.items():
        std = xp.where(init_id == INIT_IDS[name], value, std)
    return limit, std


def layer_in_units(hp: Mapping[str, jnp.ndarray], num_features: int, max_layers: int, xp=jnp):
    """``int32 [L+1]`` true input width of hidden layers 0..L-1 and of the output layer (one member)."""
    units = xp.asarray(hp["units"]).astype(xp.int32)
    last = units[int(min(max(int(hp["num_layers"]) - 1, 0), max_layers - 1))] if xp is np else \
        units[jnp.clip(hp["num_layers"] - 1, 0, max_layers - 1)]
    return xp.concatenate([xp.asarray([num_features], dtype=xp.int32), units[:-1], xp.asarray([last]).astype(xp.int32)])


def init_weight(key, init_id, uniform_a, rows: int, cols: int, fan_in, fan_out, xp=jnp):
    """A ``[rows, cols]`` weight matrix drawn for true fans, zero outside ``[:fan_in, :fan_out]``."""
    limit, std = init_scale(init_id, fan_in, fan_out, uniform_a, xp)
    is_uniform = xp.isin(init_id, xp.asarray(_UNIFORM_INITS))
    uniform = lambda: rng.uniform(rng.combine(key, 0, xp=xp), rows, cols, xp) * xp.float32(2.0) - xp.float32(1.0)
    normal = lambda: rng.truncated_normal(rng.combine(key, 1, xp=xp), rows, cols, xp) / xp.float32(_TRUNC_STD)
    if xp is np:  # on the host the initialiser is known: draw only its numbers (the same ones)
        w = uniform() * limit if bool(is_uniform) else normal() * std
    else:
        w = xp.where(is_uniform, uniform() * limit, normal() * std)
    live = (xp.arange(rows)[:, None] < fan_in) & (xp.arange(cols)[None, :] < fan_out)
    return xp.where(live, w, xp.float32(0.0)).astype(xp.float32)


def init_member(seed, hp: Mapping[str, jnp.ndarray], layout: Layout, xp=jnp):
    """Flat parameters ``[num_params]`` of one member (padded to ``layout``); biases start at zero.

    ``hp`` holds scalars ``num_layers``, ``init``, ``init_scale`` and ``units int32 [L]``. With
    ``xp=numpy`` the same numbers are drawn on the host (see :func:`init_population_host`).
    """
    d, L, w_max, c = layout
    key = rng.combine(seed, _INIT_TAG, xp=xp)
    ins = layer_in_units(hp, d, L, xp)
    parts = []
    for l in range(L):
        rows = d if l == 0 else w_max
        fan_out = xp.where(l < hp["num_layers"], hp["units"][l], 0)
        w = init_weight(rng.combine(key, l, xp=xp), hp["init"], hp["init_scale"], rows, w_max, ins[l], fan_out, xp)
        parts += [w.reshape(-1), xp.zeros((w_max,), xp.float32)]
    # The output layer's key must not depend on the padded depth L (a member drawn inside a deeper
    # population must start from the numbers it would draw alone): a fixed tag, not the index L.
    w = init_weight(rng.combine(key, _OUTPUT_TAG, xp=xp), hp["init"], hp["init_scale"], w_max, c, ins[L], c, xp)
    parts += [w.reshape(-1), xp.zeros((c,), xp.float32)]
    return xp.concatenate(parts)


def init_population_host(hparams: Mapping[str, np.ndarray], layout: Layout) -> np.ndarray:
    """``float32 [P, num_params]``: :func:`init_member` of every member, computed with numpy on the host.

    Drawing the initial weights on the host keeps them out of the compiled program (the inverse normal
    CDF and the hashing of four weight matrices were the larger half of it), which shortens compilation.
    The array is aligned for JAX's CPU devices to read in place (:func:`vtune.devices.host_array`): the
    program's largest input is then never copied.
    """
    num = len(hparams["seed"])
    out = host_array((num, layout.num_params), np.float32)
    with np.errstate(over="ignore"):  # uint32 hashing wraps around on purpose
        for i in range(num):
            hp = {k: np.asarray(v)[i] for k, v in hparams.items() if k in ("num_layers", "units", "init", "init_scale")}
            out[i] = init_member(np.asarray(hparams["seed"])[i], hp, layout, xp=np)
    return out


def dropout_scale(key, rate, num_rows: int, num_cols: int):
    """Inverted-dropout multiplier ``[num_rows, num_cols]``: 0 with probability ``rate``, else 1/(1−rate).

    The keep mask comes out of a ``lax.cond`` on ``rate != 0`` (at rate 0 every unit is kept anyway:
    ``u < 1`` always holds). For a member trained alone on CPU this does two things. A member without
    dropout skips the hash. And the mask is computed once per layer and step, into a small boolean
    buffer: left inline, XLA fuses the hash into both the forward product and its gradient and, as
    those fusions are compute-heavy, splits each over two threads — two thread hand-offs per layer and
    step that cost more than the hash itself (measured on a busy 2-core machine: dropout made an epoch
    40–60% slower at widths 32–128, 2% on one core). The products with the mask are then memory-bound
    passes that XLA keeps on one thread. Under ``vmap`` the cond is a select: the same work as before.
    """
    keep = 1.0 - rate
    kept = jax.lax.cond(rate != 0, lambda: rng.uniform(key, num_rows, num_cols) < keep,
                        lambda: jnp.ones((num_rows, num_cols), bool))
    return jnp.where(kept, 1.0 / jnp.maximum(keep, 1e-12), 0.0)


def dropout_key(seed, epoch, step):
    """The dropout key of one member at micro-step ``step`` of ``epoch`` (layer ``l`` adds ``l``)."""
    return rng.combine(seed, _DROPOUT_TAG, epoch, step)


def forward(flat, hp: Mapping[str, jnp.ndarray], x, layout: Layout, *,
            activations: Sequence[str] = ACTIVATIONS, dropout_key=None):
    """Outputs ``[B, C]`` of one member for inputs ``x [B, D]``; dropout when ``dropout_key`` is given.
    ``flat`` is the flat parameter vector, its :func:`unflatten` views or its :func:`to_views` form."""
    if not isinstance(flat, Mapping):
        params = unflatten(flat, layout)
    elif "hidden" in flat:
        params = flat
    else:
        params = layers_of(flat, layout)
    cols = jnp.arange(layout.max_units)

    def layer_fn(l, layer, h):
        z = h @ layer["w"] + layer["b"][None, :]
        a = jnp.where(cols[None, :] < hp["units"][l], activate(z, hp["activation"], activations), 0.0)
        if dropout_key is not None:
            a = a * dropout_scale(rng.combine(dropout_key, l), hp["dropout"], *a.shape)
        return a

    h = layer_fn(0, params["hidden"][0], x)
    for l in range(1, layout.max_layers):
        # Unbatched (one member per chunk), ``cond`` skips the layer's work; under vmap it is a select.
        h = jax.lax.cond(l < hp["num_layers"], functools.partial(layer_fn, l, params["hidden"][l]),
                         lambda h: h, h)
    return h @ params["out"]["w"] + params["out"]["b"][None, :]


#: The activations as numpy functions of float32 arrays, for :func:`forward_host` and
#: :class:`vtune.result.Model`'s probabilities (the same formulas as
#: ``_ACT_FNS``: ``jax.nn.gelu`` is its tanh approximation, ``jax.nn.leaky_relu`` has slope 0.01).
HOST_ACTIVATIONS = {
    "relu": lambda z: np.maximum(z, np.float32(0.0)),
    "tanh": np.tanh,
    "sigmoid": lambda z: np.float32(0.5) * (np.tanh(np.float32(0.5) * z) + np.float32(1.0)),
    "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, np.float32(0.0)))),
    "gelu": lambda z: np.float32(0.5) * z * (np.float32(1.0) + np.tanh(
        np.float32(np.sqrt(2.0 / np.pi)) * (z + np.float32(0.044715) * z ** 3))),
    "leaky_relu": lambda z: np.where(z >= 0, z, np.float32(0.01) * z),
    "identity": lambda z: z,
}


def forward_host(flat, hp: Mapping[str, np.ndarray], x, layout: Layout) -> np.ndarray:
    """:func:`forward` of one member in numpy (no dropout): outputs ``float32 [N, C]`` of ``x [N, D]``.

    It computes the member's true architecture only — its ``num_layers`` layers at their ``units``, its own
    activation — which is the padded program's function exactly (padded units are zero, absent layers
    identity); only the float rounding of the products differs. Used where one model is evaluated once:
    the best member's test score and :class:`vtune.result.Model`'s predictions, which then need no
    compile (a cold digits search spent 0.15-0.17 s compiling and running that evaluation with JAX).
    """
    table = layout.offsets()
    flat = np.asarray(flat, np.float32)
    act = HOST_ACTIVATIONS[ACTIVATIONS[int(np.asarray(hp["activation"]))]]
    units = np.asarray(hp["units"]).astype(np.int64)
    depth = int(min(max(int(np.asarray(hp["num_layers"])), 1), layout.max_layers))

    def weights(name, rows, cols):
        start, shape = table[name]
        return flat[start:start + int(np.prod(shape))].reshape(shape)[:rows, :cols]

    def bias(name, size):
        start, _ = table[name]
        return flat[start:start + size]

    h = np.asarray(x, np.float32)
    width = layout.num_features
    for l in range(depth):
        u = int(units[l])
        h = act(h @ weights(f"hidden_{l}_w", width, u) + bias(f"hidden_{l}_b", u))
        width = u
    c = layout.num_outputs
    return (h @ weights("out_w", width, c) + bias("out_b", c)).astype(np.float32)


def useful_weights(num_features: int, num_outputs: int, num_layers: int, units: Sequence[int]) -> int:
    """Multiply-adds per sample of one member's *true* architecture (no padding)."""
    widths = [num_features] + [int(u) for u in units[:num_layers]] + [num_outputs]
    return sum(a * b for a, b in zip(widths[:-1], widths[1:]))


def tier_weights(num_features, num_outputs, depth, width):
    """Multiply-adds per sample of a member of ``depth`` hidden layers trained at ``width`` (its width
    tier): :func:`useful_weights` with every layer at ``width``. Works on numbers and on (numpy or jax)
    arrays of members."""
    return num_features * width + (depth - 1) * width * width + width * num_outputs


def widest_layer(num_layers, units, xp=jnp):
    """Width of each member's widest live hidden layer: ``units [..., L]``, ``num_layers [...]``."""
    num_layers = xp.asarray(num_layers)
    live = xp.arange(units.shape[-1]).reshape((1,) * num_layers.ndim + (-1,)) < num_layers[..., None]
    return xp.max(xp.where(live, units, 0), axis=-1)


def tier_width(need, tiers, xp=jnp):
    """The narrowest of the sorted ``tiers`` (the last one the program's own width) that holds ``need``."""
    tiers = xp.asarray(tiers)
    return tiers[xp.clip(xp.searchsorted(tiers, need), 0, len(tiers) - 1)]


def padded_weights(layout: Layout) -> int:
    """Multiply-adds per sample that the padded program computes for one member."""
    d, L, w, c = layout
    return d * w + (L - 1) * w * w + w * c
