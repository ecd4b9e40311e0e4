"""Learning-rate schedules: golden values worked out by hand from the formulas, restarts, warm-up edges,
per-member selection, and one compiled program for every parameter value."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vtune.hparams import SCHEDULES
from vtune.schedules import SCHEDULE_IDS, learning_rate, schedule_value

LR0 = 0.1
BASE = dict(learning_rate=LR0, decay_rate=0.5, step_factor=0.5, step_epochs=2.0, warmup_epochs=1.0,
            cosine_epochs=4.0, restart_epochs=1.0, restart_mult=1.0, min_lr_ratio=0.0)

# (schedule, overrides, [(t, lr), ...]); every lr worked out from the docstring's formula with lr0 = 0.1.
GOLDEN = [
    ("constant", {}, [(0.0, 0.1), (1.5, 0.1), (10.0, 0.1)]),
    # lr0·exp(−k·t), k = 0.5: e^−0.5 = 0.60653066, e^−2 = 0.13533528
    ("exponential", {}, [(0.0, 0.1), (1.0, 0.060653066), (4.0, 0.013533528)]),
    # lr0 / (1 + d·t), d = 2
    ("inverse_time", {"decay_rate": 2.0}, [(0.0, 0.1), (1.0, 0.1 / 3), (2.5, 0.1 / 6)]),
    # lr0·γ^⌊t/s⌋, γ = 0.5, s = 2
    ("step", {}, [(0.0, 0.1), (1.999, 0.1), (2.0, 0.05), (5.0, 0.025), (6.0, 0.0125)]),
    # lr0·(α + (1−α)·½(1 + cos(π·min(t, T)/T))), T = 4, α = 0.1: at t=1, ½(1 + cos(π/4)) = 0.85355339
    ("cosine", {"min_lr_ratio": 0.1},
     [(0.0, 0.1), (1.0, 0.086819805), (2.0, 0.055), (3.0, 0.023180195), (4.0, 0.01), (6.0, 0.01)]),
    # warm-up lr0·t/w over w = 1, then cosine from lr0 over [1, 5]
    ("warmup_cosine", {"cosine_epochs": 5.0},
     [(0.0, 0.0), (0.5, 0.05), (0.99, 0.099), (1.0, 0.1), (2.0, 0.085355339), (3.0, 0.05), (5.0, 0.0),
      (7.0, 0.0)]),
    # warm restarts every T0 = 1 epoch (m = 1): cos(0.99π) term: ½(1 + cos(0.99π)) = 2.4671982e-4
    ("sgdr", {}, [(0.0, 0.1), (0.5, 0.05), (0.99, 2.4671982e-5), (1.0, 0.1), (1.5, 0.05), (2.25, 0.085355339)]),
    # m = 2: cycles [0, 1), [1, 3), [3, 7), [7, 15)
    ("sgdr", {"restart_mult": 2.0},
     [(0.0, 0.1), (0.5, 0.05), (1.0, 0.1), (2.0, 0.05), (2.5, 0.014644661), (3.0, 0.1), (5.0, 0.05), (7.0, 0.1),
      (11.0, 0.05)]),
    # m = 2, T0 = 0.5, floor α = 0.2: cycles [0, .5), [.5, 1.5), [1.5, 3.5); mid-cycle lr0·(0.2 + 0.8·½)
    ("sgdr", {"restart_mult": 2.0, "restart_epochs": 0.5, "min_lr_ratio": 0.2},
     [(0.0, 0.1), (0.25, 0.06), (0.5, 0.1), (1.0, 0.06), (1.5, 0.1), (2.5, 0.06), (3.5, 0.1)]),
    # m = 3, T0 = 2: cycles [0, 2), [2, 8), [8, 26), [26, 80)
    ("sgdr", {"restart_mult": 3.0, "restart_epochs": 2.0},
     [(0.0, 0.1), (1.0, 0.05), (2.0, 0.1), (5.0, 0.05), (8.0, 0.1), (17.0, 0.05), (26.0, 0.1)]),
]


def _hp(name: str, overrides: dict) -> dict:
    hp = {k: jnp.float32(v) for k, v in {**BASE, **overrides}.items()}
    hp["schedule"] = jnp.int32(SCHEDULE_IDS[name])
    return hp


def test_golden_table_covers_every_schedule():
    assert {name for name, _, _ in GOLDEN} == set(SCHEDULES)


@pytest.mark.parametrize("name, overrides, table", GOLDEN,
                         ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(GOLDEN)])
def test_golden_values(name, overrides, table):
    hp = _hp(name, overrides)
    ts = jnp.array([t for t, _ in table], jnp.float32)
    want = np.array([lr for _, lr in table], np.float32)
    np.testing.assert_allclose(schedule_value(name, ts, hp), want, rtol=2e-6, atol=1e-8)
    # The selecting entry point, with every formula built, picks the member's own.
    padded = jnp.zeros(12, jnp.float32).at[: len(table)].set(ts)  # one shape: one compile for every case
    np.testing.assert_allclose(_selected(padded, hp)[: len(table)], want, rtol=2e-6, atol=1e-8)


@jax.jit
def _selected(t, hp):
    return jax.vmap(lambda ti: learning_rate(ti, hp))(t)


def test_warmup_boundaries():
    hp = _hp("warmup_cosine", {"warmup_epochs": 2.0, "cosine_epochs": 6.0, "min_lr_ratio": 0.1})
    below, at, above, later = (float(schedule_value("warmup_cosine", jnp.float32(t), hp))
                               for t in (1.9999, 2.0, 2.0001, 3.0))
    assert below == pytest.approx(0.1 * 1.9999 / 2.0, rel=1e-6)
    assert at == pytest.approx(0.1, rel=1e-6)  # the warm-up ends exactly at lr0 ...
    assert above == pytest.approx(0.1, rel=1e-6)  # ... and the cosine starts from there:
    assert later == pytest.approx(0.086819805, rel=1e-6)  # (t − w)/(T − w) = 1/4, α = 0.1
    # No warm-up at all: plain cosine from t = 0, no division by zero.
    hp0 = _hp("warmup_cosine", {"warmup_epochs": 0.0, "cosine_epochs": 4.0})
    values = schedule_value("warmup_cosine", jnp.array([0.0, 2.0, 4.0], jnp.float32), hp0)
    np.testing.assert_allclose(values, [0.1, 0.05, 0.0], atol=1e-8)


@pytest.mark.parametrize("mult", [1.0, 2.0])
def test_sgdr_restarts_jump_back_to_lr0(mult):
    hp = _hp("sgdr", {"restart_epochs": 1.0, "restart_mult": mult, "min_lr_ratio": 0.0})
    starts = [1.0, 2.0, 3.0, 4.0] if mult == 1.0 else [1.0, 3.0, 7.0, 15.0]
    for start in starts:
        before = float(schedule_value("sgdr", jnp.float32(start - 1e-3), hp))
        at = float(schedule_value("sgdr", jnp.float32(start), hp))
        assert before < 1e-4 * LR0 and at == pytest.approx(LR0, rel=1e-6), (mult, start, before, at)


def test_members_select_their_own_schedule():
    # A population [P]: each member evaluates its own formula with its own parameters.
    names = list(SCHEDULES)
    rows = [{**BASE, "decay_rate": 0.5 + i, "min_lr_ratio": 0.05 * i, "step_epochs": 1.0} for i in range(len(names))]
    hp = {k: jnp.array([r[k] for r in rows], jnp.float32) for k in BASE}
    hp["schedule"] = jnp.array([SCHEDULE_IDS[n] for n in names], jnp.int32)
    t = jnp.float32(1.5)
    got = jax.jit(jax.vmap(lambda h: learning_rate(t, h)))(hp)
    for i, name in enumerate(names):
        one = {k: v[i] for k, v in hp.items()}
        assert float(got[i]) == pytest.approx(float(schedule_value(name, t, one)), rel=1e-6), name
    assert len(set(np.round(np.asarray(got), 7))) == len(names)


def test_new_parameter_values_do_not_retrace():
    @jax.jit
    @chex.assert_max_traces(n=1)
    def lr_at(t, hp):
        return learning_rate(t, hp)

    for i, name in enumerate(SCHEDULES):
        hp = _hp(name, {"decay_rate": 0.1 * (i + 1), "step_epochs": 1.0 + i, "restart_mult": 1.0 + i,
                        "warmup_epochs": 0.5 * i, "cosine_epochs": 3.0 + i})
        hp["learning_rate"] = jnp.float32(10.0 ** -(i + 1))
        value = lr_at(jnp.float32(0.7 * i), hp)
        assert float(value) == pytest.approx(float(schedule_value(name, jnp.float32(0.7 * i), hp)), rel=1e-6)
    assert lr_at._cache_size() == 1


def test_a_member_alone_evaluates_only_its_own_schedule():
    # A scalar schedule id picks one branch of a conditional; a population's ids select over every formula;
    # with one schedule allowed there is nothing to choose.
    t = jnp.float32(1.5)
    hp = _hp("cosine", {})
    population = {k: v[None] for k, v in hp.items()}
    assert str(jax.make_jaxpr(learning_rate)(t, hp)).count("cond[") == 1
    assert "cond[" not in str(jax.make_jaxpr(jax.vmap(learning_rate, in_axes=(None, 0)))(t, population))
    assert "cond[" not in str(jax.make_jaxpr(lambda t, hp: learning_rate(t, hp, schedules=("cosine",)))(t, hp))
    formula = jax.jit(schedule_value, static_argnums=0)
    for name in SCHEDULES:
        hp = _hp(name, {})
        np.testing.assert_array_equal(jax.jit(learning_rate)(t, hp), formula(name, t, hp), err_msg=name)
