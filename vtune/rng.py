"""Counter-based random numbers whose value at ``(row, col)`` depends on nothing but the key and ``(row, col)``.

Padding must never change what a member draws: a member padded to width 256 inside a population has to
drop out (and start from) exactly the numbers it would use alone at its true width. JAX's threefry draws
depend on the flattened index, hence on the padded shape, and a per-row ``fold_in`` costs a threefry call
per row. Here every element is a hash of ``(key, row, col)`` — the murmur3 finaliser, a few integer
multiplies and shifts — so any prefix of a draw equals the draw of that prefix's shape, in both axes, and
a dropout mask costs a handful of integer operations per unit instead of a threefry block.

These numbers are for dropout masks and weight initialisation, not for cryptography.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.scipy.special import ndtri

_GOLDEN = 0x9E3779B9
_C1 = 0x85EBCA6B
_C2 = 0xC2B2AE35


def fmix32(h):
    """murmur3's 32-bit finaliser (a bijection on uint32 with full avalanche)."""
    h = jnp.asarray(h, jnp.uint32)
    h = h ^ (h >> 16)
    h = h * jnp.uint32(_C1)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(_C2)
    return h ^ (h >> 16)


def combine(key, *words):
    """Fold integer ``words`` into a uint32 ``key`` (an ordered hash)."""
    h = jnp.asarray(key, jnp.uint32)
    for w in words:
        h = fmix32(h ^ (fmix32(jnp.asarray(w).astype(jnp.uint32) + jnp.uint32(_GOLDEN)) + (h << 6) + (h >> 2)))
    return h


def bits(key, num_rows: int, num_cols: int):
    """``uint32 [num_rows, num_cols]``: element ``(r, c)`` is ``hash(key, r, c)``."""
    r = jnp.arange(num_rows, dtype=jnp.uint32)[:, None]
    c = jnp.arange(num_cols, dtype=jnp.uint32)[None, :]
    h = fmix32(jnp.asarray(key, jnp.uint32) ^ (r * jnp.uint32(_GOLDEN)))
    return fmix32(h + c * jnp.uint32(_C1) + jnp.uint32(_C2))


def uniform(key, num_rows: int, num_cols: int):
    """``float32 [num_rows, num_cols]`` uniform on ``[0, 1)`` (24 random bits each)."""
    return (bits(key, num_rows, num_cols) >> 8).astype(jnp.float32) * jnp.float32(2.0**-24)


_LO = 0.022750131948179195  # Φ(−2)
_HI = 0.9772498680518208  # Φ(2)


def truncated_normal(key, num_rows: int, num_cols: int):
    """Standard normal truncated to ``[−2, 2]`` (by the inverse CDF), ``[num_rows, num_cols]``."""
    u = (bits(key, num_rows, num_cols) >> 8).astype(jnp.float32) + 0.5
    u = _LO + (u * jnp.float32(2.0**-24)) * (_HI - _LO)
    return ndtri(u)
