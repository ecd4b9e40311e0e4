"""The canonical hyperparameter names, their defaults and their legal values.

One table serves Python, the JSON space files, ``results.json`` and the CLI, so a name means the same
thing everywhere. A configuration is a plain ``dict`` from these names to values; anything a
configuration leaves out takes the default below.

Numbers that differ per member are *data* (arrays with a leading population axis ``[P]``); only the
choices that fix shapes (``num_layers`` and ``units`` bound the padded geometry, ``batch_size`` sets the
micro-batch) are looked at on the host, and even those become arrays so that a new value never
recompiles a program of the same geometry.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

OPTIMIZERS = (
    "sgd",
    "momentum",
    "nesterov",
    "rmsprop",
    "adam",
    "adamw",
    "adagrad",
    "adadelta",
    "adamax",
    "nadam",
)
ACTIVATIONS = ("relu", "tanh", "sigmoid", "elu", "gelu", "leaky_relu", "identity")
INITS = (
    "uniform",
    "glorot_uniform",
    "glorot_normal",
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "lecun_uniform",
)
SCHEDULES = ("constant", "exponential", "inverse_time", "step", "cosine", "warmup_cosine", "sgdr")
LOSSES = ("cross_entropy", "binary_cross_entropy", "mse", "mae", "huber")
TASK_LOSSES = {
    "classification": ("cross_entropy",),
    "binary": ("binary_cross_entropy",),
    "regression": ("mse", "mae", "huber"),
}
DEFAULT_LOSS = {"classification": "cross_entropy", "binary": "binary_cross_entropy", "regression": "mse"}

#: Epsilon each optimizer uses when the configuration names none (optax's defaults).
DEFAULT_EPS = {
    "sgd": 1e-8,
    "momentum": 1e-8,
    "nesterov": 1e-8,
    "rmsprop": 1e-8,
    "adam": 1e-8,
    "adamw": 1e-8,
    "adagrad": 1e-7,
    "adadelta": 1e-6,
    "adamax": 1e-8,
    "nadam": 1e-8,
}

#: The largest number of hidden layers a configuration may ask for; ``units_1`` .. ``units_4``.
MAX_LAYERS = 4

#: name -> (kind, default, legal values or (low, high) bounds, meaning). ``kind`` is one of
#: "float", "int", "bool", "choice". Bounds are inclusive unless the meaning says otherwise.
HPARAMS: dict[str, tuple[str, Any, Any, str]] = {
    "learning_rate": ("float", 1e-3, (0.0, math.inf), "initial step size lr0 (> 0)"),
    "optimizer": ("choice", "adam", OPTIMIZERS, "update rule"),
    "momentum": (
        "float",
        0.9,
        (0.0, 1.0),
        "beta for momentum/nesterov SGD and beta1 for adam, adamw, adamax, nadam; in [0, 1)",
    ),
    "beta2": ("float", 0.999, (0.0, 1.0), "second-moment decay of adam, adamw, adamax, nadam; in [0, 1)"),
    "rho": ("float", 0.9, (0.0, 1.0), "squared-gradient decay of rmsprop and adadelta; in [0, 1)"),
    "eps": ("float", None, (0.0, math.inf), "denominator epsilon (> 0); default: the optimizer's own"),
    "nesterov": ("bool", False, (False, True), "with optimizer 'momentum': use Nesterov's update"),
    "num_layers": ("int", 2, (1, MAX_LAYERS), "number of hidden layers"),
    "units": ("int", 64, (1, 1 << 16), "units of every hidden layer (units_i overrides layer i)"),
    **{
        f"units_{i}": ("int", None, (1, 1 << 16), f"units of hidden layer {i} (default: units)")
        for i in range(1, MAX_LAYERS + 1)
    },
    "activation": ("choice", "relu", ACTIVATIONS, "hidden-layer activation"),
    "init": ("choice", "glorot_uniform", INITS, "weight initialisation (biases start at zero)"),
    "init_scale": ("float", 0.05, (0.0, math.inf), "a of init 'uniform' (weights ~ U(-a, a))"),
    "dropout": ("float", 0.0, (0.0, 1.0), "dropout rate on hidden activations; in [0, 1)"),
    "weight_decay": (
        "float",
        0.0,
        (0.0, math.inf),
        "L2 penalty lambda on weights (adamw: decoupled decay, as optax.adamw)",
    ),
    "batch_size": ("int", 32, (1, 1 << 20), "mini-batch size (a power of two is usual)"),
    "schedule": ("choice", "constant", SCHEDULES, "learning-rate schedule; time t counts epochs"),
    "decay_rate": ("float", 0.1, (0.0, math.inf), "k of exponential lr0*exp(-k t); d of inverse_time lr0/(1+d t)"),
    "step_factor": ("float", 0.5, (0.0, 1.0), "gamma of step: lr0 * gamma**floor(t / step_epochs)"),
    "step_epochs": ("float", 10.0, (0.0, math.inf), "epochs between drops of step (> 0)"),
    "warmup_epochs": ("float", 1.0, (0.0, math.inf), "linear warm-up length of warmup_cosine"),
    "cosine_epochs": ("float", None, (0.0, math.inf), "cosine horizon T (> 0); default: the run's max epochs"),
    "restart_epochs": ("float", 10.0, (0.0, math.inf), "first period T0 of sgdr (> 0)"),
    "restart_mult": ("float", 1.0, (1.0, math.inf), "period multiplier T_mult of sgdr (>= 1)"),
    "min_lr_ratio": ("float", 0.0, (0.0, 1.0), "cosine/sgdr floor alpha as a fraction of lr0"),
    "loss": ("choice", None, LOSSES, "training loss; default: the task's (cross_entropy, binary_cross_entropy, mse)"),
    "huber_delta": ("float", 1.0, (0.0, math.inf), "delta of the huber loss (> 0)"),
    "patience": ("int", 0, (0, 1 << 20), "early stopping: epochs without improvement before a member stops (0: off)"),
    "min_delta": ("float", 0.0, (0.0, math.inf), "early stopping: smallest improvement that counts"),
}

NAMES = tuple(HPARAMS)


def check_name(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` is a canonical hyperparameter name."""
    if not isinstance(name, str):
        raise TypeError(f"hyperparameter names must be strings, got {name!r}")
    if name not in HPARAMS:
        close = [n for n in NAMES if n.startswith(name[:3])] if name else []
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(f"unknown hyperparameter {name!r}{hint}; known: {', '.join(NAMES)}")


