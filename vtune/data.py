"""Data sets: splits, scaling and loaders, all on the host as numpy arrays.

A :class:`Dataset` holds three splits (train / validation / test) of one supervised problem, already
scaled, plus everything needed to scale new raw rows the same way (:meth:`Dataset.transform`) and to turn
predicted class indices back into the caller's labels (:meth:`Dataset.decode_labels`). Arrays stay on the
host; the training engine moves them to its devices.

Conventions
-----------
* ``x_*`` are ``float32 [N, D]``, already scaled.
* ``task`` is ``"classification"`` (``C`` ≥ 2 classes, ``y`` is ``int32 [N]`` holding 0..C-1,
  ``n_outputs = C``), ``"binary"`` (``y`` is ``int32 [N]`` holding 0/1, ``n_outputs = 1``) or
  ``"regression"`` (``y`` is ``float32 [N, T]``, ``n_outputs = T``).
* Class labels are encoded as indices into the sorted unique labels, which are kept in ``classes``:
  ``y=["cat", "dog", "cat"]`` becomes ``[0, 1, 0]`` with ``classes=["cat", "dog"]``, and numeric labels
  ``{0, 2, 5}`` become ``{0, 1, 2}`` with ``classes=[0, 2, 5]``. Numeric class labels must be
  non-negative integers (``1.0`` is accepted, ``1.5`` and ``-1`` are not).
* Regression targets are **not** scaled: the model predicts them in the caller's units.
* Scaling is fitted on the training split only and stored as ``shift`` and ``scale`` (``float32 [D]``);
  the model sees ``(x_raw - shift) / scale``. ``"standard"``: mean and standard deviation,
  ``"minmax"``: minimum and range, ``"none"``: 0 and 1. A feature that is constant on the training
  split gets ``scale = 1``.
* Splits are 70/15/15 by default, stratified for classification and binary tasks, and deterministic
  given ``seed``. Split sizes are ``n_test = ceil(test_fraction * N)``,
  ``n_val = ceil(val_fraction * N)``, the rest is training.

Task inference (``task=None``)
------------------------------
Only targets that are *typed* as labels count as labels: strings, booleans and integer dtypes. Such a
``y`` with 2 distinct values is ``"binary"``, with 3 to :data:`MAX_INFERRED_CLASSES` distinct values
``"classification"``. Everything else is ``"regression"``: float targets (even ``[0.0, 1.0, ...]``) and
integer targets with more than :data:`MAX_INFERRED_CLASSES` distinct values (counts, prices). Pass
``task=`` explicitly to override.

Example
-------
>>> ds = load_dataset("wine", seed=0)
>>> ds.task, ds.n_features, ds.n_outputs
('classification', 13, 3)
>>> ds.x_train.dtype, ds.y_train.dtype
(dtype('float32'), dtype('int32'))
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import importlib.util
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

TASKS = ("classification", "binary", "regression")
SCALINGS = ("standard", "minmax", "none")
DATASETS = ("digits", "breast_cancer", "wine", "diabetes", "xor")
#: An integer-typed target with more distinct values than this is inferred to be a regression target.
MAX_INFERRED_CLASSES = 50

_LABEL_TASKS = ("classification", "binary")
_MNIST_KINDS = ("mnist", "fashion_mnist")
_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_MNIST_SOURCES = {
    "mnist": "https://yann.lecun.com/exdb/mnist/ (or a mirror such as "
    "https://ossci-datasets.s3.amazonaws.com/mnist/)",
    "fashion_mnist": "https://github.com/zalandoresearch/fashion-mnist (folder data/fashion)",
}
# IDX type code -> big-endian numpy dtype.
_IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


# ----------------------------------------------------------------------------------------------------
# The data set
# ----------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """Three scaled splits of one supervised problem, as host numpy arrays (read-only).

    Attributes:
      name: a short label for reports.
      task: ``"classification"``, ``"binary"`` or ``"regression"``.
      x_train, x_val, x_test: ``float32 [N, D]`` scaled features.
      y_train, y_val, y_test: ``int32 [N]`` class indices (classification, binary) or ``float32 [N, T]``
        unscaled targets (regression).
      classes: the original label of each class index (``classes[i]`` is the label of index ``i``), or
        ``None`` for regression.
      feature_names: one name per feature column, or ``None``.
      target_name: the name of the target.
      scaling: ``"standard"``, ``"minmax"`` or ``"none"``: how ``shift``/``scale`` were fitted.
      shift, scale: ``float32 [D]``; :meth:`transform` computes ``(x_raw - shift) / scale``.

    Constructing one directly checks shapes and dtypes; the loaders (:func:`from_arrays`,
    :func:`load_dataset`, ...) are the usual way in.

    Example:
      >>> ds = from_arrays(np.random.default_rng(0).normal(size=(40, 3)), np.arange(40) % 2)
      >>> ds.task, ds.n_train, ds.n_outputs
      ('binary', 28, 1)
    """

    name: str
    task: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: np.ndarray | None = None
    feature_names: list[str] | None = None
    target_name: str = "target"
    scaling: str = "none"
    shift: np.ndarray | None = None
    scale: np.ndarray | None = None

    def __post_init__(self) -> None:
        _check_choice("task", self.task, TASKS)
        _check_choice("scaling", self.scaling, SCALINGS)
        xs = {}
        for split in ("train", "val", "test"):
            x = np.asarray(getattr(self, f"x_{split}"), dtype=np.float32)
            if x.ndim != 2 or x.shape[0] == 0:
                raise ValueError(f"x_{split} must be a non-empty 2-D array [N, D]; got shape {x.shape}")
            xs[split] = x
        n_features = xs["train"].shape[1]
        for split, x in xs.items():
            if x.shape[1] != n_features:
                raise ValueError(
                    f"x_{split} has {x.shape[1]} features but x_train has {n_features}; got shape {x.shape}"
                )
        ys = {}
        for split in ("train", "val", "test"):
            y = np.asarray(getattr(self, f"y_{split}"))
            if self.task == "regression":
                y = y.astype(np.float32)
                if y.ndim == 1:
                    y = y[:, None]
                if y.ndim != 2:
                    raise ValueError(f"y_{split} must be [N] or [N, T] for regression; got shape {y.shape}")
            else:
                if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or y.dtype == bool):
                    raise ValueError(
                        f"y_{split} must be a 1-D integer array of class indices for task={self.task!r}; "
                        f"got shape {y.shape} and dtype {y.dtype}"
                    )
                y = y.astype(np.int32)
            if y.shape[0] != xs[split].shape[0]:
                raise ValueError(
                    f"x_{split} and y_{split} differ in length: {xs[split].shape[0]} rows vs {y.shape[0]}"
                )
            ys[split] = y
        if self.task == "regression":
            widths = {y.shape[1] for y in ys.values()}
            if len(widths) != 1:
                raise ValueError(f"regression targets differ in width across splits: {sorted(widths)}")
            classes = None
        else:
            top = max(int(y.max()) for y in ys.values())
            low = min(int(y.min()) for y in ys.values())
            classes = np.arange(top + 1) if self.classes is None else np.asarray(self.classes)
            if low < 0 or top >= len(classes):
                raise ValueError(
                    f"class indices must lie in 0..{len(classes) - 1} (len(classes)={len(classes)}); "
                    f"got indices from {low} to {top}"
                )
            if self.task == "binary" and len(classes) != 2:
                raise ValueError(f"task='binary' needs exactly 2 classes; got {len(classes)}: {classes!r}")
            if self.task == "classification" and len(classes) < 2:
                raise ValueError(f"task='classification' needs at least 2 classes; got {classes!r}")
        shift = np.zeros(n_features, np.float32) if self.shift is None else np.asarray(self.shift, np.float32)
        scale = np.ones(n_features, np.float32) if self.scale is None else np.asarray(self.scale, np.float32)
        for field, value in (("shift", shift), ("scale", scale)):
            if value.shape != (n_features,):
                raise ValueError(f"{field} must have shape ({n_features},); got shape {value.shape}")
        if not np.all(np.isfinite(scale)) or np.any(scale == 0):
            raise ValueError(f"scale must be finite and non-zero; got {scale!r}")
        if self.feature_names is not None and len(self.feature_names) != n_features:
            raise ValueError(
                f"feature_names has {len(self.feature_names)} names for {n_features} features: "
                f"{list(self.feature_names)!r}"
            )
        values = {f"x_{k}": v for k, v in xs.items()} | {f"y_{k}": v for k, v in ys.items()}
        values |= {"classes": classes, "shift": shift, "scale": scale}
        if self.feature_names is not None:
            object.__setattr__(self, "feature_names", [str(n) for n in self.feature_names])
        for field, value in values.items():
            if value is not None:
                value = value.view()  # a read-only view; the caller's own array keeps its flags
                value.flags.writeable = False
            object.__setattr__(self, field, value)

    @property
    def n_train(self) -> int:
        """Number of training rows."""
        return int(self.x_train.shape[0])

    @property
    def n_val(self) -> int:
        """Number of validation rows."""
        return int(self.x_val.shape[0])

    @property
    def n_test(self) -> int:
        """Number of test rows."""
        return int(self.x_test.shape[0])

    @property
    def n_features(self) -> int:
        """Number of input features ``D``."""
        return int(self.x_train.shape[1])

    @property
    def n_outputs(self) -> int:
        """Width of the model's output: ``C`` (classification), 1 (binary) or ``T`` (regression)."""
        if self.task == "regression":
            return int(self.y_train.shape[1])
        if self.task == "binary":
            return 1
        return len(self.classes)

    def transform(self, x_raw: Any) -> np.ndarray:
        """Scale raw rows the way the training split was scaled.

        Args:
          x_raw: ``[N, D]`` raw (unscaled) features, as passed to the loader that built this data set.

        Returns:
          ``float32 [N, D]`` equal to ``(x_raw - shift) / scale``.

        Example:
          >>> ds = load_dataset("wine")
          >>> ds.transform(np.zeros((1, ds.n_features))).shape
          (1, 13)
        """
        x = _as_feature_matrix(x_raw, "x_raw")
        if x.shape[1] != self.n_features:
            raise ValueError(
                f"x_raw must have {self.n_features} feature columns like the training data; got shape {x.shape}"
            )
        _check_finite_features(x, "x_raw")
        return ((x - self.shift.astype(np.float64)) / self.scale.astype(np.float64)).astype(np.float32)

    def decode_labels(self, indices: Any) -> np.ndarray:
        """Map class indices ``[N]`` (0..C-1) back to the original labels (``classes[indices]``).

        Example:
          >>> ds = from_arrays(np.arange(60.0)[:, None], np.array(["a", "b", "c"] * 20))
          >>> ds.decode_labels([2, 0]).tolist()
          ['c', 'a']
        """
        if self.classes is None:
            raise ValueError(f"decode_labels needs class labels; this data set's task is {self.task!r}")
        idx = np.asarray(indices)
        if not np.issubdtype(idx.dtype, np.integer) or (idx.size and (idx.min() < 0 or idx.max() >= len(self.classes))):
            raise ValueError(f"indices must be integers in 0..{len(self.classes) - 1}; got {indices!r}")
        return self.classes[idx]

    def describe(self) -> str:
        """One line: name, task, sizes and scaling.

        Example:
          >>> load_dataset("wine").describe()
          'wine: classification (3 classes), 13 features, train/val/test = 124/27/27, scaling=standard'
        """
        if self.task == "classification":
            what = f"classification ({len(self.classes)} classes)"
        elif self.task == "binary":
            what = "binary"
        else:
            what = f"regression ({self.n_outputs} target{'s' if self.n_outputs != 1 else ''})"
        return (
            f"{self.name}: {what}, {self.n_features} features, "
            f"train/val/test = {self.n_train}/{self.n_val}/{self.n_test}, scaling={self.scaling}"
        )


