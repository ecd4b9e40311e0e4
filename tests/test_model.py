"""The padded population MLP: padding stays exactly zero, initialisers and dropout have the documented
statistics and do not depend on the padding, and a diverging member poisons nobody."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reference_mlp import EPOCHS, MICRO_BATCH, run_population, small_digits
import vtune
from vtune import rng
from vtune.hparams import ACTIVATIONS, complete_config
from vtune.model import (ACTIVATION_IDS, INIT_IDS, Layout, activate, dropout_scale, forward, forward_host,
                         from_views, init_member, init_weight, layers_of, narrow_views, to_views, unflatten, widen)
from vtune.train import MLPTrainable, encode_hparams

MAX_LAYERS, MAX_UNITS = 3, 32

# Mixed widths and depths; sigmoid (nonzero at 0), gelu and elu in the padded columns, the eps-carrying
# rules (adagrad's 0.1 start, adadelta, adamax) and weight decay on the padded weights, dropout. Layers
# past a member's depth keep the default width 64 (> MAX_UNITS): they must stay inert all the same.
POPULATION = [
    dict(optimizer="adam", learning_rate=5e-3, activation="sigmoid", num_layers=1, units=5, batch_size=8,
         weight_decay=1e-2, dropout=0.2),
    dict(optimizer="adagrad", learning_rate=0.05, activation="sigmoid", num_layers=2, units_1=7, units_2=30,
         batch_size=16, weight_decay=1e-3),
    dict(optimizer="adadelta", learning_rate=1.0, activation="gelu", num_layers=3, units_1=32, units_2=3,
         units_3=17, batch_size=8, weight_decay=1e-3, dropout=0.1),
    dict(optimizer="sgd", learning_rate=0.1, activation="relu", init="he_normal", num_layers=2, units_1=12,
         units_2=12, batch_size=8),
    dict(optimizer="adamax", learning_rate=5e-3, activation="elu", num_layers=3, units_1=1, units_2=31,
         units_3=2, batch_size=32, weight_decay=1e-3),
    dict(optimizer="rmsprop", learning_rate=3e-3, activation="tanh", num_layers=1, units=32, batch_size=16,
         dropout=0.5),
    dict(optimizer="nadam", learning_rate=3e-3, activation="sigmoid", num_layers=2, units_1=20, units_2=1,
         batch_size=8, schedule="cosine", cosine_epochs=2.0),
    dict(optimizer="adamw", learning_rate=5e-3, activation="leaky_relu", num_layers=3, units_1=9, units_2=9,
         units_3=9, batch_size=16, weight_decay=0.05),
    dict(optimizer="nesterov", learning_rate=0.05, activation="identity", num_layers=1, units=16, batch_size=32,
         weight_decay=1e-3),
    dict(optimizer="momentum", learning_rate=0.05, activation="sigmoid", num_layers=2, units_1=25, units_2=6,
         batch_size=8, dropout=0.3),
]
DIVERGING = 3  # member POPULATION[3] with this learning rate blows up
EXPLODE = dict(POPULATION[DIVERGING], learning_rate=1e3)


def _run(configs, seeds=None):
    tr = MLPTrainable.create(small_digits(), max_layers=MAX_LAYERS, max_units=MAX_UNITS, micro_batch=MICRO_BATCH)
    hp = encode_hparams(configs, task="classification", max_layers=MAX_LAYERS, micro_batch=MICRO_BATCH,
                        max_epochs=EPOCHS, seeds=seeds)
    return tr, jax.device_get(run_population(tr, hp))


@pytest.fixture(scope="module")
def sane():
    return _run(POPULATION)


@pytest.fixture(scope="module")
def with_divergent():
    return _run(POPULATION[:DIVERGING] + [EXPLODE] + POPULATION[DIVERGING + 1:])


# ---------------------------------------------------------------------------------- padding stays zero
def _assert_padding_zero(flat, layout: Layout, config: dict, what: str):
    cfg = complete_config(config)
    depth = cfg["num_layers"]
    widths = [cfg[f"units_{l + 1}"] for l in range(depth)]
    ins = [layout.num_features] + widths
    p = unflatten(jnp.asarray(flat), layout)
    for l, layer in enumerate(p["hidden"]):
        w, b = np.asarray(layer["w"]), np.asarray(layer["b"])
        if l >= depth:
            assert not w.any() and not b.any(), f"{what}: inactive layer {l} is not zero"
            continue
        assert not w[ins[l]:, :].any(), f"{what}: padded rows of hidden_{l}_w"
        assert not w[:, widths[l]:].any(), f"{what}: padded columns of hidden_{l}_w"
        assert not b[widths[l]:].any(), f"{what}: padded units of hidden_{l}_b"
        assert np.count_nonzero(w[:ins[l], :widths[l]]) > 0.9 * ins[l] * widths[l], f"{what}: hidden_{l}_w block"
    out = np.asarray(p["out"]["w"])
    assert not out[widths[-1]:, :].any(), f"{what}: padded rows of out_w"
    assert np.count_nonzero(out[:widths[-1]]) > 0.9 * out[:widths[-1]].size


def test_padding_is_exactly_zero_after_training(sane):
    tr, (first, state, scores, _) = sane
    moved = 0
    for i, cfg in enumerate(POPULATION):
        _assert_padding_zero(first[i], tr.layout, cfg, f"member {i} at init")
        _assert_padding_zero(state.params[i], tr.layout, cfg, f"member {i} after {EPOCHS} epochs")
        moved += not np.allclose(first[i], state.params[i])
    assert moved == len(POPULATION)  # every member trained
    assert not state.diverged.any()
    assert np.median(scores[-1]) > 0.3, scores  # and learned something (10 classes: chance is 0.1)


def test_training_views_round_trip_the_flat_vector_exactly():
    layout = Layout(5, 3, 4, 2)
    flat = jnp.arange(2 * layout.num_params, dtype=jnp.float32).reshape(2, layout.num_params)  # [P, n]
    views = to_views(flat, layout)
    assert [w.shape for w in views["w"]] == [(2, 5, 4), (2, 4, 4), (2, 4, 4), (2, 4, 2)]
    assert views["b"].shape == (2, 3 * 4 + 2)
    np.testing.assert_array_equal(from_views(views, layout), flat)
    one = jax.tree.map(lambda x: x[1], views)
    ref = unflatten(flat[1], layout)
    got = layers_of(one, layout)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(ref)):
        np.testing.assert_array_equal(a, b)


def test_tier_views_are_the_corners_and_widen_restores_a_buffer_zero_outside_them():
    full, small = Layout(5, 3, 8, 2), Layout(5, 3, 4, 2)
    ref = unflatten(jnp.arange(full.num_params, dtype=jnp.float32), full)
    views = narrow_views(jnp.arange(full.num_params, dtype=jnp.float32)[None], full, small)  # leading [1]
    want = [ref["hidden"][0]["w"][:, :4], ref["hidden"][1]["w"][:4, :4], ref["hidden"][2]["w"][:4, :4],
            ref["out"]["w"][:4]]
    for got, w in zip(views["w"], want):
        np.testing.assert_array_equal(got[0], w)
    np.testing.assert_array_equal(views["b"][0], np.concatenate(
        [ref["hidden"][l]["b"][:4] for l in range(3)] + [ref["out"]["b"]]))
    # A buffer that is zero outside the corners (a member of the narrow tier) comes back exactly.
    corner = jax.tree.map(lambda x: x.at[:].set(1.0), views)
    back = widen(corner, full, small)[0]
    assert float(back.sum()) == sum(x.size for x in jax.tree.leaves(corner))
    np.testing.assert_array_equal(widen(narrow_views(back[None], full, small), full, small)[0], back)
    assert narrow_views(back[None], full, full)["w"][1].shape == (1, 8, 8)  # full = small: to_views


# ---------------------------------------------------------------------------------- divergence
def test_diverging_member_is_flagged_and_poisons_nobody(sane, with_divergent):
    tr, (_, state, scores, best) = with_divergent
    _, (_, ok_state, ok_scores, ok_best) = sane
    assert state.diverged[DIVERGING] and best[DIVERGING] == -np.inf
    assert np.isnan(scores[-1, DIVERGING])
    assert state.diverged.sum() == 1
    others = np.arange(len(POPULATION)) != DIVERGING
    # Bit-identical to the same program run with a sane member in that slot.
    np.testing.assert_array_equal(state.params[others], ok_state.params[others])
    np.testing.assert_array_equal(scores[:, others], ok_scores[:, others])
    np.testing.assert_array_equal(best[others], ok_best[others])
    assert np.all(np.isfinite(best[others]))


def test_population_without_the_diverging_member_is_bit_identical(with_divergent):
    # The same members (same seeds) trained as a population of nine: not one bit changes.
    _, (_, state, scores, best) = with_divergent
    keep = [i for i in range(len(POPULATION)) if i != DIVERGING]
    _, (_, alone, alone_scores, alone_best) = _run([POPULATION[i] for i in keep], seeds=keep)
    np.testing.assert_array_equal(state.params[keep], alone.params)
    np.testing.assert_array_equal(scores[:, keep], alone_scores)
    np.testing.assert_array_equal(best[keep], alone_best)


# ---------------------------------------------------------------------------------- initialisers
FAN_IN, FAN_OUT = 256, 512
SCALE = 0.05  # init_scale of "uniform"
EXPECTED_STD = {  # written from the textbook formulas (Glorot & Bengio 2010, He et al. 2015, LeCun 1998)
    "uniform": SCALE / math.sqrt(3.0),
    "glorot_uniform": math.sqrt(2.0 / (FAN_IN + FAN_OUT)),
    "glorot_normal": math.sqrt(2.0 / (FAN_IN + FAN_OUT)),
    "he_normal": math.sqrt(2.0 / FAN_IN),
    "he_uniform": math.sqrt(2.0 / FAN_IN),
    "lecun_normal": math.sqrt(1.0 / FAN_IN),
    "lecun_uniform": math.sqrt(1.0 / FAN_IN),
}


@jax.jit
def _draw(init_id):
    return init_weight(rng.combine(jnp.uint32(123), 4), init_id, jnp.float32(SCALE), FAN_IN, FAN_OUT, FAN_IN, FAN_OUT)


@jax.jit
def _draw_padded(init_id):
    # The same layer inside a padded buffer (more rows and columns than its true fans).
    return init_weight(rng.combine(jnp.uint32(123), 4), init_id, jnp.float32(SCALE), FAN_IN + 40, FAN_OUT + 24,
                       FAN_IN, FAN_OUT)


@pytest.mark.parametrize("name", list(EXPECTED_STD))
def test_init_statistics(name):
    w = np.asarray(_draw(jnp.int32(INIT_IDS[name])), np.float64)
    std = EXPECTED_STD[name]
    assert abs(w.std() / std - 1.0) < 0.05, (name, w.std(), std)
    assert abs(w.mean()) < 0.02 * std
    if name.endswith("uniform"):
        limit = std * math.sqrt(3.0)
        assert np.abs(w).max() <= limit * (1 + 1e-6) and np.abs(w).max() > 0.999 * limit
        assert abs(np.mean(np.abs(w) < limit / 2) - 0.5) < 0.01  # flat, not bell-shaped
    else:
        # A unit normal truncated to ±2 and rescaled to unit variance reaches at most 2 / 0.8796 std.
        assert np.abs(w).max() <= 2.0 / 0.87962566 * std * (1 + 1e-5)
        assert np.abs(w).max() > 2.2 * std
        assert abs(np.mean(np.abs(w) < std) - 0.6506) < 0.01  # P(|z| < 0.8796 | |z| < 2) for a unit normal z
    padded = np.asarray(_draw_padded(jnp.int32(INIT_IDS[name])), np.float64)
    np.testing.assert_array_equal(padded[:FAN_IN, :FAN_OUT], w)  # padding-independent draws
    assert not padded[FAN_IN:].any() and not padded[:, FAN_OUT:].any()


# ---------------------------------------------------------------------------------- dropout
@jax.jit
def _masks(key, rate):
    return dropout_scale(key, rate, 256, 96), dropout_scale(key, rate, 40, 17), dropout_scale(key + 1, rate, 256, 96)


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 0.8])
def test_dropout_mask_rate_and_prefix(rate):
    big, small, other = map(np.asarray, _masks(rng.combine(jnp.uint32(5), 9), jnp.float32(rate)))
    keep = 1.0 - rate
    assert set(np.unique(big)) <= {0.0, np.float32(1.0) / (np.float32(1.0) - np.float32(rate))}
    assert abs(np.mean(big > 0) - keep) < 0.01, np.mean(big > 0)
    assert abs(big.mean() - 1.0) < 0.03  # inverted dropout keeps the expected activation
    # The mask of a narrow layer (and of a smaller batch) is the prefix of the padded one.
    np.testing.assert_array_equal(small, big[:40, :17])
    if 0 < rate:
        # Another key draws an independent mask: agreement ≈ keep² + (1−keep)².
        agree = np.mean((big > 0) == (other > 0))
        assert abs(agree - (keep**2 + rate**2)) < 0.02, agree
    else:
        assert np.all(big == 1.0)


def _cond_count(fn, *args) -> int:
    """How many ``cond`` a traced ``fn(*args)`` contains (nested ones included)."""
    return str(jax.make_jaxpr(fn)(*args)).count("cond[")


def test_dropout_mask_is_the_hash_alone_and_in_a_population():
    # A member alone (scalar rate) gets its mask from a conditional that skips the hash at rate 0; a
    # population selects. Both are exactly "keep where the hash's uniform is below 1 - rate".
    key = rng.combine(jnp.uint32(5), 9)
    rates = jnp.array([0.0, 0.1, 0.5, 0.8], jnp.float32)

    def by_definition(rate):
        keep = 1.0 - rate
        return jnp.where(rng.uniform(key, 64, 48) < keep, 1.0 / keep, 0.0)

    def mask(rate):
        return dropout_scale(key, rate, 64, 48)

    want = np.stack([np.asarray(jax.jit(by_definition)(r)) for r in rates])
    np.testing.assert_array_equal(np.stack([np.asarray(jax.jit(mask)(r)) for r in rates]), want)
    np.testing.assert_array_equal(np.asarray(jax.jit(jax.vmap(mask))(rates)), want)
    assert _cond_count(mask, rates[1]) == 1 and _cond_count(jax.vmap(mask), rates) == 0


# ---------------------------------------------------------------------------------- data order
@pytest.mark.parametrize("seed, fold, n", [(0, 0, 1), (0, 0, 2), (5, 3, 97), (0, 26, 1257), (2**32 - 1, 7, 3),
                                           (123, 4, 14000), (9, 2**31 - 1, 70000)])  # the last two: 2 sorts
def test_the_host_permutation_is_jaxs(seed, fold, n):
    want = jax.random.permutation(jax.random.fold_in(jax.random.key(np.uint32(seed)), np.int32(fold)), n)
    got = rng.jax_permutation(seed, fold, n)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, np.asarray(want))


def test_host_orders_are_the_orders_a_program_draws_and_skip_the_draw():
    tr = MLPTrainable.create(small_digits(), max_layers=1, max_units=8, micro_batch=MICRO_BATCH, data_seed=11)
    held = tr.with_orders(4)
    assert isinstance(held.orders, np.ndarray) and held.orders.shape == (4, tr.x_train.shape[0])
    drawn = jax.jit(lambda t: t.prepare(4).orders)(tr)  # drawn inside a program
    np.testing.assert_array_equal(np.asarray(drawn), held.orders)
    for e in range(4):
        np.testing.assert_array_equal(np.asarray(jax.jit(tr.shared_order_of)(e)), held.orders[e])
    assert held.prepare(3) is held and held.prepare(4) is held  # a program with host orders draws none
    np.testing.assert_array_equal(np.asarray(held.prepare(6).orders)[:4], held.orders)  # too few: all drawn
    assert tr.replace(shared_order=False).with_orders(4).orders is None
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="epochs"):
            tr.with_orders(bad)


# ---------------------------------------------------------------------------------- activations
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_alone_and_in_a_population_has_the_value_and_gradient_of_its_function(name):
    # Alone (scalar id) the activation is a conditional, differentiated through; in a population a select.
    # Both give exactly the values and gradient of the activation called directly (the only one allowed).
    z = jnp.linspace(-2.7, 3.1, 8 * 12, dtype=jnp.float32).reshape(8, 12)

    def value_and_grad(z, act_id, activations=ACTIVATIONS):
        y, pullback = jax.vjp(lambda z: activate(z, act_id, activations), z)
        return y, pullback(jnp.cos(y))[0]  # the gradient of sum(sin(y)): more than f'(z)

    act_id = jnp.int32(ACTIVATION_IDS[name])
    ids = jnp.array([ACTIVATION_IDS[n] for n in ACTIVATIONS], jnp.int32)
    want = jax.jit(value_and_grad, static_argnums=2)(z, act_id, (name,))
    alone = jax.jit(value_and_grad)(z, act_id)
    population = jax.jit(jax.vmap(value_and_grad, in_axes=(None, 0)))(z, ids)
    i = ACTIVATIONS.index(name)
    for got in (alone, jax.tree.map(lambda x: x[i], population)):
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    # A forward and a backward conditional alone; none in a population, nor with one activation allowed.
    assert _cond_count(value_and_grad, z, act_id) == 2
    assert _cond_count(jax.vmap(value_and_grad, in_axes=(None, 0)), z, ids) == 0
    assert _cond_count(lambda z: value_and_grad(z, act_id, (name,)), z) == 0


# ------------------------------------------------------------------------------------ the host forward pass

@pytest.mark.parametrize("name", ACTIVATIONS)
def test_host_forward_is_the_padded_programs_function(name):
    # One member in numpy, its true layers only, against the padded JAX forward with every activation
    # compiled in: the same outputs up to float rounding, at every depth, for widths below and at the pad.
    layout = Layout(13, 3, 40, 5)
    gen = np.random.default_rng(ACTIVATION_IDS[name])
    x = gen.normal(size=(64, 13)).astype(np.float32)
    for depth, units in ((1, [40, 7, 9]), (2, [5, 40, 3]), (3, [17, 1, 33])):
        hp = {"num_layers": np.int32(depth), "units": np.int32(units), "init": np.int32(INIT_IDS["he_normal"]),
              "init_scale": np.float32(0.05), "activation": np.int32(ACTIVATION_IDS[name])}
        flat = np.asarray(init_member(np.uint32(depth), hp, layout))
        flat = flat + (flat != 0) * gen.normal(0.0, 0.5, flat.shape).astype(np.float32)  # biases too
        got = forward_host(flat, hp, x, layout)
        want = np.asarray(jax.jit(lambda f, h: forward(f, h, x, layout))(flat, hp))
        assert got.dtype == np.float32 and got.shape == (64, 5)
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5 * float(np.abs(want).max()))
        # Padded units beyond a layer's width are never read: garbage there changes nothing.
        dirty = flat.copy()
        start, shape = layout.offsets()["hidden_0_w"]
        block = dirty[start:start + int(np.prod(shape))].reshape(shape)
        block[:, units[0]:] = 1e6
        np.testing.assert_array_equal(forward_host(dirty, hp, x, layout), got)


def test_model_probabilities_are_softmax_and_sigmoid_of_its_outputs():
    layout = Layout(4, 1, 6, 3)
    hp = {"num_layers": np.int32(1), "units": np.int32([6]), "init": np.int32(INIT_IDS["glorot_uniform"]),
          "init_scale": np.float32(0.05), "activation": np.int32(ACTIVATION_IDS["tanh"])}
    flat = np.asarray(init_member(np.uint32(3), hp, layout)) * 40.0  # large logits: a stable softmax
    x = np.random.default_rng(0).normal(size=(9, 4)).astype(np.float32)
    spec = {"task": "classification", "num_features": 4, "num_outputs": 3, "layout": list(layout),
            "activations": ["tanh"], "shift": [0.0] * 4, "scale": [1.0] * 4, "classes": None}
    model = vtune.result.Model(flat, hp, spec)
    out = model.decision_function(x)
    np.testing.assert_allclose(model.predict_proba(x), np.asarray(jax.nn.softmax(out, -1)), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(model.predict(x), np.argmax(out, -1))
    one = Layout(4, 1, 6, 1)
    binary = vtune.result.Model(np.asarray(init_member(np.uint32(4), hp, one)) * 40.0, hp,
                                {**spec, "task": "binary", "num_outputs": 1, "layout": list(one)})
    out = binary.decision_function(x)
    p = np.asarray(jax.nn.sigmoid(out[:, 0]))
    np.testing.assert_allclose(binary.predict_proba(x), np.stack([1 - p, p], -1), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(binary.predict(x), (out[:, 0] > 0).astype(np.int64))


# ------------------------------------------------------------------------------------ restore point and ties

def _one_member():
    tr = MLPTrainable.create(small_digits(), max_layers=1, max_units=8, micro_batch=MICRO_BATCH)
    hp = encode_hparams([dict(units=8, num_layers=1, batch_size=MICRO_BATCH)], task="classification",
                        max_layers=1, micro_batch=MICRO_BATCH)
    return tr, tr.init(hp)


def test_restore_point_takes_an_equal_score_only_with_a_lower_validation_loss():
    tr, state = _one_member()
    f32 = lambda v: jnp.array([v], jnp.float32)
    steps = [  # (score, loss, improves)
        (0.50, 1.00, True),
        (0.50, 0.80, True),   # same accuracy, lower loss: the new restore point
        (0.50, 0.90, False),  # same accuracy, higher loss
        (0.40, 0.10, False),  # lower accuracy, whatever the loss
        (0.60, 2.00, True),   # higher accuracy, whatever the loss
    ]
    for k, (score, loss, improves) in enumerate(steps):
        state = state._replace(params=jnp.full_like(state.params, float(k)))
        before = state
        state, _ = tr._after_epoch(state, f32(score), f32(loss))
        if improves:
            np.testing.assert_array_equal(state.best_params, state.params)
            assert float(state.best_score[0]) == np.float32(score) and float(state.best_loss[0]) == np.float32(loss)
            assert int(state.bad_epochs[0]) == 0
        else:
            np.testing.assert_array_equal(state.best_params, before.best_params)
            assert int(state.bad_epochs[0]) == int(before.bad_epochs[0]) + 1
        assert float(tr.tiebreak(state)[0]) == -float(state.best_loss[0])
    # A diverged member has no tie-break either.
    dead, _ = tr._after_epoch(state, f32(math.nan), f32(0.0))
    assert float(tr.tiebreak(dead)[0]) == -math.inf and float(tr.score(dead)[0]) == -math.inf


@pytest.mark.parametrize("task_name", ["classification", "regression"])
def test_validation_loss_is_the_task_loss_in_and_out_of_row_blocks(task_name):
    import optax
    import vtune

    rs = np.random.default_rng(0)
    x = rs.normal(size=(90, 5)).astype(np.float32)
    y = rs.integers(0, 3, size=90) if task_name == "classification" else rs.normal(size=(90, 2)).astype(np.float32)
    ds = vtune.data.from_arrays(x, y, task=task_name, seed=0)
    tr = MLPTrainable.create(ds, max_layers=1, max_units=6, micro_batch=4)
    hp = encode_hparams([dict(units=6, num_layers=1, batch_size=4)], task=task_name, max_layers=1, micro_batch=4)
    state = tr.init(hp)
    scores, losses = tr.validate_with_loss(state.params, state.hp)
    blocked = tr.replace(eval_block=4).validate_with_loss(state.params, state.hp)
    out = np.asarray(tr.predict_member(state.params[0], jax.tree.map(lambda v: v[0], state.hp), tr.x_val))
    yv = np.asarray(tr.y_val)
    if task_name == "classification":
        expect = float(np.mean(optax.softmax_cross_entropy_with_integer_labels(out, yv)))
    else:
        expect = float(np.mean((out - yv) ** 2))
    np.testing.assert_allclose(float(losses[0]), expect, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(blocked[1]), np.asarray(losses), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(blocked[0]), np.asarray(scores), rtol=1e-5)
