"""Crash-safe search state: after every stage, ``out/checkpoint/{state.json,best.npz}`` are replaced atomically.

``state.json`` holds the settings' fingerprint, the finished trials, the number of finished stages and the
best (score, tie-break, stage, trial); ``best.npz`` holds the best member's state as plain arrays (``np.load`` with
``allow_pickle=False``: loading never executes anything). The JSON names the SHA-256 of the npz it belongs
to, so a pair torn apart by a crash or edited by hand is detected and refused with a clear error.
"""

from __future__ import annotations

import hashlib
import io as _io
import json
import math
import pathlib

import jax
import numpy as np

from vtune import io

CHECKPOINT_FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (damaged, edited, or from a different search)."""


def _floats_in(records):
    for t in records:
        t["curve"] = [math.nan if v is None else float(v) for v in t["curve"]]
        for r in t["rungs"]:
            r["val_score"] = -math.inf if r["val_score"] is None else float(r["val_score"])
    return records


class Checkpoint:
    def __init__(self, out, fingerprint: str):
        self.dir = pathlib.Path(out) / "checkpoint"
        self.fingerprint = fingerprint

    @property
    def exists(self) -> bool:
        return (self.dir / "state.json").is_file()

    def save(self, trials, stages_done: int, best, model_epochs: int) -> None:
        leaves = jax.tree.leaves(best["member"])
        buf = _io.BytesIO()
        np.savez(buf, **{f"leaf_{i}": np.asarray(x) for i, x in enumerate(leaves)})
        blob = buf.getvalue()
        io.write_bytes(self.dir / "best.npz", blob)
        io.write_json(self.dir / "state.json", {
            "format": CHECKPOINT_FORMAT,
            "fingerprint": self.fingerprint,
            "stages_done": stages_done,
            "model_epochs": model_epochs,
            "best": {"score": best["score"], "tiebreak": best["tiebreak"], "stage": best["stage"],
                     "trial": best["trial"]},
            "best_sha256": hashlib.sha256(blob).hexdigest(),
            "trials": trials,
        })

    def load(self, setup):
        """The saved state, or None when there is none; raises CheckpointError when it cannot be used."""
        if not self.exists:
            return None
        path = self.dir / "state.json"
        try:
            obj = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise CheckpointError(f"{path} is damaged ({err}); delete {self.dir} to start over") from None
        if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{path} is not a vtune checkpoint of format {CHECKPOINT_FORMAT}")
        if obj.get("fingerprint") != self.fingerprint:
            raise CheckpointError(
                f"{self.dir.parent} holds a checkpoint of a different search (other space, strategy, seed or "
                "data); use a new --out folder or delete that one")
        try:
            blob = (self.dir / "best.npz").read_bytes()
        except OSError as err:
            raise CheckpointError(f"{self.dir / 'best.npz'} is missing ({err}); delete {self.dir} to start over") from None
        if hashlib.sha256(blob).hexdigest() != obj.get("best_sha256"):
            raise CheckpointError(f"{self.dir / 'best.npz'} does not match state.json (damaged or edited); "
                                  f"delete {self.dir} to start over")
        try:
            with np.load(_io.BytesIO(blob), allow_pickle=False) as npz:
                arrays = [npz[f"leaf_{i}"] for i in range(len(npz.files))]
        except (ValueError, KeyError, OSError) as err:
            raise CheckpointError(f"{self.dir / 'best.npz'} is damaged: {err}") from None
        template = _member_template(setup)
        leaves, treedef = jax.tree.flatten(template)
        if len(leaves) != len(arrays) or any(np.shape(a) != tuple(t.shape) for a, t in zip(arrays, leaves)):
            raise CheckpointError(f"{self.dir / 'best.npz'} does not fit this search's model; delete {self.dir}")
        member = jax.tree.unflatten(treedef, [a.astype(t.dtype) for a, t in zip(arrays, leaves)])
        best = dict(obj["best"])
        best["score"] = -math.inf if best["score"] is None else float(best["score"])
        best["tiebreak"] = -math.inf if best.get("tiebreak") is None else float(best["tiebreak"])
        best["member"] = member
        try:
            trials = _floats_in(obj["trials"])
            return {"trials": trials, "stages_done": int(obj["stages_done"]), "best": best,
                    "model_epochs": int(obj["model_epochs"])}
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{path} is damaged ({err}); delete {self.dir} to start over") from None


def _member_template(setup):
    """Shapes and dtypes of one member's state (no computation: ``jax.eval_shape``)."""
    config = setup.space.sample(1, seed=0)
    hp = setup.encode(config, [0], setup.max_epochs)
    stacked = jax.eval_shape(setup.trainable.init, hp)
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape[1:], s.dtype), stacked)