def check_value(name: str, value: Any) -> Any:
    """Check one value of hyperparameter ``name``; return it normalised (bool/int/float/str).

    Raises ``ValueError``/``TypeError`` naming the field and the value.
    """
    check_name(name)
    kind, default, legal, meaning = HPARAMS[name]
    if value is None and default is None:
        return None
    if kind == "choice":
        if not isinstance(value, str) or value not in legal:
            raise ValueError(f"{name}={value!r} is not one of {', '.join(legal)}")
        return value
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        raise TypeError(f"{name}={value!r} must be true or false")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}={value!r} must be a number")
    if not math.isfinite(value):
        raise ValueError(f"{name}={value!r} must be finite")
    low, high = legal
    if kind == "int":
        if float(value) != int(value):
            raise TypeError(f"{name}={value!r} must be an integer")
        value = int(value)
        if not low <= value <= high:
            raise ValueError(f"{name}={value!r} is outside [{low}, {high}]")
        return value
    value = float(value)
    open_high = high == 1.0 and name not in ("step_factor", "min_lr_ratio")
    positive = name in ("learning_rate", "eps", "step_epochs", "cosine_epochs", "restart_epochs", "huber_delta")
    if value < low or value > high or (open_high and value >= high) or (positive and value <= 0):
        lo = "(" if positive else "["
        hi = ")" if open_high else "]"
        raise ValueError(f"{name}={value!r} is outside {lo}{low}, {high}{hi}")
    return value


def complete_config(config: Mapping[str, Any], *, task: str = "classification", max_epochs: int | None = None) -> dict:
    """Fill a configuration's missing names with defaults and check every value.

    The result names every hyperparameter the engine reads; ``units_i`` are resolved for every layer up
    to ``MAX_LAYERS`` and ``eps``/``loss``/``cosine_epochs`` get their context-dependent defaults.
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"a configuration must be a mapping of names to values, got {type(config).__name__}")
    out: dict[str, Any] = {}
    for name, value in config.items():
        out[name] = check_value(name, value)
    for name, (kind, default, _, _) in HPARAMS.items():
        if out.get(name) is None:
            out[name] = default
    if out["optimizer"] == "momentum" and out["nesterov"]:
        out["optimizer"] = "nesterov"
    if out["eps"] is None:
        out["eps"] = DEFAULT_EPS[out["optimizer"]]
    if out["loss"] is None:
        out["loss"] = DEFAULT_LOSS[task]
    elif out["loss"] not in TASK_LOSSES[task]:
        raise ValueError(
            f"loss={out['loss']!r} does not fit a {task} task; use one of {', '.join(TASK_LOSSES[task])}"
        )
    if out["cosine_epochs"] is None:
        out["cosine_epochs"] = float(max_epochs) if max_epochs else 100.0
    for i in range(1, MAX_LAYERS + 1):
        if out[f"units_{i}"] is None:
            out[f"units_{i}"] = out["units"]
    return out
