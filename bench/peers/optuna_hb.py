"""Peer: Optuna's TPE sampler with its ``HyperbandPruner``, each trial a flax (linen) + optax training loop.

This is the code a user writes from the Optuna and flax tutorials: ``n_trials = 49`` (Hyperband's number
of configurations for R = 27, eta = 3), ``TPESampler(seed=seed)``,
``HyperbandPruner(min_resource=1, max_resource=27, reduction_factor=3)``; each trial builds a linen
``MLP``, a ``TrainState`` with its optax optimizer, defines a ``jax.jit`` train step and eval step
(so every trial compiles its own programs, whatever its shape), trains epoch by epoch in a Python loop
over numpy mini-batches (the dropout key is folded with ``state.step`` inside the step), reports the
validation accuracy after every epoch and stops when ``trial.should_prune()`` says so.

How it differs from exact Hyperband:

* Optuna's pruner is *asynchronous* successive halving per bracket: trials run one after another, each
  is assigned to one of 4 brackets by a hash of its number weighted by bracket budget, and a trial is
  stopped at a rung when it is not in the top ``1/3`` of the trials of its bracket that *already*
  reported at that rung. Early trials of a bracket have no competitors and run to 27 epochs; the number of
  configurations per rung is not fixed, so the model-epochs it spends differ from Hyperband's 357.
* TPE chooses configurations from the history (not uniform random sampling). The space is the same:
  ``suggest_float(..., log=True)`` for learning rate and weight decay, ``1 - beta`` log-uniform on
  [1e-3, 0.1], ``suggest_int("units", 16, 256, log=True)``, categorical optimizer and activation.
* Every trial trains from scratch and continues its own run; nothing is retrained.
* Epochs shuffle with numpy and drop the last partial batch (``floor(N / 64)`` steps; a partial batch
  would compile a second program).

``model_epochs`` is counted in the training loop. ``best_val_acc`` is the best validation accuracy any
trial reported at any epoch; ``test_acc`` is the test accuracy of those very weights (kept: evaluated
in the trial when a new best appears, not retrained — a cheap forward pass). Optuna's own
``study.best_value`` (final value of the best *completed* trial) is returned as ``optuna_best_value``.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from bench import common

common.disable_jax_compilation_cache()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from flax import linen as nn  # noqa: E402
from flax.training import train_state  # noqa: E402

TOOL = "optuna_hyperband"


class MLP(nn.Module):
    """``num_layers`` hidden Dense layers of ``units`` (Glorot-uniform, zero bias), dropout, linear output."""

    num_layers: int
    units: int
    activation: str
    dropout: float
    num_classes: int

    @nn.compact
    def __call__(self, x, *, train: bool):
        act = nn.relu if self.activation == "relu" else nn.tanh
        for _ in range(self.num_layers):
            x = act(nn.Dense(self.units, kernel_init=nn.initializers.glorot_uniform())(x))
            x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return nn.Dense(self.num_classes, kernel_init=nn.initializers.glorot_uniform())(x)


def make_tx(optimizer: str, learning_rate: float, beta: float) -> optax.GradientTransformation:
    if optimizer == "momentum":
        return optax.sgd(learning_rate, momentum=beta)
    if optimizer == "adam":
        return optax.adam(learning_rate, b1=beta)
    return optax.rmsprop(learning_rate, decay=beta)


def suggest_config(trial) -> dict[str, Any]:
    """The benchmark space (:data:`bench.common.SPACE`) through Optuna's ``suggest_*`` API."""
    optimizer = trial.suggest_categorical("optimizer", list(common.OPTIMIZERS))
    beta = 1.0 - trial.suggest_float("one_minus_beta", 1.0 - 0.999, 1.0 - 0.9, log=True)
    config = {
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True),
        "optimizer": optimizer,
        "num_layers": trial.suggest_int("num_layers", 1, 3),
        "units": trial.suggest_int("units", 16, 256, log=True),
        "activation": trial.suggest_categorical("activation", list(common.ACTIVATIONS)),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        "batch_size": common.BATCH_SIZE,
    }
    config["rho" if optimizer == "rmsprop" else "momentum"] = beta
    return config