# ----------------------------------------------------------------------------------------------------
# Validation helpers
# ----------------------------------------------------------------------------------------------------


def _check_choice(field: str, value: Any, choices: Sequence[str]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{field} must be one of {', '.join(map(repr, choices))}; got {field}={value!r}")


def _check_options(task: str | None, scaling: str) -> None:
    if task is not None:
        _check_choice("task", task, TASKS)
    _check_choice("scaling", scaling, SCALINGS)


def _check_fractions(val_fraction: Any, test_fraction: Any) -> None:
    for field, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"{field} must be a number in (0, 1); got {field}={value!r}")
        if not 0.0 < float(value) < 1.0:
            raise ValueError(f"{field} must lie strictly between 0 and 1; got {field}={value!r}")
    if float(val_fraction) + float(test_fraction) >= 1.0:
        raise ValueError(
            "val_fraction + test_fraction must be below 1 so that training rows remain; "
            f"got {val_fraction=} + {test_fraction=} = {float(val_fraction) + float(test_fraction):g}"
        )


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int; got seed={seed!r}")
    if not 0 <= int(seed) < 2**32:
        raise ValueError(f"seed must lie in [0, 2**32); got seed={seed!r}")
    return int(seed)


def _as_feature_matrix(x: Any, field: str) -> np.ndarray:
    """``x`` as a float64 ``[N, D]`` array, or a ValueError/TypeError naming ``field``."""
    arr = np.asarray(x)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as err:
            raise TypeError(f"{field} must hold numbers; got dtype {np.asarray(x).dtype} ({err})") from None
    if arr.ndim == 1:
        raise ValueError(
            f"{field} must be 2-D [N, D]; got a 1-D array of shape {arr.shape}. "
            f"Use {field}.reshape(-1, 1) for one feature or {field}.reshape(1, -1) for one row"
        )
    if arr.ndim != 2:
        raise ValueError(f"{field} must be 2-D [N, D]; got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{field} is empty; got shape {arr.shape}")
    return arr.astype(np.float64)


