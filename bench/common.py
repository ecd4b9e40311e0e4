"""The one task every tool in the search-speed benchmark solves: data, search space, budget, result.

Every peer (``bench/peers/*.py``) and vtune's own run read the same three things from here:

* **Data** — :func:`load_task`: ``digits`` (sklearn ``load_digits``, 1797 x 64, 10 classes) or ``large``
  (``make_classification(n_samples=20000, n_features=64, n_informative=32, n_classes=10,
  random_state=0)``), split 70/15/15 train/val/test, stratified, ``random_state=0``, standardised with a
  scaler fitted on the training split only, float32 features, int32 labels.
* **Space** — :data:`SPACE` and :func:`sample_config`: learning rate log-uniform [1e-4, 1e-1]; the
  optimizer's momentum coefficient reverse-log [0.9, 0.999] (``u ~ U(log(1-0.999), log(1-0.9))``,
  value ``1 - exp(u)``; it is beta for SGD+momentum, beta1 for Adam, rho for RMSprop); 1-3 hidden layers
  of the same width, units log-uniform 16-256; optimizer {momentum, adam, rmsprop}; activation {relu,
  tanh}; L2 weight decay log-uniform [1e-6, 1e-2] (the penalty ``lambda/2 * sum(W**2)`` over weight
  matrices, biases excluded, i.e. a gradient ``lambda * W``); dropout uniform [0, 0.5] on hidden
  activations; batch 64; softmax cross-entropy. Configurations are dicts keyed by vtune's canonical names
  (``vtune/hparams.py``).
* **Budget** — :func:`hyperband_brackets`: one Hyperband iteration (Li et al., JMLR 2018, Algorithm 1)
  with ``R = 27`` epochs and ``eta = 3``: 49 configurations and 357 model-epochs when survivors train on
  from their weights.

``bench/`` is never imported by the library; it imports nothing from ``vtune`` either.

Example::

    >>> task = load_task("digits")
    >>> task.x_train.shape, task.x_val.shape, task.x_test.shape
    ((1257, 64), (270, 64), (270, 64))
    >>> [[(r.num_configs, r.epochs) for r in b] for b in hyperband_brackets(27, 3)][1]
    [(12, 3), (4, 9), (1, 27)]
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import math
import os
import platform
import sys
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

TASKS = ("digits", "large")
BATCH_SIZE = 64
MAX_EPOCHS = 27  # Hyperband's R
ETA = 3  # Hyperband's eta
SMOKE_MAX_EPOCHS = 3  # --smoke: R = 3 gives 2 brackets, 5 configurations, 11 model-epochs
OPTIMIZERS = ("momentum", "adam", "rmsprop")  # vtune's canonical names: SGD+momentum, Adam, RMSprop
ACTIVATIONS = ("relu", "tanh")

#: The search space, one entry per dimension: (sampling, low, high) or ("choice", values).
#: "reverse_log" means 1 - loguniform(1 - high, 1 - low); "int_log" rounds a log-uniform draw over
#: [low - 0.5, high + 0.5] (Optuna's convention for ``suggest_int(..., log=True)``).
SPACE: dict[str, tuple] = {
    "learning_rate": ("log", 1e-4, 1e-1),
    "beta": ("reverse_log", 0.9, 0.999),
    "num_layers": ("int", 1, 3),
    "units": ("int_log", 16, 256),
    "optimizer": ("choice", OPTIMIZERS),
    "activation": ("choice", ACTIVATIONS),
    "weight_decay": ("log", 1e-6, 1e-2),
    "dropout": ("uniform", 0.0, 0.5),
}

#: The keys of every peer's result dict, in this order.
RESULT_KEYS = ("tool", "task", "wall_s", "model_epochs", "best_val_acc", "test_acc", "num_trials", "notes")

#: Packages whose versions go into every result file.
PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy", "scikit-learn", "optuna", "keras", "keras-tuner")


@dataclass(frozen=True)
class Task:
    """One classification task, already split and standardised.

    Attributes:
      name: "digits" or "large".
      x_train, x_val, x_test: float32 ``[N_split, D]`` features, standardised with train statistics.
      y_train, y_val, y_test: int32 ``[N_split]`` labels in ``[0, num_classes)``.
      num_classes: number of classes.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    @property
    def num_features(self) -> int:
        return int(self.x_train.shape[1])


class Rung(NamedTuple):
    """One rung of a Hyperband bracket: ``num_configs`` configurations trained to ``epochs`` in total."""

    num_configs: int
    epochs: int


