"""End-to-end tests of ``vtune.tune``: compile counts, reproducibility across processes, crash safety,
divergence, saved results, the Beale task, a user's own flax model, and memory.

The MLP tests share one geometry (a 240-row digits subset, one hidden layer of at most 16 units, SGD with
momentum, batch 32, Hyperband R=3 η=3) and one persistent compilation cache, so the MLP program compiles
once for the whole module (subprocesses included); everything else uses small ``FunctionTrainable``s.
"""

from __future__ import annotations

import gc
import itertools
import json
import math
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vtune
from vtune.cache import configure_compile_cache
from vtune.checkpoint import CheckpointError
from vtune.engine import Engine
from vtune.hparams import OPTIMIZERS
from vtune.space import Choice, Float, Int, Space

REPO = pathlib.Path(__file__).resolve().parents[1]
TESTS = pathlib.Path(__file__).resolve().parent

# --------------------------------------------------------------------------------------- shared MLP setup

MLP_SPACE = {"learning_rate": Float(0.01, 0.3, scale="log"), "units": Int(4, 16), "num_layers": 1,
             "batch_size": 32, "optimizer": "momentum"}
MLP_STRATEGY = {"strategy": "hyperband", "max_epochs": 3, "eta": 3}


def tiny_digits():
    """240 rows of scikit-learn's digits (168 train / 36 val / 36 test), standardised."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return vtune.data.from_arrays(x[:240], y[:240], name="digits240", seed=0)


def run_mlp(seed: int, out, cache, space=None, together=True):
    """The module's standard MLP search (the subprocesses call this too)."""
    return vtune.tune(MLP_SPACE if space is None else space, tiny_digits(), seed=seed, out=out,
                      compile_cache=cache, brackets_together=together, **MLP_STRATEGY)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """A persistent compilation cache for this module; switched off again afterwards."""
    path = tmp_path_factory.mktemp("jax_cache")
    yield str(path)
    configure_compile_cache(None)


#: Runs ``run_mlp`` in a fresh interpreter. With ``pause``, the process sleeps after its first checkpoint
#: (standing in for a long next stage) so that the test can kill it at a known point.
CHILD = r"""
import json, sys, time
sys.path.insert(0, {repo!r}); sys.path.insert(0, {tests!r})
import jax
jax.config.update("jax_numpy_rank_promotion", "raise")
from vtune import checkpoint
import test_tune
args = json.loads(sys.argv[1])
if args["pause"]:
    save = checkpoint.Checkpoint.save
    def paused_save(self, *a, **k):
        save(self, *a, **k)
        print("checkpoint written", flush=True)
        time.sleep(600)
    checkpoint.Checkpoint.save = paused_save
test_tune.run_mlp(args["seed"], args["out"], args["cache"], together=args["together"])
"""


def start_child(tmp_path, *, seed, out, cache, pause=False, together=True) -> subprocess.Popen:
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(repo=str(REPO), tests=str(TESTS)))
    env = dict(os.environ, VTUNE_COMPILE_CACHE="none", PYTHONPATH=str(REPO))
    args = json.dumps({"seed": seed, "out": str(out), "cache": cache, "pause": pause, "together": together})
    return subprocess.Popen([sys.executable, str(script), args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, timeout: float = 240) -> None:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]


def scores_of(summary: dict) -> dict:
    """The numbers of a results.json that must not depend on the process (no timings)."""
    return {"best": summary["best"], "model_epochs": summary["budget"]["model_epochs"],
            "trials": [(t["id"], t["config"], t["rungs"], t["status"], t["curve"]) for t in summary["trials"]]}


def raw_rows(ds):
    """Undo the training split's scaling: the raw feature rows a user would hold."""
    return ds.x_test.astype(np.float64) * ds.scale + ds.shift


def assert_same_trials(a, b, *, tol=1e-6):
    assert len(a.trials) == len(b.trials)
    for ta, tb in zip(a.trials, b.trials):
        assert (ta["id"], ta["config"], ta["bracket"], ta["status"]) == (tb["id"], tb["config"], tb["bracket"],
                                                                          tb["status"])
        assert [r["epochs"] for r in ta["rungs"]] == [r["epochs"] for r in tb["rungs"]]
        np.testing.assert_allclose([r["val_score"] for r in ta["rungs"]], [r["val_score"] for r in tb["rungs"]],
                                   atol=tol)
        np.testing.assert_allclose(ta["curve"], tb["curve"], atol=tol)


# --------------------------------------------------------------------------------- synthetic trainables