def _check_finite_features(x: np.ndarray, field: str) -> None:
    bad = ~np.isfinite(x)
    if bad.any():
        rows, cols = np.nonzero(bad)
        raise ValueError(
            f"{field} holds {int(bad.sum())} NaN or infinite value(s); the first is {x[rows[0], cols[0]]} "
            f"at row {int(rows[0])}, column {int(cols[0])}"
        )


def _coerce_targets(y: Any, field: str) -> np.ndarray:
    """``y`` as a numpy array whose dtype is string, bool, integer or float (objects resolved)."""
    arr = np.asarray(y)
    if arr.ndim == 0:
        raise ValueError(f"{field} must be an array with one entry per row; got a scalar {field}={y!r}")
    if arr.size == 0:
        raise ValueError(f"{field} is empty; got shape {arr.shape}")
    if arr.dtype == object:
        flat = arr.ravel()
        for i, v in enumerate(flat):
            if v is None or (isinstance(v, float) and math.isnan(v)):
                raise ValueError(f"{field} has a missing value at row {i}: {v!r}")
        if all(isinstance(v, str) for v in flat):
            arr = arr.astype(str)
        else:
            try:
                arr = arr.astype(np.float64)
            except (TypeError, ValueError):
                kinds = sorted({type(v).__name__ for v in flat})
                raise TypeError(f"{field} mixes value types {kinds}; use all strings or all numbers") from None
            if np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)) and all(
                isinstance(v, (int, np.integer, bool, np.bool_)) for v in flat
            ):
                arr = arr.astype(np.int64)
    elif arr.dtype.kind not in "biufUS":
        raise TypeError(f"{field} must hold numbers or string labels; got dtype {arr.dtype}")
    if arr.dtype.kind == "S":
        arr = arr.astype(str)
    return arr


def _infer_task(y: np.ndarray, field: str) -> str:
    """The task for ``task=None``: label-typed ``y`` (str, bool, int) is binary/classification."""
    single_column = y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)
    if y.dtype.kind not in "bUiu" or not single_column:
        return "regression"
    distinct = np.unique(y)
    if y.dtype.kind in "iu" and len(distinct) > MAX_INFERRED_CLASSES:
        return "regression"
    if len(distinct) < 2:
        raise ValueError(
            f"{field} holds a single class ({distinct[0].item()!r}); a classifier needs at least 2 classes"
        )
    return "binary" if len(distinct) == 2 else "classification"


def _encode_targets(y: np.ndarray, task: str | None, field: str = "y") -> tuple[str, np.ndarray, np.ndarray | None]:
    """Decide the task and encode ``y``.

    Returns ``(task, y_encoded, classes)``: ``int32 [N]`` indices and the sorted labels for label
    tasks, ``float32 [N, T]`` and ``None`` for regression.
    """
    if task is None:
        task = _infer_task(y, field)
    if task == "regression":
        if y.dtype.kind in "US":
            raise ValueError(
                f"task='regression' needs numeric targets; {field} holds strings such as {y.ravel()[0]!r}"
            )
        values = y.astype(np.float64)
        if values.ndim == 1:
            values = values[:, None]
        if values.ndim != 2:
            raise ValueError(f"{field} must be [N] or [N, T] for regression; got shape {y.shape}")
        bad = ~np.isfinite(values)
        if bad.any():
            rows, cols = np.nonzero(bad)
            raise ValueError(
                f"{field} holds {int(bad.sum())} NaN or infinite target(s); the first is "
                f"{values[rows[0], cols[0]]} at row {int(rows[0])}"
            )
        return task, values.astype(np.float32), None
    # Label tasks.
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"{field} must be 1-D [N] class labels for task={task!r}; got shape {y.shape}")
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y)
        if bad.any():
            first = int(np.nonzero(bad)[0][0])
            raise ValueError(
                f"{field} holds {int(bad.sum())} NaN or infinite label(s); the first is {y[first].item()} at row {first}"
            )
        frac = y != np.round(y)
        if frac.any():
            first = int(np.nonzero(frac)[0][0])
            raise ValueError(
                f"{field} must hold integer class labels for task={task!r}; got {field}={y[first].item()!r} at row "
                f"{first}. Pass task='regression' for continuous targets"
            )
        y = y.astype(np.int64)
    if y.dtype.kind in "iu":
        neg = y < 0
        if neg.any():
            first = int(np.nonzero(neg)[0][0])
            raise ValueError(
                f"{field} must hold non-negative integer class labels for task={task!r}; got "
                f"{field}={y[first].item()!r} at row {first}. Map them first, e.g. y = (y > 0).astype(int), or pass "
                f"string labels"
            )
    classes, encoded = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"{field} holds a single class ({classes[0].item()!r}); task={task!r} needs at least 2 classes")
    if task == "binary" and len(classes) != 2:
        raise ValueError(
            f"task='binary' needs exactly 2 classes; {field} holds {len(classes)}: {_preview(classes)}. "
            f"Use task='classification'"
        )
    return task, encoded.astype(np.int32).reshape(-1), classes


