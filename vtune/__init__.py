"""vtune: vectorized, JAX-compiled hyperparameter tuning for multilayer perceptrons.

Whole populations of MLP configurations — different depths, widths, optimizers, schedules, batch sizes —
train side by side as one compiled XLA program, and a whole Hyperband bracket is one dispatch.

>>> import vtune
>>> result = vtune.tune(data="digits", strategy="hyperband", max_epochs=9)   # doctest: +SKIP
>>> result.best_config, result.best_test_score                              # doctest: +SKIP
"""

__version__ = "0.1.0"

from vtune.devices import configure_cpu_devices as _configure_cpu_devices

# Before anything below can start a JAX backend: one CPU device per core (see vtune.devices).
_configure_cpu_devices()

from vtune import data  # noqa: E402
from vtune.data import Dataset, load_dataset
from vtune.plan import hyperband as hyperband_plan
from vtune.result import Model, Result, load
from vtune.space import Choice, Float, Int, Space, default_space
from vtune.strategies import CoarseToFine, Grid, Halving, Hyperband, Random, Strategy
from vtune.trainable import BealeTrainable, FunctionTrainable
from vtune.tune import tune

__all__ = [
    "BealeTrainable",
    "Choice",
    "CoarseToFine",
    "Dataset",
    "Float",
    "FunctionTrainable",
    "Grid",
    "Halving",
    "Hyperband",
    "Int",
    "Model",
    "Random",
    "Result",
    "Space",
    "Strategy",
    "data",
    "default_space",
    "hyperband_plan",
    "load",
    "load_dataset",
    "tune",
]