def counter_init(hp, data):
    return {"count": jnp.zeros((), jnp.int32)}


def bowl_epoch(state, hp, data, epoch):
    """Score −(log lr + 3)² + epochs/100: best near lr = e^−3, improving with training."""
    count = state["count"] + 1
    return {"count": count}, -(jnp.log(hp["learning_rate"]) + 3.0) ** 2 + count.astype(jnp.float32) / 100


BOWL = vtune.FunctionTrainable(data={}, init_fn=counter_init, epoch_fn=bowl_epoch)
BOWL_SPACE = Space({"learning_rate": Float(1e-4, 1.0, scale="log")})

BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"


class CompileCounter:
    """Counts XLA backend compilations through ``jax.monitoring`` (independent of vtune's own count)."""

    def __init__(self):
        self.count = 0

    def __call__(self, event, duration, **kwargs):
        if event == BACKEND_COMPILE:
            self.count += 1

    def __enter__(self):
        jax.monitoring.register_event_duration_secs_listener(self)
        return self

    def __exit__(self, *exc):
        jax.monitoring.unregister_event_duration_listener(self)


# ----------------------------------------------------------------------------------------- compile count

def test_hyperband_compiles_at_most_one_program_per_bracket():
    # The first search also pays for the eager helper ops of a fresh process; the second is the measure.
    with CompileCounter() as first:
        warm = vtune.tune(BOWL_SPACE, BOWL, strategy="hyperband", max_epochs=9, eta=3, compile_cache=None)
    assert 1 <= warm.num_compiles <= 3 and warm.num_compiles <= first.count
    with CompileCounter() as counter:
        result = vtune.tune(BOWL_SPACE, BOWL, strategy="hyperband", max_epochs=27, eta=3, compile_cache=None)
    num_brackets = len(vtune.hyperband_plan(27, 3).brackets)
    assert num_brackets == 4 and len({t["bracket"] for t in result.trials}) == 4
    assert 1 <= result.num_compiles <= num_brackets
    # XLA saw the programs vtune says it compiled (no persistent cache here), plus at most a couple more.
    assert result.num_compiles <= counter.count <= result.num_compiles + 2, (result.num_compiles, counter.count)
    assert result.compile_s > 0 and result.wall_s >= result.compile_s


# ---------------------------------------------------------------------------------------- reproducibility

def test_same_seed_same_results_in_fresh_processes(tmp_path, cache_dir):
    first = start_child(tmp_path, seed=0, out=tmp_path / "a", cache=cache_dir)
    finish(first)  # compiles and fills the cache; the next two load the program from it
    again = start_child(tmp_path, seed=0, out=tmp_path / "b", cache=cache_dir)
    other = start_child(tmp_path, seed=1, out=tmp_path / "c", cache=cache_dir)
    finish(again)
    finish(other)
    a, b, c = (json.loads((tmp_path / d / "results.json").read_text()) for d in "abc")
    assert a["status"] == "ok" and a["best"]["val_score"] > 0.3
    assert scores_of(a) == scores_of(b)
    assert scores_of(a) != scores_of(c)
    assert [t["config"] for t in a["trials"]] != [t["config"] for t in c["trials"]]


# ------------------------------------------------------------------------------------------- crash safety

def test_search_killed_before_its_first_checkpoint_reruns_to_the_same_result(tmp_path, cache_dir):
    """A kill during start-up (import, compile) leaves no checkpoint; the rerun is a clean full search."""
    out = tmp_path / "early"
    child = start_child(tmp_path, seed=3, out=out, cache=cache_dir)
    time.sleep(0.5)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert not (out / "results.json").exists()
    resumed = run_mlp(3, out, cache_dir)
    full = run_mlp(3, tmp_path / "full", cache_dir)
    assert resumed.best == full.best
    assert_same_trials(resumed, full)


