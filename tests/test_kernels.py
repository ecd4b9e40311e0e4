"""Tests for the population dense layer: the Pallas kernel (interpret mode on CPU) against its reference."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

try:
    from vtune.kernels import population_dense as mod
except ImportError:
    from kernels import population_dense as mod

INTERPRET = True  # CPU has no Triton; on a GPU machine the same tests can run compiled with False.

# (name, shared x, P, B, K, N, in_units, out_units, blocks (b, n, k))
CASES = [
    ("shared_divisible", True, 5, 32, 32, 32, [32, 17, 1, 16, 32], [32, 1, 32, 5, 16], (16, 16, 16)),
    ("shared_ragged", True, 5, 13, 37, 45, [30, 20, 1, 29, 16], [45, 44, 1, 17, 32], (16, 16, 16)),
    ("member_divisible", False, 5, 32, 32, 48, [32, 31, 1, 16, 2], [48, 16, 1, 47, 0], (16, 16, 16)),
    ("member_ragged", False, 5, 7, 50, 21, [50, 33, 1, 49, 17], [21, 1, 20, 16, 21], (16, 16, 16)),
    ("single_member_partial", False, 1, 20, 40, 24, [23], [9], (16, 16, 16)),
    ("default_blocks", True, 5, 70, 70, 70, [70, 64, 1, 65, 0], [70, 1, 64, 65, 31], (64, 64, 32)),
]
IDS = [case[0] for case in CASES]

# Jitted once: op-by-op dispatch of the reference costs more than the maths at these sizes.
reference = jax.jit(mod.population_dense_reference)


def _make(shared, p, batch, k, n, in_units, out_units, seed=0, padding_value=None):
    """Random inputs; with ``padding_value`` every dead entry of x, w and b holds that value."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, k) if shared else (p, batch, k)).astype(np.float32)
    w = rng.normal(size=(p, k, n)).astype(np.float32)
    b = rng.normal(size=(p, n)).astype(np.float32)
    if padding_value is not None:
        for m in range(p):
            w[m, in_units[m]:, :] = padding_value
            w[m, :, out_units[m]:] = padding_value
            b[m, out_units[m]:] = padding_value
            if not shared:
                x[m, :, in_units[m]:] = padding_value
        if shared:
            x[:, max(in_units):] = padding_value  # dead for every member
    return x, w, b, np.asarray(in_units, np.int32), np.asarray(out_units, np.int32)


