"""Hyperband and successive-halving bracket plans (Li et al., JMLR 2018, Algorithm 1).

``s_max = ⌊log_η R⌋`` is computed with integer arithmetic (``math.log(243, 3)`` is 4.999…, which would
silently drop a bracket). Bracket ``s`` (from ``s_max`` down to 0) starts ``n = ⌈(B/R)·η^s/(s+1)⌉``
configurations, ``B = (s_max+1)·R``, at ``r = R·η^(−s)`` epochs; rung ``i`` keeps ``n_i = ⌊n·η^(−i)⌋``
configurations at ``r_i = r·η^i`` epochs and passes the top ``⌊n_i/η⌋`` on. Survivors continue from their
weights, so rung ``i`` trains each of its members for ``r_i − r_{i−1}`` more epochs.

The paper's Table 1 (R=81, η=3) does not follow its own formula for s = 3, 2, 1 (it shows 27, 9, 6
first-rung configurations where the formula gives 34, 15, 8). The formula is the default;
``sizing="table"`` reproduces the table (see :func:`table_first_rung`).
Epoch counts are rounded to integers (``r_i`` is at least 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


def int_log(r: int, eta: int) -> int:
    """``⌊log_eta r⌋`` by integer arithmetic."""
    s = 0
    while eta ** (s + 1) <= r:
        s += 1
    return s


def _check(max_epochs, eta, min_epochs=1):
    for name, value, low in (("max_epochs", max_epochs, 1), ("eta", eta, 2), ("min_epochs", min_epochs, 1)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an integer, got {value!r}")
        if value < low:
            raise ValueError(f"{name} must be at least {low}, got {name}={value}")


@dataclass(frozen=True)
class Rung:
    """One rung: ``num_configs`` members trained up to ``epochs`` in total; ``keep`` pass on."""

    num_configs: int
    epochs: int
    keep: int


@dataclass(frozen=True)
class Bracket:
    """One successive-halving bracket."""

    s: int
    rungs: tuple[Rung, ...]

    @property
    def num_configs(self) -> int:
        return self.rungs[0].num_configs

    @property
    def model_epochs(self) -> int:
        """Epochs trained by all members of this bracket (survivors continue, so increments add up)."""
        total, prev = 0, 0
        for rung in self.rungs:
            total += rung.num_configs * (rung.epochs - prev)
            prev = rung.epochs
        return total


@dataclass(frozen=True)
class Plan:
    """A list of brackets and the settings that made it."""

    max_epochs: int
    eta: int
    sizing: str
    brackets: tuple[Bracket, ...] = field(default_factory=tuple)

    @property
    def model_epochs(self) -> int:
        return sum(b.model_epochs for b in self.brackets)

    @property
    def num_configs(self) -> int:
        return sum(b.num_configs for b in self.brackets)

    def table(self) -> str:
        """The bracket table as text: one column pair (configs, epochs) per bracket."""
        header = "  ".join(f"s={b.s:<2d} n_i  r_i" for b in self.brackets)
        lines = [f"Hyperband plan: R={self.max_epochs}, eta={self.eta}, sizing={self.sizing}", "rung  " + header]
        depth = max(len(b.rungs) for b in self.brackets)
        for i in range(depth):
            cells = []
            for b in self.brackets:
                if i < len(b.rungs):
                    cells.append(f"     {b.rungs[i].num_configs:4d} {b.rungs[i].epochs:4d}")
                else:
                    cells.append(" " * 14)
            lines.append(f"{i:4d}  " + "  ".join(cells))
        lines.append(f"configurations: {self.num_configs}, model-epochs: {self.model_epochs}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {
            "max_epochs": self.max_epochs,
            "eta": self.eta,
            "sizing": self.sizing,
            "brackets": [
                {"s": b.s, "rungs": [{"configs": r.num_configs, "epochs": r.epochs, "keep": r.keep} for r in b.rungs]}
                for b in self.brackets
            ],
            "model_epochs": self.model_epochs,
        }


def successive_halving(n: int, r: float, eta: int, num_rungs: int, s: int = 0) -> Bracket:
    """One bracket of ``num_rungs`` rungs: ``⌊n·η^(−i)⌋`` configs at ``r·η^i`` epochs."""
    rungs = []
    for i in range(num_rungs):
        n_i = n // eta**i
        r_i = max(1, int(round(r * eta**i)))
        keep = n // eta ** (i + 1) if i + 1 < num_rungs else 0
        rungs.append(Rung(n_i, r_i, keep))
    return Bracket(s, tuple(rungs))


def table_first_rung(s: int, s_max: int, eta: int) -> int:
    """First-rung size as the paper's Table 1 prints it: ``max(η^s, ⌊(s_max+1)/(s+1)⌋·η^s)``.

    For R=81, η=3 this gives 81, 27, 9, 6, 5 for s = 4..0, every column of the table.
    """
    return max(eta**s, ((s_max + 1) // (s + 1)) * eta**s)


def hyperband(max_epochs: int, eta: int = 3, *, sizing: str = "formula") -> Plan:
    """The Hyperband plan for resource ``R = max_epochs`` and reduction ``eta``.

    >>> [b.num_configs for b in hyperband(81, 3).brackets]
    [81, 34, 15, 8, 5]
    >>> [b.num_configs for b in hyperband(81, 3, sizing="table").brackets]
    [81, 27, 9, 6, 5]
    """
    _check(max_epochs, eta)
    if sizing not in ("formula", "table"):
        raise ValueError(f"sizing must be 'formula' or 'table', got sizing={sizing!r}")
    s_max = int_log(max_epochs, eta)
    budget = (s_max + 1) * max_epochs
    brackets = []
    for s in range(s_max, -1, -1):
        if sizing == "formula":
            # n = ⌈(B/R)·η^s/(s+1)⌉ in exact integer arithmetic.
            n = -(-(budget * eta**s) // (max_epochs * (s + 1)))
        else:
            n = table_first_rung(s, s_max, eta)
        r = max_epochs / eta**s
        brackets.append(successive_halving(n, r, eta, s + 1, s))
    return Plan(max_epochs, eta, sizing, tuple(brackets))


def halving(num_configs: int, max_epochs: int, eta: int = 3, *, min_epochs: int = 1) -> Plan:
    """A single successive-halving bracket from ``min_epochs`` to ``max_epochs``.

    Rungs: ``min_epochs·η^i`` epochs while that is at most ``max_epochs``; ``⌊n·η^(−i)⌋`` configs.
    """
    _check(max_epochs, eta, min_epochs)
    if isinstance(num_configs, bool) or not isinstance(num_configs, int) or num_configs < 1:
        raise ValueError(f"num_configs must be a positive integer, got {num_configs!r}")
    if min_epochs > max_epochs:
        raise ValueError(f"min_epochs={min_epochs} exceeds max_epochs={max_epochs}")
    num_rungs = int_log(max_epochs // min_epochs, eta) + 1
    # Never keep fewer than one configuration in the last rung.
    num_rungs = min(num_rungs, int_log(num_configs, eta) + 1)
    bracket = successive_halving(num_configs, min_epochs, eta, num_rungs, num_rungs - 1)
    return Plan(max_epochs, eta, "halving", (bracket,))


def single_rung(num_configs: int, epochs: int) -> Plan:
    """One rung, no selection: grid and random search."""
    _check(epochs, 2)
    return Plan(epochs, 2, "single", (Bracket(0, (Rung(num_configs, epochs, 0),)),))
