"""The peer tools of the search-speed benchmark, one module each, each with the same entry point.

``run(task_name: str, *, seed: int = 0, max_epochs: int = 27) -> dict`` runs one Hyperband-style search
(R = ``max_epochs``, eta = 3) on a task of :mod:`bench.common` and returns
``{"tool", "task", "wall_s", "model_epochs", "best_val_acc", "test_acc", "num_trials", "notes", ...}``.
Each module is also a command: ``python -m bench.peers.<module> --task digits --json OUT [--smoke]``.

``bench/peers/vtune_run.py`` (vtune's own run) is written separately and is optional here.
"""

#: Short peer name (``--peers`` of ``bench/search_speed.py``) -> module under ``bench.peers``.
PEERS = {
    "sklearn": "sklearn_halving",
    "sequential": "sequential_jax",
    "optuna": "optuna_hb",
    "keras": "keras_tuner_hb",
}
