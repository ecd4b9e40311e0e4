"""Packed hyperparameters: the dict a trainable reads, kept as two arrays (fewer kernels to compile)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vtune.packed import PackedHParams
from vtune.train import MLPTrainable, encode_hparams
import vtune


def _hparams():
    return {"learning_rate": np.float32([1e-3, 0.5]), "units": np.int32([[4, 8, 16], [1, 2, 3]]),
            "seed": np.uint32([0xFFFFFFFF, 7]), "optimizer": np.int32([2, 5])}


def test_every_value_reads_back_exactly_batched_and_per_member():
    values = _hparams()
    packed = PackedHParams.pack(values, batch_dims=1)
    assert sorted(packed) == sorted(values) and len(packed) == len(values)
    assert len(jax.tree.leaves(packed)) == 2  # floats and ints, whatever the number of names
    for name, want in values.items():
        got = packed[name]
        assert got.dtype == want.dtype, name
        np.testing.assert_array_equal(np.asarray(got), want)  # uint32 bit-cast both ways, no rounding
    one = jax.vmap(lambda hp: {k: hp[k] for k in hp})(packed)  # per member under vmap
    for name, want in values.items():
        np.testing.assert_array_equal(np.asarray(one[name]), want)
    host = jax.device_get(packed)  # numpy leaves read back the same (results, checkpoints)
    np.testing.assert_array_equal(host["seed"], values["seed"])
    with pytest.raises(KeyError):
        packed["missing"]


def test_other_dtypes_are_stored_like_jit_would_and_complex_is_refused_by_name():
    packed = PackedHParams.pack({"x": np.float64([0.5]), "n": np.int64([3]), "b": np.array([True])},
                                batch_dims=1)
    assert (packed["x"].dtype, packed["n"].dtype, packed["b"].dtype) == (jnp.float32, jnp.int32, jnp.int32)
    with pytest.raises(TypeError, match="'z'"):
        PackedHParams.pack({"z": np.complex64([1j])}, batch_dims=1)


def test_a_packed_state_goes_through_jit_and_export_round_trip():
    ds = vtune.load_dataset("xor")
    tr = MLPTrainable.create(ds, max_layers=1, max_units=4, micro_batch=4)
    hp = encode_hparams([{"units": 4, "num_layers": 1, "batch_size": 4}], task=ds.task, max_layers=1,
                        micro_batch=4)
    state = jax.jit(tr.init)(hp)
    assert isinstance(state.hp, PackedHParams)
    np.testing.assert_array_equal(np.asarray(state.hp["units"]), hp["units"])
    exported = jax.export.export(jax.jit(tr.init))(hp)
    again = jax.export.deserialize(exported.serialize()).call(hp)
    assert isinstance(again.hp, PackedHParams) and again.hp.layout == state.hp.layout
    for a, b in zip(jax.tree.leaves(again), jax.tree.leaves(state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
