"""Peer: Keras Tuner's ``Hyperband`` with a Keras 3 model on the JAX backend.

``kt.Hyperband(objective="val_accuracy", max_epochs=27, factor=3, hyperband_iterations=1)`` with a
``keras.Sequential`` MLP built from the benchmark space (:data:`bench.common.SPACE`): Dense layers with
Glorot-uniform kernels and ``L2(weight_decay / 2)`` kernel regularisers (Keras's ``L2(l)`` adds
``l * sum(W**2)``, so the gradient is ``weight_decay * W`` as in every other tool), ``Dropout`` after each
hidden activation, SGD(momentum=beta) / Adam(beta_1=beta) / RMSprop(rho=beta) with ``epsilon=1e-8``
(optax's default), sparse softmax cross-entropy on logits, batch 64. The tuner writes its trials and
checkpoints to a temporary directory, deleted afterwards.

How it differs from exact Hyperband:

* **Rounding.** Keras Tuner sizes rung ``i`` of bracket ``s`` as ``ceil(ceil(1 + log_3 R) / (s + 1) *
  3**(s - i))``: for R = 27 that is 27/9/3/1, 12/4/**2**, 6/2, 4 — 49 configurations, like Hyperband,
  but bracket s = 2 ends with 2 configurations instead of 1 (375 model-epochs instead of 357).
* **Continuation from the best epoch, without optimizer state.** A survivor is a new trial that builds
  and compiles a new model, loads the *best-epoch* checkpoint of its previous trial (not its last
  epoch's weights) and trains on from epoch ``r_{i-1}`` to ``r_i`` with a freshly initialised optimizer
  (momentum and Adam moments restart at zero).
* Every trial (configuration and rung) builds and compiles its own Keras model: 49 configurations are
  70 trials for R = 27.
* Keras shuffles every epoch and keeps the last partial batch.

``model_epochs`` is counted by a callback at the end of every epoch. ``best_val_acc`` is the score of
the tuner's best trial (its best epoch's ``val_accuracy``); ``test_acc`` is the test accuracy of
``tuner.get_best_models(1)[0]`` (that trial's best-epoch checkpoint, kept, not retrained; evaluated after
the clock stops).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from typing import Any

from bench import common

os.environ["KERAS_BACKEND"] = "jax"
common.disable_jax_compilation_cache()

import keras  # noqa: E402  (after the backend is chosen)
import keras_tuner as kt  # noqa: E402

TOOL = "keras_tuner_hyperband"

_EPOCHS = [0]  # epochs trained in this process; callbacks are deep-copied per trial, so count here


class EpochCounter(keras.callbacks.Callback):
    """Adds one to the process-wide epoch counter at the end of every training epoch."""

    def on_epoch_end(self, epoch, logs=None):
        _EPOCHS[0] += 1


def make_build_fn(num_features: int, num_classes: int):
    """The hypermodel: ``build(hp) -> compiled keras.Model`` over the benchmark space."""

    def build(hp: kt.HyperParameters) -> keras.Model:
        optimizer = hp.Choice("optimizer", list(common.OPTIMIZERS))
        beta = 1.0 - hp.Float("one_minus_beta", 1.0 - 0.999, 1.0 - 0.9, sampling="log")
        learning_rate = hp.Float("learning_rate", 1e-4, 1e-1, sampling="log")
        num_layers = hp.Int("num_layers", 1, 3)
        units = hp.Int("units", 16, 256, sampling="log")
        activation = hp.Choice("activation", list(common.ACTIVATIONS))
        weight_decay = hp.Float("weight_decay", 1e-6, 1e-2, sampling="log")
        dropout = hp.Float("dropout", 0.0, 0.5)
        layers: list[Any] = [keras.Input((num_features,))]
        for _ in range(num_layers):
            layers.append(
                keras.layers.Dense(
                    units,
                    activation=activation,
                    kernel_initializer="glorot_uniform",
                    kernel_regularizer=keras.regularizers.L2(weight_decay / 2),
                )
            )
            layers.append(keras.layers.Dropout(dropout))
        layers.append(keras.layers.Dense(num_classes, kernel_initializer="glorot_uniform"))
        model = keras.Sequential(layers)
        if optimizer == "momentum":
            opt = keras.optimizers.SGD(learning_rate, momentum=beta)
        elif optimizer == "adam":
            opt = keras.optimizers.Adam(learning_rate, beta_1=beta, epsilon=1e-8)
        else:
            opt = keras.optimizers.RMSprop(learning_rate, rho=beta, epsilon=1e-8)
        model.compile(
            optimizer=opt,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        return model

    return build


def run(task_name: str, *, seed: int = 0, max_epochs: int = common.MAX_EPOCHS) -> dict[str, Any]:
    """``kt.Hyperband(max_epochs=max_epochs, factor=3, hyperband_iterations=1)`` on one task."""
    task = common.load_task(task_name)
    keras.utils.set_random_seed(seed)
    _EPOCHS[0] = 0
    workdir = tempfile.mkdtemp(prefix="bench_kt_")
    try:
        t0 = time.perf_counter()
        tuner = kt.Hyperband(
            hypermodel=make_build_fn(task.num_features, task.num_classes),
            objective="val_accuracy",
            max_epochs=max_epochs,
            factor=common.ETA,
            hyperband_iterations=1,
            seed=seed,
            directory=workdir,
            project_name="search",
            overwrite=True,
        )
        tuner.search(
            task.x_train,
            task.y_train,
            validation_data=(task.x_val, task.y_val),
            batch_size=common.BATCH_SIZE,
            callbacks=[EpochCounter()],
            verbose=0,
        )
        wall_s = time.perf_counter() - t0

        trials = list(tuner.oracle.trials.values())
        num_configs = sum(1 for t in trials if t.hyperparameters.values.get("tuner/round", 0) == 0)
        best_trial = tuner.oracle.get_best_trials(1)[0]
        best_model = tuner.get_best_models(1)[0]
        _, test_acc = best_model.evaluate(task.x_test, task.y_test, batch_size=512, verbose=0)
        best_hp = dict(best_trial.hyperparameters.values)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return common.make_result(
        TOOL,
        task_name,
        wall_s=wall_s,
        model_epochs=_EPOCHS[0],
        best_val_acc=float(best_trial.score),
        test_acc=float(test_acc),
        num_trials=num_configs,
        notes=(
            f"kt.Hyperband(max_epochs={max_epochs}, factor=3, hyperband_iterations=1), Keras "
            f"{keras.__version__} on {keras.backend.backend()}; {len(trials)} tuner trials for {num_configs} "
            "configs; rungs sized with ceil (bracket s=2 ends with 2, not 1); survivors reload their "
            "best-epoch weights, optimizer state restarts; a model build+compile per trial; test_acc: best "
            "trial's checkpoint kept (not retrained); model_epochs counted by a callback"
        ),
        num_tuner_trials=len(trials),
        best_hyperparameters=best_hp,
    )


if __name__ == "__main__":
    common.peer_main(run)
