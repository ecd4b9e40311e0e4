"""The compiled core: one program for a whole mixed population, chunking that never changes the numbers,
and the persistent compile cache across processes."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

import vtune
from vtune import hparams as hpmod
from vtune.engine import Engine
from vtune.plan import Bracket, Rung, hyperband
from vtune.train import MLPTrainable, encode_hparams, pad_hparams

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _small_digits(n=256):
    ds = vtune.load_dataset("digits")
    return vtune.data.from_splits(ds.x_train[:n], ds.y_train[:n], ds.x_val[:96], ds.y_val[:96],
                                  ds.x_test[:96], ds.y_test[:96], task="classification", scaling="none")


def _mixed_configs(num, seed):
    rng = np.random.default_rng(seed)
    pick = lambda xs: xs[int(rng.integers(len(xs)))]
    configs = []
    for _ in range(num):
        configs.append({
            "learning_rate": float(10 ** rng.uniform(-3.5, -1.5)),
            "optimizer": pick(hpmod.OPTIMIZERS),
            "momentum": float(1 - 10 ** rng.uniform(-3, -1)),
            "schedule": pick(hpmod.SCHEDULES),
            "decay_rate": float(rng.uniform(0.01, 0.5)),
            "step_epochs": 1.0,
            "warmup_epochs": 0.5,
            "cosine_epochs": 3.0,
            "restart_epochs": 1.0,
            "activation": pick(hpmod.ACTIVATIONS),
            "init": pick(hpmod.INITS),
            "num_layers": int(rng.integers(1, 4)),
            "units": int(rng.integers(4, 17)),
            "units_2": int(rng.integers(4, 17)),
            "batch_size": pick([16, 32, 64]),
            "dropout": float(rng.uniform(0, 0.4)),
            "weight_decay": float(10 ** rng.uniform(-5, -2)),
        })
    return configs


def _trainable(ds):
    return MLPTrainable.create(ds, max_layers=3, max_units=16, micro_batch=16, width_tiers=())


def test_256_mixed_members_one_compiled_call_and_new_values_compile_nothing():
    ds = _small_digits()
    tr = _trainable(ds)
    engine = Engine(capacity=256, chunk=256, max_rungs=1, max_epochs=2)
    stage = Bracket(0, (Rung(256, 2, 0),))
    hp1 = encode_hparams(_mixed_configs(256, 0), task="classification", max_layers=3, micro_batch=16,
                         max_epochs=2, seeds=range(256))
    # Every hyperparameter is mixed: each optimizer, schedule, activation, initialiser, depth and batch size.
    assert set(hp1["optimizer"]) == set(range(len(hpmod.OPTIMIZERS)))
    assert set(hp1["schedule"]) == set(range(len(hpmod.SCHEDULES)))
    assert set(hp1["activation"]) == set(range(len(hpmod.ACTIVATIONS)))
    assert set(hp1["init"]) == set(range(len(hpmod.INITS)))
    assert set(hp1["num_layers"]) == {1, 2, 3} and set(hp1["accum"]) == {1, 2, 4}
    out1 = engine.run(tr, hp1, stage)
    assert engine.stats.count == 1
    hp2 = encode_hparams(_mixed_configs(256, 1), task="classification", max_layers=3, micro_batch=16,
                         max_epochs=2, seeds=range(1000, 1256))
    out2 = engine.run(tr, hp2, stage)
    assert engine.stats.count == 1, "new hyperparameter values must not compile a new program"
    # Independent check that XLA compiled nothing either: the jitted function's cache did not grow.
    assert engine._jitted._cache_size() <= 1
    for out in (out1, out2):
        assert out["model_epochs"] == 512
        finite = np.isfinite(out["curves"][:, 1])
        assert finite.sum() > 200  # a few extreme configurations may diverge; the rest train
    assert not np.allclose(out1["curves"], out2["curves"], equal_nan=True)


def test_chunked_bracket_equals_unchunked():
    """Chunks change the working set, never the numbers (the memory guard relies on this)."""
    ds = _small_digits(128)
    tr = _trainable(ds)
    plan = hyperband(9, 3)
    bracket = plan.brackets[0]  # 9 configs: 9@1, 3@3, 1@9
    hp = encode_hparams(_mixed_configs(9, 3), task="classification", max_layers=3, micro_batch=16,
                        max_epochs=9, seeds=range(9))
    results = []
    for chunk in (9, 4, 1):
        engine = Engine(capacity=9, chunk=chunk, max_rungs=3, max_epochs=9)
        results.append(engine.run(tr, pad_hparams(hp, engine.capacity), bracket))
    for other in results[1:]:
        np.testing.assert_allclose(other["rung_scores"][:9], results[0]["rung_scores"][:9], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(other["curves"][:9], results[0]["curves"][:9], rtol=1e-5, atol=1e-6)
        assert int(other["best_trial"]) == int(results[0]["best_trial"])
        assert other["model_epochs"] == results[0]["model_epochs"] == bracket.model_epochs


def test_width_tiers_equal_padded_program():
    """The narrower compiled variants give the same numbers as the padded program."""
    ds = _small_digits(128)
    configs = _mixed_configs(6, 5)
    for c, u in zip(configs, (4, 8, 12, 16, 6, 10)):
        c["units"] = c["units_2"] = u
    hp = encode_hparams(configs, task="classification", max_layers=3, micro_batch=16, max_epochs=3,
                        seeds=range(6))
    stage = Bracket(0, (Rung(6, 3, 0),))
    outs = []
    for tiers in ((), (4, 8)):
        tr = MLPTrainable.create(ds, max_layers=3, max_units=16, micro_batch=16, width_tiers=tiers)
        engine = Engine(capacity=6, chunk=1, max_rungs=1, max_epochs=3)
        outs.append(engine.run(tr, hp, stage))
    np.testing.assert_allclose(outs[1]["curves"], outs[0]["curves"], rtol=1e-5, atol=1e-6)
    a = jax.tree.leaves(outs[0]["best_member"].params)
    b = jax.tree.leaves(outs[1]["best_member"].params)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


SCRIPT = textwrap.dedent("""
    import json, sys, vtune
    r = vtune.tune({"units": 4, "num_layers": 1, "batch_size": 4, "optimizer": "adam",
                    "learning_rate": vtune.Float(1e-2, 1.0, scale="log")}, "xor", strategy="random",
                   trials=3, max_epochs=3, compile_cache=sys.argv[1])
    print(json.dumps({"compile_s": r.compile_s, "scores": [t["rungs"][-1]["val_score"] for t in r.trials]}))
