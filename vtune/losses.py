"""Losses and validation metrics, per member, selected by a traced ``loss`` id.

Outputs are ``[B, C]`` logits (classification: ``C`` classes; binary: one logit) or ``[B, T]``
predictions (regression). Targets are ``int32 [B]`` class indices or ``float32 [B, T]``.
Every score is "higher is better": accuracy for classification and binary tasks, R² for regression.
"""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
import optax

from vtune.choose import choose
from vtune.hparams import LOSSES

LOSS_IDS = {name: i for i, name in enumerate(LOSSES)}
METRICS = {"classification": "accuracy", "binary": "accuracy", "regression": "r2"}


def loss_value(name: str, out, y, huber_delta):
    """Mean loss ``name`` of outputs ``out`` against targets ``y`` (one member)."""
    if name == "cross_entropy":
        return optax.softmax_cross_entropy_with_integer_labels(out, y).mean()
    if name == "binary_cross_entropy":
        return optax.sigmoid_binary_cross_entropy(out[:, 0], y.astype(out.dtype)).mean()
    if name == "mse":
        return jnp.mean((out - y) ** 2)
    if name == "mae":
        return jnp.mean(jnp.abs(out - y))
    if name == "huber":
        return optax.huber_loss(out, y, delta=huber_delta).mean()
    raise ValueError(f"unknown loss {name!r}; known: {', '.join(LOSSES)}")


def loss_fn(out, y, loss_id, huber_delta, *, losses: Sequence[str]):
    """Mean loss of the member's own ``loss_id``; only the static ``losses`` are built."""
    return choose(loss_id, LOSS_IDS, losses, lambda name: lambda out, y: loss_value(name, out, y, huber_delta), out, y)


def score(task: str, out, y, xp=jnp):
    """Validation score (higher is better) of outputs ``out [N, C]`` against ``y``: accuracy or R²
    (``xp=numpy`` on the host: see :func:`vtune.model.forward_host`)."""
    if task == "classification":
        return xp.mean(xp.argmax(out, axis=-1) == y)
    if task == "binary":
        return xp.mean((out[:, 0] > 0) == (y > 0))
    if task == "regression":
        ss_res = xp.sum((y - out) ** 2, axis=0)
        ss_tot = xp.sum((y - y.mean(axis=0, keepdims=True)) ** 2, axis=0)
        r2 = 1.0 - ss_res / xp.where(ss_tot > 0, ss_tot, 1.0)
        return xp.mean(r2)
    raise ValueError(f"unknown task {task!r}")


def task_loss(task: str, out, y, *, reduce: bool = True):
    """The task's reference loss, the same for every member whatever loss it trains with: softmax
    cross-entropy (classification), sigmoid cross-entropy (binary) or mean squared error (regression).
    Selection uses it to break ties between equal validation scores. ``reduce=False`` gives one per row."""
    if task == "classification":
        rows = optax.softmax_cross_entropy_with_integer_labels(out, y)
    elif task == "binary":
        rows = optax.sigmoid_binary_cross_entropy(out[:, 0], y.astype(out.dtype))
    elif task == "regression":
        rows = jnp.mean((out - y) ** 2, axis=-1)
    else:
        raise ValueError(f"unknown task {task!r}")
    return jnp.mean(rows) if reduce else rows
