"""vtune's side of the search-speed benchmark: the same task, space and budget as every peer.

``wall_s`` is the whole ``vtune.tune`` call (data already split by ``bench.common.load_task``), compile
and the test evaluation of the best model included; like every peer's clock it starts after the imports
and the data split (``import_s`` reports those; the harness's ``process_s`` counts everything, for every
tool). The caller runs it in a fresh process with an empty (cold) or filled (warm) compile cache.
"""

from __future__ import annotations

import time

from bench import common


def space():
    import vtune

    return vtune.Space({
        "learning_rate": vtune.Float(1e-4, 1e-1, scale="log"),
        "momentum": vtune.Float(0.9, 0.999, scale="reverse_log"),
        "rho": vtune.Float(0.9, 0.999, scale="reverse_log"),
        "num_layers": vtune.Int(1, 3),
        "units": vtune.Int(16, 256, scale="log"),
        "optimizer": vtune.Choice(list(common.OPTIMIZERS)),
        "activation": vtune.Choice(list(common.ACTIVATIONS)),
        "weight_decay": vtune.Float(1e-6, 1e-2, scale="log"),
        "dropout": vtune.Float(0.0, 0.5),
        "batch_size": common.BATCH_SIZE,
    })


def run_vtune(task_name: str, seed: int, cache_dir: str, *, max_epochs: int = common.MAX_EPOCHS) -> dict:
    t_start = time.perf_counter()
    import vtune

    task = common.load_task(task_name)
    data = vtune.data.from_splits(task.x_train, task.y_train, task.x_val, task.y_val, task.x_test, task.y_test,
                                  task="classification", name=task_name, scaling="none")
    space_ = space()
    # The clock starts where every peer's does: library imported, data loaded and split (the peers start
    # theirs after their imports and ``load_task`` too). ``process_s``, measured by the caller for every
    # tool alike, counts interpreter start, imports and data as well.
    t0 = time.perf_counter()
    t_import = t0 - t_start
    result = vtune.tune(space_, data, strategy="hyperband", max_epochs=max_epochs, eta=common.ETA, seed=seed,
                        compile_cache=cache_dir)
    wall = time.perf_counter() - t0
    return {
        "tool": "vtune",
        "task": task_name,
        "wall_s": wall,
        "model_epochs": result.model_epochs,
        "best_val_acc": result.best_val_score,
        "test_acc": result.best_test_score,
        "num_trials": len(result.trials),
        "notes": (f"one compiled program for all brackets; compile {result.compile_s:.1f}s in "
                  f"{result.num_compiles} compilation(s); import+data {t_import:.1f}s; search {result.wall_s:.1f}s; "
                  "wall_s is the vtune.tune call, compile and the best model's test evaluation included"),
        "compile_s": result.compile_s,
        "num_compiles": result.num_compiles,
        "search_s": result.wall_s,
        "import_s": t_import,
    }
