"""What a search returns: every trial's story, the best configuration and its trained model.

``Result.save(dir)`` writes ``results.json``, ``trials.csv``, ``curves.png`` and ``best_model/``;
``vtune.load(dir)`` reads them back (no pickle anywhere: JSON and msgpack via ``flax.serialization``).
"""

from __future__ import annotations

import json
import math
import os
import pathlib
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import jax
import numpy as np
from flax import serialization

from vtune import io, report

RESULTS_FORMAT = 1


def _version() -> str:
    from vtune import __version__

    return __version__


class Model:
    """A trained MLP member: flat padded weights (see :class:`vtune.model.Layout`), its hyperparameters
    and the data set's scaler and labels.

    ``predict(x_raw)`` scales raw feature rows the way the training data were scaled and returns class
    labels (classification), or predictions ``[N, T]`` (regression).
    """

    def __init__(self, params, hp: Mapping[str, Any], spec: Mapping[str, Any]):
        self.params = jax.tree.map(np.asarray, params)
        self.hp = {k: np.asarray(v) for k, v in hp.items()}
        self.spec = dict(spec)

    @property
    def task(self) -> str:
        return self.spec["task"]

    def _outputs(self, x):
        # One model, evaluated once or a few times: numpy, no compile (see vtune.model.forward_host).
        from vtune.model import Layout, forward_host

        return forward_host(self.params, self.hp, x, Layout(*self.spec["layout"]))

    def _scaled(self, x, scaled: bool):
        x = np.asarray(x, np.float32)
        if x.ndim != 2 or x.shape[1] != self.spec["num_features"]:
            raise ValueError(f"x must have shape [N, {self.spec['num_features']}], got {x.shape}")
        if not scaled:
            x = (x - np.asarray(self.spec["shift"], np.float32)) / np.asarray(self.spec["scale"], np.float32)
        return x

    def decision_function(self, x, *, scaled: bool = False) -> np.ndarray:
        """Raw outputs ``[N, C]`` (logits or regression values)."""
        return self._outputs(self._scaled(x, scaled))

    def predict(self, x, *, scaled: bool = False) -> np.ndarray:
        """Class labels ``[N]`` (classification, binary) or predictions ``[N, T]`` (regression)."""
        out = self.decision_function(x, scaled=scaled)
        if self.task == "regression":
            return out
        idx = np.argmax(out, -1) if self.task == "classification" else (out[:, 0] > 0).astype(np.int64)
        classes = self.spec.get("classes")
        return np.asarray(classes)[idx] if classes is not None else idx

    def predict_proba(self, x, *, scaled: bool = False) -> np.ndarray:
        """Class probabilities ``[N, C]`` (classification: softmax; binary: ``[1−p, p]``)."""
        out = self.decision_function(x, scaled=scaled)
        if self.task == "classification":
            e = np.exp(out - out.max(axis=-1, keepdims=True))
            return e / e.sum(axis=-1, keepdims=True)
        if self.task == "binary":
            from vtune.model import HOST_ACTIVATIONS

            p = HOST_ACTIVATIONS["sigmoid"](out[:, 0])
            return np.stack([1 - p, p], -1)
        raise ValueError("predict_proba needs a classification task, this model does regression")

    def save(self, directory) -> pathlib.Path:
        d = pathlib.Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        io.write_bytes(d / "params.msgpack", serialization.msgpack_serialize({"params": self.params, "hp": self.hp}))
        io.write_json(d / "model.json", self.spec)
        return d

    @classmethod
    def load(cls, directory) -> "Model":
        d = pathlib.Path(directory)
        for name in ("params.msgpack", "model.json"):
            if not (d / name).is_file():
                raise FileNotFoundError(f"{d / name} is missing: not a saved vtune model")
        try:
            spec = json.loads((d / "model.json").read_text())
            blob = serialization.msgpack_restore((d / "params.msgpack").read_bytes())
        except (ValueError, TypeError) as err:
            raise ValueError(f"{d} holds a damaged model file: {err}") from None
        return cls(blob["params"], blob["hp"], spec)


