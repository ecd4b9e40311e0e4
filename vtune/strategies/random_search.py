"""Random search: ``num_trials`` configurations sampled from the space, each trained for ``max_epochs``."""

from __future__ import annotations

from vtune.strategies.base import Strategy, check_positive_int, single_rung_stages, stage_rng


class Random(Strategy):
    """Random search (Latin-hypercube sampling of the unit cube, mapped through each dimension's scale)."""

    name = "random"

    def __init__(self, *, num_trials: int = 32, max_epochs: int = 20):
        self.num_trials = check_positive_int("num_trials", num_trials)
        self.max_epochs = check_positive_int("max_epochs", max_epochs)

    def stages(self, space):
        return single_rung_stages(self.num_trials, self.max_epochs)

    def configs(self, index, space, seed, history):
        return space.sample(self.stages(space)[index].num_configs, seed=stage_rng(seed, index))