def _preview(values: np.ndarray, limit: int = 8) -> str:
    items = [repr(v.item() if hasattr(v, "item") else v) for v in values[:limit]]
    return "[" + ", ".join(items) + (", ..." if len(values) > limit else "") + "]"


def _check_xy(x: Any, y: Any, x_field: str = "x", y_field: str = "y") -> tuple[np.ndarray, np.ndarray]:
    xa = _as_feature_matrix(x, x_field)
    ya = _coerce_targets(y, y_field)
    if ya.shape[0] != xa.shape[0]:
        raise ValueError(
            f"{x_field} and {y_field} differ in length: {x_field} has {xa.shape[0]} rows, "
            f"{y_field} has {ya.shape[0]}"
        )
    _check_finite_features(xa, x_field)
    return xa, ya


# ----------------------------------------------------------------------------------------------------
# Scaling and splitting
# ----------------------------------------------------------------------------------------------------


def _fit_scaler(x_train: np.ndarray, scaling: str) -> tuple[np.ndarray, np.ndarray]:
    """``(shift, scale)`` float64 ``[D]`` fitted on ``x_train [N, D]``; constant columns get scale 1."""
    d = x_train.shape[1]
    if scaling == "none":
        return np.zeros(d), np.ones(d)
    low, high = x_train.min(axis=0), x_train.max(axis=0)
    constant = high == low
    if scaling == "standard":
        shift, scale = x_train.mean(axis=0), x_train.std(axis=0)
    else:
        shift, scale = low, high - low
    return shift, np.where(constant | (scale == 0), 1.0, scale)


