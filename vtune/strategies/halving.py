"""Successive halving: one bracket, ``num_configs`` configurations, the top 1/η move on at each rung."""

from __future__ import annotations

from vtune import plan as plans
from vtune.strategies.base import Strategy, check_positive_int, stage_rng


class Halving(Strategy):
    """Successive halving (Jamieson & Talwalkar 2016) from ``min_epochs`` to ``max_epochs``."""

    name = "halving"

    def __init__(self, *, num_configs: int = 27, max_epochs: int = 27, eta: int = 3, min_epochs: int = 1):
        self.num_configs = check_positive_int("num_configs", num_configs)
        self.max_epochs = check_positive_int("max_epochs", max_epochs)
        self.eta = check_positive_int("eta", eta, 2)
        self.min_epochs = check_positive_int("min_epochs", min_epochs)
        self._plan = plans.halving(self.num_configs, self.max_epochs, self.eta, min_epochs=self.min_epochs)

    def stages(self, space):
        return list(self._plan.brackets)

    def configs(self, index, space, seed, history):
        return space.sample(self.num_configs, seed=stage_rng(seed, index))