@pytest.mark.parametrize("resume_together", [False, True])
def test_killed_search_resumes_to_the_same_result(tmp_path, cache_dir, monkeypatch, resume_together):
    # The child checkpoints after every bracket (brackets_together=False) and is killed after the first;
    # the resumed search runs the rest one by one, or all together — the same numbers either way.
    out = tmp_path / "run"
    state_path = out / "checkpoint" / "state.json"
    child = start_child(tmp_path, seed=3, out=out, cache=cache_dir, pause=True, together=False)
    deadline = time.monotonic() + 240
    try:
        while not state_path.exists():
            assert child.poll() is None, child.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    stages = len(vtune.hyperband_plan(3, 3).brackets)
    stages_done = json.loads(state_path.read_text())["stages_done"]
    assert 0 < stages_done < stages
    assert not (out / "results.json").exists()

    calls = []
    original_run = Engine.run_together

    def counting_run(self, trainable, hparams, brackets):
        calls.extend(brackets)
        return original_run(self, trainable, hparams, brackets)

    monkeypatch.setattr(Engine, "run_together", counting_run)
    resumed = run_mlp(3, out, cache_dir, together=resume_together)
    assert len(calls) == stages - stages_done  # only the unfinished stages ran
    calls.clear()
    full = run_mlp(3, tmp_path / "full", cache_dir)
    assert len(calls) == stages
    assert resumed.status == full.status == "ok"
    assert resumed.best_config == full.best_config and resumed.best["id"] == full.best["id"]
    assert resumed.best_val_score == pytest.approx(full.best_val_score, abs=1e-6)
    assert resumed.best_test_score == pytest.approx(full.best_test_score, abs=1e-6)
    assert resumed.model_epochs == full.model_epochs == vtune.hyperband_plan(3, 3).model_epochs
    assert_same_trials(resumed, full)
    assert (out / "results.json").is_file() and (out / "best_model" / "params.msgpack").is_file()
    # Re-running a finished search changes nothing and trains nothing.
    calls.clear()
    again = run_mlp(3, out, cache_dir)
    assert calls == [] and again.best == resumed.best


