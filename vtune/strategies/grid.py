"""Grid search: every point of an even lattice over the space, each trained for ``max_epochs``."""

from __future__ import annotations

from vtune.strategies.base import Strategy, check_positive_int, single_rung_stages


class Grid(Strategy):
    """Grid search with ``points_per_dim`` values per numeric dimension (all values of a Choice).

    >>> from vtune import Space, Float
    >>> len(Grid(points_per_dim=3, max_epochs=5).stages(Space({"learning_rate": Float(1e-3, 1e-1, scale="log")}))[0].rungs)
    1
    """

    name = "grid"

    def __init__(self, *, points_per_dim: int = 3, max_epochs: int = 20):
        self.points_per_dim = check_positive_int("points_per_dim", points_per_dim)
        self.max_epochs = check_positive_int("max_epochs", max_epochs)

    def _all(self, space):
        return space.grid(self.points_per_dim)

    def stages(self, space):
        return single_rung_stages(len(self._all(space)), self.max_epochs)

    def configs(self, index, space, seed, history):
        stages = self.stages(space)
        start = sum(s.num_configs for s in stages[:index])
        return self._all(space)[start:start + stages[index].num_configs]
