"""Learning-rate schedules as pure ``jnp`` functions of ``(t, per-member parameters)``.

optax's schedule *constructors* branch in Python on their arguments, so they cannot take a traced,
per-member value (a population where every member has its own decay rate). Here every schedule is one
closed-form expression of the time ``t`` and the member's parameters, and the member's ``schedule`` id picks
among them with :func:`vtune.choose.choose` — a member alone evaluates its own formula; under ``vmap`` every
member evaluates the few scalar formulas, which costs nothing next to a matrix product.

Time ``t`` counts **epochs** (updates applied / updates per epoch, a float), so that one schedule means
the same thing for members with different batch sizes. The learning rate used for an update is the
schedule at the time *before* that update (optax's convention: the first update uses ``lr(0)``).

=================  ===========================================================================
``constant``       lr0
``exponential``    lr0 · exp(−k·t)                                   (k = ``decay_rate``)
``inverse_time``   lr0 / (1 + d·t)   (the classic Keras ``decay``)    (d = ``decay_rate``)
``step``           lr0 · γ^⌊t / s⌋                         (γ = ``step_factor``, s = ``step_epochs``)
``cosine``         lr0 · (α + (1−α)·½(1 + cos(π·min(t, T)/T)))   (T = ``cosine_epochs``, α = ``min_lr_ratio``)
``warmup_cosine``  lr0 · t / w for t < w, then cosine from lr0 over [w, T]   (w = ``warmup_epochs``)
``sgdr``           cosine warm restarts: period T0·m^i for cycle i   (T0 = ``restart_epochs``, m = ``restart_mult``)
=================  ===========================================================================
"""

from __future__ import annotations

from typing import Mapping, Sequence

import jax.numpy as jnp

from vtune.choose import choose
from vtune.hparams import SCHEDULES

SCHEDULE_IDS = {name: i for i, name in enumerate(SCHEDULES)}


def _cosine(lr0, frac, alpha):
    frac = jnp.clip(frac, 0.0, 1.0)
    return lr0 * (alpha + (1.0 - alpha) * 0.5 * (1.0 + jnp.cos(jnp.pi * frac)))


def _safe_div(a, b):
    return a / jnp.where(b > 0, b, 1.0)


def schedule_value(name: str, t, hp: Mapping[str, jnp.ndarray]):
    """The learning rate of schedule ``name`` at time ``t`` (epochs) for parameters ``hp`` (scalars)."""
    lr0 = hp["learning_rate"]
    alpha = hp["min_lr_ratio"]
    if name == "constant":
        return lr0 * jnp.ones_like(t)
    if name == "exponential":
        return lr0 * jnp.exp(-hp["decay_rate"] * t)
    if name == "inverse_time":
        return lr0 / (1.0 + hp["decay_rate"] * t)
    if name == "step":
        return lr0 * hp["step_factor"] ** jnp.floor(_safe_div(t, hp["step_epochs"]))
    if name == "cosine":
        return _cosine(lr0, _safe_div(t, hp["cosine_epochs"]), alpha)
    if name == "warmup_cosine":
        w = hp["warmup_epochs"]
        warm = lr0 * jnp.where(w > 0, _safe_div(t, w), 1.0)
        decay = _cosine(lr0, _safe_div(t - w, hp["cosine_epochs"] - w), alpha)
        return jnp.where(t < w, warm, decay)
    if name == "sgdr":
        t0 = hp["restart_epochs"]
        m = hp["restart_mult"]
        x = _safe_div(t, t0)
        geometric = m > 1.0
        m_safe = jnp.where(geometric, m, 2.0)
        cycle = jnp.where(geometric, jnp.floor(jnp.log1p(x * (m_safe - 1.0)) / jnp.log(m_safe)), jnp.floor(x))
        start = jnp.where(geometric, t0 * (m_safe**cycle - 1.0) / (m_safe - 1.0), t0 * cycle)
        period = jnp.where(geometric, t0 * m_safe**cycle, t0)
        return _cosine(lr0, _safe_div(t - start, period), alpha)
    raise ValueError(f"unknown schedule {name!r}; known: {', '.join(SCHEDULES)}")


def learning_rate(t, hp: Mapping[str, jnp.ndarray], *, schedules: Sequence[str] = SCHEDULES):
    """Per-member learning rate at time ``t`` (epochs): the member's ``hp["schedule"]`` id picks the formula.

    ``schedules`` (static) lists the schedules that can occur, so only those formulas are built.

    >>> import jax.numpy as jnp
    >>> hp = dict(learning_rate=jnp.float32(0.1), schedule=jnp.int32(SCHEDULE_IDS["inverse_time"]),
    ...           decay_rate=jnp.float32(1.0), min_lr_ratio=jnp.float32(0.0))
    >>> float(learning_rate(jnp.float32(1.0), hp, schedules=("inverse_time",)))
    0.05
    """
    return choose(hp["schedule"], SCHEDULE_IDS, schedules, lambda name: lambda t: schedule_value(name, t, hp), t)
