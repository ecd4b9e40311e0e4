"""The trainable protocol, a wrapper that vmaps a one-member training function, and the Beale task.

A *trainable population* is anything with three pure methods over a stacked state (leading axis ``[P]``):

* ``init(hparams) -> state`` — ``hparams`` is a dict of arrays ``[P]`` (it always has ``seed``);
* ``train_epoch(state, epoch) -> (state, scores [P])`` — one unit of resource (an "epoch"), then the
  validation scores of this epoch (higher is better; NaN/−inf for a diverged member);
* ``score(state) -> [P]`` — the score selection uses (−inf for a failed member).

If it is also a pytree (``flax.struct.PyTreeNode``, data as leaves, configuration as static fields), the
engine passes it into the compiled program as an argument. :class:`vtune.train.MLPTrainable` is the MLP
population; :class:`BealeTrainable` tunes an optimizer on Beale's function; :class:`FunctionTrainable`
turns *your* one-member functions (a flax model and loss, say) into a population with ``vmap``.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from vtune import hparams as hpmod
from vtune.optim import OPTIMIZER_IDS, init_state_for, population_optimizer
from vtune.schedules import SCHEDULE_IDS, learning_rate


class FunctionTrainable(struct.PyTreeNode):
    """A population from one-member functions, vmapped.

    * ``init_fn(hp, data) -> member_state`` — ``hp`` maps names to scalars (``hp["seed"]`` is a uint32;
      a ``Choice`` of strings or booleans arrives as the index of the value in the choice's values, a
      ``Choice`` of numbers as the number itself);
    * ``epoch_fn(member_state, hp, data, epoch) -> (member_state, score)`` — train one epoch and return the
      validation score (higher is better).

    ``data`` is any pytree of arrays (it becomes an argument of the compiled program). The functions must
    be module-level or otherwise stable objects: they are part of the compiled program's identity.
    Drawing a per-member flax initialisation inside ``init_fn`` (``jax.random.key(hp["seed"])``) is
    correct but slow to compile on CPU; passing one initial parameter set in ``data`` is much cheaper.

    Example (a linear model whose only hyperparameter is the learning rate):
        >>> import jax, jax.numpy as jnp
        >>> def init_fn(hp, data):
        ...     return jnp.zeros(data["x"].shape[1])
        >>> def epoch_fn(w, hp, data, epoch):
        ...     grad = jax.grad(lambda w: jnp.mean((data["x"] @ w - data["y"]) ** 2))(w)
        ...     w = w - hp["learning_rate"] * grad
        ...     return w, -jnp.mean((data["x"] @ w - data["y"]) ** 2)
        >>> tr = FunctionTrainable(data={"x": jnp.eye(3), "y": jnp.ones(3)}, init_fn=init_fn, epoch_fn=epoch_fn)
        >>> state = tr.init({"learning_rate": jnp.array([0.1, 1.0]), "seed": jnp.array([0, 1], jnp.uint32)})
        >>> state, scores = tr.train_epoch(state, 0)
        >>> scores.shape
        (2,)
    """

    data: Any
    init_fn: Callable = struct.field(pytree_node=False)
    epoch_fn: Callable = struct.field(pytree_node=False)
    metric: str = struct.field(pytree_node=False, default="score")

    def init(self, hparams):
        member = jax.vmap(self.init_fn, in_axes=(0, None))(dict(hparams), self.data)
        n = len(hparams["seed"])
        return {"member": member, "last": jnp.full((n,), jnp.nan, jnp.float32), "hp": dict(hparams)}

    def train_epoch(self, state, epoch):
        member, scores = jax.vmap(self.epoch_fn, in_axes=(0, 0, None, None))(
            state["member"], state["hp"], self.data, epoch)
        scores = jnp.asarray(scores, jnp.float32)
        return {"member": member, "last": scores, "hp": state["hp"]}, scores

    def score(self, state):
        s = state["last"]
        return jnp.where(jnp.isfinite(s), s, -jnp.inf)


def encode_generic(configs: Sequence[Mapping[str, Any]], space, *, seeds) -> dict[str, np.ndarray]:
    """Stack configurations for a :class:`FunctionTrainable`: numbers as float32/int32, choices as indices."""
    from vtune.space import Choice

    out: dict[str, np.ndarray] = {}
    for name in space.names:
        dim = space[name] if name in space.dimensions else None
        values = [c[name] for c in configs]
        if isinstance(dim, Choice) and not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            out[name] = np.array([dim.index(v) for v in values], np.int32)
        elif all(isinstance(v, (bool, np.bool_)) for v in values):
            out[name] = np.array(values, np.bool_)
        elif all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
            out[name] = np.array(values, np.int32)
        elif all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in values):
            out[name] = np.array(values, np.float32)
        else:
            raise TypeError(f"hyperparameter {name!r} has values {values[:3]!r}: give it a Choice dimension")
    out["seed"] = np.asarray(seeds, np.uint32)
    return out


# ------------------------------------------------------------------------------------------------- Beale


def beale(x, y):
    """Beale's function; minimum 0 at (3, 0.5)."""
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