def _split_sizes(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    n_test = math.ceil(test_fraction * n)
    n_val = math.ceil(val_fraction * n)
    return n - n_val - n_test, n_val, n_test


def _class_counts(labels: np.ndarray, classes: np.ndarray | None) -> str:
    idx, counts = np.unique(labels, return_counts=True)
    order = np.argsort(counts, kind="stable")[:8]
    names = [classes[i] if classes is not None else i for i in idx[order]]
    shown = ", ".join(f"{(n.item() if hasattr(n, 'item') else n)!r}: {int(c)}" for n, c in zip(names, counts[order]))
    return "{" + shown + (", ..." if len(idx) > 8 else "") + "} (smallest first)"


def _split_indices(
    n: int,
    labels: np.ndarray | None,
    classes: np.ndarray | None,
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic (stratified when ``labels`` is given) train/val/test row indices: the rows scikit-learn's
    ``train_test_split`` (``random_state=seed``) holds out, test first, then validation from the rest
    (see :func:`holdout_split`)."""
    n_train, n_val, n_test = _split_sizes(n, val_fraction, test_fraction)
    sizes = f"{n} rows give train={n_train}, val={n_val}, test={n_test} ({val_fraction=}, {test_fraction=})"
    if min(n_train, n_val, n_test) < 1:
        raise ValueError(f"too few rows for the splits: {sizes}; every split needs at least one row")
    if labels is None:
        rest, test = holdout_split(n, n_test, seed)
        train, val = holdout_split(len(rest), n_val, seed)
        return np.sort(rest[train]), np.sort(rest[val]), np.sort(test)
    counts = np.bincount(labels)
    n_classes = int(np.count_nonzero(counts))
    smallest = int(counts[counts > 0].min())
    if smallest < 3 or min(n_train, n_val, n_test) < n_classes:
        raise ValueError(
            f"too few rows for a stratified split: {sizes} for {n_classes} classes with class counts "
            f"{_class_counts(labels, classes)}; every class needs at least 3 rows and every split at least "
            f"one row per class"
        )
    try:
        rest, test = holdout_split(n, n_test, seed, labels)
        train, val = holdout_split(len(rest), n_val, seed, labels[rest])
    except ValueError as err:
        raise ValueError(
            f"too few rows for a stratified split: {sizes}; class counts {_class_counts(labels, classes)} ({err})"
        ) from None
    return np.sort(rest[train]), np.sort(rest[val]), np.sort(test)


def holdout_split(n: int, n_out: int, seed: int, labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(kept, held_out)``: positions in ``range(n)``, ``n_out`` of them held out — exactly the rows
    scikit-learn's ``train_test_split(np.arange(n), test_size=n_out, random_state=seed, stratify=labels)``
    returns (``shuffle=True`` without labels), in the same order, computed with numpy alone: importing
    scikit-learn's model selection costs ≈ 0.7 s, an eighth of ``vtune tune --dataset digits`` on a 2-core
    CPU. A test holds it to scikit-learn over many sizes, seeds and class counts.

    Without labels: one ``RandomState(seed).permutation(n)``, the first ``n_out`` held out. With labels
    (stratified): each class gets its share of the kept and then of the held-out rows, rounded down, the
    rows left over by the rounding going to the classes with the largest remainders (ties drawn at
    random); then each class's rows are shuffled and dealt, and both sides shuffled once more. Raises
    ``ValueError`` where scikit-learn does: a class with one row, or fewer kept or held-out rows than
    classes.
    """
    n, n_out = int(n), int(n_out)
    if not 0 < n_out < n:
        raise ValueError(f"holdout_split needs 0 < n_out < n, got n={n}, n_out={n_out}")
    rng = np.random.RandomState(seed)
    n_keep = n - n_out
    if labels is None:
        order = rng.permutation(n)
        return order[n_out:], order[:n_out]
    classes, codes = np.unique(np.asarray(labels), return_inverse=True)
    codes = codes.reshape(-1)
    if codes.shape[0] != n:
        raise ValueError(f"holdout_split got {codes.shape[0]} labels for n={n} rows")
    counts = np.bincount(codes)
    if counts.min() < 2:
        raise ValueError("the least populated class has only 1 row; every class needs at least 2")
    if n_keep < len(classes) or n_out < len(classes):
        raise ValueError(f"{n_keep} kept and {n_out} held-out rows for {len(classes)} classes; each side "
                         f"needs at least one row per class")
    by_class = np.split(np.argsort(codes, kind="stable"), np.cumsum(counts)[:-1])
    keep_counts = _shares(counts, n_keep, rng)
    out_counts = _shares(counts - keep_counts, n_out, rng)
    keep, out = [], []
    for rows, k, t in zip(by_class, keep_counts, out_counts):
        rows = rows[rng.permutation(len(rows))]
        keep.extend(rows[:k])
        out.extend(rows[k:k + t])
    return rng.permutation(np.asarray(keep, dtype=np.int64)), rng.permutation(np.asarray(out, dtype=np.int64))


def _shares(counts: np.ndarray, total: int, rng: np.random.RandomState) -> np.ndarray:
    """``total`` draws shared among classes in proportion to ``counts``: each its share rounded down, the
    rest one each to the largest remainders (a tie drawn at random with ``rng``, as scikit-learn does)."""
    exact = counts / counts.sum() * total
    shares = np.floor(exact)
    missing = int(total - shares.sum())
    if missing > 0:
        remainder = exact - shares
        for value in np.sort(np.unique(remainder))[::-1]:
            (tied,) = np.where(remainder == value)
            take = min(len(tied), missing)
            shares[rng.choice(tied, size=take, replace=False)] += 1
            missing -= take
            if missing == 0:
                break
    return shares.astype(int)


def _assemble(
    *,
    name: str,
    task: str,
    scaling: str,
    raw: dict[str, tuple[np.ndarray, np.ndarray]],
    classes: np.ndarray | None,
    feature_names: Sequence[str] | None,
    target_name: str,
    raw_unit: float = 1.0,
) -> Dataset:
    """Fit the scaler on ``raw["train"][0] / raw_unit`` and build the Dataset.

    ``raw_unit`` lets a loader define the model's input as ``raw / raw_unit`` before scaling (MNIST:
    pixels / 255) while ``transform`` still accepts the raw values: the unit is folded into
    ``shift``/``scale``.
    """
    shift, scale = _fit_scaler(raw["train"][0] / raw_unit, scaling)
    shift, scale = shift * raw_unit, scale * raw_unit
    scaled = {k: ((x - shift) / scale).astype(np.float32) for k, (x, _) in raw.items()}
    return Dataset(
        name=name,
        task=task,
        x_train=scaled["train"],
        y_train=raw["train"][1],
        x_val=scaled["val"],
        y_val=raw["val"][1],
        x_test=scaled["test"],
        y_test=raw["test"][1],
        classes=classes,
        feature_names=None if feature_names is None else list(feature_names),
        target_name=target_name,
        scaling=scaling,
        shift=shift.astype(np.float32),
        scale=scale.astype(np.float32),
    )


def _check_names(name: Any, target_name: Any, feature_names: Any, n_features: int) -> list[str] | None:
    if not isinstance(name, str):
        raise TypeError(f"name must be a str; got name={name!r}")
    if not isinstance(target_name, str):
        raise TypeError(f"target_name must be a str; got target_name={target_name!r}")
    if feature_names is None:
        return None
    if isinstance(feature_names, str):
        raise TypeError(f"feature_names must be a sequence of names, not one string; got {feature_names=}")
    names = [str(f) for f in feature_names]
    if len(names) != n_features:
        raise ValueError(f"feature_names has {len(names)} names for {n_features} feature columns: {names!r}")
    return names


# ----------------------------------------------------------------------------------------------------
# Constructors
# ----------------------------------------------------------------------------------------------------


def from_arrays(
    x: Any,
    y: Any,
    *,
    task: str | None = None,
    name: str = "arrays",
    scaling: str = "standard",
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
    feature_names: Sequence[str] | None = None,
    target_name: str = "target",
) -> Dataset:
    """Split, encode and scale in-memory arrays.

    Args:
      x: ``[N, D]`` numeric features (raw; scaling is fitted on the training split).
      y: ``[N]`` labels (ints, bools or strings) or targets, or ``[N, T]`` regression targets.
      task: ``"classification"``, ``"binary"``, ``"regression"`` or ``None`` to infer it (see the module
        docstring).
      scaling: ``"standard"``, ``"minmax"`` or ``"none"``.
      val_fraction, test_fraction: shares of the rows for validation and test, each in (0, 1), sum < 1.
      seed: makes the (stratified, for labels) split reproducible.

    Returns:
      a :class:`Dataset`.

    Example:
      >>> rng = np.random.default_rng(0)
      >>> ds = from_arrays(rng.normal(size=(100, 4)), rng.integers(0, 3, 100), name="toy")
      >>> ds.describe()
      'toy: classification (3 classes), 4 features, train/val/test = 70/15/15, scaling=standard'
    """
    _check_options(task, scaling)
    _check_fractions(val_fraction, test_fraction)
    seed = _check_seed(seed)
    xa, ya = _check_xy(x, y)
    names = _check_names(name, target_name, feature_names, xa.shape[1])
    task, enc, classes = _encode_targets(ya, task)
    labels = enc if task in _LABEL_TASKS else None
    train, val, test = _split_indices(xa.shape[0], labels, classes, val_fraction, test_fraction, seed)
    raw = {k: (xa[i], enc[i]) for k, i in (("train", train), ("val", val), ("test", test))}
    return _assemble(
        name=name, task=task, scaling=scaling, raw=raw, classes=classes, feature_names=names, target_name=target_name
    )


def from_splits(
    x_train: Any,
    y_train: Any,
    x_val: Any,
    y_val: Any,
    x_test: Any,
    y_test: Any,
    *,
    task: str | None = None,
    name: str = "splits",
    scaling: str = "standard",
    feature_names: Sequence[str] | None = None,
    target_name: str = "target",
) -> Dataset:
    """Build a Dataset from splits the caller made (so every tool in a benchmark sees the same rows).

    The task is inferred (when ``task=None``) and labels are encoded over all three splits together, so
    the class indices agree; scaling is still fitted on ``x_train`` only.

    Args:
      x_train, x_val, x_test: ``[N_*, D]`` raw features.
      y_train, y_val, y_test: ``[N_*]`` labels or ``[N_*]`` / ``[N_*, T]`` regression targets.

    Example:
      >>> x, y = np.arange(40.0).reshape(20, 2), np.arange(20) % 2
      >>> from_splits(x[:12], y[:12], x[12:16], y[12:16], x[16:], y[16:]).n_val
      4
    """
    _check_options(task, scaling)
    parts = {}
    for split, (x, y) in (("train", (x_train, y_train)), ("val", (x_val, y_val)), ("test", (x_test, y_test))):
        parts[split] = _check_xy(x, y, f"x_{split}", f"y_{split}")
    widths = {k: v[0].shape[1] for k, v in parts.items()}
    if len(set(widths.values())) != 1:
        raise ValueError(f"the splits differ in feature count: {widths}")
    ys = [v[1] for v in parts.values()]
    if len({y.dtype.kind in "US" for y in ys}) != 1:
        raise TypeError(f"y_train, y_val and y_test mix string and numeric labels: dtypes {[y.dtype for y in ys]}")
    if len({y.shape[1:] for y in ys}) != 1:
        raise ValueError(f"y_train, y_val and y_test differ in shape after the first axis: {[y.shape for y in ys]}")
    names = _check_names(name, target_name, feature_names, widths["train"])
    task, enc, classes = _encode_targets(np.concatenate(ys), task)
    bounds = np.cumsum([0] + [len(y) for y in ys])
    raw = {k: (parts[k][0], enc[bounds[i] : bounds[i + 1]]) for i, k in enumerate(("train", "val", "test"))}
    return _assemble(
        name=name, task=task, scaling=scaling, raw=raw, classes=classes, feature_names=names, target_name=target_name
    )


def from_dataframe(df: Any, target: str, **kw: Any) -> Dataset:
    """Build a Dataset from a pandas-like data frame (duck-typed: ``columns``, ``df[col]``, ``drop``).

    Every column except ``target`` is a numeric feature; ``kw`` goes to :func:`from_arrays` (``task``,
    ``name``, ``scaling``, ``val_fraction``, ``test_fraction``, ``seed``).

    Example:
      >>> import pandas as pd  # doctest: +SKIP
      >>> ds = from_dataframe(pd.DataFrame({"a": range(20), "y": [0, 1] * 10}), "y")  # doctest: +SKIP
    """
    if not hasattr(df, "columns") or not hasattr(df, "drop"):
        raise TypeError(f"df must be a data frame with .columns and .drop; got {type(df).__name__}")
    columns = list(df.columns)
    if target not in columns:
        raise ValueError(f"target={target!r} is not a column; the columns are {columns!r}")
    features = df.drop(columns=[target])
    names = [str(c) for c in features.columns]
    if not names:
        raise ValueError(f"df has no feature columns besides target={target!r}")
    cols = []
    for col in features.columns:
        values = np.asarray(features[col])
        try:
            cols.append(values.astype(np.float64))
        except (TypeError, ValueError):
            for row, v in enumerate(values):
                try:
                    float(v)
                except (TypeError, ValueError):
                    raise ValueError(
                        f"feature column {str(col)!r} must be numeric; got {v!r} at row {row}"
                    ) from None
            raise
    x = np.stack(cols, axis=1)
    kw.setdefault("name", "dataframe")
    return from_arrays(x, np.asarray(df[target]), feature_names=names, target_name=str(target), **kw)


def _parse_target(cells: list[str], target: str, lines: list[int], path: str) -> np.ndarray:
    for i, (cell, line) in enumerate(zip(cells, lines)):
        if cell == "":
            raise ValueError(f"{path}: target column {target!r} is empty at data row {i + 1} (line {line})")
    try:
        return np.array([int(c) for c in cells], dtype=np.int64)
    except (ValueError, OverflowError):
        pass
    try:
        return np.array([float(c) for c in cells], dtype=np.float64)
    except ValueError:
        return np.array(cells, dtype=str)


def from_csv(path: str | os.PathLike, target: str, **kw: Any) -> Dataset:
    """Read a CSV file with a header row; ``target`` names the label/target column.

    Feature cells must be numbers; target cells may be numbers or strings (strings are class labels,
    integers are labels under the usual inference, other numbers are regression targets). ``kw`` goes to
    :func:`from_arrays`; ``name`` defaults to the file's stem.

    Example:
      >>> ds = from_csv("train.csv", target="label", seed=1)  # doctest: +SKIP
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"CSV file not found: {path!r}")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = None
        rows: list[list[str]] = []
        lines: list[int] = []
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = [cell.strip() for cell in row]
                continue
            rows.append([cell.strip() for cell in row])
            lines.append(reader.line_num)
    if header is None:
        raise ValueError(f"CSV file {path!r} is empty; it needs a header row and data rows")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise ValueError(f"CSV file {path!r} repeats column names {dupes!r} in its header")
    if target not in header:
        raise ValueError(f"target={target!r} is not a column of {path!r}; the columns are {header!r}")
    if not rows:
        raise ValueError(f"CSV file {path!r} has a header but no data rows")
    if len(header) < 2:
        raise ValueError(f"CSV file {path!r} has no feature columns besides target={target!r}")
    t = header.index(target)
    feature_cols = [j for j in range(len(header)) if j != t]
    x = np.empty((len(rows), len(feature_cols)), dtype=np.float64)
    for i, (row, line) in enumerate(zip(rows, lines)):
        if len(row) != len(header):
            raise ValueError(
                f"{path}: data row {i + 1} (line {line}) has {len(row)} cells but the header has {len(header)}"
            )
        for k, j in enumerate(feature_cols):
            try:
                x[i, k] = float(row[j])
            except ValueError:
                raise ValueError(
                    f"{path}: feature column {header[j]!r} must be numeric; got {row[j]!r} at data row {i + 1} "
                    f"(line {line})"
                ) from None
    y = _parse_target([row[t] for row in rows], target, lines, path)
    kw.setdefault("name", Path(path).stem)
    return from_arrays(x, y, feature_names=[header[j] for j in feature_cols], target_name=target, **kw)


# ----------------------------------------------------------------------------------------------------
# Bundled data sets
# ----------------------------------------------------------------------------------------------------


def load_dataset(
    name: str,
    *,
    seed: int = 0,
    scaling: str | None = None,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
) -> Dataset:
    """Load a bundled data set (no download): one of :data:`DATASETS`.

    * ``"digits"``: 1797 8×8 digit images, 64 features, 10 classes (scikit-learn's ``load_digits``).
    * ``"breast_cancer"``: 569 rows, 30 features, binary (``load_breast_cancer``).
    * ``"wine"``: 178 rows, 13 features, 3 classes (``load_wine``).
    * ``"diabetes"``: 442 rows, 10 features, regression on disease progression (``load_diabetes``).
    * ``"xor"``: the 4-point XOR problem, ``x`` in {0, 1}², ``y = x0 xor x1`` (binary). Four points cannot
      be split, so train, validation and test are all the same 4 points (the fractions are ignored),
      and it is not scaled unless ``scaling`` asks for it.

    Args:
      scaling: ``"standard"``, ``"minmax"``, ``"none"``, or ``None`` for the set's default
        (``"standard"``; ``"none"`` for ``"xor"``).

    Example:
      >>> load_dataset("xor").x_train.tolist()
      [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
    """
    if name == "beale":
        raise ValueError(
            "name='beale' is not a Dataset: Beale's function is an optimisation task, available through "
            "`vtune tune --dataset beale` or the Beale trainable"
        )
    _check_choice("name", name, DATASETS)
    if scaling is None:
        scaling = "none" if name == "xor" else "standard"
    _check_options(None, scaling)
    _check_fractions(val_fraction, test_fraction)
    seed = _check_seed(seed)
    if name == "xor":
        x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
        y = np.array([0, 1, 1, 0], dtype=np.int32)
        raw = {k: (x, y) for k in ("train", "val", "test")}
        return _assemble(
            name="xor",
            task="binary",
            scaling=scaling,
            raw=raw,
            classes=np.array([0, 1]),
            feature_names=["x0", "x1"],
            target_name="xor",
        )
    target_name = {"digits": "digit", "breast_cancer": "diagnosis", "wine": "cultivar", "diabetes": "progression"}[name]
    data, target, feature_names = _load_digits() if name == "digits" else _load_sklearn(name)
    task = "regression" if name == "diabetes" else ("binary" if name == "breast_cancer" else "classification")
    return from_arrays(
        data,
        target,
        task=task,
        name=name,
        scaling=scaling,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        feature_names=feature_names,
        target_name=target_name,
    )


def _load_sklearn(name: str) -> tuple[np.ndarray, np.ndarray, list]:
    """``(data, target, feature_names)`` from scikit-learn's loader ``load_<name>``."""
    from sklearn import datasets as skd

    bunch = getattr(skd, f"load_{name}")()
    return bunch.data, bunch.target, list(bunch.feature_names)


def _load_digits() -> tuple[np.ndarray, np.ndarray, list]:
    """``(data float64 [1797, 64], target [1797], feature_names)``: what scikit-learn's ``load_digits()``
    returns, read from the file it reads (``sklearn/datasets/data/digits.csv.gz``, found without importing
    scikit-learn, whose import costs ≈ 0.7 s of the 2-core CPU's ≈ 5 s ``vtune tune --dataset digits``);
    scikit-learn's own loader where that file is missing or not the 1797 × 65 table (a test holds both
    equal)."""
    path = _sklearn_data_file("digits.csv.gz")
    table = None
    if path is not None:
        try:
            table = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
        except (OSError, ValueError):
            table = None
    if table is None or table.shape != (1797, 65):
        return _load_sklearn("digits")
    names = [f"pixel_{row}_{col}" for row in range(8) for col in range(8)]
    return table[:, :-1], table[:, -1].astype(int), names


def _sklearn_data_file(name: str) -> Path | None:
    """A data file shipped in scikit-learn's package (``sklearn/datasets/data/<name>``), or None."""
    try:
        spec = importlib.util.find_spec("sklearn")
    except (ImportError, ValueError):
        return None
    for root in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(root) / "datasets" / "data" / name
        if path.is_file():
            return path
    return None


# ----------------------------------------------------------------------------------------------------
# IDX files and MNIST
# ----------------------------------------------------------------------------------------------------


def load_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format), raw or gzip-compressed.

    Layout: magic ``0x00 0x00 <type> <ndim>``, then ``ndim`` big-endian uint32 sizes, then the data in
    row-major order. Types: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
    (all big-endian). Gzip is detected by its magic bytes, whatever the file name.

    Returns:
      the array, ``[d0, d1, ...]``, in native byte order (e.g. ``uint8 [60000, 28, 28]`` for MNIST images).

    Example:
      >>> images = load_idx("mnist/train-images-idx3-ubyte.gz")  # doctest: +SKIP
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"IDX file not found: {path!r}")
    with open(path, "rb") as fh:
        data = fh.read()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as err:
            raise ValueError(f"IDX file {path!r} looks gzip-compressed but cannot be decompressed: {err}") from None
    elif path.endswith(".gz"):
        raise ValueError(f"IDX file {path!r} is named .gz but does not start with the gzip magic bytes")
    if len(data) < 4:
        raise ValueError(f"IDX file {path!r} is truncated: {len(data)} bytes, shorter than the 4-byte magic")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(
            f"IDX file {path!r} has a bad magic number {data[:4].hex()}; it must start with bytes 00 00"
        )
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES)
        raise ValueError(f"IDX file {path!r} has an unknown data type code 0x{code:02X}; known codes: {known}")
    if ndim == 0:
        raise ValueError(f"IDX file {path!r} declares 0 dimensions; it must have at least one")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(
            f"IDX file {path!r} is truncated: {len(data)} bytes, but its {ndim}-dimension header needs {header}"
        )
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = header + math.prod(dims) * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "longer than its header says"
        raise ValueError(
            f"IDX file {path!r} is {what}: shape {dims} of {dtype.name} needs {expected} bytes, the file has "
            f"{len(data)}"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))


