"""Pallas kernels for vtune, each with a plain-``jnp`` ``*_reference`` twin beside it.

Installed as ``vtune.kernels``. The kernels target the GPU (Triton) backend of Pallas and run anywhere
with ``interpret=True``; :func:`dense` chooses the kernel on GPU and the reference elsewhere.
"""

from .population_dense import dense as dense
from .population_dense import has_gpu as has_gpu
from .population_dense import population_dense as population_dense_kernel
from .population_dense import population_dense_reference as population_dense_reference
from .population_dense import useful_flops as useful_flops

__all__ = [
    "dense",
    "has_gpu",
    "population_dense_kernel",
    "population_dense_reference",
    "useful_flops",
]
