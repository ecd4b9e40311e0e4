"""The tests that prove the vectorised training honest.

1. A member of a padded, mixed population trains exactly as the same configuration alone (a population of
   one at its own geometry: no width padding of its widest layer, no depth padding), with a shared data
   order and with per-member orders.
2. Each member equals an independent plain trainer (``tests/reference_mlp.py``): true shapes, its own
   forward and loss, the plain optax optimizer, a real batch per update, no accumulation.
3. A compiled population program runs a second population with new hyperparameter *values* without
   tracing or compiling again.

Every engine run goes through the public ``MLPTrainable.create / init / train_epoch / score`` (wrapped in
one jitted program by ``reference_mlp.run_population``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reference_mlp import EPOCHS, MICRO_BATCH, TRACES, run_population, small_digits, train_reference, true_params
from vtune.hparams import ACTIVATIONS, INITS, OPTIMIZERS, SCHEDULES
from vtune.train import MLPTrainable, encode_hparams

RTOL, ATOL = 1e-4, 1e-5
MAX_LAYERS, MAX_UNITS = 3, 32

# Every optimizer, schedule, activation and initialiser; depths 1..3, widths below the maximum, batch sizes
# 1, 2 and 4 micro-batches, dropout and weight decay. Schedules are set to act within 3 epochs (210 rows:
# 26, 13 or 6 updates per epoch). Members of one depth share their widest layer (8, 16, 32), so the
# one-by-one runs need three compiled geometries.
MIXED = [
    dict(optimizer="sgd", learning_rate=0.1, schedule="constant", activation="relu", init="uniform",
         init_scale=0.1, num_layers=1, units=8, batch_size=8, dropout=0.1, weight_decay=1e-3),
    dict(optimizer="momentum", learning_rate=0.05, momentum=0.8, schedule="exponential", decay_rate=0.7,
         activation="tanh", init="glorot_uniform", num_layers=2, units_1=16, units_2=8, batch_size=16,
         weight_decay=1e-3),
    dict(optimizer="nesterov", learning_rate=0.05, schedule="inverse_time", decay_rate=2.0,
         activation="sigmoid", init="glorot_normal", num_layers=3, units_1=32, units_2=12, units_3=20,
         batch_size=32, dropout=0.2),
    dict(optimizer="rmsprop", learning_rate=3e-3, rho=0.85, eps=1e-6, schedule="step", step_epochs=0.5,
         step_factor=0.5, activation="elu", init="he_normal", num_layers=1, units=8, batch_size=16, dropout=0.1,
         weight_decay=1e-4),
    dict(optimizer="adam", learning_rate=5e-3, beta2=0.99, schedule="cosine", cosine_epochs=2.5,
         min_lr_ratio=0.1, activation="gelu", init="he_uniform", num_layers=2, units_1=8, units_2=16,
         batch_size=8, dropout=0.3, weight_decay=1e-3),
    dict(optimizer="adamw", learning_rate=5e-3, schedule="warmup_cosine", warmup_epochs=0.5, cosine_epochs=2.5,
         activation="leaky_relu", init="lecun_normal", num_layers=3, units_1=20, units_2=32, units_3=7,
         batch_size=16, dropout=0.1, weight_decay=1e-2),
    dict(optimizer="adagrad", learning_rate=0.05, schedule="sgdr", restart_epochs=0.5, restart_mult=2.0,
         activation="identity", init="lecun_uniform", num_layers=1, units=8, batch_size=32, weight_decay=1e-3),
    dict(optimizer="adadelta", learning_rate=1.0, rho=0.9, schedule="sgdr", restart_epochs=0.5, restart_mult=1.0,
         min_lr_ratio=0.2, activation="relu", init="glorot_uniform", num_layers=2, units_1=16, units_2=16,
         batch_size=8, dropout=0.2, weight_decay=1e-3),
    dict(optimizer="adamax", learning_rate=5e-3, beta2=0.99, schedule="step", step_epochs=1.0, step_factor=0.3,
         activation="tanh", init="he_normal", num_layers=3, units_1=12, units_2=24, units_3=32, batch_size=32,
         dropout=0.1, weight_decay=1e-3),
    dict(optimizer="nadam", learning_rate=3e-3, momentum=0.85, schedule="exponential", decay_rate=0.3,
         activation="sigmoid", init="glorot_normal", num_layers=2, units_1=16, units_2=9, batch_size=16,
         dropout=0.2, weight_decay=1e-3),
]


def test_the_mixed_population_covers_every_choice():
    for field, names in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("activation", ACTIVATIONS),
                         ("init", INITS)):
        assert {c[field] for c in MIXED} == set(names), field
    assert {c["num_layers"] for c in MIXED} == {1, 2, 3}
    assert {c["batch_size"] // MICRO_BATCH for c in MIXED} == {1, 2, 4}
    assert {c["restart_mult"] for c in MIXED if c["schedule"] == "sgdr"} == {1.0, 2.0}
    assert any(c.get("dropout", 0) > 0 and c.get("weight_decay", 0) > 0 for c in MIXED)


def _widths(config) -> list[int]:
    return [config.get(f"units_{l + 1}", config.get("units")) for l in range(config["num_layers"])]


def _trainable(*, max_layers=MAX_LAYERS, max_units=MAX_UNITS, shared_order=True) -> MLPTrainable:
    return MLPTrainable.create(small_digits(), max_layers=max_layers, max_units=max_units, micro_batch=MICRO_BATCH,
                               shared_order=shared_order)


def _hparams(configs, *, max_layers=MAX_LAYERS, seeds=None):
    return encode_hparams(configs, task="classification", max_layers=max_layers, micro_batch=MICRO_BATCH,
                          max_epochs=EPOCHS, seeds=seeds)


def _assert_params_close(got: dict, want: dict, what: str, *, rtol=RTOL, atol=ATOL):
    pairs = [(f"hidden_{l}_{k}", g[k], w[k]) for l, (g, w) in enumerate(zip(got["hidden"], want["hidden"]))
             for k in ("w", "b")]
    pairs += [(f"out_{k}", got["out"][k], want["out"][k]) for k in ("w", "b")]
    assert len(got["hidden"]) == len(want["hidden"]), what
    for name, g, w in pairs:
        assert g.shape == w.shape, (what, name, g.shape, w.shape)
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=rtol, atol=atol, err_msg=f"{what}: {name}")


def _population(shared_order: bool):
    tr = _trainable(shared_order=shared_order)
    first, state, scores, best = run_population(tr, _hparams(MIXED))
    return tr, jax.device_get((first, state, scores, best))


def _alone(index: int, shared_order: bool):
    """Member ``index`` of MIXED trained as a population of one at its own geometry (seed = its index)."""
    cfg = MIXED[index]
    depth, widest = cfg["num_layers"], max(_widths(cfg))
    tr = _trainable(max_layers=depth, max_units=widest, shared_order=shared_order)
    first, state, scores, best = run_population(tr, _hparams([cfg], max_layers=depth, seeds=[index]))
    return tr, jax.device_get((first, state, scores, best))


@pytest.fixture(scope="module")
def shared_population():
    return _population(True)


@pytest.fixture(scope="module")
def own_order_population():
    return _population(False)


def _check_member_against_alone(population, index: int, shared_order: bool):
    tr, (first, state, scores, best) = population
    tr1, (first1, state1, scores1, best1) = _alone(index, shared_order)
    cfg = MIXED[index]
    # The padded member starts from exactly the numbers it draws alone (hash-based RNG, no padding effect).
    _assert_params_close(true_params(first[index], tr.layout, cfg), true_params(first1[0], tr1.layout, cfg),
                         f"initial params of member {index}", rtol=0, atol=0)
    _assert_params_close(true_params(state.params[index], tr.layout, cfg),
                         true_params(state1.params[0], tr1.layout, cfg), f"member {index} ({cfg['optimizer']})")
    # Validation accuracy on 45 rows: identical up to a logit tie flipping one row.
    np.testing.assert_allclose(scores[:, index], scores1[:, 0], atol=1.01 / 45, err_msg=f"scores of member {index}")
    assert not state.diverged[index] and not state1.diverged[0]
    assert np.isfinite(best[index]) and best[index] == np.max(scores[:, index])


@pytest.mark.parametrize("index", range(len(MIXED)))
def test_member_of_population_equals_member_alone(shared_population, index):
    _check_member_against_alone(shared_population, index, True)


# One compiled geometry (the depth-2 members, padded in both depth and width) in the quick set; the rest slow.
_OWN_ORDER_CASES = [i if MIXED[i]["num_layers"] == 2 else pytest.param(i, marks=pytest.mark.slow)
                    for i in range(len(MIXED))]


@pytest.mark.parametrize("index", _OWN_ORDER_CASES)
def test_member_equals_alone_with_own_data_order(own_order_population, index):
    _check_member_against_alone(own_order_population, index, False)


def test_host_drawn_init_matches_the_program_init(shared_population):
    # host_init draws the same hash-RNG numbers with numpy (float64 inverse CDF, so last-bit differences).
    tr, (first, _, _, _) = shared_population
    host = tr.host_init(_hparams(MIXED))["params0"]
    assert host.shape == first.shape
    np.testing.assert_array_equal(host == 0, first == 0)
    np.testing.assert_allclose(host, first, rtol=1e-5, atol=1e-7)


def test_own_orders_differ_from_the_shared_order(shared_population, own_order_population):
    # Guards the test above against a shared_order flag that does nothing.
    _, (_, shared, _, _) = shared_population
    _, (_, own, _, _) = own_order_population
    assert not np.allclose(shared.params[0], own.params[0], rtol=1e-3)


# ---------------------------------------------------------------------------------- independent reference
def _check_member_against_reference(population, index: int, shared_order: bool):
    tr, (first, state, scores, _) = population
    cfg = MIXED[index]
    ref = train_reference(cfg, small_digits(), init=true_params(first[index], tr.layout, cfg), seed=index,
                          micro_batch=MICRO_BATCH, epochs=EPOCHS, shared_order=shared_order)
    _assert_params_close(true_params(state.params[index], tr.layout, cfg), ref.params,
                         f"member {index} ({cfg['optimizer']}, {cfg['schedule']}) vs reference")
    np.testing.assert_allclose(scores[:, index], ref.scores, atol=1.01 / 45, err_msg=f"scores of member {index}")
    # The schedule acted: not every update used the same learning rate (except the constant one).
    assert (len(set(ref.lrs)) > 1) == (cfg["schedule"] != "constant")


@pytest.mark.parametrize("index", range(len(MIXED)))
def test_member_equals_plain_reference(shared_population, index):
    _check_member_against_reference(shared_population, index, True)


@pytest.mark.parametrize("index", range(len(MIXED)))
def test_member_equals_plain_reference_with_own_order(own_order_population, index):
    _check_member_against_reference(own_order_population, index, False)


# ---------------------------------------------------------------------------------- no recompilation
def test_new_hyperparameter_values_reuse_the_compiled_program(shared_population):
    tr, (_, state, _, _) = shared_population
    key = (MAX_LAYERS, MAX_UNITS, True, len(MIXED), EPOCHS)
    traces, cache = TRACES[key], run_population._cache_size()
    assert traces >= 1
    # New values for everything that is data: choices, depths, widths, batch sizes, rates, seeds ...
    rng = np.random.default_rng(1)
    other = []
    for i in range(len(MIXED)):
        depth = int(rng.integers(1, MAX_LAYERS + 1))
        other.append(dict(
            optimizer=OPTIMIZERS[(i + 3) % len(OPTIMIZERS)], schedule=SCHEDULES[(i + 2) % len(SCHEDULES)],
            activation=ACTIVATIONS[(i + 1) % len(ACTIVATIONS)], init=INITS[(i + 4) % len(INITS)],
            learning_rate=float(10 ** rng.uniform(-3, -1.5)), num_layers=depth,
            **{f"units_{l + 1}": int(rng.integers(1, MAX_UNITS + 1)) for l in range(depth)},
            batch_size=MICRO_BATCH * int(rng.choice([1, 2, 4])), dropout=float(rng.uniform(0, 0.5)),
            weight_decay=float(rng.uniform(0, 1e-2)), momentum=float(rng.uniform(0.5, 0.95))))
    # ... and new data values of the same shapes.
    tr2 = tr.replace(x_train=tr.x_train + 0.01, data_seed=jnp.uint32(7))
    _, state2, scores2, best2 = run_population(tr2, _hparams(other, seeds=range(100, 100 + len(other))))
    assert TRACES[key] == traces, "a new population of the same shapes traced the program again"
    assert run_population._cache_size() == cache, "a new population of the same shapes compiled again"
    assert scores2.shape == (EPOCHS, len(MIXED))
    assert not np.allclose(np.asarray(state2.params), state.params)
    assert np.all(np.isfinite(np.asarray(best2)) | np.asarray(state2.diverged))