def _find_mnist_file(directory: str, base: str, kind: str) -> str:
    for candidate in (base, base + ".gz"):
        full = os.path.join(directory, candidate)
        if os.path.isfile(full):
            return full
    expected = ", ".join(f"{b}[.gz]" for b in _MNIST_FILES)
    raise FileNotFoundError(
        f"{kind} file {base!r} (or {base + '.gz'!r}) not found in {directory!r}. vtune never downloads; "
        f"get the four files from {_MNIST_SOURCES[kind]} and put them in that directory. Expected names: "
        f"{expected}"
    )


def load_mnist(
    directory: str | os.PathLike,
    *,
    kind: str = "mnist",
    seed: int = 0,
    scaling: str = "standard",
    limit: int | None = None,
    val_fraction: float = 0.15,
) -> Dataset:
    """Load MNIST or Fashion-MNIST from the four standard IDX files in a local directory.

    Images are flattened to ``H*W`` (784) features in [0, 1] (pixels / 255) before ``scaling``; the
    official test set is the test split, and a stratified ``val_fraction`` of the (first ``limit``)
    official training rows is the validation split. :meth:`Dataset.transform` takes raw pixel values
    (0..255), flattened: the /255 is folded into ``shift`` and ``scale``.

    Args:
      directory: holds ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each optionally with ``.gz``.
      kind: ``"mnist"`` or ``"fashion_mnist"`` (sets the name and where the error says to get files).
      limit: use only the first ``limit`` official training rows (before the validation split).

    Example:
      >>> ds = load_mnist("~/data/mnist", limit=10_000)  # doctest: +SKIP
    """
    _check_choice("kind", kind, _MNIST_KINDS)
    _check_options(None, scaling)
    seed = _check_seed(seed)
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float, np.integer, np.floating)):
        raise TypeError(f"val_fraction must be a number in (0, 1); got {val_fraction=}")
    if not 0.0 < float(val_fraction) < 1.0:
        raise ValueError(f"val_fraction must lie strictly between 0 and 1; got {val_fraction=}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1):
        raise ValueError(f"limit must be a positive int or None; got {limit=}")
    directory = os.path.expanduser(os.fspath(directory))
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"{kind} directory not found: {directory!r}. vtune never downloads; get the four files "
            f"({', '.join(_MNIST_FILES)}, optionally .gz) from {_MNIST_SOURCES[kind]}"
        )
    paths = [_find_mnist_file(directory, base, kind) for base in _MNIST_FILES]
    train_images, train_labels, test_images, test_labels = (load_idx(p) for p in paths)
    pairs = ((train_images, train_labels, paths[0], paths[1]), (test_images, test_labels, paths[2], paths[3]))
    for images, labels, image_path, label_path in pairs:
        if images.ndim != 3:
            raise ValueError(f"{image_path}: images must be 3-D [N, H, W]; got shape {images.shape}")
        if labels.ndim != 1:
            raise ValueError(f"{label_path}: labels must be 1-D [N]; got shape {labels.shape}")
        if images.shape[0] != labels.shape[0]:
            raise ValueError(
                f"{image_path} has {images.shape[0]} images but {label_path} has {labels.shape[0]} labels"
            )
    if train_images.shape[1:] != test_images.shape[1:]:
        raise ValueError(
            f"train images are {train_images.shape[1:]} but test images are {test_images.shape[1:]} pixels"
        )
    x_all = train_images.reshape(train_images.shape[0], -1).astype(np.float64)
    x_test = test_images.reshape(test_images.shape[0], -1).astype(np.float64)
    y_all, y_test = train_labels.astype(np.int64), test_labels.astype(np.int64)
    if limit is not None:
        x_all, y_all = x_all[:limit], y_all[:limit]
    _check_finite_features(x_all, paths[0])
    _check_finite_features(x_test, paths[2])
    task, enc, classes = _encode_targets(np.concatenate([y_all, y_test]), "classification", "labels")
    enc_train, enc_test = enc[: len(y_all)], enc[len(y_all) :]
    n = len(enc_train)
    n_val = math.ceil(val_fraction * n)
    counts = np.bincount(enc_train, minlength=len(classes))
    if n - n_val < len(classes) or n_val < len(classes) or counts.min() < 2:
        raise ValueError(
            f"too few training rows for a stratified validation split: {n} rows (limit={limit}) give "
            f"train={n - n_val}, val={n_val} for {len(classes)} classes with counts "
            f"{_class_counts(enc_train, classes)}; every class needs at least 2 training rows and each of "
            f"train and val at least one row per class"
        )
    train, val = holdout_split(n, n_val, seed, enc_train)
    train, val = np.sort(train), np.sort(val)
    raw = {"train": (x_all[train], enc_train[train]), "val": (x_all[val], enc_train[val]), "test": (x_test, enc_test)}
    return _assemble(
        name=kind,
        task=task,
        scaling=scaling,
        raw=raw,
        classes=classes,
        feature_names=None,
        target_name="label",
        raw_unit=255.0,
    )