def test_brackets_together_give_the_numbers_of_one_bracket_at_a_time(tmp_path, cache_dir, capsys):
    # Hyperband's brackets trained side by side in one program (the default) against one after another:
    # the same trials, curves, best and saved model, bit for bit, in one compiled program.
    strategy = {"strategy": "hyperband", "max_epochs": 9, "eta": 3}
    runs, shown = {}, {}
    for together in (True, False):
        runs[together] = vtune.tune(MLP_SPACE, tiny_digits(), seed=5, out=tmp_path / str(together),
                                    compile_cache=cache_dir, brackets_together=together, progress=True,
                                    **strategy)
        shown[together] = [line for line in capsys.readouterr().err.splitlines() if "configs×epochs" in line]
    # The display (plain lines off a terminal) names what trains: all three brackets at once, or one each.
    assert [line.split(" · ")[0] for line in shown[True]] == ["brackets 1–3/3"]
    assert [line.split(" · ")[0] for line in shown[False]] == ["bracket 1/3", "bracket 2/3", "bracket 3/3"]
    both, alone = runs[True], runs[False]
    assert len({t["bracket"] for t in both.trials}) == len(vtune.hyperband_plan(9, 3).brackets) == 3
    assert_same_trials(both, alone, tol=0)
    assert both.best == alone.best and both.model_epochs == alone.model_epochs
    assert both.num_compiles == 1
    assert jax.tree.leaves(both.best_state)
    for a, b in zip(jax.tree.leaves(both.best_state), jax.tree.leaves(alone.best_state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(TypeError, match="brackets_together"):
        vtune.tune(MLP_SPACE, tiny_digits(), brackets_together="yes", **strategy)


def _bowl_run(out, seed=0):
    return vtune.tune(BOWL_SPACE, BOWL, strategy="hyperband", max_epochs=9, eta=3, seed=seed, out=out,
                      compile_cache=None)


def test_damaged_or_foreign_checkpoints_are_refused(tmp_path):
    out = tmp_path / "run"
    done = _bowl_run(out)
    state = out / "checkpoint" / "state.json"
    best = out / "checkpoint" / "best.npz"
    text, blob = state.read_text(), best.read_bytes()
    assert json.loads(text)["stages_done"] == len(vtune.hyperband_plan(9, 3).brackets)
    assert _bowl_run(out).best == done.best  # an intact checkpoint resumes (here: nothing left to do)

    # A checkpoint of another search (here: another seed) in the same folder.
    with pytest.raises(CheckpointError, match="different search"):
        _bowl_run(out, seed=1)
    # A truncated state file.
    state.write_text(text[: len(text) // 2])
    with pytest.raises(CheckpointError, match="damaged") as err:
        _bowl_run(out)
    assert isinstance(err.value, ValueError) and "state.json" in str(err.value)
    # The best state edited by hand (one byte changed).
    state.write_text(text)
    best.write_bytes(blob[:-20] + bytes([blob[-20] ^ 0xFF]) + blob[-19:])
    with pytest.raises(CheckpointError, match="does not match"):
        _bowl_run(out)
    # The best state missing.
    best.unlink()
    with pytest.raises(CheckpointError, match="missing"):
        _bowl_run(out)
    # A state file edited into another format.
    best.write_bytes(blob)
    state.write_text(json.dumps({**json.loads(text), "format": 99}))
    with pytest.raises(CheckpointError, match="format"):
        _bowl_run(out)


class Crash(Exception):
    """Stands in for a process dying right after a checkpoint."""


def test_coarse_to_fine_resumes_from_its_history(tmp_path, monkeypatch):
    # Coarse-to-fine narrows around the best trial so far: after a resume that history comes from the
    # checkpoint's JSON, and must steer the later rounds exactly as the in-memory history would.
    from vtune import checkpoint

    strategy = vtune.CoarseToFine(trials_per_round=6, rounds=3, shrink=0.5, max_epochs=2)
    run = lambda out: vtune.tune(BOWL_SPACE, BOWL, strategy=strategy, seed=4, out=out, compile_cache=None)
    full = run(tmp_path / "full")
    save = checkpoint.Checkpoint.save

    def crash_after_save(self, trials, stages_done, *args, **kwargs):
        save(self, trials, stages_done, *args, **kwargs)
        if stages_done == 2:
            raise Crash

    monkeypatch.setattr(checkpoint.Checkpoint, "save", crash_after_save)
    with pytest.raises(Crash):
        run(tmp_path / "crashed")
    monkeypatch.setattr(checkpoint.Checkpoint, "save", save)
    state = json.loads((tmp_path / "crashed" / "checkpoint" / "state.json").read_text())
    assert state["stages_done"] == 2 and len(state["trials"]) == 12
    calls = []
    original_run = Engine.run_together
    monkeypatch.setattr(Engine, "run_together",
                        lambda self, tr, hp, brackets: calls.extend(brackets) or original_run(self, tr, hp, brackets))
    resumed = run(tmp_path / "crashed")
    assert len(calls) == 1  # only the third round trained (rounds depend on each other: one at a time)
    assert_same_trials(resumed, full, tol=0)
    assert resumed.best == full.best
    assert float(resumed.best_state["last"]) == float(full.best_state["last"])


# ------------------------------------------------------------------------------------ divergence, results

def test_every_trial_diverging(tmp_path, cache_dir):
    space = dict(MLP_SPACE, learning_rate=1e6)
    out = tmp_path / "diverged"
    result = run_mlp(0, out, cache_dir, space=space)
    assert result.status == "all_diverged"
    assert "diverged" in result.message
    assert result.best_config is None and result.best_val_score is None and result.model is None
    assert result.num_diverged == len(result.trials) > 0
    assert all(t["status"] == "diverged" for t in result.trials)
    with pytest.raises(ValueError, match="no MLP model"):
        result.predict(np.zeros((1, 64)))
    summary = json.loads((out / "results.json").read_text())
    assert summary["status"] == "all_diverged" and summary["message"] == result.message
    assert summary["num_diverged"] == len(summary["trials"])
    assert (out / "trials.csv").read_text().count("diverged") == len(result.trials)
    assert (out / "curves.png").stat().st_size > 0
    assert not (out / "best_model").exists()
    loaded = vtune.load(out)
    assert loaded.status == "all_diverged" and loaded.model is None


def test_save_load_round_trip_and_predict_raw_rows(tmp_path, cache_dir):
    result = run_mlp(5, None, cache_dir)
    assert result.status == "ok"
    ds = tiny_digits()
    x_raw = raw_rows(ds)
    labels = result.predict(x_raw)
    truth = ds.decode_labels(ds.y_test)
    assert labels.shape == (ds.n_test,)
    assert np.mean(labels == truth) == pytest.approx(result.best_test_score, abs=1e-6)
    np.testing.assert_array_equal(result.predict(ds.x_test, scaled=True), labels)
    # The model records its own activation only, and predicts in numpy (no compile) what the padded JAX
    # program computes, with every activation of the search compiled in, up to float rounding.
    own = result.best_config.get("activation", "relu")
    assert result.model.spec["activations"] == [own]
    layout = vtune.model.Layout(*result.model.spec["layout"])
    program = vtune.model.forward(jnp.asarray(result.model.params),
                                  {k: jnp.asarray(v) for k, v in result.model.hp.items()}, ds.x_test, layout)
    np.testing.assert_allclose(result.model.decision_function(ds.x_test, scaled=True), np.asarray(program),
                               rtol=1e-5, atol=1e-5)

    result.save(tmp_path / "saved")
    for name in ("results.json", "trials.csv", "curves.png", "best_model/params.msgpack", "best_model/model.json",
                 "best_model/config.json"):
        assert (tmp_path / "saved" / name).is_file(), name
    loaded = vtune.load(tmp_path / "saved")
    assert loaded.best == result.best
    assert loaded.best_config == result.best_config
    assert (loaded.model_epochs, loaded.num_compiles, loaded.strategy) == (result.model_epochs,
                                                                          result.num_compiles, result.strategy)
    assert_same_trials(loaded, result, tol=0)
    np.testing.assert_array_equal(loaded.predict(x_raw), labels)
    np.testing.assert_allclose(loaded.model.decision_function(x_raw), result.model.decision_function(x_raw),
                               rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="shape"):
        loaded.predict(np.zeros((2, 63)))
    with pytest.raises(FileNotFoundError):
        vtune.load(tmp_path / "nowhere")


# ------------------------------------------------------------------------------------------------- Beale

def test_beale_random_search_finds_the_minimum():
    result = vtune.tune(None, "beale", strategy="random", trials=64, max_epochs=20, seed=0, compile_cache=None)
    assert result.status == "ok" and result.task == "beale"
    assert math.isfinite(result.best_val_score) and -result.best_val_score < 1e-2
    assert result.best_config["optimizer"] in OPTIMIZERS
    best = result.trials[result.best["id"]]
    assert best["rungs"][-1]["val_score"] == result.best_val_score and best["status"] == "completed"
    for t in result.trials:
        if t["status"] != "diverged":
            assert all(math.isfinite(r["val_score"]) and r["val_score"] <= 0 for r in t["rungs"])
            assert np.all(np.isfinite(t["curve"]))
    # The kept state is the best member's: its iterate is where f is that small.
    x, y = np.asarray(result.best_state["params"]["xy"], np.float64)
    from vtune.trainable import beale

    assert beale(x, y) == pytest.approx(-result.best_val_score, rel=1e-3, abs=1e-6)


# -------------------------------------------------------------------------------- a user's own flax model

def _flax_model():
    import flax.linen as nn

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.relu(nn.Dense(16)(x))
            return nn.Dense(10)(x)

    return MLP()


def flax_init(hp, data):
    import optax

    # Every member starts from the same flax-initialised weights, made once outside the program (drawing
    # them per member from hp["seed"] works too, but vmapped threefry compiles slowly on CPU).
    params = data["init"]
    return {"params": params, "opt": optax.adam(hp["learning_rate"]).init(params)}


def flax_epoch(state, hp, data, epoch):
    import optax

    model, opt = _flax_model(), optax.adam(hp["learning_rate"])

    def loss(params):
        logits = model.apply(params, data["x_train"])
        return optax.softmax_cross_entropy_with_integer_labels(logits, data["y_train"]).mean()

    def step(carry, _):
        params, opt_state = carry
        grads = jax.grad(loss)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    (params, opt_state), _ = jax.lax.scan(step, (state["params"], state["opt"]), None, length=5)
    accuracy = jnp.mean(jnp.argmax(model.apply(params, data["x_val"]), -1) == data["y_val"])
    return {"params": params, "opt": opt_state}, accuracy


def test_custom_flax_model_tunes_end_to_end():
    ds = tiny_digits()
    data = {k: jnp.asarray(getattr(ds, k)) for k in ("x_train", "y_train", "x_val", "y_val")}
    data["init"] = _flax_model().init(jax.random.key(0), data["x_train"][:1])
    trainable = vtune.FunctionTrainable(data=data, init_fn=flax_init, epoch_fn=flax_epoch, metric="accuracy")
    space = {"learning_rate": Float(1e-5, 1e-1, scale="log")}
    result = vtune.tune(space, trainable, strategy="random", trials=8, max_epochs=3, seed=0, compile_cache=None)
    assert result.status == "ok" and result.metric == "accuracy" and result.num_compiles == 1
    finals = [t["rungs"][-1]["val_score"] for t in result.trials]
    assert result.best_val_score == max(finals) > min(finals) + 0.2
    # The best member's flax parameters came back with it and reproduce its score.
    params = result.best_state["member"]["params"]
    logits = _flax_model().apply(params, data["x_val"])
    assert float(jnp.mean(jnp.argmax(logits, -1) == data["y_val"])) == pytest.approx(result.best_val_score)


# ------------------------------------------------------------------------------------------------ memory

def _rss_bytes() -> int:
    try:
        import psutil

        return psutil.Process().memory_info().rss
    except ImportError:
        for line in pathlib.Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise


def test_repeated_searches_do_not_grow_memory(tmp_path):
    cache = str(tmp_path / "cache")  # later searches load the program instead of compiling it again
    try:
        for seed in range(2):  # warm-up (compiling, plotting, writing files)
            vtune.tune(BOWL_SPACE, BOWL, strategy="random", trials=8, max_epochs=2, seed=seed,
                       out=tmp_path / f"warm{seed}", compile_cache=cache)
        gc.collect()
        before = _rss_bytes()
        for seed in range(10):
            result = vtune.tune(BOWL_SPACE, BOWL, strategy="random", trials=8, max_epochs=2, seed=seed,
                                out=tmp_path / f"out{seed}", compile_cache=cache)
            assert result.status == "ok"
        del result
        gc.collect()
        grown = _rss_bytes() - before
    finally:
        configure_compile_cache(None)
    assert grown < 40 * 2**20, f"RSS grew by {grown / 2**20:.1f} MiB over ten searches"


def test_a_search_hands_its_program_the_shared_orders_drawn_on_the_host(monkeypatch):
    from vtune.tune import _Setup

    ds = vtune.load_dataset("digits")
    kw = dict(max_epochs=9, data_seed=5, restore_best=True, steps_per_epoch=10)
    setup = _Setup({"units": Int(16, 64)}, ds, shared_order=True, **kw)
    orders = setup.trainable.orders
    assert isinstance(orders, np.ndarray) and orders.shape == (9, ds.n_train)  # data: no shuffle compiled
    np.testing.assert_array_equal(orders, np.asarray(setup.trainable.replace(orders=None).prepare(9).orders))
    assert setup.trainable.prepare(9) is setup.trainable
    assert _Setup({"units": Int(16, 64)}, ds, shared_order=False, **kw).trainable.orders is None
    # Past HOST_ORDERS_MAX entries the program draws them itself (numpy would take longer).
    monkeypatch.setattr(sys.modules["vtune.tune"], "HOST_ORDERS_MAX", 9 * ds.n_train - 1)
    assert _Setup({"units": Int(16, 64)}, ds, shared_order=True, **kw).trainable.orders is None


def test_tier_candidates_are_a_ladder_below_the_widest_layer():
    from vtune.train import MAX_TIER_CANDIDATES, tier_candidates

    assert tier_candidates(256) == (32, 48, 64, 96, 128, 192)
    assert tier_candidates(64) == (32, 48) and tier_candidates(33) == (32,) and tier_candidates(32) == ()
    assert tier_candidates(512) == (32, 48, 64, 96, 128, 192, 256, 384)  # eight: still the whole ladder
    wide = tier_candidates(4096)  # past eight rungs, powers of two only, the widest kept
    assert wide == (32, 64, 128, 256, 512, 1024, 2048) and len(wide) <= MAX_TIER_CANDIDATES


def test_width_tiers_are_kept_only_where_they_repay_compiling():
    from vtune.tune import TIER_MIN_FLOPS, _Setup

    space = {"units": Int(16, 256, scale="log"), "num_layers": Int(1, 3), "batch_size": 64}
    ds = vtune.load_dataset("digits")

    def tiers(model_epochs, chunk=1):
        setup = _Setup(space, ds, max_epochs=27, data_seed=0, shared_order=True, restore_best=True,
                       steps_per_epoch=10)
        assert setup.trainable.width_tiers == (32, 48, 64, 96, 128, 192)  # the candidates the choice starts from
        setup.auto_tiers(model_epochs, chunk)
        return setup.trainable.width_tiers, setup

    assert tiers(1)[0] == ()  # a tiny search compiles one width only
    assert tiers(10**6)[0] == (32, 48, 64, 96, 128, 192)  # a long one keeps every tier
    assert tiers(10**6, chunk=4)[0] == ()  # vmapped chunks pad to their widest member anyway
    chosen = [tiers(e)[0] for e in (1, 30, 100, 357, 1000, 3000, 10**4)]
    assert [len(c) for c in chosen] == sorted(len(c) for c in chosen)  # more training, never fewer tiers
    # Digits with this space and Hyperband R=27 (357 model-epochs), against the cost model written out by
    # hand: each member pays its own layers at the narrowest kept width that holds it, each tier a compile.
    keep, setup = tiers(357)
    need, depth = setup._sampled_architectures()
    rows = 357 * ds.n_train * 6

    def by_hand(kept):
        total = 0.0
        for n, d in zip(need.tolist(), depth.tolist()):
            w = min(t for t in list(kept) + [256] if t >= n)
            total += 64 * w + (d - 1) * w * w + w * 10
        return rows * total / len(need) + len(kept) * TIER_MIN_FLOPS

    candidates = (32, 48, 64, 96, 128, 192)
    costs = {c: by_hand(c) for k in range(len(candidates) + 1) for c in itertools.combinations(candidates, k)}
    assert keep == min(costs, key=lambda c: (costs[c], len(c)))
    # On the development CPU neither tier repays its compile time over a first run and a rerun here (see
    # TIER_MIN_FLOPS): the 128 tier saves ≈ 1.2e11 padded FLOPs of training, less than its compile's charge.
    assert keep == ()
    saved = costs[()] - (costs[(128,)] - TIER_MIN_FLOPS)
    assert saved == pytest.approx(1.2e11, rel=0.1) and saved < TIER_MIN_FLOPS
    assert setup._sampled_architectures()[0].tolist() == need.tolist()  # a fixed draw: the same choice every time


def test_tiers_and_fusion_follow_the_members_each_device_trains_at_once(monkeypatch):
    # The engine spreads a chunk over every device: chunk=device_count is one member per device, the
    # default's case, and must keep the default's tiers (it dropped them while the check read chunk == 1).
    from vtune.tune import _Setup

    seen = []

    class Stop(Exception):
        pass

    def tiers(self, model_epochs, per_device):
        seen.append(("tiers", per_device))

    def fuse(self, model_epochs, per_device):
        seen.append(("fuse", per_device))
        raise Stop  # nothing else to see: the search need not compile

    monkeypatch.setattr(_Setup, "auto_tiers", tiers)
    monkeypatch.setattr(_Setup, "auto_fuse", fuse)
    n = jax.device_count()
    for chunk in (None, 1, n, n + 1, 2 * n):
        with pytest.raises(Stop):
            vtune.tune(MLP_SPACE, tiny_digits(), chunk=chunk, compile_cache=None, **MLP_STRATEGY)
    assert seen == [(step, k) for k in (1, 1, 1, 2, 2) for step in ("tiers", "fuse")]


def test_optimizer_rules_are_fused_only_for_few_rules_and_a_small_budget():
    from vtune.optim import FUSE_RULES
    from vtune.tune import FUSE_MAX_FLOPS, _Setup

    ds = vtune.load_dataset("digits")

    def fused(optimizers, model_epochs, chunk=1):
        space = {"units": Int(16, 256, scale="log"), "num_layers": Int(1, 3), "batch_size": 64,
                 "optimizer": Choice(list(optimizers))}
        setup = _Setup(space, ds, max_epochs=27, data_seed=0, shared_order=True, restore_best=True,
                       steps_per_epoch=10)
        setup.auto_tiers(model_epochs, chunk)
        setup.auto_fuse(model_epochs, chunk)
        variants = len(setup.trainable.width_tiers) + 1
        flops = setup.training_flops(model_epochs, setup.trainable.width_tiers)
        return setup.trainable.fuse_rules, flops <= variants * FUSE_MAX_FLOPS

    few = ("momentum", "rmsprop", "adam")
    assert len(few) <= FUSE_RULES
    assert fused(few, 100) == (True, True)  # a short search
    assert fused(few, 357) == (False, False)  # the benchmark's digits search: no tier, 2.3e11 padded FLOPs
    assert fused(few, 10**5) == (False, False)  # a long search: the slower step would cost more
    assert fused(few, 357, chunk=4)[0] is False  # vmapped chunks select anyway
    assert fused(few + ("sgd",), 357)[0] is False  # more rules than FUSE_RULES: the switch


def test_a_short_cpu_search_compiles_with_the_fast_compile_options():
    from vtune.engine import FAST_COMPILE_OPTIONS
    from vtune.tune import FAST_COMPILE_MAX_FLOPS, _ENGINES, _Setup

    ds = vtune.load_dataset("digits")
    space = {"units": Int(16, 256, scale="log"), "num_layers": Int(1, 3), "batch_size": 64}

    def fast(model_epochs):
        setup = _Setup(space, ds, max_epochs=27, data_seed=0, shared_order=True, restore_best=True,
                       steps_per_epoch=10)
        setup.auto_tiers(model_epochs, 1)
        flops = setup.training_flops(model_epochs, setup.trainable.width_tiers)
        return setup.fast_compile(model_epochs), flops <= FAST_COMPILE_MAX_FLOPS

    assert fast(357) == (True, True)  # the benchmark's digits search: 2.3e11 padded FLOPs
    assert fast(10**4) == (False, False)  # a long search: the slower training would cost more
    # tune() hands the choice to the engine it compiles with.
    _ENGINES.clear()
    vtune.tune({"units": 4, "num_layers": 1, "batch_size": 4}, "xor", strategy="random", trials=2, max_epochs=1,
               compile_cache=None)
    on_cpu = jax.default_backend() == "cpu"
    assert [e.compiler_options for e in _ENGINES.values()] == [FAST_COMPILE_OPTIONS if on_cpu else {}]


def test_a_search_that_cannot_fit_is_refused_with_the_numbers():
    with pytest.raises(ValueError, match=r"needs about .* GiB .*more than the limit of 0.00 GiB"):
        vtune.tune({"units": 64, "num_layers": 2, "batch_size": 2}, "xor", strategy="random", trials=4,
                   max_epochs=1, compile_cache=None, max_memory_gb=1e-6)


def test_memory_estimate_counts_every_device_copy():
    from vtune.memory import estimate_bytes
    from vtune.train import MLPTrainable, encode_hparams

    tr = MLPTrainable.create(vtune.load_dataset("xor"), max_layers=2, max_units=64, micro_batch=4)
    one, two = estimate_bytes(tr, 64, 2, 1), estimate_bytes(tr, 64, 2, 2)
    # Two devices: two replicas of the state and of the data.
    assert two["resident"] == 2 * one["resident"] and two["data"] == 2 * one["data"]
    assert one["resident"] == 4 * 64 * tr.layout.num_params * 6 * 2  # 6 buffers, state + room for copies
    # Only the optimizer buffers the allowed rules read are kept: SGD and momentum need one (m), not three.
    lean = tr.replace(optimizers=("sgd", "momentum"))
    assert estimate_bytes(lean, 64, 2, 1)["resident"] == 4 * 64 * tr.layout.num_params * 4 * 2
    state = jax.eval_shape(lean.init, lean.host_init(encode_hparams(
        [{"units": 8, "num_layers": 1, "batch_size": 4, "optimizer": "momentum"}], task="classification",
        max_layers=2, micro_batch=4)))
    assert state.opt.m is not None and state.opt.v is None and state.opt.w is None


# ------------------------------------------------------------------------------------------ full digits run

@pytest.mark.slow
def test_digits_hyperband_reaches_95_percent(tmp_path):
    out = tmp_path / "digits"
    result = vtune.tune(None, "digits", strategy="hyperband", max_epochs=27, eta=3, seed=0, out=out,
                        compile_cache=None)
    assert result.status == "ok"
    for name in ("results.json", "trials.csv", "curves.png", "best_model/params.msgpack", "best_model/model.json",
                 "best_model/config.json", "checkpoint/state.json", "checkpoint/best.npz"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "results.json").read_text())
    assert summary["best"]["id"] == result.best["id"]
    assert summary["budget"]["model_epochs"] == vtune.hyperband_plan(27, 3).model_epochs
    assert summary["num_trials"] == vtune.hyperband_plan(27, 3).num_configs
    import csv

    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert len(rows) == summary["num_trials"]
    best_row = next(r for r in rows if int(r["id"]) == summary["best"]["id"])
    assert float(best_row["val_score"]) == pytest.approx(summary["best"]["val_score"], abs=1e-6)
    finite = [float(r["val_score"]) for r in rows if r["val_score"] not in ("", "nan")]
    assert summary["best"]["val_score"] == pytest.approx(max(finite), abs=1e-6)
    assert json.loads((out / "best_model" / "config.json").read_text()) == summary["best"]["config"]
    ds = vtune.load_dataset("digits", seed=0)
    model = vtune.load(out).model
    accuracy = np.mean(model.predict(ds.x_test, scaled=True) == ds.decode_labels(ds.y_test))
    assert accuracy == pytest.approx(summary["best"]["test_score"], abs=1e-6)
    raw = np.mean(model.predict(raw_rows(ds)) == ds.decode_labels(ds.y_test))
    assert abs(raw - accuracy) <= 1 / ds.n_test
    # Issue 3's bar. Selection breaks ties in validation accuracy (270 rows: steps of 0.0037) by the
    # validation loss; before that rule, seed 0 picked a tied model with 0.933.
    assert result.best_test_score >= 0.95, result.best
