"""Counter-based random numbers whose value at ``(row, col)`` depends on nothing but the key and ``(row, col)``.

Padding must never change what a member draws: a member padded to width 256 inside a population has to
drop out (and start from) exactly the numbers it would use alone at its true width. JAX's threefry draws
depend on the flattened index, hence on the padded shape, and a per-row ``fold_in`` costs a threefry call
per row. Here every element is a hash of ``(key, row, col)`` — the murmur3 finaliser, a few integer
multiplies and shifts — so any prefix of a draw equals the draw of that prefix's shape, in both axes, and
a dropout mask costs a handful of integer operations per unit instead of a threefry block.

These numbers are for dropout masks and weight initialisation, not for cryptography. Every function takes
``xp`` (``jax.numpy`` by default, or ``numpy``): the same integer arithmetic runs traced inside a program or
on the host, where initial weights are drawn so that the compiled program does not have to contain them.

:func:`jax_permutation` is the other way round: JAX's own shuffle, computed on the host with numpy, so
that a program can take the shared mini-batch orders as data.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtri

_GOLDEN = 0x9E3779B9
_C1 = 0x85EBCA6B
_C2 = 0xC2B2AE35


def _u32(xp, x):
    return xp.asarray(x).astype(xp.uint32)


def fmix32(h, xp=jnp):
    """murmur3's 32-bit finaliser (a bijection on uint32 with full avalanche)."""
    h = _u32(xp, h)
    h = h ^ (h >> xp.uint32(16))
    h = h * xp.uint32(_C1)
    h = h ^ (h >> xp.uint32(13))
    h = h * xp.uint32(_C2)
    return h ^ (h >> xp.uint32(16))


def combine(key, *words, xp=jnp):
    """Fold integer ``words`` into a uint32 ``key`` (an ordered hash)."""
    h = _u32(xp, key)
    for w in words:
        mixed = fmix32(_u32(xp, w) + xp.uint32(_GOLDEN), xp) + (h << xp.uint32(6)) + (h >> xp.uint32(2))
        h = fmix32(h ^ mixed, xp)
    return h


def bits(key, num_rows: int, num_cols: int, xp=jnp):
    """``uint32 [num_rows, num_cols]``: element ``(r, c)`` is ``hash(key, r, c)``."""
    r = xp.arange(num_rows, dtype=xp.uint32)[:, None]
    c = xp.arange(num_cols, dtype=xp.uint32)[None, :]
    h = fmix32(_u32(xp, key) ^ (r * xp.uint32(_GOLDEN)), xp)
    return fmix32(h + c * xp.uint32(_C1) + xp.uint32(_C2), xp)


_THREEFRY_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def threefry2x32(k1, k2, x1, x2):
    """Threefry-2x32 (20 rounds) in numpy: JAX's ``threefry2x32`` primitive, element for element."""
    u = np.uint32
    ks = (u(k1), u(k2), u(k1) ^ u(k2) ^ u(0x1BD11BDA))
    x = [np.asarray(x1, u) + ks[0], np.asarray(x2, u) + ks[1]]
    with np.errstate(over="ignore"):  # uint32 arithmetic wraps around on purpose
        for i in range(5):
            for r in _THREEFRY_ROTATIONS[i % 2]:
                x[0] = x[0] + x[1]
                x[1] = x[0] ^ ((x[1] << u(r)) | (x[1] >> u(32 - r)))
            x[0] = x[0] + ks[(i + 1) % 3]
            x[1] = x[1] + ks[(i + 2) % 3] + u(i + 1)
    return x[0], x[1]


def jax_permutation(seed: int, fold: int, n: int) -> np.ndarray | None:
    """``int32 [n]``: ``jax.random.permutation(jax.random.fold_in(jax.random.key(seed), fold), n)``
    computed with numpy on the host, the same numbers (a test holds it to JAX's), or None where JAX's
    configuration draws them otherwise (another default PRNG, or ``jax_threefry_partitionable`` off).

    JAX shuffles by sorting: each round splits the key and sorts by 32 random bits per element (stable),
    for ``⌈3 ln n / ln(2³² − 1)⌉`` rounds. Drawn here, a program can take the permutation as data
    instead of compiling the threefry hash and the sort (see ``MLPTrainable.with_orders``).
    """
    if not jax.config.jax_threefry_partitionable or jax.config.jax_default_prng_impl != "threefry2x32":
        return None
    u = np.uint32
    key = threefry2x32(0, seed, 0, u(fold))  # key(seed) is (0, seed); fold_in hashes the count (0, fold)
    x = np.arange(n, dtype=np.int32)
    for _ in range(int(np.ceil(3 * np.log(max(1, n)) / np.log(np.iinfo(u).max)))):
        b1, b2 = threefry2x32(*key, np.zeros(2, u), np.arange(2, dtype=u))  # split: counts (0, 0), (0, 1)
        key, sub = (b1[0], b2[0]), (b1[1], b2[1])
        bits = np.bitwise_xor(*threefry2x32(*sub, np.zeros(n, u), np.arange(n, dtype=u)))
        x = x[np.argsort(bits, kind="stable")]
    return x


def uniform(key, num_rows: int, num_cols: int, xp=jnp):
    """``float32 [num_rows, num_cols]`` uniform on ``[0, 1)`` (24 random bits each)."""
    return (bits(key, num_rows, num_cols, xp) >> xp.uint32(8)).astype(xp.float32) * xp.float32(2.0**-24)


_LO = 0.022750131948179195  # Φ(−2)
_HI = 0.9772498680518208  # Φ(2)


def truncated_normal(key, num_rows: int, num_cols: int, xp=jnp):
    """Standard normal truncated to ``[−2, 2]`` (by the inverse CDF), ``[num_rows, num_cols]``."""
    u = (bits(key, num_rows, num_cols, xp) >> xp.uint32(8)).astype(xp.float32) + xp.float32(0.5)
    u = xp.float32(_LO) + (u * xp.float32(2.0**-24)) * xp.float32(_HI - _LO)
    if xp is np:
        import scipy.special  # here, not at the top: its import costs ~0.1 s, and most searches never draw this

        return scipy.special.ndtri(u.astype(np.float64)).astype(np.float32)
    return ndtri(u)
