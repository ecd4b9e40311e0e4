"""Peer: scikit-learn's ``HalvingRandomSearchCV`` over ``MLPClassifier``, one search per Hyperband bracket.

Hyperband is successive halving run over several brackets, so this peer runs one
``HalvingRandomSearchCV(MLPClassifier(...), resource="max_iter", factor=3, ...)`` per bracket of
:func:`bench.common.hyperband_brackets`: bracket ``s`` gets ``n_candidates = n`` and ``min_resources = r``,
``max_resources = R``. The first (``s = s_max``) is exactly ``min_resources=1, max_resources=27``.
Candidates come from :func:`bench.common.sample_config` (the same draws as ``sequential_jax`` for the same
seed), handed over as a list of one-point grids so every tool samples the same space.

How it differs from exact Hyperband:

* **No continuation.** Each rung refits its candidates from scratch with ``max_iter = r_i`` (sklearn's
  halving has no warm start over the resource), so a survivor re-trains its earlier epochs: 450
  model-epochs instead of 357 for R = 27.
* **Rounding.** sklearn keeps ``ceil(n_i / 3)`` candidates, Hyperband ``floor(n_i / 3)``; for R = 27 the
  only difference is bracket s = 2, whose last rung has 2 configurations instead of 1.
* **No dropout** in ``MLPClassifier``: the sampled dropout is ignored.
* **No RMSprop**: RMSprop trials run ``solver="adam"`` with ``beta_1 = rho``. SGD uses
  ``momentum = beta`` (``nesterovs_momentum=False``); Adam uses ``beta_1 = beta``.
* **L2**: sklearn's gradient of its ``alpha`` term is ``alpha / batch * W`` per step, so ``alpha =
  weight_decay * 64`` gives the same ``weight_decay * W`` as every other tool.
* An "iteration" of ``MLPClassifier`` is one epoch over the training split (including the last partial
  batch); ``n_iter_no_change`` is set out of reach so every fit runs exactly ``max_iter`` epochs.

Validation: ``PredefinedSplit`` over train+val makes the single CV fold train on the training split and
score accuracy on the validation split. ``model_epochs`` is the sum of ``n_iter_`` of every fitted
``MLPClassifier`` (counted by a subclass in this process; the resource schedule's total is kept as a
cross-check). ``best_val_acc`` is the best score of any (candidate, rung) evaluation over all brackets;
``test_acc`` comes from re-fitting that candidate with its ``max_iter`` on the training split after the
clock stops (``random_state`` is fixed, so the re-fit reproduces the scored model; its validation score
is checked against the search's).
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from bench import common

TOOL = "sklearn_halving"

_EPOCHS = [0]  # model-epochs trained by CountingMLP fits in this process


def _make_counting_mlp():
    from sklearn.neural_network import MLPClassifier

    class CountingMLP(MLPClassifier):
        """``MLPClassifier`` that adds the epochs of every fit (``n_iter_``) to a process-wide counter."""

        def fit(self, X, y, **kwargs):
            try:
                return super().fit(X, y, **kwargs)
            finally:
                _EPOCHS[0] += int(getattr(self, "n_iter_", 0))

    return CountingMLP


def mlp_params(config: dict[str, Any]) -> dict[str, Any]:
    """``MLPClassifier`` keyword arguments for one configuration of :data:`bench.common.SPACE`.

    Example::

        >>> mlp_params({"optimizer": "rmsprop", "rho": 0.95, "learning_rate": 0.01, "num_layers": 2,
        ...             "units": 32, "activation": "tanh", "weight_decay": 1e-4})["solver"]
        'adam'
    """
    beta = common.optimizer_beta(config)
    params = {
        "hidden_layer_sizes": (config["units"],) * config["num_layers"],
        "activation": config["activation"],
        "learning_rate_init": config["learning_rate"],
        "alpha": config["weight_decay"] * common.BATCH_SIZE,
    }
    if config["optimizer"] == "momentum":
        params.update(solver="sgd", momentum=beta, nesterovs_momentum=False)
    else:  # adam, and rmsprop mapped to adam with beta_1 = rho
        params.update(solver="adam", beta_1=beta)
    return params


def run(task_name: str, *, seed: int = 0, max_epochs: int = common.MAX_EPOCHS) -> dict[str, Any]:
    """Hyperband as one ``HalvingRandomSearchCV`` per bracket (R = ``max_epochs``, factor 3)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import HalvingRandomSearchCV, PredefinedSplit

    task = common.load_task(task_name)
    counting_mlp = _make_counting_mlp()
    x = np.concatenate([task.x_train, task.x_val])
    y = np.concatenate([task.y_train, task.y_val])
    cv = PredefinedSplit(np.r_[np.full(len(task.y_train), -1), np.zeros(len(task.y_val), dtype=int)])
    base = counting_mlp(
        batch_size=common.BATCH_SIZE,
        learning_rate="constant",
        shuffle=True,
        early_stopping=False,
        n_iter_no_change=10**9,
        random_state=seed,
    )
    rng = np.random.default_rng(seed)
    brackets = common.hyperband_brackets(max_epochs, common.ETA)
    _EPOCHS[0] = 0
    evaluations = []  # (val_acc, params incl. max_iter, config)
    schedule_epochs = num_trials = num_failed = 0
    searches = []

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)  # failed fits (non-finite weights) score 0
        warnings.simplefilter("ignore", RuntimeWarning)
        for rungs in brackets:
            configs = [common.sample_config(rng) for _ in range(rungs[0].num_configs)]
            grid = [{k: [v] for k, v in mlp_params(c).items()} for c in configs]
            search = HalvingRandomSearchCV(
                base,
                grid,
                n_candidates=len(configs),
                resource="max_iter",
                min_resources=rungs[0].epochs,
                max_resources=max_epochs,
                factor=common.ETA,
                cv=cv,
                scoring="accuracy",
                refit=False,
                error_score=0.0,
                random_state=seed,
                n_jobs=1,
            )
            search.fit(x, y)
            num_trials += len(configs)
            res = search.cv_results_
            by_params = {repr(sorted(mlp_params(c).items())): c for c in configs}
            for score, params, r in zip(res["mean_test_score"], res["params"], res["param_max_iter"]):
                config = by_params[repr(sorted((k, v) for k, v in params.items() if k != "max_iter"))]
                evaluations.append((float(score), dict(params), config))
                schedule_epochs += int(r)
            num_failed += int(np.sum(res["mean_test_score"] == 0.0))
            searches.append(
                {
                    "n_candidates": [int(v) for v in search.n_candidates_],
                    "n_resources": [int(v) for v in search.n_resources_],
                }
            )
    wall_s = time.perf_counter() - t0
    model_epochs = _EPOCHS[0]

    best_val, best_params, best_config = max(evaluations, key=lambda e: e[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = counting_mlp(**{**base.get_params(), **best_params}).fit(task.x_train, task.y_train)
    refit_val = float(model.score(task.x_val, task.y_val))
    test_acc = float(model.score(task.x_test, task.y_test))
    return common.make_result(
        TOOL,
        task_name,
        wall_s=wall_s,
        model_epochs=model_epochs,
        best_val_acc=best_val,
        test_acc=test_acc,
        num_trials=num_trials,
        notes=(
            "one HalvingRandomSearchCV per Hyperband bracket; rungs refit from scratch (no continuation); "
            "keeps ceil(n/3) not floor(n/3); no dropout; RMSprop mapped to adam(beta_1=rho); alpha = wd*64; "
            f"model_epochs = sum of n_iter_ (schedule says {schedule_epochs}); {num_failed} failed/zero-score fits; "
            f"test_acc: best candidate re-fit after the clock (its val acc {refit_val:.4f} vs search {best_val:.4f})"
        ),
        schedule_epochs=schedule_epochs,
        refit_val_acc=refit_val,
        best_config=best_config,
        best_max_iter=int(best_params["max_iter"]),
        searches=searches,
    )


if __name__ == "__main__":
    common.peer_main(run)