def _naive(x, w, b, in_units, out_units):
    """Per-member numpy loop on the true slices; padded outputs zero."""
    p, _, n = w.shape
    batch = x.shape[-2]
    y = np.zeros((p, batch, n), np.float64)
    for m in range(p):
        i, o = int(in_units[m]), int(out_units[m])
        xm = x if x.ndim == 2 else x[m]
        y[m, :, :o] = xm[:, :i].astype(np.float64) @ w[m, :i, :o].astype(np.float64) + b[m, :o]
    return y


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_reference_equals_naive_loop(case):
    _, shared, p, batch, k, n, in_units, out_units, _ = case
    x, w, b, iu, ou = _make(shared, p, batch, k, n, in_units, out_units)
    y = np.asarray(reference(x, w, b, iu, ou))
    assert y.shape == (p, batch, n)
    np.testing.assert_allclose(y, _naive(x, w, b, iu, ou), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_kernel_equals_reference(case):
    _, shared, p, batch, k, n, in_units, out_units, (bb, bn, bk) = case
    # Dead entries hold NaN: the kernel must never let them reach a live output (whole K tiles past
    # in_units are skipped, the last partial tile and the output columns are masked).
    x_nan, w_nan, b_nan, iu, ou = _make(shared, p, batch, k, n, in_units, out_units, padding_value=np.nan)
    x, w, b, _, _ = _make(shared, p, batch, k, n, in_units, out_units)
    blocks = dict(block_b=bb, block_n=bn, block_k=bk)
    y = np.asarray(mod.population_dense(x_nan, w_nan, b_nan, iu, ou, **blocks, interpret=INTERPRET))
    expected = np.asarray(reference(x, w, b, iu, ou))
    assert y.shape == (p, batch, n)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    for m in range(p):
        padded = y[m, :, ou[m]:]
        assert np.all(padded == 0.0) and not np.signbit(padded).any(), f"member {m} padded outputs not +0.0"


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "member"])
def test_reference_padded_outputs_exactly_zero_and_grad_masked(shared):
    p, batch, k, n = 4, 6, 12, 10
    in_units, out_units = [12, 5, 1, 7], [10, 3, 1, 9]
    x, w, b, iu, ou = _make(shared, p, batch, k, n, in_units, out_units, seed=1, padding_value=1e3)
    y = np.asarray(reference(x, w, b, iu, ou))
    for m in range(p):
        assert np.all(y[m, :, ou[m]:] == 0.0)

    def loss(w_, b_):
        return jnp.sum(jnp.tanh(mod.population_dense_reference(x, w_, b_, iu, ou)) ** 2)

    gw, gb = (np.asarray(g) for g in jax.jit(jax.grad(loss, argnums=(0, 1)))(w, b))
    for m in range(p):
        assert np.all(gw[m, in_units[m]:, :] == 0.0), f"member {m}: gradient in padded rows"
        assert np.all(gw[m, :, out_units[m]:] == 0.0), f"member {m}: gradient in padded columns"
        assert np.all(gb[m, out_units[m]:] == 0.0)
        assert np.any(gw[m, : in_units[m], : out_units[m]] != 0.0), f"member {m}: live gradient vanished"


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "member"])
def test_kernel_gradients_equal_reference(shared):
    p, batch, k, n = 3, 10, 40, 20
    in_units, out_units = [40, 17, 1], [20, 3, 1]
    x, w, b, iu, ou = _make(shared, p, batch, k, n, in_units, out_units, seed=2)

    def loss(fn):
        return lambda x_, w_, b_: jnp.sum(jnp.sin(fn(x_, w_, b_, iu, ou)) ** 2)

    def kernel(*args):
        return mod.population_dense(*args, block_b=16, block_n=16, block_k=16, interpret=INTERPRET)

    got = jax.jit(jax.grad(loss(kernel), argnums=(0, 1, 2)))(x, w, b)
    want = jax.jit(jax.grad(loss(mod.population_dense_reference), argnums=(0, 1, 2)))(x, w, b)
    for name, g, r in zip(("dx", "dw", "db"), got, want):
        assert g.shape == r.shape, name
        np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=1e-4, atol=1e-4, err_msg=name)
    gw = np.asarray(got[1])
    for m in range(p):
        assert np.all(gw[m, in_units[m]:, :] == 0.0) and np.all(gw[m, :, out_units[m]:] == 0.0)


def test_kernel_bfloat16_close_to_reference():
    x, w, b, iu, ou = _make(False, 2, 16, 32, 32, [32, 9], [20, 32], seed=3)
    x, w, b = (jnp.asarray(a, jnp.bfloat16) for a in (x, w, b))
    y = mod.population_dense(x, w, b, iu, ou, block_b=16, block_n=16, block_k=16, interpret=INTERPRET)
    assert y.dtype == jnp.bfloat16
    expected = reference(*(a.astype(jnp.float32) for a in (x, w, b)), iu, ou)
    np.testing.assert_allclose(np.asarray(y, np.float32), np.asarray(expected), rtol=2e-2, atol=5e-2)


