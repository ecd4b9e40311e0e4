"""One optax ``GradientTransformation`` that is every optimizer at once, member by member.

A population mixes SGD, momentum, Nesterov, RMSprop, Adam, AdamW, Adagrad, Adadelta, Adamax and Nadam.
Under ``vmap`` a ``lax.switch`` over ten optax optimizers runs all ten for every member and keeps ten
states (Adam alone keeps two moments): about eleven parameter-sized buffers per member. Instead this
module writes the ten update rules as one *superset* rule over three buffers — ``m`` (momentum trace or
first moment), ``v`` (second moment, squared-gradient sum or running average), ``w`` (Adadelta's running
average of squared updates) — and each member's ``optimizer`` id picks its formula with
:func:`vtune.choose.choose`: one member alone runs only its own rule, a vmapped population selects
(``fuse=True`` with at most :data:`FUSE_RULES` allowed rules: a member alone computes them all and selects,
fewer kernels to compile for a slower step).
The arithmetic of each branch is written exactly as optax writes it (same operation order), and the tests
check each optimizer against plain optax, step by step.

Hyperparameters are per-member arrays (``learning_rate`` comes from the schedule):

* ``momentum`` — β of momentum/Nesterov SGD (optax ``trace``), β₁ of adam/adamw/adamax/nadam;
* ``beta2`` — β₂; ``rho`` — decay of rmsprop (optax ``decay``) and adadelta; ``eps``;
* ``weight_decay`` — L2: λ·w is added to the gradient of the weights before the rule (like
  ``optax.add_decayed_weights`` at the head of the chain); for adamw it is optax.adamw's *decoupled* decay.

``decay_mask`` marks the leaves weight decay applies to (the weight matrices; biases are left alone).
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import optax

from vtune.choose import choose
from vtune.hparams import OPTIMIZERS

OPTIMIZER_IDS = {name: i for i, name in enumerate(OPTIMIZERS)}
#: Up to this many allowed rules, a fused optimizer (``population_optimizer(fuse=True)``) has a member
#: compute every allowed rule and select its own, element by element (:func:`vtune.choose.choose` with ``fused=True``):
#: the rules and the select fuse into one kernel per buffer. Otherwise a ``lax.switch`` runs only the
#: member's rule. Measured on the 2-core development CPU (digits,
#: one member alone, W = 256 × 3 and W = 64 × 1): with 3 rules, fusing cut the Hyperband search's XLA
#: compile 8.1 -> 6.8 s (kernels per leaf update: ~14 -> ~3) for a 9-15% slower epoch; with all 10 rules
#: it made an epoch 30-73% slower (every rule's divisions and square roots on every element).
FUSE_RULES = 3
ADAGRAD_INITIAL_ACCUMULATOR = 0.1  # optax.adagrad's default initial_accumulator_value


class PopulationOptState(NamedTuple):
    """Superset optimizer state of one member (add a leading ``[P]`` axis for a population)."""

    count: jnp.ndarray  # int32 [] — updates applied so far
    m: Any  # params-shaped: momentum trace / first moment (None when no allowed rule has one)
    v: Any  # params-shaped: second moment / sum of squares / E[g²] (None likewise)
    w: Any  # params-shaped: adadelta's E[Δx²] (None unless adadelta is allowed)


def _bias_correction(moment, decay, count):
    return moment / (1 - decay**count).astype(moment.dtype)


def _leaf_update(name, g, p, m, v, w, count_inc, hp, decay):
    """(direction, new m, new v, new w) of optimizer ``name`` for one leaf; the update is −lr·direction."""
    b1, b2, rho, eps = hp["momentum"], hp["beta2"], hp["rho"], hp["eps"]
    if name == "sgd":
        return g, m, v, w
    if name in ("momentum", "nesterov"):
        t = g + b1 * m
        return (g + b1 * t if name == "nesterov" else t), t, v, w
    if name == "rmsprop":
        nu = (1 - rho) * g**2 + rho * v
        return jax.lax.rsqrt(nu + eps) * g, m, nu, w
    if name in ("adam", "adamw", "nadam"):
        mu = (1 - b1) * g + b1 * m
        nu = (1 - b2) * g**2 + b2 * v
        if name == "nadam":
            mu_hat = b1 * _bias_correction(mu, b1, count_inc + 1) + (1 - b1) * _bias_correction(g, b1, count_inc)
        else:
            mu_hat = _bias_correction(mu, b1, count_inc)
        nu_hat = _bias_correction(nu, b2, count_inc)
        d = mu_hat / (jnp.sqrt(nu_hat + 0.0) + eps)
        if name == "adamw":
            d = d + hp["weight_decay"] * p * decay
        return d, mu, nu, w
    if name == "adagrad":
        s = g**2 + v
        return jnp.where(s > 0, jax.lax.rsqrt(s + eps), 0.0) * g, m, s, w
    if name == "adadelta":
        e_g = (1 - rho) * g**2 + rho * v
        d = (jnp.sqrt(w + eps) / jnp.sqrt(e_g + eps)) * g
        e_x = (1 - rho) * d**2 + rho * w
        return d, m, e_g, e_x
    if name == "adamax":
        mu = (1 - b1) * g + b1 * m
        nu = jnp.maximum(jnp.abs(g) + eps, b2 * v)
        return _bias_correction(mu, b1, count_inc) / nu, mu, nu, w
    raise ValueError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")


def population_optimizer(
    *, optimizers: Sequence[str] = OPTIMIZERS, decay_mask: Any = None, fuse: bool = False
) -> optax.GradientTransformationExtraArgs:
    """The superset optimizer of one member; ``vmap`` it over a population.

    ``update(grads, state, params, *, hparams, learning_rate)`` takes the member's hyperparameters as
    scalars (``optimizer`` id, ``momentum``, ``beta2``, ``rho``, ``eps``, ``weight_decay``) and the learning
    rate of this update. ``optimizers`` (static) lists the rules that can occur, so only those are built, and
    only the buffers they read exist (:func:`buffers_used`; the others are None).

    >>> import jax.numpy as jnp
    >>> opt = population_optimizer(optimizers=("sgd",))
    >>> params = {"w": jnp.ones(2)}
    >>> state = opt.init(params)
    >>> hp = dict(optimizer=jnp.int32(0), momentum=0.9, beta2=0.999, rho=0.9, eps=1e-8, weight_decay=0.0)
    >>> upd, state = opt.update({"w": jnp.ones(2)}, state, params, hparams=hp, learning_rate=0.1)
    >>> [float(u) for u in upd["w"]]
    [-0.1, -0.1]
    """
    optimizers = tuple(optimizers)
    for name in optimizers:
        if name not in OPTIMIZER_IDS:
            raise ValueError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")
    uses = buffers_used(optimizers)
    fused = fuse and len(optimizers) <= FUSE_RULES

    def init_fn(params):
        # Adagrad's accumulator starts at 0.1; the caller fixes it per member with ``init_state_for``.
        # A buffer no allowed rule reads is None: no memory, no copies, no pass over it per step.
        zeros = lambda name: jax.tree.map(jnp.zeros_like, params) if uses[name] else None
        return PopulationOptState(count=jnp.zeros([], jnp.int32), m=zeros("m"), v=zeros("v"), w=zeros("w"))

    def update_fn(grads, state, params=None, *, hparams: Mapping[str, Any], learning_rate):
        count_inc = optax.safe_increment(state.count)
        mask = decay_mask if decay_mask is not None else jax.tree.map(lambda _: True, params)
        lam = hparams["weight_decay"]

        def leaf(g, p, m, v, w, decay):
            decay_f = jnp.asarray(decay, g.dtype)

            def rule(name):
                def run(g, p, m, v, w):
                    if name != "adamw":  # L2 penalty; adamw's decay is decoupled, inside its rule
                        g = g + lam * p * decay_f
                    return _leaf_update(name, g, p, m, v, w, count_inc, hparams, decay_f)
                return run

            d, m, v, w = choose(hparams["optimizer"], OPTIMIZER_IDS, optimizers, rule, g, p, m, v, w,
                                fused=fused)
            return -learning_rate * d, m, v, w

        # An unused buffer enters the rules as a scalar zero that no rule reads, and leaves as None.
        treedef = jax.tree.structure(grads)
        scalar = lambda: treedef.unflatten([jnp.zeros((), g.dtype) for g in jax.tree.leaves(grads)])
        m0, v0, w0 = (getattr(state, n) if uses[n] else scalar() for n in ("m", "v", "w"))
        results = jax.tree.map(leaf, grads, params, m0, v0, w0, mask)
        leaves = treedef.flatten_up_to(results)
        upd, m, v, w = (treedef.unflatten([r[i] for r in leaves]) for i in range(4))
        m, v, w = (x if uses[n] else None for x, n in ((m, "m"), (v, "v"), (w, "w")))
        return upd, PopulationOptState(count=count_inc, m=m, v=v, w=w)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def buffers_used(optimizers: Sequence[str]) -> dict:
    """``{"m", "v", "w"} -> bool``: which state buffers at least one of ``optimizers`` reads."""
    names = set(optimizers)
    return {
        "m": bool(names & {"momentum", "nesterov", "adam", "adamw", "nadam", "adamax"}),
        "v": bool(names & {"rmsprop", "adam", "adamw", "nadam", "adagrad", "adadelta", "adamax"}),
        "w": "adadelta" in names,
    }


def init_state_for(opt: optax.GradientTransformation, params, optimizer_id) -> PopulationOptState:
    """``opt.init(params)`` with the starting values the member's rule expects (adagrad: 0.1)."""
    state = opt.init(params)
    start = jnp.where(optimizer_id == OPTIMIZER_IDS["adagrad"], ADAGRAD_INITIAL_ACCUMULATOR, 0.0)
    v = jax.tree.map(lambda x: jnp.full_like(x, start), state.v)
    return state._replace(v=v)


