"""Every search strategy against a plain-numpy reference of the published algorithm, trial by trial.

The trainable is synthetic: a member's state is an epoch counter and its score after ``e`` epochs is a known
function ``f(config, e)`` (exact in float32: dyadic table values), non-monotone in ``units``, with exact ties
between configurations, curves that cross between rungs (so selection at one rung differs from the next),
one configuration that diverges mid-run (NaN), one that diverges at once and one that overflows (+inf).
The reference reuses the space's sampler (``space.sample`` / ``space.grid`` / ``space.narrow``) for the
configurations, but does every selection itself with the documented tie rules:

* rung selection: score descending, NaN/±inf from the trainable as −inf, ties to the lower trial id;
* best of a stage: the highest (score, rung, −trial) — ties to the later rung, then the lower trial id;
* best of a search: a later stage replaces the best only with a strictly higher score.
"""

from __future__ import annotations

import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import vtune
from vtune.engine import rank_slots
from vtune.space import Choice, Float, Int, Space
from vtune.strategies import CoarseToFine, Grid, Halving, Hyperband, Random
from vtune.strategies.base import MAX_STAGE_TRIALS, stage_rng

# ------------------------------------------------------------------------------------ synthetic trainable

OPTIMIZERS = ("sgd", "adam", "rmsprop")
#: Offset per ``units`` (index 0 unused): non-monotone, with repeats (1=4, 3=9, 2=11) for exact ties.
OFFSET = np.array([0.0, 1.5, 0.25, 2.0, 1.5, 0.75, 1.0, 3.0, 0.5, 2.0, 1.25, 0.25, 1.75], np.float32)
#: Slope per epoch per optimizer: curves cross, so the ranking changes from rung to rung.
SLOPE = np.array([0.125, 0.03125, 0.0], np.float32)

SPACE = Space({
    "learning_rate": Float(1e-3, 1.0, scale="log"),  # carried in the configs, not in the score
    "optimizer": Choice(list(OPTIMIZERS)),
    "units": Int(1, 12),
})


def score_reference(config, epochs: int) -> float:
    """``f(config, e)`` in float32 arithmetic, as a Python float (NaN / +inf where the member fails)."""
    u, o = config["units"], OPTIMIZERS.index(config["optimizer"])
    if u == 7 and epochs >= 3:  # the best early, then diverges
        return math.nan
    if u == 12 and o == 2:  # diverges at once
        return math.nan
    if u == 11 and o == 0 and epochs >= 2:  # overflows
        return math.inf
    return float(OFFSET[u] + SLOPE[o] * np.float32(epochs))


def init_fn(hp, data):
    return {"count": jnp.zeros((), jnp.int32)}


def epoch_fn(state, hp, data, epoch):
    e = state["count"] + 1
    u, o = hp["units"], hp["optimizer"]  # o: the index in the space's Choice of optimizers
    s = data["offset"][u] + data["slope"][o] * e.astype(jnp.float32)
    s = jnp.where((u == 7) & (e >= 3), jnp.nan, s)
    s = jnp.where((u == 12) & data["is_rmsprop"][o], jnp.nan, s)
    s = jnp.where((u == 11) & data["is_sgd"][o] & (e >= 2), jnp.inf, s)
    return {"count": e}, s


def make_trainable(optimizers=OPTIMIZERS):
    """The synthetic trainable for a space whose ``optimizer`` is ``Choice(optimizers)``."""
    idx = [OPTIMIZERS.index(o) for o in optimizers]
    data = {"offset": jnp.asarray(OFFSET), "slope": jnp.asarray(SLOPE[idx]),
            "is_sgd": jnp.array([o == "sgd" for o in optimizers]),
            "is_rmsprop": jnp.array([o == "rmsprop" for o in optimizers])}
    return vtune.FunctionTrainable(data=data, init_fn=init_fn, epoch_fn=epoch_fn)