@dataclass
class Result:
    """The record of one search. ``trials`` are dicts: ``id, config, bracket, rungs [{epochs, val_score}],
    status (completed | pruned | diverged), curve`` (validation score after each epoch, NaN after divergence).
    """

    trials: list
    best: dict  # {"id", "config", "val_score", "test_score"}
    metric: str
    task: str
    strategy: dict
    seed: int
    model_epochs: int
    planned_model_epochs: int
    wall_s: float
    compile_s: float
    num_compiles: int
    data: dict = field(default_factory=dict)
    space: dict = field(default_factory=dict)
    status: str = "ok"
    message: str = ""
    model: Model | None = None
    best_state: Any = None
    version: str = field(default_factory=_version)

    # ------------------------------------------------------------------------------------------ access
    @property
    def best_config(self) -> dict | None:
        return self.best.get("config")

    @property
    def best_val_score(self) -> float | None:
        return self.best.get("val_score")

    @property
    def best_test_score(self) -> float | None:
        return self.best.get("test_score")

    @property
    def num_diverged(self) -> int:
        return sum(t["status"] == "diverged" for t in self.trials)

    def curves(self) -> np.ndarray:
        """``[num_trials, max_epochs]`` validation curves (NaN where a trial did not train)."""
        width = max((len(t["curve"]) for t in self.trials), default=0)
        out = np.full((len(self.trials), width), np.nan)
        for i, t in enumerate(self.trials):
            out[i, : len(t["curve"])] = np.asarray(t["curve"], float)
        return out

    def predict(self, x, **kw) -> np.ndarray:
        """Predictions of the best model for raw feature rows ``x [N, D]`` (no retraining)."""
        if self.model is None:
            raise ValueError("this result has no MLP model to predict with (custom trainable or all diverged)")
        return self.model.predict(x, **kw)

    # ------------------------------------------------------------------------------------------ files
    def summary(self) -> dict:
        """The ``results.json`` object."""
        return {
            "format": RESULTS_FORMAT,
            "version": self.version,
            "status": self.status,
            "message": self.message,
            "metric": self.metric,
            "task": self.task,
            "seed": self.seed,
            "strategy": self.strategy,
            "data": self.data,
            "space": self.space,
            "best": self.best,
            "budget": {"model_epochs": self.model_epochs, "planned_model_epochs": self.planned_model_epochs},
            "timing": {"wall_s": self.wall_s, "compile_s": self.compile_s, "num_compiles": self.num_compiles},
            "num_trials": len(self.trials),
            "num_diverged": self.num_diverged,
            "trials": [
                {k: t[k] for k in ("id", "config", "bracket", "rungs", "status", "curve")} for t in self.trials
            ],
        }

    def save(self, directory) -> pathlib.Path:
        """Write ``results.json``, ``trials.csv``, ``curves.png`` and ``best_model/`` under ``directory``."""
        d = pathlib.Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        if self.model is not None:
            self.model.save(d / "best_model")
            io.write_json(d / "best_model" / "config.json", self.best.get("config"))
        report.write_trials_csv(self.trials, d / "trials.csv")
        report.plot_curves(self.trials, d / "curves.png", best_id=self.best.get("id"), metric=self.metric,
                           title=f"{self.strategy.get('name', '')} on {self.data.get('name', '')}")
        io.write_json(d / "results.json", self.summary())
        return d


def load(directory) -> Result:
    """Read a saved :class:`Result` (``results.json`` and, when present, ``best_model/``)."""
    d = pathlib.Path(directory)
    path = d / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {d} is not a vtune results folder")
    try:
        obj = json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(obj, dict) or obj.get("format") != RESULTS_FORMAT:
        raise ValueError(f"{path} is not a vtune results file of format {RESULTS_FORMAT}")
    trials = []
    for t in obj["trials"]:
        t = dict(t)
        t["curve"] = [math.nan if v is None else v for v in t["curve"]]
        t["rungs"] = [{"epochs": r["epochs"], "val_score": -math.inf if r["val_score"] is None else r["val_score"]}
                      for r in t["rungs"]]
        trials.append(t)
    model = Model.load(d / "best_model") if (d / "best_model" / "model.json").is_file() else None
    return Result(
        trials=trials, best=obj["best"], metric=obj["metric"], task=obj["task"], strategy=obj["strategy"],
        seed=obj["seed"], model_epochs=obj["budget"]["model_epochs"],
        planned_model_epochs=obj["budget"]["planned_model_epochs"], wall_s=obj["timing"]["wall_s"],
        compile_s=obj["timing"]["compile_s"], num_compiles=obj["timing"]["num_compiles"], data=obj["data"],
        space=obj["space"], status=obj["status"], message=obj["message"], model=model, version=obj["version"],
    )
