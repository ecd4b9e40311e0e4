"""What a search strategy is: a list of stages (brackets) and the configurations each stage trains.

A *stage* is one :class:`vtune.plan.Bracket` run as one compiled dispatch. Strategies are host-side and
small: they decide *which* configurations to train and *how* (rung sizes and epochs); the engine does the
training and the selection inside compiled code.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from vtune.plan import Bracket, Rung

#: Single-rung stages (grid, random, coarse-to-fine rounds) are split into batches of at most this many
#: trials, which bounds the memory of one dispatch; brackets with selection cannot be split.
MAX_STAGE_TRIALS = 256


def check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {name}={value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {name}={value}")
    return int(value)


def stage_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of stage ``index`` (independent of every other stage, so resuming is exact)."""
    return np.random.default_rng([int(seed), int(index), 0x5EED])


def trial_seeds(seed: int, index: int, n: int) -> np.ndarray:
    """``uint32 [n]`` initialisation seeds of the trials of stage ``index``."""
    return np.random.SeedSequence([int(seed), int(index), 0x1417]).generate_state(n) & np.uint32(0x7FFFFFFF)


def single_rung_stages(num_trials: int, epochs: int) -> list[Bracket]:
    stages = []
    left = num_trials
    while left > 0:
        n = min(left, MAX_STAGE_TRIALS)
        stages.append(Bracket(0, (Rung(n, epochs, 0),)))
        left -= n
    return stages


class Strategy:
    """Base class. Subclasses set ``name`` and ``max_epochs`` and implement the two methods."""

    name = "strategy"
    max_epochs: int
    #: True when no stage's configurations depend on an earlier stage's results (``configs`` ignores
    #: ``history``) and the stages are brackets worth running together: ``vtune.tune`` may then train them
    #: in one program, side by side (see ``vtune.engine.milestones``). Hyperband's brackets are.
    independent_stages = False

    def stages(self, space) -> list[Bracket]:
        """Every stage this strategy will run, in order (sizes must not depend on results)."""
        raise TypeError(f"{type(self).__name__} does not define stages()")

    def configs(self, index: int, space, seed: int, history: Sequence[Mapping[str, Any]]) -> list[dict]:
        """The configurations of stage ``index``; ``history`` holds the trial records of earlier stages."""
        raise TypeError(f"{type(self).__name__} does not define configs()")

    def to_json(self) -> dict:
        return {"name": self.name, **{k: v for k, v in vars(self).items() if not k.startswith("_")}}