def load_task(name: str) -> Task:
    """Load, split (70/15/15, stratified, ``random_state=0``) and standardise one benchmark task.

    Example::

        >>> load_task("large").x_train.shape
        (14000, 64)
    """
    from sklearn.datasets import load_digits, make_classification
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    if name == "digits":
        x, y = load_digits(return_X_y=True)
    elif name == "large":
        x, y = make_classification(
            n_samples=20000, n_features=64, n_informative=32, n_classes=10, random_state=0
        )
    else:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {name=!r}")
    x_train, x_rest, y_train, y_rest = train_test_split(x, y, test_size=0.30, stratify=y, random_state=0)
    x_val, x_test, y_val, y_test = train_test_split(
        x_rest, y_rest, test_size=0.50, stratify=y_rest, random_state=0
    )
    scaler = StandardScaler().fit(x_train)

    def prep(a: np.ndarray) -> np.ndarray:
        return scaler.transform(a).astype(np.float32)

    return Task(
        name=name,
        x_train=prep(x_train),
        y_train=y_train.astype(np.int32),
        x_val=prep(x_val),
        y_val=y_val.astype(np.int32),
        x_test=prep(x_test),
        y_test=y_test.astype(np.int32),
        num_classes=int(np.max(y)) + 1,
    )


def sample_config(rng: np.random.Generator) -> dict[str, Any]:
    """Draw one configuration from :data:`SPACE`, keyed by vtune's canonical hyperparameter names.

    The momentum coefficient lands in ``"momentum"`` for the momentum and adam optimizers (beta, beta1)
    and in ``"rho"`` for rmsprop; :func:`optimizer_beta` reads it back whichever it is.

    Example::

        >>> cfg = sample_config(np.random.default_rng(0))
        >>> sorted(cfg)[:3], cfg["batch_size"]
        (['activation', 'batch_size', 'dropout'], 64)
    """
    optimizer = OPTIMIZERS[int(rng.integers(len(OPTIMIZERS)))]
    beta = reverse_log_uniform(rng, *SPACE["beta"][1:])
    config = {
        "learning_rate": log_uniform(rng, *SPACE["learning_rate"][1:]),
        "optimizer": optimizer,
        "num_layers": int(rng.integers(SPACE["num_layers"][1], SPACE["num_layers"][2] + 1)),
        "units": int_log_uniform(rng, *SPACE["units"][1:]),
        "activation": ACTIVATIONS[int(rng.integers(len(ACTIVATIONS)))],
        "weight_decay": log_uniform(rng, *SPACE["weight_decay"][1:]),
        "dropout": float(rng.uniform(*SPACE["dropout"][1:])),
        "batch_size": BATCH_SIZE,
    }
    config["rho" if optimizer == "rmsprop" else "momentum"] = beta
    return config


def optimizer_beta(config: dict[str, Any]) -> float:
    """The momentum coefficient of a configuration: beta (momentum), beta1 (adam) or rho (rmsprop)."""
    return float(config["rho"] if config["optimizer"] == "rmsprop" else config["momentum"])


def log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """``exp(U(log low, log high))``."""
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def reverse_log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """``1 - exp(u)``, ``u ~ U(log(1 - high), log(1 - low))``: dense near ``high`` (e.g. 0.999)."""
    return float(1.0 - math.exp(rng.uniform(math.log(1.0 - high), math.log(1.0 - low))))


def int_log_uniform(rng: np.random.Generator, low: int, high: int) -> int:
    """An integer in ``[low, high]``, log-uniform: round(exp(U(log(low - 0.5), log(high + 0.5))))."""
    value = round(math.exp(rng.uniform(math.log(low - 0.5), math.log(high + 0.5))))
    return int(min(max(value, low), high))