BEALE_START = (1.0, 1.5)


class BealeTrainable(struct.PyTreeNode):
    """Tune an optimizer to minimise Beale's function from a fixed start; score = −f (higher is better).

    Every member starts at ``BEALE_START`` and runs ``steps_per_epoch`` updates of its own optimizer
    (the same superset rule and schedules as the MLP engine) per "epoch". A member whose iterate leaves
    the finite numbers is diverged. The known optimum is f(3, 0.5) = 0.
    """

    start: jax.Array
    steps_per_epoch: int = struct.field(pytree_node=False, default=10)
    optimizers: tuple = struct.field(pytree_node=False, default=hpmod.OPTIMIZERS)
    schedules: tuple = struct.field(pytree_node=False, default=hpmod.SCHEDULES)
    task: str = struct.field(pytree_node=False, default="beale")

    @classmethod
    def create(cls, *, steps_per_epoch: int = 10, optimizers=hpmod.OPTIMIZERS, schedules=hpmod.SCHEDULES):
        return cls(start=jnp.asarray(BEALE_START, jnp.float32), steps_per_epoch=int(steps_per_epoch),
                   optimizers=tuple(optimizers), schedules=tuple(schedules))

    def _opt(self):
        return population_optimizer(optimizers=self.optimizers, decay_mask={"xy": True})

    def init(self, hparams):
        def one(hp):
            params = {"xy": self.start}
            return {"params": params, "opt": init_state_for(self._opt(), params, hp["optimizer"]),
                    "diverged": jnp.bool_(False), "last": jnp.float32(jnp.nan), "hp": hp}
        return jax.vmap(one)(dict(hparams))

    def _member_epoch(self, st, epoch):
        hp = st["hp"]
        f = lambda p: beale(p["xy"][0], p["xy"][1])

        def step(carry, _):
            params, opt, diverged = carry
            loss, grads = jax.value_and_grad(f)(params)
            t = opt.count.astype(jnp.float32) / self.steps_per_epoch
            lr = learning_rate(t, hp, schedules=self.schedules)
            upd, new_opt = self._opt().update(grads, opt, params, hparams=hp, learning_rate=lr)
            new = jax.tree.map(lambda p, u: p + u, params, upd)
            ok = ~diverged & jnp.isfinite(loss) & jnp.all(jnp.isfinite(new["xy"]))
            keep = lambda a, b: jax.tree.map(lambda x, y: jnp.where(ok, x, y), a, b)
            return (keep(new, params), keep(new_opt, opt), diverged | ~ok), None

        (params, opt, diverged), _ = jax.lax.scan(step, (st["params"], st["opt"], st["diverged"]), None,
                                                  length=self.steps_per_epoch)
        value = f(params)
        diverged = diverged | ~jnp.isfinite(value)
        score = jnp.where(diverged, jnp.nan, -value)
        return {"params": params, "opt": opt, "diverged": diverged, "last": score, "hp": hp}, score

    def train_epoch(self, state, epoch):
        return jax.vmap(self._member_epoch, in_axes=(0, None))(state, epoch)

    def score(self, state):
        s = state["last"]
        return jnp.where(state["diverged"] | ~jnp.isfinite(s), -jnp.inf, s)


def beale_hparams(configs, *, seeds, max_epochs=None) -> dict[str, np.ndarray]:
    """Encode optimizer configurations for :class:`BealeTrainable` (only optimizer/schedule names count)."""
    full = [hpmod.complete_config(c, task="regression", max_epochs=max_epochs) for c in configs]
    names = ("learning_rate", "momentum", "beta2", "rho", "eps", "weight_decay", "decay_rate", "step_factor",
             "step_epochs", "warmup_epochs", "cosine_epochs", "restart_epochs", "restart_mult", "min_lr_ratio")
    out = {n: np.array([c[n] for c in full], np.float32) for n in names}
    out["optimizer"] = np.array([OPTIMIZER_IDS[c["optimizer"]] for c in full], np.int32)
    out["schedule"] = np.array([SCHEDULE_IDS[c["schedule"]] for c in full], np.int32)
    out["seed"] = np.asarray(seeds, np.uint32)
    return out
