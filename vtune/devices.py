"""One JAX CPU device per core, so that a search uses every core of a CPU-only machine.

XLA runs the small matrix products of an MLP training step (a ``[64, 256] @ [256, 256]`` is ~4 MFLOP) on
a single thread: measured on a 2-core machine, one such loop uses 1.00 core whatever the population size,
and ``vmap`` over members does not change that. Two CPU devices, each running its own member, use both
(1.97 cores, ~2× the throughput). vtune's engine splits every chunk over the devices with ``shard_map``
(see :mod:`vtune.engine`), so on a CPU backend it asks JAX for one CPU device per usable core.

JAX fixes its device count when its backends start (the first JAX operation), so this is done at
``import vtune``, and only when nobody has chosen already:

* ``VTUNE_CPU_DEVICES`` — ``auto`` (default: the cores this process may use), a positive integer, or
  ``off`` to leave JAX's setting alone;
* an explicit ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` or ``jax_num_cpu_devices`` setting
  wins, and so does a backend that is already running (vtune imported after JAX computed something): then
  the search runs on the devices there are — same numbers, fewer cores.
"""

from __future__ import annotations

import os

import jax
import numpy as np

ENV = "VTUNE_CPU_DEVICES"


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def requested_devices(value: str | None = None) -> int | None:
    """The CPU device count that ``VTUNE_CPU_DEVICES`` (or ``value``) asks for; None for ``off``."""
    raw = os.environ.get(ENV, "auto") if value is None else value
    text = str(raw).strip().lower()
    if text in ("", "auto"):
        return usable_cores()
    if text in ("off", "none", "0"):
        return None
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise ValueError(f"{ENV} must be 'auto', 'off' or a positive integer, got {raw!r}")
    return count


def configure_cpu_devices(value: str | None = None) -> int | None:
    """Ask JAX for one CPU device per core unless the count is already chosen; returns the count set, or
    None when it left JAX alone (``off``, an explicit setting, or backends already running)."""
    count = requested_devices(value)
    if count is None:
        return None
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return None
    if jax.config.jax_num_cpu_devices != -1:
        return None
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:  # JAX has already started its backends: keep the devices it has
        return None
    return count


#: Byte alignment of a numpy array that JAX's CPU client reads in place: a program argument (or
#: ``device_put``) whose data start on such a boundary becomes a device buffer without a copy, on every CPU
#: device at once, where any other array is copied into each device's own buffer. Measured on the 2-core
#: development CPU (2026-11-25): a ``[1024, 150794]`` float32 array (617 MB) passed to a program
#: replicated over the two CPU devices costs 630-680 ms a call unaligned (numpy's own large arrays start
#: 16 bytes past a page), 0 ms aligned.
HOST_ALIGNMENT = 64


def host_array(shape, dtype) -> np.ndarray:
    """An uninitialised numpy array whose data start on a :data:`HOST_ALIGNMENT`-byte boundary, for large
    program inputs the host fills (the initial weights of a population: ``vtune.model.init_population_host``).
    JAX may then alias it rather than copy it, so it must not be written after it has been passed to JAX.

        >>> host_array((3, 5), np.float32).ctypes.data % HOST_ALIGNMENT
        0
    """
    dtype = np.dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(size + HOST_ALIGNMENT, np.uint8)
    start = (-raw.ctypes.data) % HOST_ALIGNMENT
    return raw[start:start + size].view(dtype).reshape(shape)
