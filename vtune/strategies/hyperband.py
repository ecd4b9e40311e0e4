"""Hyperband (Li et al., JMLR 2018, Algorithm 1): successive-halving brackets from aggressive to none."""

from __future__ import annotations

from vtune import plan as plans
from vtune.strategies.base import Strategy, check_positive_int, stage_rng


class Hyperband(Strategy):
    """Hyperband with resource ``R = max_epochs`` and reduction factor ``eta``; ``sizing`` is "formula"
    (Algorithm 1, the default) or "table" (the paper's Table 1). Each bracket samples its own
    configurations; survivors continue training from their weights.

    >>> Hyperband(max_epochs=27, eta=3).plan.model_epochs
    357
    """

    name = "hyperband"
    independent_stages = True  # each bracket samples its own configurations from the seed alone

    def __init__(self, *, max_epochs: int = 27, eta: int = 3, sizing: str = "formula"):
        self.max_epochs = check_positive_int("max_epochs", max_epochs)
        self.eta = check_positive_int("eta", eta, 2)
        self.sizing = sizing
        self.plan = plans.hyperband(self.max_epochs, self.eta, sizing=sizing)

    def stages(self, space):
        return list(self.plan.brackets)

    def configs(self, index, space, seed, history):
        return space.sample(self.plan.brackets[index].num_configs, seed=stage_rng(seed, index))

    def to_json(self):
        return {"name": self.name, "max_epochs": self.max_epochs, "eta": self.eta, "sizing": self.sizing}
