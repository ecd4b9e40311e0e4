"""Estimate a search's memory before it runs; refuse (with the numbers) what cannot fit.

The engine keeps every slot's state resident (``capacity`` members: parameters, up to three optimizer buffers,
the gradient accumulator and the best-so-far copy) and trains ``chunk`` members at a time (activations
and gradients of one micro-batch, and the validation pass). Chunking changes the working set, and the
numbers by float rounding only: members are independent, so training them in smaller chunks gives the
same results up to the rounding of vmapped products.
"""

from __future__ import annotations

import os

from vtune.optim import buffers_used



def total_memory_bytes() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def estimate_bytes(trainable, capacity: int, chunk: int, devices: int = 1) -> dict:
    """Estimated bytes: ``resident`` (all slots' state), ``working`` (one chunk's step and validation).

    With ``devices`` > 1 the population's state is replicated on every device and the data too; CPU
    devices (one per core, see :mod:`vtune.devices`) all live in the same RAM, so the copies add up.
    """
    p = trainable.layout.num_params
    optim = sum(buffers_used(trainable.optimizers).values())
    buffers = 1 + optim + (1 if trainable.accumulate else 0) + (1 if trainable.restore_best else 0)
    # x2: the state, and room for the copies XLA makes around a rung. Members keep their slots and devices
    # swap trained members a few at a time (vtune.engine._exchange), so no second population is held.
    # (Measured on the digits benchmark search, two devices, 64 MiB of state per device: 75 MiB of
    # temporaries per device; 137 MiB when the population was permuted after each rung and the trained
    # members gathered whole; this estimate says 129 MiB.)
    copies = 2
    resident = 4 * capacity * p * buffers * copies * devices
    w = trainable.max_units
    acts = trainable.micro_batch * w * trainable.max_layers * 6  # activations, masks, grads of one step
    n_val = min(int(trainable.x_val.shape[0]), trainable.eval_block)
    working = 4 * chunk * (acts + n_val * w * 2 + 2 * p)
    data = 4 * devices * (trainable.x_train.size + trainable.x_val.size + trainable.y_train.size
                          + trainable.y_val.size)
    return {"resident": resident, "working": working, "data": data, "total": resident + working + data}


def check_memory(trainable, capacity: int, chunk: int, *, limit_gb: float | None = None, devices: int = 1) -> dict:
    """Raise ``MemoryError``-style ``ValueError`` when the estimate exceeds the limit (75% of RAM by default)."""
    limit = int(limit_gb * (1 << 30)) if limit_gb is not None else int(0.75 * total_memory_bytes())
    est = estimate_bytes(trainable, capacity, chunk, devices)
    if est["total"] > limit:
        raise ValueError(
            f"this search needs about {est['total'] / (1 << 30):.2f} GiB ({capacity} members × "
            f"{trainable.max_layers} layers × {trainable.max_units} units), more than the limit of "
            f"{limit / (1 << 30):.2f} GiB; narrow the units/num_layers range, lower the trial count, or raise "
            "max_memory_gb")
    return est