def hyperband_brackets(max_epochs: int, eta: int) -> list[list[Rung]]:
    """The brackets of one Hyperband iteration (Li et al. 2018, Algorithm 1), largest ``s`` first.

    ``s_max = floor(log_eta R)`` by integer arithmetic; bracket ``s`` starts ``n = ceil((s_max + 1) /
    (s + 1) * eta**s)`` configurations at ``r = R * eta**-s`` epochs; rung ``i`` holds ``floor(n *
    eta**-i)`` configurations trained to ``r * eta**i`` epochs in total (rounded to the nearest integer
    when ``R`` is not a power of ``eta``). The top ``floor(n_i / eta)`` of a rung go on to the next.

    Example::

        >>> [len(b) for b in hyperband_brackets(27, 3)], hyperband_brackets(27, 3)[0][0]
        ([4, 3, 2, 1], Rung(num_configs=27, epochs=1))
    """
    if isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 1:
        raise ValueError(f"max_epochs must be a positive int, got {max_epochs=!r}")
    if isinstance(eta, bool) or not isinstance(eta, int) or eta < 2:
        raise ValueError(f"eta must be an int >= 2, got {eta=!r}")
    s_max = 0
    while eta ** (s_max + 1) <= max_epochs:
        s_max += 1
    brackets = []
    for s in range(s_max, -1, -1):
        n = -((-(s_max + 1) * eta**s) // (s + 1))  # ceil((s_max+1) * eta**s / (s+1)) in integers
        rungs = [
            Rung(num_configs=n // eta**i, epochs=max(1, round(max_epochs * eta ** (i - s))))
            for i in range(s + 1)
        ]
        brackets.append(rungs)
    return brackets


def hyperband_budget(max_epochs: int, eta: int) -> tuple[int, int]:
    """``(num_configs, model_epochs)`` of one Hyperband iteration whose survivors train on.

    Example::

        >>> hyperband_budget(27, 3)
        (49, 357)
    """
    num_configs = model_epochs = 0
    for rungs in hyperband_brackets(max_epochs, eta):
        num_configs += rungs[0].num_configs
        done = 0
        for rung in rungs:
            model_epochs += rung.num_configs * (rung.epochs - done)
            done = rung.epochs
    return num_configs, model_epochs


def disable_jax_compilation_cache() -> None:
    """Turn JAX's persistent compilation cache off for this process (call before importing jax).

    Peers must pay for every compilation on every run, as a user's fresh process would.
    """
    os.environ["JAX_ENABLE_COMPILATION_CACHE"] = "false"
    os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)
    if "jax" in sys.modules:
        import jax

        jax.config.update("jax_enable_compilation_cache", False)


def make_result(
    tool: str,
    task: str,
    *,
    wall_s: float,
    model_epochs: int,
    best_val_acc: float,
    test_acc: float,
    num_trials: int,
    notes: str,
    **extra: Any,
) -> dict[str, Any]:
    """The dict every peer's ``run`` returns (:data:`RESULT_KEYS` first, then any ``extra`` fields)."""
    result = {
        "tool": tool,
        "task": task,
        "wall_s": float(wall_s),
        "model_epochs": int(model_epochs),
        "best_val_acc": float(best_val_acc),
        "test_acc": float(test_acc),
        "num_trials": int(num_trials),
        "notes": notes,
    }
    result.update(extra)
    return result


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution in ``names`` (``None`` where it is not installed)."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


#: Vector extensions worth recording: they decide how fast XLA's and BLAS's kernels run.
VECTOR_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "asimd", "sve")


def parse_cpuinfo(text: str) -> dict[str, Any]:
    r"""Model, vendor, family/model numbers and vector extensions of the first CPU in a ``/proc/cpuinfo``
    text (x86 and Arm field names); fields the text lacks are left out.

    Example:
        >>> parse_cpuinfo("vendor_id : AuthenticAMD\ncpu family : 26\nmodel name : AMD EPYC\nflags : fpu avx2 avx512f")
        {'model': 'AMD EPYC', 'vendor': 'AuthenticAMD', 'family': '26', 'vector_extensions': ['avx2', 'avx512f']}
    """
    fields: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    info: dict[str, Any] = {}
    for key, name in (("model name", "model"), ("vendor_id", "vendor"), ("cpu family", "family"),
                      ("model", "model_number"), ("CPU implementer", "implementer"), ("CPU part", "part")):
        if fields.get(key):
            info[name] = fields[key]
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    if flags:
        info["vector_extensions"] = [f for f in VECTOR_FLAGS if f in flags]
    return info


def cpu_description() -> dict[str, Any]:
    """The CPU this runs on (``/proc/cpuinfo`` where there is one, else what ``platform`` knows): timings
    from different CPUs are not comparable, and a machine can change under the same name."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            info = parse_cpuinfo(fh.read())
    except OSError:
        info = {}
    info.setdefault("model", platform.processor() or platform.machine())
    return info


def machine_info() -> dict[str, Any]:
    """CPU count and model, platform, Python and package versions, memory, and the UTC date of this run."""
    info: dict[str, Any] = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu": cpu_description(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "versions": package_versions(),
    }
    try:
        import psutil

        info["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
        info["cpu_count_physical"] = psutil.cpu_count(logical=False)
    except ImportError:
        pass
    return info


def peer_main(run_fn: Callable[..., dict[str, Any]], argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command line of a peer module: ``python -m bench.peers.X --task digits --json OUT [--smoke]``.

    Runs ``run_fn(task, seed=..., max_epochs=...)``, prints a one-line summary and writes the dict as
    JSON to ``--json`` when given. ``--smoke`` uses ``R = 3`` (5 configurations) to check that a peer works.
    """
    parser = argparse.ArgumentParser(description=(run_fn.__module__ or "peer") + ": one Hyperband search")
    parser.add_argument("--task", choices=TASKS, default="digits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", dest="json_path", default=None, help="write the result dict here")
    parser.add_argument("--smoke", action="store_true", help=f"R = {SMOKE_MAX_EPOCHS}: a quick check")
    args = parser.parse_args(argv)
    max_epochs = SMOKE_MAX_EPOCHS if args.smoke else MAX_EPOCHS
    result = run_fn(args.task, seed=args.seed, max_epochs=max_epochs)
    result["smoke"] = bool(args.smoke)
    print(
        f"{result['tool']} {result['task']}: wall {result['wall_s']:.1f}s, "
        f"{result['model_epochs']} model-epochs, {result['num_trials']} configs, "
        f"best val {result['best_val_acc']:.4f}, test {result['test_acc']:.4f}",
        flush=True,
    )
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump(result, f, indent=2)
    return result
