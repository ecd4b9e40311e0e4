"""Peer: a hand-written, one-model-at-a-time Hyperband in plain JAX + optax.

This is exact Hyperband (Li et al. 2018, Algorithm 1, :func:`bench.common.hyperband_brackets`): each bracket
samples its ``n`` configurations (:func:`bench.common.sample_config`, so with the same seed it sees the same
configurations as ``sklearn_halving``), trains every live configuration to the rung's epochs, keeps the top
``floor(n_i / eta)`` by validation accuracy, and the survivors train on from their own weights and
optimizer state (a rung at ``r_i`` epochs adds ``r_i - r_{i-1}`` epochs).

What a careful user writes: one jitted ``train_fn`` (train some epochs, then score the validation split)
per network shape, cached by ``(num_layers, units, optimizer)``; every numeric hyperparameter (learning rate, beta,
weight decay, dropout) and the activation choice are traced arrays (``optax.inject_hyperparams``), so a
new value never recompiles. Units are log-uniform integers, so nearly every configuration is a new shape
and the search pays about one compilation per configuration. Epochs run inside the program
(``lax.fori_loop`` over epochs, ``lax.scan`` over mini-batches); each epoch reshuffles and drops the last
partial batch (``floor(N / 64)`` steps).

``best_val_acc`` is the best validation accuracy of any (configuration, rung) evaluation; ``test_acc`` is
the test accuracy of those very weights (kept, not retrained; evaluated after the clock stops). A
configuration whose loss turns non-finite scores 0 (diverged) and never wins.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import numpy as np

from bench import common

common.disable_jax_compilation_cache()

import jax  # noqa: E402  (after the cache is switched off)
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

TOOL = "sequential_jax"


def _momentum(learning_rate, beta):
    return optax.sgd(learning_rate, momentum=beta)


def _adam(learning_rate, beta):
    return optax.adam(learning_rate, b1=beta)


def _rmsprop(learning_rate, beta):
    return optax.rmsprop(learning_rate, decay=beta)


OPTIMIZER_FACTORIES: dict[str, Callable[..., optax.GradientTransformation]] = {
    "momentum": _momentum,
    "adam": _adam,
    "rmsprop": _rmsprop,
}


def make_optimizer(name: str) -> optax.GradientTransformation:
    """The optimizer ``name`` with learning rate and beta as state arrays (values set at ``init``)."""
    return optax.inject_hyperparams(OPTIMIZER_FACTORIES[name])(learning_rate=1e-3, beta=0.9)


def layer_sizes(num_features: int, num_layers: int, units: int, num_classes: int) -> list[int]:
    return [num_features] + [units] * num_layers + [num_classes]


def init_params(rng: np.random.Generator, sizes: list[int]) -> list[tuple[jax.Array, jax.Array]]:
    """Glorot-uniform weights ``[d_in, d_out]`` and zero biases ``[d_out]`` for each layer.

    Drawn on the host with numpy: a jitted ``jax.random`` initialiser costs a multi-second threefry
    compilation per network shape on CPU, which a careful user avoids.
    """
    params = []
    for d_in, d_out in zip(sizes[:-1], sizes[1:]):
        limit = math.sqrt(6.0 / (d_in + d_out))
        w = rng.uniform(-limit, limit, (d_in, d_out)).astype(np.float32)
        params.append((jnp.asarray(w), jnp.zeros(d_out, jnp.float32)))
    return params


def forward(params, x, is_relu, dropout, key, *, train: bool) -> jax.Array:
    """Logits ``[B, C]`` of the MLP for inputs ``x`` ``[B, D]``; dropout on hidden activations if ``train``."""
    h = x
    for i, (w, b) in enumerate(params[:-1]):
        z = h @ w + b
        h = jnp.where(is_relu, jax.nn.relu(z), jnp.tanh(z))
        if train:
            keep = jax.random.bernoulli(jax.random.fold_in(key, i), 1.0 - dropout, h.shape)
            h = jnp.where(keep, h / (1.0 - dropout), 0.0)
    w, b = params[-1]
    return h @ w + b


def loss_fn(params, x, y, hp, key) -> jax.Array:
    """Mean softmax cross-entropy plus ``weight_decay / 2 * sum(W**2)`` over weight matrices."""
    logits = forward(params, x, hp["is_relu"], hp["dropout"], key, train=True)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    l2 = sum(jnp.sum(w * w) for w, _ in params)
    return ce + 0.5 * hp["weight_decay"] * l2


def build_train_fn(optimizer: str):
    """A jitted ``train_fn`` for one optimizer; :func:`run` builds one per network shape and reuses it.

    ``train_fn(params, opt_state, hp, key, first_epoch, num_epochs, x [N, D], y [N], x_val, y_val)``
    returns ``(params, opt_state, val_acc, finite)``; only the array shapes and the optimizer are static.
    """
    tx = make_optimizer(optimizer)

    def train_fn(params, opt_state, hp, key, first_epoch, num_epochs, x, y, x_val, y_val):
        """Train ``num_epochs`` epochs (traced count) from ``first_epoch``; return val accuracy too."""
        n = x.shape[0]
        steps = n // common.BATCH_SIZE

        def one_epoch(epoch, carry):
            params, opt_state, _ = carry
            ek = jax.random.fold_in(key, epoch)
            order = jax.random.permutation(jax.random.fold_in(ek, 0), n)[: steps * common.BATCH_SIZE]
            order = order.reshape(steps, common.BATCH_SIZE)

            def step(carry, inp):
                params, opt_state = carry
                idx, t = inp
                step_key = jax.random.fold_in(ek, t + 1)
                loss, grads = jax.value_and_grad(loss_fn)(params, x[idx], y[idx], hp, step_key)
                updates, opt_state = tx.update(grads, opt_state, params)
                return (optax.apply_updates(params, updates), opt_state), loss

            (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), (order, jnp.arange(steps)))
            return params, opt_state, losses[-1]

        params, opt_state, last_loss = jax.lax.fori_loop(
            first_epoch, first_epoch + num_epochs, one_epoch, (params, opt_state, jnp.float32(0.0))
        )
        logits = forward(params, x_val, hp["is_relu"], 0.0, key, train=False)
        acc = jnp.mean(jnp.argmax(logits, -1) == y_val)
        finite = jnp.isfinite(last_loss) & jnp.all(jnp.stack([jnp.all(jnp.isfinite(w)) for w, _ in params]))
        return params, opt_state, jnp.where(finite, acc, 0.0), finite

    return jax.jit(train_fn)


def accuracy(params, x, y, is_relu) -> float:
    logits = forward(params, x, is_relu, 0.0, None, train=False)
    return float(jnp.mean(jnp.argmax(logits, -1) == y))


def run(task_name: str, *, seed: int = 0, max_epochs: int = common.MAX_EPOCHS) -> dict[str, Any]:
    """One exact Hyperband iteration (R = ``max_epochs``, eta = 3), one model at a time.

    Example::

        >>> r = run("digits", max_epochs=3)  # doctest: +SKIP
        >>> r["num_trials"], r["model_epochs"]  # doctest: +SKIP
        (5, 11)
    """
    task = common.load_task(task_name)
    rng = np.random.default_rng(seed)
    programs: dict[tuple[int, int, str], Any] = {}  # (num_layers, units, optimizer) -> jitted train_fn
    model_epochs = num_trials = num_diverged = 0
    best = {"val": -1.0, "params": None, "is_relu": None, "config": None, "epochs": 0}

    t0 = time.perf_counter()
    x, y = jnp.asarray(task.x_train), jnp.asarray(task.y_train)
    x_val, y_val = jnp.asarray(task.x_val), jnp.asarray(task.y_val)
    base_key = jax.random.key(seed)
    for rungs in common.hyperband_brackets(max_epochs, common.ETA):
        configs = [common.sample_config(rng) for _ in range(rungs[0].num_configs)]
        members = []
        for config in configs:
            shape = (config["num_layers"], config["units"], config["optimizer"])
            if shape not in programs:
                programs[shape] = build_train_fn(config["optimizer"])
            key = jax.random.fold_in(base_key, num_trials)
            params = init_params(
                np.random.default_rng([seed, num_trials]),
                layer_sizes(task.num_features, config["num_layers"], config["units"], task.num_classes),
            )
            num_trials += 1
            opt_state = optax.inject_hyperparams(OPTIMIZER_FACTORIES[config["optimizer"]])(
                learning_rate=jnp.float32(config["learning_rate"]),
                beta=jnp.float32(common.optimizer_beta(config)),
            ).init(params)
            hp = {
                "is_relu": jnp.asarray(config["activation"] == "relu"),
                "dropout": jnp.float32(config["dropout"]),
                "weight_decay": jnp.float32(config["weight_decay"]),
            }
            members.append({"config": config, "shape": shape, "key": key, "hp": hp,
                            "params": params, "opt_state": opt_state, "score": 0.0})
        alive = list(range(len(members)))
        done = 0
        for i, rung in enumerate(rungs):
            for m in alive:
                mem = members[m]
                train_fn = programs[mem["shape"]]
                mem["params"], mem["opt_state"], acc, finite = train_fn(
                    mem["params"], mem["opt_state"], mem["hp"], mem["key"],
                    jnp.int32(done), jnp.int32(rung.epochs - done), x, y, x_val, y_val,
                )
                model_epochs += rung.epochs - done
                mem["score"] = float(acc)
                if not bool(finite):
                    num_diverged += 1
                if mem["score"] > best["val"]:
                    best = {"val": mem["score"], "params": mem["params"], "is_relu": mem["hp"]["is_relu"],
                            "config": mem["config"], "epochs": rung.epochs}
            if i + 1 < len(rungs):
                ranked = sorted(alive, key=lambda m: -members[m]["score"])  # stable: ties keep order
                alive = ranked[: rungs[i + 1].num_configs]
            done = rung.epochs
    wall_s = time.perf_counter() - t0

    test_acc = accuracy(best["params"], jnp.asarray(task.x_test), jnp.asarray(task.y_test), best["is_relu"])
    return common.make_result(
        TOOL,
        task_name,
        wall_s=wall_s,
        model_epochs=model_epochs,
        best_val_acc=best["val"],
        test_acc=test_acc,
        num_trials=num_trials,
        notes=(
            "exact Hyperband (Li et al. Alg. 1), survivors train on from their weights and optimizer state; "
            f"{len(programs)} compiled train+eval programs (one per shape; weights drawn with numpy) "
            f"for {num_trials} configs; "
            f"{num_diverged} diverged evaluations; epochs drop the last partial batch; "
            "test_acc: the best evaluation's weights kept (not retrained); model_epochs counted in the loop"
        ),
        num_compiled_shapes=len(programs),
        num_diverged=num_diverged,
        best_config=best["config"],
        best_epochs=best["epochs"],
        hyperband=[[list(r) for r in b] for b in common.hyperband_brackets(max_epochs, common.ETA)],
    )


if __name__ == "__main__":
    common.peer_main(run)
