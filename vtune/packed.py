"""Per-member hyperparameters packed into two arrays, read like the dict they came from.

A member's hyperparameters are some thirty scalars (learning rate, momentum, optimizer id, units per
layer, seed, ...). Kept as a dict of arrays, every operation the bracket program applies to a whole
member state — gather the chunk, permute the survivors, keep the best member aside — is repeated once
per hyperparameter, and on XLA's CPU backend each repetition is one more kernel to compile. Packed, the
same operations touch two arrays: ``floats [..., F]`` (float32) and ``ints [..., I]`` (int32; uint32 values
such as the seed are stored bit-cast). ``hp["learning_rate"]`` slices its column back out, so code that
reads hyperparameters does not change, batched (leading ``[P]`` axes) or not.
"""

from __future__ import annotations

import json
from typing import Any, Iterator, Mapping

import jax
import jax.numpy as jnp
import numpy as np

_DTYPES = {"f": jnp.float32, "i": jnp.int32, "u": jnp.uint32}


def _kind(name: str, dtype) -> str:
    """``"f"`` (stored as float32), ``"i"`` (int32; booleans too) or ``"u"`` (uint32, stored bit-cast)."""
    kind = np.dtype(dtype).kind
    if kind in ("f", "u"):
        return kind
    if kind in ("i", "b"):
        return "i"
    raise TypeError(f"hyperparameter {name!r} must hold real numbers or integers, got dtype {np.dtype(dtype)}")


@jax.tree_util.register_pytree_node_class
class PackedHParams(Mapping):
    """Hyperparameters in two arrays (see module docstring). Build with :meth:`pack`.

    ``layout`` (static) is a tuple of ``(name, kind, start, shape)``: the value of ``name`` is the columns
    ``start : start + prod(shape)`` of ``floats`` (kind ``"f"``) or ``ints`` (``"i"``, or ``"u"`` bit-cast to
    uint32), reshaped to ``shape`` after the leading axes.

    >>> import numpy as np
    >>> hp = PackedHParams.pack({"lr": np.float32([0.5, 0.25]), "units": np.int32([[4, 8], [16, 32]])},
    ...                         batch_dims=1)
    >>> hp["units"].tolist(), float(hp["lr"][1])
    ([[4, 8], [16, 32]], 0.25)
    """

    __slots__ = ("floats", "ints", "layout")

    def __init__(self, floats, ints, layout: tuple):
        self.floats, self.ints, self.layout = floats, ints, layout

    @classmethod
    def pack(cls, values: Mapping[str, Any], *, batch_dims: int) -> "PackedHParams":
        """Pack ``values`` (arrays with ``batch_dims`` leading axes in common) with jax.numpy."""
        columns = {"f": [], "i": []}
        layout, sizes = [], {"f": 0, "i": 0}
        for name in sorted(values):
            value = values[name]
            kind = _kind(name, getattr(value, "dtype", None) or np.asarray(value).dtype)
            x = jnp.asarray(value).astype(_DTYPES[kind])
            store = "f" if kind == "f" else "i"
            shape = tuple(int(s) for s in x.shape[batch_dims:])
            size = int(np.prod(shape, dtype=np.int64))
            flat = x.reshape(x.shape[:batch_dims] + (size,))
            if kind == "u":
                flat = jax.lax.bitcast_convert_type(flat, jnp.int32)
            columns[store].append(flat)
            layout.append((name, kind, sizes[store], shape))
            sizes[store] += size
        lead = jnp.asarray(next(iter(values.values()))).shape[:batch_dims] if values else ()
        floats = (jnp.concatenate(columns["f"], axis=-1) if columns["f"]
                  else jnp.zeros(lead + (0,), jnp.float32))
        ints = jnp.concatenate(columns["i"], axis=-1) if columns["i"] else jnp.zeros(lead + (0,), jnp.int32)
        return cls(floats, ints, tuple(layout))

    def _entry(self, name):
        for entry in self.layout:
            if entry[0] == name:
                return entry
        raise KeyError(name)

    def __getitem__(self, name: str):
        _, kind, start, shape = self._entry(name)
        store = self.floats if kind == "f" else self.ints
        size = int(np.prod(shape, dtype=np.int64))
        col = store[..., start:start + size].reshape(store.shape[:-1] + shape)
        if kind != "u":
            return col
        if isinstance(col, np.ndarray):
            return col.view(np.uint32)
        return jax.lax.bitcast_convert_type(col, jnp.uint32)

    def __iter__(self) -> Iterator[str]:
        return (entry[0] for entry in self.layout)

    def __len__(self) -> int:
        return len(self.layout)

    def __repr__(self) -> str:
        return f"PackedHParams({', '.join(self)})"

    def tree_flatten(self):
        return (self.floats, self.ints), self.layout

    @classmethod
    def tree_unflatten(cls, layout, children):
        return cls(*children, layout)


def _layout_to_bytes(layout) -> bytes:
    return json.dumps([[n, k, s, list(sh)] for n, k, s, sh in layout]).encode()


def _layout_from_bytes(blob: bytes) -> tuple:
    return tuple((n, k, int(s), tuple(sh)) for n, k, s, sh in json.loads(blob))


# Lowered bracket programs are kept with jax.export (see vtune.engine); their outputs hold packed
# hyperparameters, which export serialises only under a registered name.
jax.export.register_pytree_node_serialization(PackedHParams, serialized_name="vtune.packed.PackedHParams",
                                              serialize_auxdata=_layout_to_bytes,
                                              deserialize_auxdata=_layout_from_bytes)
