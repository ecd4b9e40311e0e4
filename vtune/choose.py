"""Run the variant a member's traced id names: a real branch for one member, a select for a population.

A "choice" hyperparameter (optimizer, activation, schedule, loss) is an ``int32`` id per member, and a
program is built for a static tuple of allowed variants. ``jax.lax.switch`` on the id's position in that
tuple does what each execution path needs:

* unbatched (the CPU engine trains one member per chunk) the id is a scalar and the switch is a real
  conditional: only the member's own variant runs;
* under ``vmap`` with a batched id, JAX lowers the switch to a select over every variant's result — the
  same work as selecting with a chain of ``jnp.where``, which is what a population needs anyway;
* with one allowed variant there is nothing to choose, so it is called directly (no conditional at all).
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp


def _branch_index(choice, ids: Mapping[str, int], names: Sequence[str]):
    """``int32`` position in ``names`` of the variant whose id is ``choice``.

    An id outside ``names`` (a variant the program was not built for) gets 0, the first variant, on every
    path alike: ``lax.switch`` would clamp an out-of-range index to the last branch instead.
    """
    index = jnp.int32(0)
    for k, name in enumerate(names[1:], start=1):
        index = index + jnp.where(choice == ids[name], jnp.int32(k), jnp.int32(0))
    return index


def choose(choice, ids: Mapping[str, int], names: Sequence[str], variant: Callable[[str], Callable], *operands,
           fused: bool = False):
    """``variant(name)(*operands)`` for the ``name`` in the static ``names`` whose id (``ids``) is ``choice``.

    ``fused=True`` always runs every variant and selects the member's result, element by element — for
    cheap elementwise variants (an optimizer's update rule): the variants and the select fuse into one
    kernel per output, where a real branch compiles each variant's kernels separately (on a 2-core CPU
    each kernel costs ~10 ms of compile) and runs one kernel per operation of the chosen rule. The result
    is the chosen variant's: a select copies, it does not compute.

    >>> import jax.numpy as jnp
    >>> ids = {"double": 0, "square": 1}
    >>> fns = {"double": lambda x: 2 * x, "square": lambda x: x * x}
    >>> float(choose(jnp.int32(1), ids, ("double", "square"), fns.get, jnp.float32(3.0)))
    9.0
    """
    names = tuple(names)
    if len(names) == 1:
        return variant(names[0])(*operands)
    index = _branch_index(choice, ids, names)
    if fused:
        results = [variant(name)(*operands) for name in names]
        return jax.tree.map(lambda *xs: jax.lax.select_n(index, *xs), *results)
    return jax.lax.switch(index, [variant(name) for name in names], *operands)
