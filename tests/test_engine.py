"""The compiled core: one program for a whole mixed population, chunking that never changes the numbers,
and the persistent compile cache across processes."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vtune
from vtune import hparams as hpmod
from vtune.engine import Engine, deal
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
    """Chunks change the working set, and the numbers by float rounding only (the memory guard relies on
    this)."""
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
    """The narrower compiled variants give the same numbers as the padded program: powers of two, and the
    ≈ 1.5× steps of ``tier_candidates``' ladder (6 and 12 here: widths that are no power of two)."""
    ds = _small_digits(128)
    configs = _mixed_configs(6, 5)
    for c, u in zip(configs, (4, 8, 12, 16, 6, 10)):
        c["units"] = c["units_2"] = u
    hp = encode_hparams(configs, task="classification", max_layers=3, micro_batch=16, max_epochs=3,
                        seeds=range(6))
    stage = Bracket(0, (Rung(6, 3, 0),))
    outs = []
    for tiers in ((), (4, 8), (6, 12)):
        tr = MLPTrainable.create(ds, max_layers=3, max_units=16, micro_batch=16, width_tiers=tiers)
        assert tr.width_tiers == tiers  # the program compiles exactly these variants
        engine = Engine(capacity=6, chunk=1, max_rungs=1, max_epochs=3)
        outs.append(engine.run(tr, hp, stage))
    for out in outs[1:]:
        np.testing.assert_allclose(out["curves"], outs[0]["curves"], rtol=1e-5, atol=1e-6)
        for x, y in zip(jax.tree.leaves(out["best_member"].params), jax.tree.leaves(outs[0]["best_member"].params)):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_fast_compile_options_reach_xla_and_keep_the_numbers():
    """XLA's loop emitters (FAST_COMPILE_OPTIONS) generate other kernels for the same program: the
    numbers agree with the default compile up to float rounding, and the options do reach the compiler."""
    from vtune.engine import FAST_COMPILE_OPTIONS

    ds = _small_digits(128)
    tr = MLPTrainable.create(ds, max_layers=3, max_units=16, micro_batch=16, width_tiers=(8,))
    hp = encode_hparams(_mixed_configs(6, 7), task="classification", max_layers=3, micro_batch=16,
                        max_epochs=3, seeds=range(6))
    stage = Bracket(0, (Rung(6, 1, 0), Rung(2, 3, 0)))
    outs = []
    for options in (None, FAST_COMPILE_OPTIONS):
        engine = Engine(capacity=6, chunk=1, max_rungs=2, max_epochs=3, compiler_options=options)
        outs.append(engine.run(tr, hp, stage))
        assert engine.stats.count == 1
    np.testing.assert_allclose(outs[1]["curves"], outs[0]["curves"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outs[1]["rung_scores"], outs[0]["rung_scores"], rtol=1e-5, atol=1e-6)
    assert int(outs[1]["best_trial"]) == int(outs[0]["best_trial"])
    for x, y in zip(jax.tree.leaves(outs[1]["best_member"].params), jax.tree.leaves(outs[0]["best_member"].params)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="compiler_options"):
        Engine(capacity=6, chunk=1, max_rungs=2, max_epochs=3, compiler_options=["xla_cpu_use_fusion_emitters"])
    # An option XLA does not know is refused by XLA itself: the options are passed, not dropped.
    engine = Engine(capacity=6, chunk=1, max_rungs=2, max_epochs=3, compiler_options={"xla_no_such_option": 1})
    with pytest.raises(Exception, match="xla_no_such_option"):
        engine.run(tr, hp, stage)


SCRIPT = textwrap.dedent("""
    import json, sys, vtune
    from vtune.tune import _ENGINES
    r = vtune.tune({"units": 4, "num_layers": 1, "batch_size": 4, "optimizer": "adam",
                    "learning_rate": vtune.Float(1e-2, 1.0, scale="log")}, "xor", strategy="random",
                   trials=3, max_epochs=3, compile_cache=sys.argv[1])
    print(json.dumps({"compile_s": r.compile_s, "scores": [t["rungs"][-1]["val_score"] for t in r.trials],
                      "loaded": sum(e.stats.loaded for e in _ENGINES.values())}))
""")


@pytest.mark.slow
def test_persistent_compile_cache_second_process_loads_instead_of_compiling(tmp_path):
    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": ROOT}

    def run():
        out = subprocess.run([sys.executable, "-c", SCRIPT, str(cache)], capture_output=True, text=True,
                             env=env, timeout=600, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    runs = [run(), run()]
    assert any(name.endswith("-cache") for name in os.listdir(cache)), "nothing was written to the cache"
    programs = list((cache / "programs").iterdir())
    assert len(programs) == 1 and programs[0].suffix == ".jaxexport"
    assert runs[0]["scores"] == runs[1]["scores"]
    # The second process reads the lowered program back (no tracing) and loads the executable.
    assert [r["loaded"] for r in runs] == [0, 1]
    assert runs[1]["compile_s"] < 0.5 * runs[0]["compile_s"], runs
    # A damaged program file is not trusted: it is rebuilt, with the same results.
    programs[0].write_bytes(b"not a program")
    again = run()
    assert again["loaded"] == 0 and again["scores"] == runs[0]["scores"]
    assert programs[0].read_bytes() != b"not a program"


def test_custom_trainables_are_not_kept_as_exported_programs(tmp_path):
    # A user's trainable could change its functions without its shapes changing: only vtune's own
    # trainables (which describe their static configuration) go through the export cache.
    def init_fn(hp, data):
        return {"w": jnp.zeros(())}

    def epoch_fn(state, hp, data, epoch):
        w = state["w"] + hp["learning_rate"]
        return {"w": w}, -jnp.abs(w - 0.5)

    trainable = vtune.FunctionTrainable(data={}, init_fn=init_fn, epoch_fn=epoch_fn)
    space = vtune.Space({"learning_rate": vtune.Float(1e-2, 1.0, scale="log")})
    vtune.tune(space, trainable, strategy="random", trials=3, max_epochs=2, compile_cache=str(tmp_path))
    assert not (tmp_path / "programs").exists()


SHARD_SCRIPT = textwrap.dedent("""
    import json, sys, jax, numpy as np, vtune
    r = vtune.tune({"units": vtune.Int(2, 40, scale="log"), "num_layers": vtune.Int(1, 3), "batch_size": 4,
                    "dropout": 0.1, "optimizer": vtune.Choice(["adam", "momentum"]),
                    "learning_rate": vtune.Float(1e-2, 1.0, scale="log")}, "xor", strategy="hyperband",
                   max_epochs=9, compile_cache=None, width_tiers=(16,), chunk=int(sys.argv[1]))
    best_state = [np.asarray(x, np.float64).ravel().tolist() for x in jax.tree.leaves(r.best_state)]
    print(json.dumps({"devices": jax.device_count(), "compiles": r.num_compiles,
                      "rungs": [[g["val_score"] for g in t["rungs"]] for t in r.trials],
                      "curves": [t["curve"] for t in r.trials], "best": r.best["id"], "best_state": best_state}))
""")


def _run_script(script, env_extra, *args):
    args = [str(a) for a in args]
    env = {**os.environ, "PYTHONPATH": ROOT, "XLA_FLAGS": "", **env_extra}
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_one_member_per_core_equals_one_device():
    # Mixed widths (so two width tiers and the cost ordering are used) and depths; one member per device
    # on two CPU devices against the same search on one.
    # The third run trains two members at a time on each device (a chunk of 4), vmapped.
    outs = [_run_script(SHARD_SCRIPT, {"VTUNE_CPU_DEVICES": n}, chunk) for n, chunk in (("1", 1), ("2", 1), ("2", 4))]
    assert [o["devices"] for o in outs] == [1, 2, 2]
    assert [o["compiles"] for o in outs] == [1, 1, 1]
    for other in outs[1:]:
        assert other["best"] == outs[0]["best"]
        assert [len(c) for c in other["curves"]] == [len(c) for c in outs[0]["curves"]]
        for one, two in zip(outs[0]["curves"], other["curves"]):
            np.testing.assert_allclose(np.array(two, float), np.array(one, float), rtol=1e-5, atol=1e-6)
        for one, two in zip(outs[0]["rungs"], other["rungs"]):
            np.testing.assert_allclose(np.array(two, float), np.array(one, float), rtol=1e-5, atol=1e-6)
        # The best member's whole state (parameters, optimizer moments): with two devices only the members
        # a rung keeps, and each bracket's top one, have their parameters copied between devices.
        assert len(other["best_state"]) == len(outs[0]["best_state"]) > 0
        for one, two in zip(outs[0]["best_state"], other["best_state"]):
            np.testing.assert_allclose(np.array(two), np.array(one), rtol=1e-5, atol=1e-6)


def test_deal_gives_each_member_to_one_device_longest_first():
    class Costed:
        def cost(self, state):
            return state["cost"]

    # Slots 0..6 are the rung's members; slot 7 is past the rung (its cost must not count).
    state = {"cost": jnp.array([5.0, 1.0, 9.0, 2.0, 2.0, 7.0, 3.0, 100.0])}
    queues, counts = jax.jit(lambda s: deal(Costed(), s, 7, 2, 4))(state)
    queues, counts = np.asarray(queues), np.asarray(counts)
    # Longest first, each to the device with the least work so far (ties: the first device):
    # 9 -> d0, 7 -> d1, 5 -> d1 (7 < 9), 3 -> d0 (9 < 12), 2 -> d0 (12 = 12), 2 -> d1, 1 -> d0.
    np.testing.assert_array_equal(queues, [2, 6, 3, 1, 5, 0, 4, 8])
    np.testing.assert_array_equal(counts, [4, 3])
    # No device takes more than its share of slots, even when that would balance the work better.
    many = {"cost": jnp.array([50.0, 1.0, 1.0, 1.0, 1.0, 1.0])}
    queues, counts = jax.jit(lambda s: deal(Costed(), s, 6, 2, 3))(many)
    np.testing.assert_array_equal(np.asarray(counts), [3, 3])
    assert sorted(np.asarray(queues).tolist()) == list(range(6))


def test_mlp_cost_counts_the_tier_width_and_the_members_own_layers():
    from vtune.train import STEP_FLOOR
    ds = _small_digits(64)
    tr = MLPTrainable.create(ds, max_layers=3, max_units=16, micro_batch=16, width_tiers=(8,))
    configs = [{"units": 5, "num_layers": 1, "batch_size": 16},
               {"units": 12, "units_2": 3, "num_layers": 2, "batch_size": 16},
               {"units": 3, "units_2": 8, "units_3": 2, "num_layers": 3, "batch_size": 16}]
    hp = encode_hparams(configs, task="classification", max_layers=3, micro_batch=16)
    cost = np.asarray(tr.cost(jax.eval_shape(tr.init, hp)._replace(hp={k: jnp.asarray(v) for k, v in hp.items()})))
    d, c = 64, 10
    expected = [d * 8 + 8 * c, d * 16 + 16 * 16 + 16 * c, d * 8 + 2 * 8 * 8 + 8 * c]
    np.testing.assert_allclose(cost, np.array(expected, float) + STEP_FLOOR)


DEVICES_SCRIPT = "import json, jax, vtune; print(json.dumps({'devices': jax.device_count()}))"


@pytest.mark.parametrize("env, expect", [
    ({"VTUNE_CPU_DEVICES": "3"}, 3),
    ({"VTUNE_CPU_DEVICES": "off"}, 1),
    ({"VTUNE_CPU_DEVICES": "3", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}, 2),  # explicit wins
])
def test_cpu_devices_at_import(env, expect):
    assert _run_script(DEVICES_SCRIPT, env)["devices"] == expect


def test_cpu_devices_auto_is_the_usable_cores_and_bad_values_are_refused():
    from vtune import devices

    assert devices.requested_devices("auto") == devices.usable_cores() >= 1
    assert devices.requested_devices("off") is None and devices.requested_devices("4") == 4
    for bad in ("-2", "two", "1.5"):
        with pytest.raises(ValueError, match="VTUNE_CPU_DEVICES must be"):
            devices.requested_devices(bad)
    # Once JAX runs, the count is fixed: configuring again leaves it alone instead of failing.
    jax.numpy.zeros(1).block_until_ready()
    assert devices.configure_cpu_devices("3") is None


def test_after_jax_started_the_search_runs_on_the_devices_there_are():
    script = ("import json, jax; jax.numpy.zeros(1).block_until_ready(); import vtune; "
              "print(json.dumps({'devices': jax.device_count()}))")
    assert _run_script(script, {"VTUNE_CPU_DEVICES": "2"})["devices"] == 1


# ------------------------------------------------------------------------------- brackets run together

def test_initial_weights_are_aligned_for_the_cpu_devices_to_read_in_place():
    # The population's initial weights are the program's largest input: drawn into an aligned array (and
    # kept aligned when padded), JAX's CPU devices read them in place instead of copying them into each
    # device's buffer (617 MB for 1024 wide members: 0.63 s a call on two devices).
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    from vtune.devices import HOST_ALIGNMENT, host_array

    for shape, dtype in (((3, 5), np.float32), ((7,), np.int32), ((1, 1), np.float32), ((2, 3, 3), np.uint32)):
        a = host_array(shape, dtype)
        assert a.shape == shape and a.dtype == dtype and a.ctypes.data % HOST_ALIGNMENT == 0
    tr = _trainable(_small_digits(64))
    hp = tr.host_init(encode_hparams(_mixed_configs(5, 3), task="classification", max_layers=3, micro_batch=16,
                                     max_epochs=3, seeds=range(5)))
    padded = pad_hparams(hp, 8)
    assert padded["params0"].ctypes.data % HOST_ALIGNMENT == 0
    np.testing.assert_array_equal(padded["params0"], hp["params0"][np.arange(8) % 5])
    assert pad_hparams(padded, 8)["params0"] is padded["params0"]  # the right size already: no copy
    replicated = NamedSharding(Mesh(np.array(jax.devices()), ("pop",)), PartitionSpec())
    on_devices = jax.device_put(padded["params0"], replicated)
    assert all(s.data.unsafe_buffer_pointer() == padded["params0"].ctypes.data for s in on_devices.addressable_shards)


def test_plan_of_hyperband_brackets_run_together():
    brackets = list(hyperband(27, 3).brackets)
    engine = Engine(capacity=50, chunk=1, max_rungs=4, max_epochs=27, mesh=None)
    sizes, epochs, num_rungs, ends, groups = engine.plan_arrays(brackets)
    assert epochs.tolist() == [1, 3, 9, 27] and int(num_rungs) == 4
    # Live members of each bracket in each rung: a bracket whose first rung ends at 9 trains its six
    # members through the first two rungs of the program, and is selected only where its rungs end.
    assert sizes.tolist() == [[27, 9, 3, 1], [12, 12, 4, 1], [6, 6, 6, 2], [4, 4, 4, 4]]
    assert ends.tolist() == [[True] * 4, [False, True, True, True], [False, False, True, True],
                             [False, False, False, True]]
    assert groups.tolist() == [0] * 27 + [1] * 12 + [2] * 6 + [3] * 4 + [4]
    # One bracket alone: its own rungs, every one an end.
    sizes, epochs, num_rungs, ends, groups = engine.plan_arrays(brackets[1])
    assert sizes.tolist() == [[12, 4, 1, 0]] and epochs.tolist() == [3, 9, 27, 0] and int(num_rungs) == 3
    assert ends.tolist() == [[True, True, True, False]] and groups.tolist() == [0] * 12 + [1] * 38
    with pytest.raises(ValueError, match="capacity"):
        Engine(capacity=40, chunk=1, max_rungs=4, max_epochs=27, mesh=None).plan_arrays(brackets)


def test_rank_slots_ranks_each_group_apart():
    from vtune.engine import rank_slots

    scores = jnp.array([0.1, 0.9, 0.5, 0.7, 0.3, 0.8], jnp.float32)
    ids = jnp.arange(6, dtype=jnp.int32)
    groups = jnp.array([1, 0, 1, 0, 1, 2], jnp.int32)
    live = jnp.array([True, True, True, True, True, False])
    # Group 0 (slots 1, 3), then group 1 (2, 4, 0), each by score; the slot out of the rung last.
    assert np.asarray(rank_slots(scores, ids, live, None, groups)).tolist() == [1, 3, 2, 4, 0, 5]


def test_brackets_run_together_equal_brackets_run_alone():
    # Each bracket's members, best and curves are exactly those of the bracket run on its own: training
    # side by side changes which core trains a member and when, never what it computes.
    ds = _small_digits()
    tr = _trainable(ds)
    brackets = list(hyperband(9, 3).brackets)
    together = Engine(capacity=sum(b.num_configs for b in brackets), chunk=1, max_rungs=3, max_epochs=9)
    alone = Engine(capacity=max(b.num_configs for b in brackets), chunk=1, max_rungs=3, max_epochs=9)
    configs = [_mixed_configs(b.num_configs, seed=g) for g, b in enumerate(brackets)]
    seeds = [[1000 * g + j for j in range(len(cs))] for g, cs in enumerate(configs)]
    encode = lambda cs, ss, cap: pad_hparams(tr.host_init(encode_hparams(
        cs, task="classification", max_layers=3, micro_batch=16, max_epochs=9, seeds=ss)), cap)
    out = together.run_together(tr, encode(sum(configs, []), sum(seeds, []), together.capacity), brackets)
    marks = [1, 3, 9]
    offset = 0
    for g, (bracket, cs) in enumerate(zip(brackets, configs)):
        one = alone.run(tr, encode(cs, seeds[g], alone.capacity), bracket)
        rows = slice(offset, offset + len(cs))
        columns = [marks.index(r.epochs) for r in bracket.rungs]
        np.testing.assert_array_equal(out["rung_scores"][rows][:, columns], one["rung_scores"][: len(cs), : len(columns)])
        np.testing.assert_array_equal(out["curves"][rows], one["curves"][: len(cs)])
        assert int(out["best_trial"][g]) - offset == int(one["best_trial"])
        assert float(out["best_score"][g]) == float(one["best_score"])
        assert float(out["best_tiebreak"][g]) == float(one["best_tiebreak"])
        for a, b in zip(jax.tree.leaves(jax.tree.map(lambda x: x[g], out["best_member"])),
                        jax.tree.leaves(one["best_member"])):
            np.testing.assert_array_equal(a, b)
        offset += len(cs)
    assert int(out["model_epochs"]) == hyperband(9, 3).model_epochs


def test_a_program_cache_that_cannot_be_written_warns_and_the_search_goes_on(tmp_path, monkeypatch):
    # "programs" is a file, so the export cache's folder cannot be made: the search warns and finishes.
    # No engine kept from an earlier test may serve the program already compiled (it would write nothing).
    monkeypatch.setattr(sys.modules["vtune.tune"], "_ENGINES", {})
    (tmp_path / "programs").write_text("in the way")
    space = {"units": 4, "num_layers": 1, "batch_size": 4, "optimizer": "adam",
             "learning_rate": vtune.Float(1e-2, 1.0, scale="log")}
    with pytest.warns(RuntimeWarning, match="could not write the program cache"):
        result = vtune.tune(space, "xor", strategy="random", trials=2, max_epochs=1, compile_cache=str(tmp_path))
    assert result.status == "ok" and len(result.trials) == 2
    assert (tmp_path / "programs").read_text() == "in the way"


def test_packing_holds_every_leaf_and_writes_back_only_the_moving_ones():
    """The bracket program holds the population as Packing's buffers: per-member scalars of one dtype in
    one buffer, every other leaf alone; unpacking gives the state back exactly, and a write-back touches
    only what ``moving`` names (all leaves when ``moving`` builds new arrays)."""
    from vtune.engine import Packing

    p = 5
    rng = np.random.default_rng(0)
    state = {"w": jnp.asarray(rng.normal(size=(p, 3, 4)), jnp.float32), "score": jnp.arange(p, dtype=jnp.float32),
             "loss": -jnp.arange(p, dtype=jnp.float32), "epochs": jnp.arange(p, dtype=jnp.int32) * 7,
             "dead": jnp.arange(p) % 2 == 0, "hp": jnp.asarray(rng.normal(size=(p, 2)), jnp.float32),
             "none": None}

    class Trainable:
        def moving(self, s):
            return {k: v for k, v in s.items() if k != "hp"}

    packing = Packing(Trainable(), state)
    buffers = packing.pack(state)
    assert sorted(b.shape for b in buffers) == sorted([(p, 3, 4), (p, 2), (p, 2), (p, 1), (p, 1)])
    back = packing.unpack(buffers)
    assert jax.tree.structure(back) == jax.tree.structure(state)
    for x, y in zip(jax.tree.leaves(back), jax.tree.leaves(state)):
        assert x.dtype == y.dtype and np.array_equal(x, y)
    part = packing.take(buffers, jnp.array([3, 1]))
    assert np.array_equal(part["epochs"], [21, 7]) and np.array_equal(part["w"], state["w"][jnp.array([3, 1])])
    changed = jax.tree.map(lambda x: x + 1 if x.dtype != jnp.bool_ else ~x, part)
    out = packing.unpack(packing.scatter(buffers, jnp.array([3, p]), changed))  # slot p: out of range, dropped
    for name in ("w", "score", "loss", "epochs", "dead"):
        assert np.array_equal(out[name][3], changed[name][0]) and np.array_equal(out[name][:3], state[name][:3])
    assert np.array_equal(out["hp"], state["hp"])  # not moving: never written back

    class Rebuilds:
        def moving(self, s):
            return jax.tree.map(lambda x: x * 1, s)

    packing = Packing(Rebuilds(), state)
    out = packing.unpack(packing.scatter(packing.pack(state), jnp.array([3, p]), changed))
    assert np.array_equal(out["hp"][3], changed["hp"][0])  # every leaf counts as moving