""")


@pytest.mark.slow
def test_persistent_compile_cache_second_process_loads_instead_of_compiling(tmp_path):
    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": ROOT}
    runs = []
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", SCRIPT, str(cache)], capture_output=True, text=True,
                             env=env, timeout=600, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    assert any(name.endswith("-cache") for name in os.listdir(cache)), "nothing was written to the cache"
    assert runs[0]["scores"] == runs[1]["scores"]
    # The second process lowers the program but loads the executable: well under the first compile.
    assert runs[1]["compile_s"] < 0.7 * runs[0]["compile_s"], runs


SHARD_SCRIPT = textwrap.dedent("""
    import json, sys, jax, vtune
    r = vtune.tune({"units": 8, "num_layers": 2, "batch_size": 4, "dropout": 0.1,
                    "optimizer": vtune.Choice(["adam", "momentum"]),
                    "learning_rate": vtune.Float(1e-2, 1.0, scale="log")}, "xor", strategy="hyperband",
                   max_epochs=3, compile_cache=None, chunk=int(sys.argv[1]))
    print(json.dumps({"devices": jax.device_count(),
                      "rungs": [[g["val_score"] for g in t["rungs"]] for t in r.trials],
                      "curves": [t["curve"] for t in r.trials], "best": r.best["id"]}))
""")


@pytest.mark.slow
def test_sharded_over_two_devices_equals_one_device():
    env = {**os.environ, "PYTHONPATH": ROOT}
    outs = []
    for flags in ("", "--xla_force_host_platform_device_count=2"):
        run_env = {**env, "XLA_FLAGS": flags}
        proc = subprocess.run([sys.executable, "-c", SHARD_SCRIPT, "2"], capture_output=True, text=True,
                              env=run_env, timeout=600, check=True)
        outs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert [o["devices"] for o in outs] == [1, 2]
    assert outs[0]["best"] == outs[1]["best"]
    assert [len(c) for c in outs[0]["curves"]] == [len(c) for c in outs[1]["curves"]]
    for one, two in zip(outs[0]["curves"], outs[1]["curves"]):
        np.testing.assert_allclose(np.array(two, float), np.array(one, float), rtol=1e-6, atol=1e-7)
    for one, two in zip(outs[0]["rungs"], outs[1]["rungs"]):
        np.testing.assert_allclose(np.array(two, float), np.array(one, float), rtol=1e-6, atol=1e-7)