def reference_optax(name: str, learning_rate, hp: Mapping[str, float], *, decay_mask=None) -> optax.GradientTransformation:
    """The plain optax optimizer that member rule ``name`` reproduces (used by the tests and docs)."""
    b1, b2, rho, eps, lam = hp["momentum"], hp["beta2"], hp["rho"], hp["eps"], hp["weight_decay"]
    l2 = optax.add_decayed_weights(lam, mask=decay_mask)
    rules = {
        "sgd": lambda: optax.sgd(learning_rate),
        "momentum": lambda: optax.sgd(learning_rate, momentum=b1),
        "nesterov": lambda: optax.sgd(learning_rate, momentum=b1, nesterov=True),
        "rmsprop": lambda: optax.rmsprop(learning_rate, decay=rho, eps=eps),
        "adam": lambda: optax.adam(learning_rate, b1=b1, b2=b2, eps=eps),
        "adagrad": lambda: optax.adagrad(learning_rate, eps=eps),
        "adadelta": lambda: optax.adadelta(learning_rate, rho=rho, eps=eps),
        "adamax": lambda: optax.adamax(learning_rate, b1=b1, b2=b2, eps=eps),
        "nadam": lambda: optax.nadam(learning_rate, b1=b1, b2=b2, eps=eps),
    }
    if name == "adamw":
        return optax.adamw(learning_rate, b1=b1, b2=b2, eps=eps, weight_decay=lam, mask=decay_mask)
    return optax.chain(l2, rules[name]())