def test_new_unit_values_do_not_recompile_and_are_clipped():
    x, w, b, iu, ou = _make(True, 2, 8, 20, 18, [20, 3], [18, 5], seed=4)
    jitted = mod._population_dense_jit
    kwargs = dict(block_b=16, block_n=16, block_k=16, interpret=INTERPRET)
    mod.population_dense(x, w, b, iu, ou, **kwargs)
    before = jitted._cache_size()
    # Units past the padded width are clipped to it: 99 reads all 20 inputs, 1000 writes all 18 outputs.
    y = mod.population_dense(x, w, b, np.array([99, 7], np.int32), np.array([1000, 1], np.int32), **kwargs)
    assert jitted._cache_size() == before
    want = reference(x, w, b, np.array([20, 7], np.int32), np.array([18, 1], np.int32))
    np.testing.assert_allclose(np.asarray(y), np.asarray(want), rtol=1e-5, atol=1e-5)
    clipped = reference(x, w, b, np.array([99, 7], np.int32), np.array([1000, 1], np.int32))
    np.testing.assert_array_equal(np.asarray(clipped), np.asarray(want))


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "member"])
def test_kernel_and_its_gradient_lower_to_triton(shared):
    """Cross-lowers for CUDA on this CPU machine: Pallas's Triton rules accept the kernel (power-of-two
    loads, dynamic-bound K loop, cond) in the forward pass and in both backward kernels."""
    p, batch, k, n = 3, 13, 37, 45
    x = jax.ShapeDtypeStruct((batch, k) if shared else (p, batch, k), jnp.bfloat16)
    w = jax.ShapeDtypeStruct((p, k, n), jnp.bfloat16)
    b = jax.ShapeDtypeStruct((p, n), jnp.bfloat16)
    units = jax.ShapeDtypeStruct((p,), jnp.int32)

    def loss(x_, w_, b_, i, o):
        y = mod.population_dense(x_, w_, b_, i, o, block_b=16, block_n=32, block_k=16)
        return jnp.sum(y.astype(jnp.float32) ** 2)  # needs y, dx and dw: three kernels

    lowered = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2))).trace(x, w, b, units, units)
    text = lowered.lower(lowering_platforms=("cuda",)).as_text()
    assert text.count("__gpu$xla.gpu.triton") == 3


def test_dense_dispatches_to_reference_on_cpu():
    assert mod.has_gpu() == (jax.default_backend() == "gpu")
    x, w, b, iu, ou = _make(True, 3, 4, 8, 6, [8, 2, 1], [6, 6, 2], seed=6)
    y = mod.dense(x, w, b, iu, ou)
    np.testing.assert_allclose(np.asarray(y), _naive(x, w, b, iu, ou), rtol=1e-5, atol=1e-5)
    if not mod.has_gpu():
        want = mod.population_dense_reference(x, w, b, iu, ou)
        np.testing.assert_array_equal(np.asarray(y), np.asarray(want))


def test_useful_flops():
    assert mod.useful_flops(64, [16, 256], [32, 10]) == 2 * 64 * (16 * 32 + 256 * 10)
    assert mod.useful_flops(3, np.array([5]), np.array([7])) == 2 * 3 * 35
    assert mod.useful_flops(0, [5], [7]) == 0
    with pytest.raises(ValueError, match="batch"):
        mod.useful_flops(-1, [1], [1])
    with pytest.raises(ValueError, match="in_units"):
        mod.useful_flops(4, [1, 2], [1])


@pytest.mark.parametrize(
    "change, error, match",
    [
        (dict(w=np.zeros((2, 4))), ValueError, "w.shape"),
        (dict(x=np.zeros((3, 5))), ValueError, "x.shape"),
        (dict(x=np.zeros((3, 6, 4))), ValueError, "x.shape"),
        (dict(b=np.zeros((2, 3))), ValueError, "b.shape"),
        (dict(in_units=np.array([1, 2, 3], np.int32)), ValueError, "in_units.shape"),
        (dict(out_units=np.array([1.0, 2.0])), TypeError, "out_units.dtype"),
        (dict(x=np.zeros((6, 4), np.int32)), TypeError, "x.dtype"),
        (dict(x=[[1.0]]), TypeError, "x must be an array"),
        (dict(block_k=24), ValueError, "block_k=24"),
        (dict(block_b=8), ValueError, "block_b=8"),
        (dict(block_n=32.0), TypeError, "block_n=32.0"),
    ],
)
def test_invalid_inputs_raise(change, error, match):
    args = dict(
        x=np.zeros((6, 4), np.float32),
        w=np.zeros((2, 4, 5), np.float32),
        b=np.zeros((2, 5), np.float32),
        in_units=np.array([4, 1], np.int32),
        out_units=np.array([5, 2], np.int32),
    )
    args.update(change)
    blocks = {key: args.pop(key) for key in ("block_b", "block_n", "block_k") if key in args}
    with pytest.raises(error, match=match):
        mod.population_dense(**args, **blocks, interpret=True)
    if not blocks:
        with pytest.raises(error, match=match):
            mod.population_dense_reference(**args)