def run(task_name: str, *, seed: int = 0, max_epochs: int = common.MAX_EPOCHS) -> dict[str, Any]:
    """TPE + HyperbandPruner(1, ``max_epochs``, 3) for as many trials as Hyperband has configurations."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    task = common.load_task(task_name)
    num_trials, _ = common.hyperband_budget(max_epochs, common.ETA)
    counters = {"epochs": 0, "pruned": 0, "diverged": 0}
    best: dict[str, Any] = {"val": -1.0, "test": float("nan"), "config": None, "epoch": 0, "trial": -1}

    t0 = time.perf_counter()
    x_val, y_val = jnp.asarray(task.x_val), jnp.asarray(task.y_val)
    x_test, y_test = jnp.asarray(task.x_test), jnp.asarray(task.y_test)
    n = task.x_train.shape[0]
    steps = n // common.BATCH_SIZE

    def objective(trial) -> float:
        config = suggest_config(trial)
        model = MLP(config["num_layers"], config["units"], config["activation"], config["dropout"], task.num_classes)
        key = jax.random.key(seed * 100_003 + trial.number)
        init_key, dropout_key = jax.random.split(key)
        params = model.init(init_key, task.x_train[:1], train=False)["params"]
        tx = make_tx(config["optimizer"], config["learning_rate"], common.optimizer_beta(config))
        state = train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx)
        weight_decay = config["weight_decay"]

        @jax.jit
        def train_step(state, xb, yb):
            step_key = jax.random.fold_in(dropout_key, state.step)

            def loss_fn(params):
                logits = state.apply_fn({"params": params}, xb, train=True, rngs={"dropout": step_key})
                ce = optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()
                l2 = sum(jnp.sum(w * w) for path, w in jax.tree_util.tree_leaves_with_path(params)
                         if path[-1].key == "kernel")
                return ce + 0.5 * weight_decay * l2

            loss, grads = jax.value_and_grad(loss_fn)(state.params)
            return state.apply_gradients(grads=grads), loss

        @jax.jit
        def accuracy(params, x, y):
            logits = model.apply({"params": params}, x, train=False)
            return jnp.mean(jnp.argmax(logits, -1) == y)

        order_rng = np.random.default_rng([seed, trial.number])
        val_acc = 0.0
        for epoch in range(max_epochs):
            order = order_rng.permutation(n)[: steps * common.BATCH_SIZE].reshape(steps, common.BATCH_SIZE)
            for idx in order:
                state, loss = train_step(state, task.x_train[idx], task.y_train[idx])
            counters["epochs"] += 1
            if not math.isfinite(float(loss)):
                counters["diverged"] += 1
                raise optuna.TrialPruned()  # a failed trial: never a winner
            val_acc = float(accuracy(state.params, x_val, y_val))
            if val_acc > best["val"]:
                test_acc = float(accuracy(state.params, x_test, y_test))
                best.update(val=val_acc, test=test_acc, config=config, epoch=epoch + 1, trial=trial.number)
            trial.report(val_acc, epoch + 1)
            if trial.should_prune():
                counters["pruned"] += 1
                raise optuna.TrialPruned()
        return val_acc

    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_epochs, reduction_factor=common.ETA),
    )
    study.optimize(objective, n_trials=num_trials)
    wall_s = time.perf_counter() - t0

    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    return common.make_result(
        TOOL,
        task_name,
        wall_s=wall_s,
        model_epochs=counters["epochs"],
        best_val_acc=best["val"],
        test_acc=best["test"],
        num_trials=len(study.trials),
        notes=(
            f"TPE + HyperbandPruner(1, {max_epochs}, 3), asynchronous SH: {len(complete)} trials ran to "
            f"{max_epochs} epochs, {counters['pruned']} pruned, {counters['diverged']} diverged; "
            "jit per trial (compiles every trial); test_acc: weights of the best reported epoch kept (not "
            "retrained); model_epochs counted in the loop; epochs drop the last partial batch"
        ),
        num_complete=len(complete),
        num_pruned=counters["pruned"],
        num_diverged=counters["diverged"],
        optuna_best_value=float(study.best_value) if complete else None,
        best_config=best["config"],
        best_epoch=best["epoch"],
        best_trial=best["trial"],
    )


if __name__ == "__main__":
    common.peer_main(run)
