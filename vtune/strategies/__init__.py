"""Search strategies. Each is host-side bookkeeping over stages that the engine runs as compiled programs."""

from vtune.strategies.base import Strategy
from vtune.strategies.coarse_to_fine import CoarseToFine
from vtune.strategies.grid import Grid
from vtune.strategies.halving import Halving
from vtune.strategies.hyperband import Hyperband
from vtune.strategies.random_search import Random

STRATEGIES = {
    "grid": Grid,
    "random": Random,
    "coarse-to-fine": CoarseToFine,
    "halving": Halving,
    "hyperband": Hyperband,
}

__all__ = ["Strategy", "Grid", "Random", "CoarseToFine", "Halving", "Hyperband", "STRATEGIES"]