def test_synthetic_trainable_matches_its_reference():
    configs = [{"units": u, "optimizer": o, "learning_rate": 0.01} for u in range(1, 13) for o in OPTIMIZERS]
    hp = {"units": jnp.array([c["units"] for c in configs], jnp.int32),
          "optimizer": jnp.array([OPTIMIZERS.index(c["optimizer"]) for c in configs], jnp.int32),
          "learning_rate": jnp.full(len(configs), 0.01, jnp.float32),
          "seed": jnp.arange(len(configs), dtype=jnp.uint32)}
    tr = make_trainable()
    state = tr.init(hp)
    for e in range(1, 5):
        state, scores = tr.train_epoch(state, e - 1)
        expect = np.array([score_reference(c, e) for c in configs], np.float32)
        np.testing.assert_array_equal(np.asarray(scores), expect)
        finite = np.where(np.isfinite(expect), expect, -np.inf)
        np.testing.assert_array_equal(np.asarray(tr.score(state)), finite)


# ------------------------------------------------------------------------------------------- references

def _finite(x: float) -> float:
    return x if math.isfinite(x) else -math.inf


def hyperband_rungs_reference(max_epochs: int, eta: int, sizing: str) -> list[list[tuple[int, int]]]:
    """Li et al. Algorithm 1 (or its Table 1 sizing), exact rationals: ``[[(n_i, r_i), ...] per bracket]``."""
    s_max = 0
    while eta ** (s_max + 1) <= max_epochs:
        s_max += 1
    brackets = []
    for s in range(s_max, -1, -1):
        if sizing == "formula":
            n = math.ceil(Fraction((s_max + 1) * max_epochs * eta**s, max_epochs * (s + 1)))
        else:
            n = max(eta**s, ((s_max + 1) // (s + 1)) * eta**s)
        brackets.append([(n // eta**i, max(1, round(Fraction(max_epochs * eta**i, eta**s)))) for i in range(s + 1)])
    return brackets


def halving_rungs_reference(n: int, max_epochs: int, eta: int, min_epochs: int) -> list[tuple[int, int]]:
    """Successive halving: ``⌊n/η^i⌋`` configurations at ``min_epochs·η^i`` epochs while both fit."""
    rungs, i = [], 0
    while min_epochs * eta**i <= max_epochs and n // eta**i >= 1:
        rungs.append((n // eta**i, min_epochs * eta**i))
        i += 1
    return rungs


def bracket_reference(configs, rungs, stage: int, id_offset: int):
    """Run one bracket: train, rank (score desc, ties to lower id), keep the next rung's size.

    Returns ``(records, best)`` with ``best = (score, rung, -trial, epochs)`` of this bracket.
    """
    assert rungs[0][0] == len(configs)
    alive = list(range(len(configs)))
    history: dict[int, list] = {j: [] for j in alive}
    best = None
    for i, (n_i, r_i) in enumerate(rungs):
        assert len(alive) == n_i
        scores = {j: _finite(score_reference(configs[j], r_i)) for j in alive}
        for j in alive:
            history[j].append({"epochs": r_i, "val_score": scores[j]})
            key = (scores[j], i, -j, r_i)
            best = key if best is None or key > best else best
        if i + 1 < len(rungs):
            alive = sorted(alive, key=lambda j: (-scores[j], j))[: rungs[i + 1][0]]
    records = []
    for j, config in enumerate(configs):
        hist = history[j]
        if any(not math.isfinite(h["val_score"]) for h in hist):
            status = "diverged"
        else:
            status = "completed" if len(hist) == len(rungs) else "pruned"
        curve = [score_reference(config, e) for e in range(1, hist[-1]["epochs"] + 1)]
        records.append({"id": id_offset + j, "config": config, "bracket": stage, "rungs": hist,
                        "status": status, "curve": curve})
    return records, best


def search_reference(stage_configs, stage_rungs):
    """Run stages in order; a later stage's best replaces the search's best only when strictly higher."""
    records, best, model_epochs = [], None, 0
    for index, (configs, rungs) in enumerate(zip(stage_configs, stage_rungs)):
        recs, (score, _, neg_trial, epochs) = bracket_reference(configs, rungs, index, len(records))
        if best is None or score > best[0]:
            best = (score, len(records) - neg_trial, epochs)
        records += recs
        model_epochs += sum(n * (r - prev) for (n, r), prev in zip(rungs, [0] + [r for _, r in rungs[:-1]]))
    return records, best, model_epochs


def sampled_stages(rungs_per_stage, seed):
    """Configurations of each stage as tune draws them: ``space.sample(n, seed=stage_rng(seed, index))``."""
    return [SPACE.sample(r[0][0], seed=stage_rng(seed, k)) for k, r in enumerate(rungs_per_stage)]


def best_record_reference(records):
    """Coarse-to-fine's centre: highest final score among finite ones, ties to the earlier trial."""
    best = None
    for rec in records:
        s = rec["rungs"][-1]["val_score"]
        if math.isfinite(s) and (best is None or s > best["rungs"][-1]["val_score"]):
            best = rec
    return best


def assert_same_search(result, records, best, model_epochs):
    assert len(result.trials) == len(records)
    for got, want in zip(result.trials, records):
        where = f"trial {want['id']}"
        assert got["id"] == want["id"], where
        assert got["config"] == want["config"], where
        assert got["bracket"] == want["bracket"], where
        assert [r["epochs"] for r in got["rungs"]] == [r["epochs"] for r in want["rungs"]], where
        assert [r["val_score"] for r in got["rungs"]] == [r["val_score"] for r in want["rungs"]], where
        assert got["status"] == want["status"], where
        np.testing.assert_array_equal(np.asarray(got["curve"], np.float64),
                                      np.asarray(want["curve"], np.float64), err_msg=where)
    assert result.model_epochs == model_epochs
    if best[0] == -math.inf:
        assert result.status == "all_diverged"
        assert result.best_config is None
    else:
        assert result.status == "ok"
        assert result.best["id"] == best[1]
        assert result.best_val_score == best[0]
        assert result.best_config == records[best[1]]["config"]
        # The kept state is the best (trial, rung)'s: its epoch counter says which rung it came from.
        assert int(result.best_state["member"]["count"]) == best[2]
        assert float(result.best_state["last"]) == best[0]


def _statuses(records):
    return {s: sum(r["status"] == s for r in records) for s in ("completed", "pruned", "diverged")}


# ------------------------------------------------------------------------------------ strategy vs reference

@pytest.mark.parametrize("max_epochs,eta,sizing,seed,chunk", [
    (27, 3, "formula", 0, None),
    (27, 3, "table", 1, 5),
    (8, 2, "formula", 2, 3),
])
def test_hyperband_matches_reference(max_epochs, eta, sizing, seed, chunk):
    strategy = Hyperband(max_epochs=max_epochs, eta=eta, sizing=sizing)
    rungs = hyperband_rungs_reference(max_epochs, eta, sizing)
    assert [[(r.num_configs, r.epochs) for r in b.rungs] for b in strategy.stages(SPACE)] == rungs
    result = vtune.tune(SPACE, make_trainable(), strategy=strategy, seed=seed, chunk=chunk, compile_cache=None)
    records, best, model_epochs = search_reference(sampled_stages(rungs, seed), rungs)
    assert_same_search(result, records, best, model_epochs)
    # The budget actually trained is the plan's analytic total.
    assert result.model_epochs == result.planned_model_epochs == strategy.plan.model_epochs
    counts = _statuses(records)
    assert counts["pruned"] > 0 and counts["diverged"] > 0 and counts["completed"] > 0, counts


@pytest.mark.parametrize("num_configs,max_epochs,eta,min_epochs,seed", [
    (30, 27, 3, 1, 4),
    (20, 16, 2, 2, 5),
])
def test_halving_matches_reference(num_configs, max_epochs, eta, min_epochs, seed):
    strategy = Halving(num_configs=num_configs, max_epochs=max_epochs, eta=eta, min_epochs=min_epochs)
    rungs = [halving_rungs_reference(num_configs, max_epochs, eta, min_epochs)]
    result = vtune.tune(SPACE, make_trainable(), strategy=strategy, seed=seed, compile_cache=None)
    records, best, model_epochs = search_reference(sampled_stages(rungs, seed), rungs)
    assert_same_search(result, records, best, model_epochs)


def test_random_matches_reference_across_stage_batches():
    num_trials, epochs, seed = MAX_STAGE_TRIALS + 44, 3, 6
    result = vtune.tune(SPACE, make_trainable(), strategy=Random(num_trials=num_trials, max_epochs=epochs),
                        seed=seed, compile_cache=None)
    rungs = [[(MAX_STAGE_TRIALS, epochs)], [(44, epochs)]]
    records, best, model_epochs = search_reference(sampled_stages(rungs, seed), rungs)
    assert_same_search(result, records, best, model_epochs)
    assert {t["bracket"] for t in result.trials} == {0, 1}
    # Many exact ties at the top: the reference and tune agree the lowest id wins.
    top = [r for r in records if r["rungs"][-1]["val_score"] == best[0]]
    assert len(top) > 1 and best[1] == min(r["id"] for r in top)


def test_grid_matches_reference():
    points, epochs = 4, 2
    result = vtune.tune(SPACE, make_trainable(), strategy=Grid(points_per_dim=points, max_epochs=epochs),
                        seed=0, compile_cache=None)
    configs = SPACE.grid(points)
    assert len(configs) == 4 * 3 * 4
    assert {(c["units"], c["optimizer"]) for c in configs} == {(u, o) for u in (1, 5, 8, 12) for o in OPTIMIZERS}
    records, best, model_epochs = search_reference([configs], [[(len(configs), epochs)]])
    assert_same_search(result, records, best, model_epochs)
    # Ties across learning rates (the score ignores it): the first grid point of the tie wins.
    top = [r for r in records if r["rungs"][-1]["val_score"] == best[0]]
    assert len(top) == 4 and best[1] == top[0]["id"]


@pytest.mark.parametrize("seed", [7])
def test_coarse_to_fine_matches_reference(seed):
    per_round, rounds, shrink, epochs = 12, 3, 0.5, 4
    strategy = CoarseToFine(trials_per_round=per_round, rounds=rounds, shrink=shrink, max_epochs=epochs)
    result = vtune.tune(SPACE, make_trainable(), strategy=strategy, seed=seed, compile_cache=None)
    records, stage_configs = [], []
    for k in range(rounds):
        region = SPACE
        centre = best_record_reference(records) if k > 0 else None
        if centre is not None:
            region = SPACE.narrow(centre["config"], shrink**k)
        configs = region.sample(per_round, seed=stage_rng(seed, k))
        stage_configs.append(configs)
        recs, _ = bracket_reference(configs, [(per_round, epochs)], k, len(records))
        records += recs
    rungs = [[(per_round, epochs)]] * rounds
    records, best, model_epochs = search_reference(stage_configs, rungs)
    assert_same_search(result, records, best, model_epochs)
    # The later rounds really are narrowed: round 1 stays in a window of width `shrink` around round 0's best.
    units = SPACE["units"]
    centre = units.to_unit(best_record_reference(records[:per_round])["config"]["units"])
    assert all(abs(units.to_unit(c["units"]) - centre) <= shrink / 2 + 1 / 12 for c in stage_configs[1])
    assert len({c["units"] for c in stage_configs[1]}) < len({c["units"] for c in stage_configs[0]})


def test_seed_changes_the_configurations_and_stage_seeds_are_independent():
    a = SPACE.sample(5, seed=stage_rng(0, 0))
    assert a == SPACE.sample(5, seed=stage_rng(0, 0))
    assert a != SPACE.sample(5, seed=stage_rng(1, 0))
    assert a != SPACE.sample(5, seed=stage_rng(0, 1))


def nan_epoch_fn(state, hp, data, epoch):
    return {"count": state["count"] + 1}, jnp.float32(jnp.nan) * hp["learning_rate"]


def test_all_diverged_synthetic_search():
    trainable = vtune.FunctionTrainable(data={}, init_fn=init_fn, epoch_fn=nan_epoch_fn)
    space = Space({"learning_rate": Float(1e-3, 1e-1, scale="log")})
    result = vtune.tune(space, trainable, strategy=Halving(num_configs=9, max_epochs=9), seed=0, compile_cache=None)
    assert result.status == "all_diverged" and "diverged" in result.message
    assert result.best_config is None and result.best["id"] is None
    assert len(result.trials) == 9 and all(t["status"] == "diverged" for t in result.trials)
    assert all(t["rungs"][0]["val_score"] == -math.inf for t in result.trials)


def test_best_ties_go_to_the_later_rung_then_the_lower_trial():
    # rmsprop has a flat curve: the top configuration scores the same at every rung; a Latin hypercube of 9
    # over units 1..4 draws units=3 (the best offset) at least twice, so different trials tie too.
    space = Space({"units": Int(1, 4), "optimizer": Choice(["rmsprop"]),
                   "learning_rate": Float(1e-3, 1.0, scale="log")})
    strategy = Halving(num_configs=9, max_epochs=9, eta=3)
    result = vtune.tune(space, make_trainable(["rmsprop"]), strategy=strategy, seed=3, compile_cache=None)
    configs = space.sample(9, seed=stage_rng(3, 0))
    tied = [j for j, c in enumerate(configs) if c["units"] == 3]
    assert len(tied) >= 2
    assert result.best["id"] == tied[0] and result.best_val_score == 2.0
    assert int(result.best_state["member"]["count"]) == 9  # the last rung, not the first at 1 epoch
    assert [t["status"] for t in result.trials].count("completed") == 1


# ------------------------------------------------------------------------------------------- rank_slots

SCORE_VALUES = st.sampled_from([0.0, -0.0, 1.0, 1.0, -1.0, 2.5, 1e30, -1e30, math.inf, -math.inf, math.nan])


def rank_reference(scores, trial_ids, num_active, tiebreak=None):
    n = len(scores)

    def key(k):
        s = float(scores[k])
        s = -math.inf if (math.isnan(s) or k >= num_active) else s
        t = 0.0 if tiebreak is None else float(tiebreak[k])
        t = -math.inf if math.isnan(t) else t
        return (k >= num_active, -s, -t, int(trial_ids[k]))

    return sorted(range(n), key=key)


@settings(max_examples=120, deadline=None)
@given(data=st.data(), n=st.sampled_from([1, 2, 3, 5, 8, 17]), with_tiebreak=st.booleans())
def test_rank_slots_matches_numpy_sort(data, n, with_tiebreak):
    scores = np.array(data.draw(st.lists(SCORE_VALUES, min_size=n, max_size=n)), np.float32)
    trial_ids = np.array(data.draw(st.permutations(range(n))), np.int32)
    num_active = data.draw(st.integers(0, n))
    tiebreak = np.array(data.draw(st.lists(SCORE_VALUES, min_size=n, max_size=n)), np.float32) if with_tiebreak else None
    got = np.asarray(rank_slots(jnp.asarray(scores), jnp.asarray(trial_ids), num_active,
                                None if tiebreak is None else jnp.asarray(tiebreak)))
    assert got.tolist() == rank_reference(scores, trial_ids, num_active, tiebreak), (scores, trial_ids, tiebreak)


def test_rank_slots_tiebreak_examples():
    nan, inf = math.nan, math.inf
    scores = jnp.array([1.0, 1.0, 1.0, 2.0, 1.0], jnp.float32)
    tiebreak = jnp.array([-0.5, -0.2, nan, -9.0, -0.2], jnp.float32)
    ids = jnp.array([0, 1, 2, 3, 4], jnp.int32)
    # score first (slot 3 despite its worst tie-break), then tie-break (NaN last), then the lower id.
    assert np.asarray(rank_slots(scores, ids, 5, tiebreak)).tolist() == [3, 1, 4, 0, 2]
    # Without a tie-break the same scores fall back to the trial id.
    assert np.asarray(rank_slots(scores, ids, 5)).tolist() == [3, 0, 1, 2, 4]


def test_rank_slots_examples():
    nan, inf = math.nan, math.inf
    scores = jnp.array([nan, 1.0, inf, 1.0, -inf, 5.0], jnp.float32)
    ids = jnp.array([0, 4, 1, 2, 3, 5], jnp.int32)
    # active: slots 0..4; slot 5 (score 5) is inactive and goes last whatever its score.
    assert np.asarray(rank_slots(scores, ids, 5)).tolist() == [2, 3, 1, 0, 4, 5]
    # NaN and −inf tie at the bottom: the lower trial id first.
    assert np.asarray(rank_slots(jnp.array([-inf, nan], jnp.float32), jnp.array([1, 0], jnp.int32), 2)).tolist() == [1, 0]


def test_rank_slots_under_jit_is_the_same():
    scores = jnp.array([3.0, jnp.nan, 3.0, 7.0], jnp.float32)
    ids = jnp.array([3, 2, 1, 0], jnp.int32)
    eager = np.asarray(rank_slots(scores, ids, 4))
    jitted = np.asarray(jax.jit(rank_slots)(scores, ids, 4))
    assert eager.tolist() == jitted.tolist() == [3, 2, 0, 1]


class LearningRateTiebreak(vtune.FunctionTrainable):
    """The synthetic trainable with a tie-break key: among equal scores, the higher learning rate wins."""

    def tiebreak(self, state):
        return state["hp"]["learning_rate"]


def test_ties_go_to_the_higher_tiebreak_before_the_trial_id():
    space = Space({"units": Int(1, 4), "optimizer": Choice(["rmsprop"]),
                   "learning_rate": Float(1e-3, 1.0, scale="log")})
    base = make_trainable(["rmsprop"])
    trainable = LearningRateTiebreak(data=base.data, init_fn=init_fn, epoch_fn=epoch_fn)
    result = vtune.tune(space, trainable, strategy=Halving(num_configs=9, max_epochs=9, eta=3), seed=3,
                        compile_cache=None)
    configs = space.sample(9, seed=stage_rng(3, 0))
    tied = [j for j, c in enumerate(configs) if c["units"] == 3]
    winner = max(tied, key=lambda j: np.float32(configs[j]["learning_rate"]))
    assert winner != tied[0]  # otherwise this test could not tell the tie-break from the trial id
    assert result.best["id"] == winner and result.best_val_score == 2.0
    # The rung selection used it too: the winner is the one trial that completed every rung.
    assert [t["id"] for t in result.trials if t["status"] == "completed"] == [winner]


def test_a_subclass_is_not_served_its_parents_program():
    # A subclass that only adds a method flattens to a treedef that compares equal to its parent's; the
    # engine keys its programs on the class as well, so the subclass gets its own (with the tie-break).
    space = Space({"units": Int(1, 4), "optimizer": Choice(["rmsprop"]),
                   "learning_rate": Float(1e-3, 1.0, scale="log")})
    base = make_trainable(["rmsprop"])
    plain = vtune.FunctionTrainable(data=base.data, init_fn=init_fn, epoch_fn=epoch_fn)
    tied = LearningRateTiebreak(data=base.data, init_fn=init_fn, epoch_fn=epoch_fn)
    assert jax.tree.structure(plain) == jax.tree.structure(tied)
    strategy = Halving(num_configs=9, max_epochs=9, eta=3)
    first = vtune.tune(space, plain, strategy=strategy, seed=3, compile_cache=None)
    second = vtune.tune(space, tied, strategy=strategy, seed=3, compile_cache=None)
    configs = space.sample(9, seed=stage_rng(3, 0))
    ties = [j for j, c in enumerate(configs) if c["units"] == 3]
    assert first.best["id"] == ties[0]  # no tie-break: the lower trial id
    assert second.best["id"] == max(ties, key=lambda j: np.float32(configs[j]["learning_rate"]))
