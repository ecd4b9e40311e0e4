"""Coarse-to-fine search: random search, then rounds of random search in a box narrowed around the best."""

from __future__ import annotations

import math

from vtune.strategies.base import Strategy, check_positive_int, stage_rng
from vtune.plan import Bracket, Rung


def best_record(history):
    """The best trial record so far: highest final score, ties to the earlier trial; None if all diverged."""
    best = None
    for rec in history:
        score = rec["rungs"][-1]["val_score"] if rec["rungs"] else -math.inf
        if score is None or not math.isfinite(score):
            continue
        if best is None or score > best[0]:
            best = (score, rec)
    return None if best is None else best[1]


class CoarseToFine(Strategy):
    """``rounds`` rounds of ``trials_per_round`` random trials; round ``k ≥ 1`` samples from the space
    narrowed (in unit-cube coordinates) to a box of width ``shrink**k`` centred on the best trial so far.
    Choice dimensions stay whole. If every trial so far diverged, the next round samples the whole space.
    """

    name = "coarse-to-fine"

    def __init__(self, *, trials_per_round: int = 16, rounds: int = 3, shrink: float = 0.5, max_epochs: int = 20):
        self.trials_per_round = check_positive_int("trials_per_round", trials_per_round)
        self.rounds = check_positive_int("rounds", rounds)
        self.max_epochs = check_positive_int("max_epochs", max_epochs)
        if isinstance(shrink, bool) or not isinstance(shrink, (int, float)) or not 0.0 < shrink < 1.0:
            raise ValueError(f"shrink must be a number in (0, 1), got shrink={shrink!r}")
        self.shrink = float(shrink)

    def stages(self, space):
        return [Bracket(0, (Rung(self.trials_per_round, self.max_epochs, 0),)) for _ in range(self.rounds)]

    def configs(self, index, space, seed, history):
        region = space
        best = best_record(history) if index > 0 else None
        if best is not None:
            region = space.narrow(best["config"], self.shrink**index)
        return region.sample(self.trials_per_round, seed=stage_rng(seed, index))
