"""The population's dense layer, ``y[p] = x[p] @ w[p] + b[p]``, as a Pallas kernel that skips padding.

vtune trains ``P`` MLPs at once. Their hidden widths differ, so the engine pads every member to a
common width ``K`` (inputs) and ``N`` (outputs) and keeps the padded units at exactly zero. Done with
plain ``jnp`` (see :func:`population_dense_reference`), a padded layer costs ``2·B·P·K·N`` FLOPs, most
of them multiplications by zero: with widths drawn log-uniformly from 16–256 and padded to 256, about
80% of a hidden layer's FLOPs are padding.

:func:`population_dense` is a Pallas kernel over the grid ``(member, B tile, N tile)`` that reads each
member's true widths ``in_units[p]`` and ``out_units[p]`` and

* loops only over the ``ceil(in_units[p] / block_k)`` K tiles that hold live inputs, masking the last
  partial one (K tiles past ``in_units[p]`` are never loaded);
* writes zeros into N tiles at or past ``out_units[p]`` without loading or multiplying anything.

Its work is therefore about ``2·B·Σ_p ceil_k(in_p)·ceil_n(out_p)`` FLOPs (widths rounded up to whole
tiles) instead of ``2·B·P·K·N``; :func:`useful_flops` gives the exact useful count
``2·B·Σ_p in_p·out_p``.

The kernel is differentiable: a ``custom_vjp`` computes ``dx`` and ``dw`` with the same kernel
(``dx = g @ wᵀ`` skips the padded tiles the same way; ``dw = xᵀ @ g`` skips the rows past ``in_units``
and the columns past ``out_units``), and ``db`` as a masked sum.

The kernel is written for the GPU (Triton) backend of Pallas: block sizes are powers of two (each at
least 16, as Triton's ``dot`` needs), K is looped inside the kernel, and the per-member widths are
ordinary (squeezed, 0-d) inputs rather than TPU scalar prefetch. It runs anywhere with
``interpret=True`` (that is how the tests run it on CPU). :func:`dense` picks the kernel on GPU and
the ``jnp`` reference elsewhere.

The file follows jax's own Pallas ops (``jax/experimental/pallas/ops/gpu/layer_norm.py``): the kernel,
a jitted wrapper with ``interpret=False``, and a plain-``jnp`` ``*_reference`` beside it.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
from jax.experimental import pallas as pl

try:  # The Triton compiler parameters only matter on GPU; interpret mode ignores them.
    from jax.experimental.pallas import triton as _plgpu
except ImportError:  # pragma: no cover - depends on the jax build
    _plgpu = None

__all__ = [
    "dense",
    "has_gpu",
    "population_dense",
    "population_dense_reference",
    "useful_flops",
]

#: Triton's ``dot`` needs every block dimension to be at least 16.
_MIN_BLOCK = 16


# --------------------------------------------------------------------------------------------------
# Validation (shapes only: the widths themselves are traced data and are clipped, never checked).
# --------------------------------------------------------------------------------------------------


def _check_inputs(x: Any, w: Any, b: Any, in_units: Any, out_units: Any) -> tuple[int, int, int, int]:
    """Checks shapes and dtypes; returns ``(P, B, K, N)``."""
    for name, value in (("x", x), ("w", w), ("b", b), ("in_units", in_units), ("out_units", out_units)):
        if not hasattr(value, "shape") or not hasattr(value, "dtype"):
            raise TypeError(f"{name} must be an array, got {type(value).__name__}: {value!r}")
    if w.ndim != 3:
        raise ValueError(f"w must have shape [P, K, N], got w.shape={tuple(w.shape)}")
    num_members, k, n = w.shape
    if x.ndim == 2:
        batch, x_k = x.shape
    elif x.ndim == 3:
        x_p, batch, x_k = x.shape
        if x_p != num_members:
            raise ValueError(
                f"x of shape [P, B, K] must have P == w.shape[0] == {num_members}, "
                f"got x.shape={tuple(x.shape)}"
            )
    else:
        raise ValueError(f"x must have shape [B, K] or [P, B, K], got x.shape={tuple(x.shape)}")
    if x_k != k:
        raise ValueError(
            f"x's last axis must equal w.shape[1] == {k}, got x.shape={tuple(x.shape)}"
        )
    if tuple(b.shape) != (num_members, n):
        raise ValueError(f"b must have shape [P, N] == {(num_members, n)}, got b.shape={tuple(b.shape)}")
    for name, value in (("in_units", in_units), ("out_units", out_units)):
        if tuple(value.shape) != (num_members,):
            raise ValueError(
                f"{name} must have shape [P] == ({num_members},), got {name}.shape={tuple(value.shape)}"
            )
        if not jnp.issubdtype(value.dtype, jnp.integer):
            raise TypeError(f"{name} must hold integers, got {name}.dtype={value.dtype}")
    for name, value in (("x", x), ("w", w), ("b", b)):
        if not jnp.issubdtype(value.dtype, jnp.floating):
            raise TypeError(f"{name} must hold floats, got {name}.dtype={value.dtype}")
    return num_members, batch, k, n


def _check_block(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {name}={value!r}")
    value = int(value)
    if value < _MIN_BLOCK or value & (value - 1):
        raise ValueError(f"{name} must be a power of two >= {_MIN_BLOCK}, got {name}={value}")
    return value


def _fit_block(block: int, dim: int) -> int:
    """Shrinks ``block`` to the smallest power of two (>= 16) that covers ``dim``, if that is smaller."""
    return min(block, max(_MIN_BLOCK, pl.next_power_of_2(max(dim, 1))))


def _pad_to(a: jax.Array, axis: int, size: int) -> jax.Array:
    extra = size - a.shape[axis]
    if extra == 0:
        return a
    widths = [(0, 0)] * a.ndim
    widths[axis] = (0, extra)
    return jnp.pad(a, widths)


# --------------------------------------------------------------------------------------------------
# Reference.
# --------------------------------------------------------------------------------------------------


def population_dense_reference(
    x: jax.Array, w: jax.Array, b: jax.Array, in_units: jax.Array, out_units: jax.Array
) -> jax.Array:
    """Plain-``jnp`` population dense layer on padded arrays; the twin of :func:`population_dense`.

    Args:
      x: inputs, ``[B, K]`` (a batch shared by every member) or ``[P, B, K]`` (each member's own rows).
      w: weights ``[P, K, N]``.
      b: biases ``[P, N]``.
      in_units: int ``[P]``, each member's true input width (clipped into ``[0, K]``).
      out_units: int ``[P]``, each member's true output width (clipped into ``[0, N]``).

    Returns:
      ``[P, B, N]``: ``x @ w + b`` per member, reading only input columns ``< in_units[p]``; output
      columns ``>= out_units[p]`` are exactly ``0.0``. No activation is applied.

    Weight rows ``>= in_units`` and columns ``>= out_units`` and bias entries ``>= out_units`` are
    replaced by zeros (with ``where``, so their gradients are exactly zero and non-finite padding
    cannot leak). A per-member ``x`` is masked the same way. A shared ``x`` is not masked, so that
    XLA keeps one wide ``[B, K] @ [K, P·N]`` product: its columns past ``in_units[p]`` meet zero
    weights, which leaves finite values without effect (the kernel ignores them altogether).

    Example:
      >>> x = jnp.ones((2, 3)); w = jnp.ones((2, 3, 4)); b = jnp.zeros((2, 4))
      >>> y = population_dense_reference(x, w, b, jnp.array([3, 1]), jnp.array([4, 2]))
      >>> y[:, 0].tolist()
      [[3.0, 3.0, 3.0, 3.0], [1.0, 1.0, 0.0, 0.0]]
    """
    _check_inputs(x, w, b, in_units, out_units)
    _, k, n = w.shape
    in_units = jnp.clip(in_units.astype(jnp.int32), 0, k)
    out_units = jnp.clip(out_units.astype(jnp.int32), 0, n)
    k_live = jnp.arange(k, dtype=jnp.int32)[None, :] < in_units[:, None]  # [P, K]
    n_live = jnp.arange(n, dtype=jnp.int32)[None, :] < out_units[:, None]  # [P, N]
    w = jnp.where(k_live[:, :, None] & n_live[:, None, :], w, jnp.zeros((), w.dtype))
    b = jnp.where(n_live, b, jnp.zeros((), b.dtype))
    if x.ndim == 2:
        y = jnp.einsum("bk,pkn->pbn", x, w)
    else:
        x = jnp.where(k_live[:, None, :], x, jnp.zeros((), x.dtype))
        y = jnp.einsum("pbk,pkn->pbn", x, w)
    y = y + b[:, None, :].astype(y.dtype)
    return jnp.where(n_live[:, None, :], y, jnp.zeros((), y.dtype))


# --------------------------------------------------------------------------------------------------
# Kernel.
# --------------------------------------------------------------------------------------------------


def _population_dense_kernel(
    rows_ref,  # () int32: live rows of this member (rows at or past it are written as zeros)
    in_ref,  # () int32: live K columns of this member
    out_ref,  # () int32: live N columns of this member
    x_ref,  # [block_b, Kp]
    w_ref,  # [Kp, block_n]
    b_ref,  # [block_n]
    y_ref,  # [block_b, block_n]
    *,
    block_k: int,
):
    """One ``(member, B tile, N tile)`` output block; loops over the live K tiles only."""
    block_b, block_n = y_ref.shape
    i = pl.program_id(1)
    j = pl.program_id(2)
    live_rows = rows_ref[...]
    live_in = in_ref[...]
    live_out = out_ref[...]
    tile_live = (i * block_b < live_rows) & (j * block_n < live_out)

    @pl.when(tile_live)
    def _compute():
        num_full = live_in // block_k  # K tiles that are live throughout: no mask needed

        def full_tile(t, acc):
            ks = pl.ds(pl.multiple_of(t * block_k, block_k), block_k)
            return acc + jnp.dot(x_ref[:, ks], w_ref[ks, :], preferred_element_type=jnp.float32)

        acc = lax.fori_loop(0, num_full, full_tile, jnp.zeros((block_b, block_n), jnp.float32))
        remainder = live_in - num_full * block_k

        def partial_tile(acc):
            ks = pl.ds(pl.multiple_of(num_full * block_k, block_k), block_k)
            k_idx = jnp.arange(block_k, dtype=jnp.int32)
            xt = jnp.where(k_idx[None, :] < remainder, x_ref[:, ks], jnp.zeros((), x_ref.dtype))
            wt = jnp.where(k_idx[:, None] < remainder, w_ref[ks, :], jnp.zeros((), w_ref.dtype))
            return acc + jnp.dot(xt, wt, preferred_element_type=jnp.float32)

        acc = lax.cond(remainder > 0, partial_tile, lambda a: a, acc)
        acc = acc + b_ref[...].astype(jnp.float32)[None, :]
        rows = i * block_b + jnp.arange(block_b, dtype=jnp.int32)
        cols = j * block_n + jnp.arange(block_n, dtype=jnp.int32)
        keep = (rows[:, None] < live_rows) & (cols[None, :] < live_out)
        y_ref[...] = jnp.where(keep, acc, 0.0).astype(y_ref.dtype)

    @pl.when(jnp.logical_not(tile_live))
    def _zeros():
        y_ref[...] = jnp.zeros(y_ref.shape, y_ref.dtype)


def _masked_matmul(
    x: jax.Array,
    w: jax.Array,
    b: jax.Array,
    row_units: jax.Array,
    in_units: jax.Array,
    out_units: jax.Array,
    *,
    block_b: int,
    block_n: int,
    block_k: int,
    interpret: bool,
) -> jax.Array:
    """Pads, runs the kernel, slices back. Shapes as in :func:`population_dense`; ``row_units`` int
    ``[P]`` zeroes output rows ``>= row_units[p]`` (the full batch in the forward pass)."""
    num_members, k, n = w.shape
    shared = x.ndim == 2
    batch = x.shape[-2]
    block_b = _fit_block(block_b, batch)
    block_n = _fit_block(block_n, n)
    block_k = _fit_block(block_k, k)
    bp = pl.cdiv(batch, block_b) * block_b
    kp = pl.cdiv(k, block_k) * block_k
    np_ = pl.cdiv(n, block_n) * block_n
    x = _pad_to(_pad_to(x, x.ndim - 2, bp), x.ndim - 1, kp)
    w = _pad_to(_pad_to(w, 1, kp), 2, np_)
    b = _pad_to(b, 1, np_)
    row_units = jnp.clip(row_units.astype(jnp.int32), 0, batch)
    in_units = jnp.clip(in_units.astype(jnp.int32), 0, k)
    out_units = jnp.clip(out_units.astype(jnp.int32), 0, n)
    out_dtype = jnp.result_type(x.dtype, w.dtype)

    unit_spec = pl.BlockSpec((None,), lambda p, i, j: (p,))
    if shared:
        x_spec = pl.BlockSpec((block_b, kp), lambda p, i, j: (i, 0))
    else:
        x_spec = pl.BlockSpec((None, block_b, kp), lambda p, i, j: (p, i, 0))
    compiler_params = None
    if _plgpu is not None and not interpret:
        compiler_params = _plgpu.CompilerParams(num_warps=4, num_stages=3)
    y = pl.pallas_call(
        functools.partial(_population_dense_kernel, block_k=block_k),
        out_shape=jax.ShapeDtypeStruct((num_members, bp, np_), out_dtype),
        grid=(num_members, bp // block_b, np_ // block_n),
        in_specs=[
            unit_spec,
            unit_spec,
            unit_spec,
            x_spec,
            pl.BlockSpec((None, kp, block_n), lambda p, i, j: (p, 0, j)),
            pl.BlockSpec((None, block_n), lambda p, i, j: (p, j)),
        ],
        out_specs=pl.BlockSpec((None, block_b, block_n), lambda p, i, j: (p, i, j)),
        compiler_params=compiler_params,
        interpret=interpret,
        name="population_dense",
    )(row_units, in_units, out_units, x, w, b)
    return y[:, :batch, :n]


# --------------------------------------------------------------------------------------------------
# Differentiable wrapper.
# --------------------------------------------------------------------------------------------------


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6, 7, 8))
def _population_dense(x, w, b, in_units, out_units, block_b, block_n, block_k, interpret):
    num_members, batch = w.shape[0], x.shape[-2]
    rows = jnp.full((num_members,), batch, jnp.int32)
    return _masked_matmul(
        x, w, b, rows, in_units, out_units,
        block_b=block_b, block_n=block_n, block_k=block_k, interpret=interpret,
    )


def _population_dense_fwd(x, w, b, in_units, out_units, block_b, block_n, block_k, interpret):
    y = _population_dense(x, w, b, in_units, out_units, block_b, block_n, block_k, interpret)
    return y, (x, w, in_units, out_units)


def _population_dense_bwd(block_b, block_n, block_k, interpret, residuals, g):
    x, w, in_units, out_units = residuals
    num_members, k, n = w.shape
    batch = x.shape[-2]
    in_units = jnp.clip(in_units.astype(jnp.int32), 0, k)
    out_units = jnp.clip(out_units.astype(jnp.int32), 0, n)
    full_batch = jnp.full((num_members,), batch, jnp.int32)
    # dx[p] = g[p] @ w[p]ᵀ: reads g's live columns (< out_units) and writes x's live ones (< in_units).
    dx = _masked_matmul(
        g, jnp.swapaxes(w, 1, 2), jnp.zeros((num_members, k), w.dtype), full_batch, out_units, in_units,
        block_b=block_b, block_n=block_k, block_k=block_n, interpret=interpret,
    )
    if x.ndim == 2:
        dx = dx.sum(axis=0)
    # dw[p] = x[p]ᵀ @ g[p]: rows < in_units, columns < out_units, contraction over the whole batch.
    xt = jnp.swapaxes(x, -1, -2)  # [K, B] or [P, K, B]
    dw = _masked_matmul(
        xt, g, jnp.zeros((num_members, n), g.dtype), in_units, full_batch, out_units,
        block_b=block_k, block_n=block_n, block_k=block_b, interpret=interpret,
    )
    n_live = jnp.arange(n, dtype=jnp.int32)[None, :] < out_units[:, None]
    db = jnp.where(n_live, g.sum(axis=1), 0.0)
    zero_units = np.zeros(in_units.shape, jax.dtypes.float0)
    return dx.astype(x.dtype), dw.astype(w.dtype), db.astype(g.dtype), zero_units, zero_units


_population_dense.defvjp(_population_dense_fwd, _population_dense_bwd)


@functools.partial(jax.jit, static_argnames=("block_b", "block_n", "block_k", "interpret"))
def _population_dense_jit(x, w, b, in_units, out_units, *, block_b, block_n, block_k, interpret):
    return _population_dense(x, w, b, in_units, out_units, block_b, block_n, block_k, interpret)


def population_dense(
    x: jax.Array,
    w: jax.Array,
    b: jax.Array,
    in_units: jax.Array,
    out_units: jax.Array,
    *,
    block_b: int = 64,
    block_n: int = 64,
    block_k: int = 32,
    interpret: bool = False,
) -> jax.Array:
    """Population dense layer as a Pallas kernel that skips the padded tiles of every member.

    Same contract as :func:`population_dense_reference` (read its docstring for the shapes); the
    kernel ignores ``x``'s columns past ``in_units[p]`` entirely, in both layouts. Shapes that are
    not multiples of the blocks are padded here and sliced back. Differentiable (``custom_vjp``, the
    backward pass uses the same kernel). Jitted: new *values* of ``in_units``/``out_units`` reuse the
    compiled program.

    Args:
      x: ``[B, K]`` (shared batch) or ``[P, B, K]`` (per-member batch).
      w: ``[P, K, N]``. b: ``[P, N]``.
      in_units: int ``[P]``, true input widths (clipped into ``[0, K]``).
      out_units: int ``[P]``, true output widths (clipped into ``[0, N]``).
      block_b, block_n, block_k: tile sizes, powers of two ``>= 16``; each is shrunk to the smallest
        power of two covering its dimension when that is smaller.
      interpret: run the kernel in the Pallas interpreter (any backend, CPU included; slow).

    Returns:
      ``[P, B, N]``, output columns ``>= out_units[p]`` exactly ``0.0``.

    Example:
      >>> x = jnp.ones((2, 3)); w = jnp.ones((2, 3, 4)); b = jnp.zeros((2, 4))
      >>> y = population_dense(x, w, b, jnp.array([3, 1]), jnp.array([4, 2]), interpret=True)
      >>> y[:, 0].tolist()
      [[3.0, 3.0, 3.0, 3.0], [1.0, 1.0, 0.0, 0.0]]
    """
    _check_inputs(x, w, b, in_units, out_units)
    block_b = _check_block("block_b", block_b)
    block_n = _check_block("block_n", block_n)
    block_k = _check_block("block_k", block_k)
    return _population_dense_jit(
        x, w, b, in_units, out_units,
        block_b=block_b, block_n=block_n, block_k=block_k, interpret=bool(interpret),
    )


# --------------------------------------------------------------------------------------------------
# Accounting and dispatch.
# --------------------------------------------------------------------------------------------------


def useful_flops(batch: int, in_units: Any, out_units: Any) -> int:
    """Useful FLOPs of one forward population dense layer: ``2·B·Σ_p in_p·out_p``.

    The padded layer does ``2·B·P·K·N``; the ratio of the two is the fraction of a padded matmul's
    work that is not multiplication by zero. The kernel's own work lies between them: the widths
    rounded up to whole tiles. Multiply by about 3 for forward plus backward.

    Args:
      batch: rows per member ``B`` (a non-negative int).
      in_units, out_units: ``[P]`` true widths (ints, sequences or arrays; concrete, not traced).

    Example:
      >>> useful_flops(64, [16, 256], [32, 10])
      393216
    """
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 0:
        raise ValueError(f"batch must be a non-negative int, got {batch=}")
    ins = np.asarray(in_units, dtype=np.int64)
    outs = np.asarray(out_units, dtype=np.int64)
    if ins.shape != outs.shape or ins.ndim != 1:
        raise ValueError(
            f"in_units and out_units must be [P] of the same length, got {ins.shape=} and {outs.shape=}"
        )
    if (ins < 0).any() or (outs < 0).any():
        raise ValueError(
            f"units must be non-negative, got in_units={ins.tolist()}, out_units={outs.tolist()}"
        )
    return int(2 * int(batch) * int(np.sum(ins * outs)))


def has_gpu() -> bool:
    """True when JAX's default backend is a GPU (CUDA or ROCm), where the Pallas kernel compiles."""
    return jax.default_backend() == "gpu"


def dense(
    x: jax.Array, w: jax.Array, b: jax.Array, in_units: jax.Array, out_units: jax.Array
) -> jax.Array:
    """Population dense layer on the best path for the backend: the kernel on GPU, ``jnp`` elsewhere.

    On GPU this is :func:`population_dense` (default tiles, compiled by Triton). On CPU and TPU it is
    :func:`population_dense_reference`: XLA's dense products are the fast path there, and the kernel
    is written for Triton. The choice is made in Python when the caller is traced, so it costs
    nothing at run time. Both are differentiable and agree to float tolerance. Shapes as in
    :func:`population_dense_reference`.

    Example:
      >>> x = jnp.ones((2, 3)); w = jnp.ones((2, 3, 4)); b = jnp.zeros((2, 4))
      >>> dense(x, w, b, jnp.array([3, 1]), jnp.array([4, 2])).shape
      (2, 2, 4)
    """
    if has_gpu():
        return population_dense(x, w, b, in_units, out_units)
    return population_dense_reference(x, w, b, in_units, out_units)
