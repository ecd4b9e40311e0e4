"""The search space: dimensions that map to and from the unit interval, and ``Space`` over named hparams.

Every searchable hyperparameter is a *dimension* with a bijection (or, for discrete ones, a partition)
between its values and the unit interval ``[0, 1]``. A whole space is therefore the unit cube
``[0, 1]^d`` over its ``d`` searchable names (``Space.searchable_names``, in the canonical order of
``vtune.hparams.NAMES``), and every strategy works in that cube: random search samples it uniformly,
grid search lays an even lattice over it, coarse-to-fine search shrinks a box in it, PBT perturbs a point
in it. What "uniform" means is then decided once, by each dimension's scale:

=====================  ==========================================================  ==================
dimension              value x  <-  unit u                                          mass
=====================  ==========================================================  ==================
Float linear           x = low + u (high - low)                                     uniform in x
Float log              x = exp(log low + u (log high - log low))                    uniform in log x
Float reverse_log      x = 1 - exp(log(1-low) + u (log(1-high) - log(1-low)))       uniform in log(1-x)
Int linear             x = low + floor(u n),  n = high - low + 1                    1/n per integer
Int log                x = round(exp(log(low-½) + u (log(high+½) - log(low-½))))    log((k+½)/(k-½))
Choice                 x = values[floor(u n)],  n = len(values)                     1/n per value
=====================  ==========================================================  ==================

``reverse_log`` is the way to search a momentum or Adam β close to 1: over ``[0.9, 0.999]`` the
intervals 0.9–0.99 and 0.99–0.999 get equal mass (``u = 0.5`` is 0.99), where a linear scale would spend
90% of its samples below 0.99. Discrete dimensions split the unit interval into cells (an integer ``k``
of ``Int(low, high, scale="log")`` owns the cell that the log map sends to ``[k-½, k+½)``, as Optuna
does), and encode a value as the centre of its cell, so ``from_unit(to_unit(v)) == v`` exactly; for
``Float`` it holds within float tolerance. ``from_unit`` clips ``u`` to ``[0, 1]`` (so a perturbed point
that steps outside the cube lands on the boundary) and rejects NaN; ``to_unit`` rejects values outside
the dimension.

A space file is JSON: an object from hyperparameter names to a fixed value or a dimension::

    {"learning_rate": {"float": [1e-4, 0.1], "scale": "log"},
     "momentum": {"float": [0.9, 0.999], "scale": "reverse_log"},
     "units": {"int": [16, 256], "scale": "log"}, "num_layers": {"int": [1, 3]},
     "optimizer": {"choice": ["momentum", "adam", "rmsprop"]}, "batch_size": 64}

Only numpy and ``vtune.hparams`` are imported: this module runs on the host and never traces.
"""

from __future__ import annotations

import itertools
import json
import math
import numbers
import os
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence, Union

import numpy as np

from vtune import hparams as hp

FLOAT_SCALES = ("linear", "log", "reverse_log")
INT_SCALES = ("linear", "log")
_DIMENSION_KEYS = ("float", "int", "choice")


# --------------------------------------------------------------------------------------------- helpers


def _check_bound(cls: str, field: str, value: Any) -> float:
    """A finite real bound; bools and non-numbers are ``TypeError``, inf/NaN ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{cls} bound {field} must be a number, got {field}={value!r}")
    if not math.isfinite(float(value)):
        raise ValueError(f"{cls} bound {field} must be finite, got {field}={value!r}")
    return float(value)


def _check_int(cls: str, field: str, value: Any) -> int:
    """An integer (integral floats such as ``64.0`` from JSON are accepted); else ``TypeError``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{cls} {field} must be an integer, got {field}={value!r}")
    if isinstance(value, numbers.Integral):
        return int(value)
    if not math.isfinite(float(value)):
        raise ValueError(f"{cls} {field} must be finite, got {field}={value!r}")
    if float(value) != int(value):
        raise TypeError(f"{cls} {field} must be an integer, got {field}={value!r}")
    return int(value)


def _check_count(field: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{field} must be an integer, got {field}={value!r}")
    if value < minimum:
        raise ValueError(f"{field} must be >= {minimum}, got {field}={value!r}")
    return int(value)


def _unit_array(u: Any) -> np.ndarray:
    """``u`` as a float64 array clipped to ``[0, 1]``; NaN is a ``ValueError``."""
    arr = np.asarray(u, dtype=np.float64)
    if np.isnan(arr).any():
        raise ValueError(f"unit values must not be NaN, got u={u!r}")
    return np.clip(arr, 0.0, 1.0)


def _scalar_out(u: Any, arr: np.ndarray) -> Any:
    """Return a Python scalar when the input was a scalar, else the array."""
    if np.ndim(u) == 0:
        return arr.item()
    return arr


def _grid_units(n: int) -> np.ndarray:
    """``n`` evenly spaced unit points with both ends included (``[0.5]`` for ``n == 1``)."""
    if n == 1:
        return np.array([0.5])
    return np.linspace(0.0, 1.0, n)


def _same(a: Any, b: Any) -> bool:
    """Equality that keeps ``True`` apart from ``1`` (JSON keeps them apart too)."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


# ----------------------------------------------------------------------------------------- dimensions


@dataclass(frozen=True)
class Float:
    """A real interval ``[low, high]`` searched on a ``linear``, ``log`` or ``reverse_log`` scale.

    ``log`` needs ``low > 0``; ``reverse_log`` (uniform in ``log(1 - x)``, for β close to 1) needs
    ``0 <= low < high < 1``.

    Example:
        >>> Float(0.9, 0.999, scale="reverse_log").from_unit(0.5)  # doctest: +ELLIPSIS
        0.99...
    """

    low: float
    high: float
    scale: str = "linear"

    def __init__(self, low: float, high: float, *, scale: str = "linear") -> None:
        lo = _check_bound("Float", "low", low)
        hi = _check_bound("Float", "high", high)
        if not isinstance(scale, str) or scale not in FLOAT_SCALES:
            raise ValueError(f"Float scale must be one of {', '.join(FLOAT_SCALES)}, got {scale=!r}")
        if lo >= hi:
            raise ValueError(f"Float needs low < high, got low={low!r}, high={high!r}")
        if scale == "log" and lo <= 0:
            raise ValueError(f"Float scale='log' needs low > 0, got low={low!r}")
        if scale == "reverse_log" and (lo < 0 or hi >= 1):
            raise ValueError(
                f"Float scale='reverse_log' needs 0 <= low < high < 1, got low={low!r}, high={high!r}"
            )
        object.__setattr__(self, "low", lo)
        object.__setattr__(self, "high", hi)
        object.__setattr__(self, "scale", scale)

    def _warp(self, x: np.ndarray) -> np.ndarray:
        """Value -> the coordinate in which the scale is uniform (increasing in x)."""
        if self.scale == "log":
            return np.log(x)
        if self.scale == "reverse_log":
            return -np.log1p(-x)
        return x

    def _unwarp(self, t: np.ndarray) -> np.ndarray:
        if self.scale == "log":
            return np.exp(t)
        if self.scale == "reverse_log":
            return -np.expm1(-t)
        return t

    def from_unit(self, u: float | np.ndarray) -> float | np.ndarray:
        """Map ``u`` (scalar or array of any shape, clipped to [0, 1]) to value(s); ends map exactly."""
        arr = _unit_array(u)
        a, b = self._warp(np.float64(self.low)), self._warp(np.float64(self.high))
        x = self._unwarp(a + arr * (b - a))
        x = np.where(arr <= 0.0, self.low, np.where(arr >= 1.0, self.high, x))
        return _scalar_out(u, np.clip(x, self.low, self.high))

    def to_unit(self, value: float | np.ndarray) -> float | np.ndarray:
        """Map value(s) in ``[low, high]`` to ``[0, 1]``; a value outside is a ``ValueError``."""
        if isinstance(value, bool) or (np.ndim(value) == 0 and not isinstance(value, numbers.Real)):
            raise TypeError(f"Float.to_unit needs a number, got value={value!r}")
        x = np.asarray(value, dtype=np.float64)
        if not np.all((x >= self.low) & (x <= self.high)):
            raise ValueError(f"value={value!r} is outside {self!r}")
        a, b = self._warp(np.float64(self.low)), self._warp(np.float64(self.high))
        return _scalar_out(value, np.clip((self._warp(x) - a) / (b - a), 0.0, 1.0))

    def grid(self, n: int) -> list[float]:
        """``n`` values evenly spaced on the scale, both ends included (the midpoint when ``n == 1``).

        Example: ``Float(1e-4, 1e-1, scale="log").grid(4)`` is about ``[1e-4, 1e-3, 1e-2, 1e-1]``.
        """
        n = _check_count("n", n, minimum=1)
        return self.from_unit(_grid_units(n)).tolist()

    def to_json(self) -> dict:
        out: dict[str, Any] = {"float": [self.low, self.high]}
        if self.scale != "linear":
            out["scale"] = self.scale
        return out

    def __repr__(self) -> str:
        scale = "" if self.scale == "linear" else f", scale={self.scale!r}"
        return f"Float({self.low!r}, {self.high!r}{scale})"


@dataclass(frozen=True)
class Int:
    """The integers ``low..high`` (inclusive), searched on a ``linear`` or ``log`` scale.

    Linear: every integer owns ``1/n`` of the unit interval. Log (needs ``low >= 1``): integer ``k`` owns
    the share ``log((k+½)/(k-½)) / log((high+½)/(low-½))``, the log-uniform mass of ``[k-½, k+½)``.

    Example:
        >>> Int(1, 3).from_unit(0.5), Int(16, 256, scale="log").grid(5)
        (2, [16, 32, 64, 128, 256])
    """

    low: int
    high: int
    scale: str = "linear"

    def __init__(self, low: int, high: int, *, scale: str = "linear") -> None:
        lo = _check_int("Int", "low", low)
        hi = _check_int("Int", "high", high)
        if not isinstance(scale, str) or scale not in INT_SCALES:
            raise ValueError(f"Int scale must be one of {', '.join(INT_SCALES)}, got {scale=!r}")
        if lo >= hi:
            raise ValueError(f"Int needs low < high, got low={low!r}, high={high!r}")
        if scale == "log" and lo <= 0:
            raise ValueError(f"Int scale='log' needs low >= 1, got low={low!r}")
        object.__setattr__(self, "low", lo)
        object.__setattr__(self, "high", hi)
        object.__setattr__(self, "scale", scale)

    @property
    def size(self) -> int:
        """How many integers the dimension holds."""
        return self.high - self.low + 1

    def _log_edges(self) -> tuple[float, float]:
        return math.log(self.low - 0.5), math.log(self.high + 0.5)

    def from_unit(self, u: float | np.ndarray) -> int | np.ndarray:
        """Map ``u`` (scalar or array, clipped to [0, 1]) to the integer(s) whose cell holds it."""
        arr = _unit_array(u)
        if self.scale == "linear":
            k = np.floor(arr * self.size)
            x = self.low + np.clip(k, 0, self.size - 1)
        else:
            a, b = self._log_edges()
            x = np.floor(np.exp(a + arr * (b - a)) + 0.5)
        return _scalar_out(u, np.clip(x, self.low, self.high).astype(np.int64))

    def to_unit(self, value: int | np.ndarray) -> float | np.ndarray:
        """Map integer value(s) in ``[low, high]`` to the centre of their cell in ``[0, 1]``."""
        if isinstance(value, bool) or (np.ndim(value) == 0 and not isinstance(value, numbers.Real)):
            raise TypeError(f"Int.to_unit needs an integer, got value={value!r}")
        x = np.asarray(value, dtype=np.float64)
        if not np.all(x == np.round(x)):
            raise TypeError(f"Int.to_unit needs an integer, got value={value!r}")
        if not np.all((x >= self.low) & (x <= self.high)):
            raise ValueError(f"value={value!r} is outside {self!r}")
        if self.scale == "linear":
            unit = (x - self.low + 0.5) / self.size
        else:
            a, b = self._log_edges()
            mid = 0.5 * (np.log(x - 0.5) + np.log(x + 0.5))
            unit = (mid - a) / (b - a)
        return _scalar_out(value, np.clip(unit, 0.0, 1.0))

    def grid(self, n: int) -> list[int]:
        """Up to ``n`` distinct integers evenly spaced on the scale, ends included; all when n >= size.

        The points are the nearest integers to ``linspace``/``geomspace(low, high, n)``, de-duplicated
        (so a log grid may hold fewer than ``n``); ``n == 1`` gives the midpoint on the scale.
        """
        n = _check_count("n", n, minimum=1)
        if n >= self.size:
            return list(range(self.low, self.high + 1))
        if n == 1:
            mid = math.sqrt(self.low * self.high) if self.scale == "log" else 0.5 * (self.low + self.high)
            return [int(math.floor(mid + 0.5))]
        space = np.geomspace if self.scale == "log" else np.linspace
        points = np.clip(np.floor(space(self.low, self.high, n) + 0.5), self.low, self.high)
        return list(dict.fromkeys(int(p) for p in points))

    def to_json(self) -> dict:
        out: dict[str, Any] = {"int": [self.low, self.high]}
        if self.scale != "linear":
            out["scale"] = self.scale
        return out

    def __repr__(self) -> str:
        scale = "" if self.scale == "linear" else f", scale={self.scale!r}"
        return f"Int({self.low!r}, {self.high!r}{scale})"


@dataclass(frozen=True)
class Choice:
    """An unordered set of values (str, bool, int or float); each owns ``1/n`` of the unit interval.

    ``True`` and ``1`` count as different values (as in JSON); ``1`` and ``1.0`` are duplicates.

    Example:
        >>> Choice(["relu", "tanh"]).from_unit(0.75)
        'tanh'
    """

    values: tuple

    def __init__(self, values: Sequence[Any]) -> None:
        if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, (Sequence, np.ndarray)):
            raise TypeError(f"Choice needs a list of values, got values={values!r}")
        clean: list[Any] = []
        for v in values:
            if isinstance(v, np.generic):
                v = v.item()
            if isinstance(v, bool) or isinstance(v, str):
                pass
            elif isinstance(v, numbers.Integral):
                v = int(v)
            elif isinstance(v, numbers.Real):
                v = float(v)
                if not math.isfinite(v):
                    raise ValueError(f"Choice values must be finite, got value={v!r} in values={values!r}")
            else:
                raise TypeError(
                    f"Choice values must be str, bool, int or float, got value={v!r} in values={values!r}"
                )
            if any(_same(v, c) for c in clean):
                raise ValueError(f"Choice values must be distinct, got duplicate value={v!r} in values={values!r}")
            clean.append(v)
        if not clean:
            raise ValueError(f"Choice needs at least one value, got values={values!r}")
        object.__setattr__(self, "values", tuple(clean))

    @property
    def size(self) -> int:
        return len(self.values)

    def index(self, value: Any) -> int:
        """Position of ``value`` in ``values``; ``ValueError`` naming the value if it is not there."""
        for i, c in enumerate(self.values):
            if _same(value, c):
                return i
        raise ValueError(f"value={value!r} is not one of {list(self.values)!r}")

    def index_from_unit(self, u: float | np.ndarray) -> int | np.ndarray:
        """The cell index(es) ``floor(u n)`` (clipped to ``n - 1``) of ``u``."""
        arr = _unit_array(u)
        k = np.clip(np.floor(arr * self.size), 0, self.size - 1).astype(np.int64)
        return _scalar_out(u, k)

    def from_unit(self, u: float | np.ndarray) -> Any:
        """Map ``u`` to a value; an array maps to an object array of the same shape."""
        k = self.index_from_unit(u)
        if np.ndim(u) == 0:
            return self.values[k]
        table = np.empty(self.size, dtype=object)
        table[:] = list(self.values)
        return table[k]

    def to_unit(self, value: Any) -> float:
        """The centre ``(i + ½) / n`` of the cell of ``value`` (one value, not an array)."""
        return (self.index(value) + 0.5) / self.size

    def grid(self, n: int | None = None) -> list[Any]:
        """All values, whatever ``n`` is (an unordered set has no coarser grid)."""
        if n is not None:
            _check_count("n", n, minimum=1)
        return list(self.values)

    def to_json(self) -> dict:
        return {"choice": list(self.values)}

    def __repr__(self) -> str:
        return f"Choice({list(self.values)!r})"


Dimension = Union[Float, Int, Choice]
_DIMENSION_TYPES = (Float, Int, Choice)


def parse_dimension(obj: Mapping[str, Any], *, name: str = "dimension") -> Dimension:
    """Build a dimension from its JSON object (``{"float": [lo, hi], "scale": ...}``, ``{"int": ...}``,
    ``{"choice": [...]}``). Errors are ``ValueError``/``TypeError`` that start with ``name``.

    Example:
        >>> parse_dimension({"int": [16, 256], "scale": "log"}, name="units")
        Int(16, 256, scale='log')
    """
    try:
        return _parse_dimension(obj)
    except (ValueError, TypeError) as err:
        raise type(err)(f"{name}: {err}") from None


def _parse_dimension(obj: Any) -> Dimension:
    if not isinstance(obj, Mapping):
        raise TypeError(f"a dimension must be an object, got {obj!r}")
    unknown = [k for k in obj if k not in (*_DIMENSION_KEYS, "scale")]
    if unknown:
        raise ValueError(
            f"unknown key(s) {', '.join(map(repr, unknown))} in dimension {dict(obj)!r}; "
            "allowed: 'float', 'int', 'choice', 'scale'"
        )
    kinds = [k for k in _DIMENSION_KEYS if k in obj]
    if len(kinds) != 1:
        raise ValueError(f"a dimension needs exactly one of 'float', 'int', 'choice', got {dict(obj)!r}")
    kind = kinds[0]
    if kind == "choice":
        if "scale" in obj:
            raise ValueError(f"a choice has no scale, got {dict(obj)!r}")
        values = obj["choice"]
        if not isinstance(values, (list, tuple)):
            raise TypeError(f"'choice' must be a list of values, got {values!r}")
        return Choice(values)
    bounds = obj[kind]
    if not isinstance(bounds, (list, tuple)):
        raise TypeError(f"{kind!r} must be a list [low, high], got {bounds!r}")
    if len(bounds) != 2:
        raise ValueError(f"{kind!r} must be a list [low, high] of length 2, got {list(bounds)!r}")
    scale = obj.get("scale", "linear")
    if not isinstance(scale, str):
        raise TypeError(f"'scale' must be a string, got {scale=!r}")
    cls = Float if kind == "float" else Int
    return cls(bounds[0], bounds[1], scale=scale)


# ---------------------------------------------------------------------------------------------- space


def _check_dimension(name: str, dim: Dimension) -> Dimension:
    """Check that ``dim`` fits hparam ``name`` (kind and legal values); return it normalised."""
    kind = hp.HPARAMS[name][0]
    if isinstance(dim, Choice):
        try:
            values = [hp.check_value(name, v) for v in dim.values]
        except (ValueError, TypeError) as err:
            raise type(err)(f"{name}: choice {list(dim.values)!r} holds an illegal value: {err}") from None
        try:
            return Choice(values)
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None
    if kind in ("choice", "bool"):
        raise TypeError(f"{name} is a {kind} hyperparameter: search it with a Choice, got {dim!r}")
    if kind == "int" and not isinstance(dim, Int):
        raise TypeError(f"{name} is an integer hyperparameter: search it with Int or Choice, got {dim!r}")
    if kind == "float" and not isinstance(dim, Float):
        raise TypeError(f"{name} is a float hyperparameter: search it with Float or Choice, got {dim!r}")
    for field, bound in (("low", dim.low), ("high", dim.high)):
        try:
            hp.check_value(name, bound)
        except (ValueError, TypeError) as err:
            raise type(err)(f"{name}: {field} bound of {dim!r} is not a legal value: {err}") from None
    return dim


class Space:
    """A mapping from canonical hyperparameter names to dimensions (searched) or fixed values.

    Names are kept in the canonical order of ``vtune.hparams.NAMES``; ``searchable_names`` (the
    dimensions, in that order) are the axes of the unit cube ``[0, 1]^d``. ``len``, ``in``, iteration and
    ``space[name]`` cover every name, fixed ones included. Fixed values are checked and normalised with
    ``hparams.check_value``; a dimension must fit its hyperparameter (``Choice`` for choice/bool kinds,
    ``Int`` or ``Choice`` for integers, ``Float`` or ``Choice`` for reals) and every value it can produce
    must be legal (so ``Choice(["adam", "adamm"])`` for ``optimizer`` fails here, not mid-search).

    Example:
        >>> space = Space({"learning_rate": Float(1e-4, 1e-1, scale="log"), "units": Int(16, 64),
        ...                "optimizer": Choice(["adam", "sgd"]), "batch_size": 64})
        >>> space.searchable_names
        ('learning_rate', 'optimizer', 'units')
        >>> len(space.sample(4, seed=0)), space.max_units(), space.batch_sizes()
        (4, 64, [64])
    """

    def __init__(self, mapping: Mapping[str, Any]) -> None:
        if not isinstance(mapping, Mapping):
            raise TypeError(f"Space needs a mapping of hyperparameter names, got {type(mapping).__name__}")
        items: dict[str, Any] = {}
        for name, value in mapping.items():
            hp.check_name(name)
            if isinstance(value, _DIMENSION_TYPES):
                items[name] = _check_dimension(name, value)
            else:
                items[name] = hp.check_value(name, value)
        self._items = {n: items[n] for n in hp.NAMES if n in items}
        self._dims = {n: v for n, v in self._items.items() if isinstance(v, _DIMENSION_TYPES)}
        self._fixed = {n: v for n, v in self._items.items() if not isinstance(v, _DIMENSION_TYPES)}

    # ------------------------------------------------------------------------------ mapping protocol

    @property
    def names(self) -> tuple[str, ...]:
        """Every name in the space (searched and fixed), canonical order."""
        return tuple(self._items)

    @property
    def searchable_names(self) -> tuple[str, ...]:
        """The names of the dimensions: the axes of the unit cube, canonical order."""
        return tuple(self._dims)

    @property
    def dimensions(self) -> dict[str, Dimension]:
        return dict(self._dims)

    @property
    def fixed(self) -> dict[str, Any]:
        return dict(self._fixed)

    @property
    def num_dims(self) -> int:
        """``d``, the number of searchable dimensions."""
        return len(self._dims)

    def __getitem__(self, name: str) -> Any:
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Space):
            return NotImplemented
        return self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        body = ", ".join(f"{n}={v!r}" for n, v in self._items.items())
        return f"Space({body})"

    # ------------------------------------------------------------------------------------- encoding

    def to_unit(self, config: Mapping[str, Any]) -> np.ndarray:
        """Encode a configuration as a point ``[d]`` of the unit cube (searchable names only).

        Names the space fixes or does not hold are ignored; a missing searchable name or a value outside
        its dimension is a ``ValueError`` naming it.
        """
        if not isinstance(config, Mapping):
            raise TypeError(f"a configuration must be a mapping, got {type(config).__name__}")
        out = np.empty(len(self._dims), dtype=np.float64)
        for j, (name, dim) in enumerate(self._dims.items()):
            if name not in config:
                raise ValueError(f"configuration lacks searchable hyperparameter {name!r}")
            try:
                out[j] = dim.to_unit(config[name])
            except (ValueError, TypeError) as err:
                raise type(err)(f"{name}: {err}") from None
        return out

    def to_unit_batch(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Encode ``N`` configurations as ``[N, d]``."""
        return np.stack([self.to_unit(c) for c in configs]) if configs else np.empty((0, self.num_dims))

    def from_unit(self, u: Any) -> dict[str, Any]:
        """Decode a point ``u`` ``[d]`` (clipped to [0, 1]) into a full configuration, fixed values included."""
        arr = np.asarray(u, dtype=np.float64)
        if arr.shape != (self.num_dims,):
            raise ValueError(f"u must have shape ({self.num_dims},) for {self.searchable_names}, got {arr.shape}")
        return self.from_unit_batch(arr[None, :])[0]

    def from_unit_batch(self, u: Any) -> list[dict[str, Any]]:
        """Decode points ``u`` ``[N, d]`` into ``N`` configurations (Python scalars, fixed values included)."""
        arr = np.asarray(u, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != self.num_dims:
            raise ValueError(f"u must have shape (N, {self.num_dims}) for {self.searchable_names}, got {arr.shape}")
        columns = {name: dim.from_unit(arr[:, j]).tolist() for j, (name, dim) in enumerate(self._dims.items())}
        configs = []
        for i in range(arr.shape[0]):
            config = {}
            for name in self._items:
                config[name] = columns[name][i] if name in columns else self._fixed[name]
            configs.append(config)
        return configs

    # ------------------------------------------------------------------------------------ searching

    def sample(self, n: int, *, seed: int | np.random.Generator, stratified: bool = True) -> list[dict[str, Any]]:
        """``n`` configurations drawn uniformly from the unit cube; the same seed gives the same list.

        ``stratified=True`` (default) draws a Latin hypercube: each axis is cut into ``n`` equal strata and
        every stratum holds exactly one point, so small samples still cover every dimension (a Choice of
        ``k`` values gets each value ``n/k`` times when ``k`` divides ``n``). ``stratified=False`` draws
        i.i.d. points. A ``Generator`` passed as ``seed`` is advanced.

        Example:
            >>> Space({"units": Int(1, 4)}).sample(4, seed=0) == Space({"units": Int(1, 4)}).sample(4, seed=0)
            True
        """
        n = _check_count("n", n, minimum=0)
        rng = _make_rng(seed)
        d = self.num_dims
        if stratified:
            u = np.empty((n, d))
            for j in range(d):
                u[:, j] = (rng.permutation(n) + rng.random(n)) / max(n, 1)
        else:
            u = rng.random((n, d))
        return self.from_unit_batch(u)

    def grid(self, points_per_dim: int = 3, *, max_points: int = 1_000_000) -> list[dict[str, Any]]:
        """The full Cartesian product of every dimension's ``grid(points_per_dim)`` (Choice: all values).

        The first searchable name varies slowest. More than ``max_points`` configurations is a
        ``ValueError`` (a grid grows as ``points_per_dim ** d``).
        """
        points_per_dim = _check_count("points_per_dim", points_per_dim, minimum=1)
        axes = [dim.grid(points_per_dim) for dim in self._dims.values()]
        total = math.prod(len(a) for a in axes)
        if total > max_points:
            sizes = {n: len(a) for n, a in zip(self._dims, axes)}
            raise ValueError(f"grid would hold {total} configurations ({sizes}), over {max_points=}")
        configs = []
        for combo in itertools.product(*axes):
            chosen = dict(zip(self._dims, combo))
            configs.append({name: chosen.get(name, self._fixed.get(name)) for name in self._items})
        return configs

    def narrow(self, center: Mapping[str, Any], fraction: float, *, fix_choices: bool = False) -> "Space":
        """A smaller space around ``center``, for coarse-to-fine search.

        Each ``Float``/``Int`` dimension shrinks to the window ``[c - fraction/2, c + fraction/2]`` in unit
        space (``c`` = the centre's unit value), clipped to ``[0, 1]`` and mapped back to value bounds on
        the same scale, so the new space's unit interval is that window. An ``Int`` window that holds a
        single integer (or a ``Float`` window too small to hold two floats) becomes a fixed value.
        ``Choice`` dimensions are kept whole, because an unordered set has no neighbourhood; with
        ``fix_choices=True`` they are fixed to the centre's value instead. Fixed values stay.

        Example:
            >>> Space({"units": Int(1, 100)}).narrow({"units": 50}, 0.1)
            Space(units=Int(45, 55))
        """
        if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real):
            raise TypeError(f"fraction must be a number in (0, 1], got {fraction=!r}")
        if not 0.0 < float(fraction) <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {fraction=!r}")
        if not isinstance(center, Mapping):
            raise TypeError(f"center must be a mapping, got {type(center).__name__}")
        half = 0.5 * float(fraction)
        out: dict[str, Any] = dict(self._fixed)
        for name, dim in self._dims.items():
            if isinstance(dim, Choice) and not fix_choices:
                out[name] = dim
                continue
            if name not in center:
                raise ValueError(f"center lacks searchable hyperparameter {name!r}")
            try:
                c = dim.to_unit(center[name])
            except (ValueError, TypeError) as err:
                raise type(err)(f"{name}: center {err}") from None
            if isinstance(dim, Choice):
                out[name] = dim.values[dim.index(center[name])]
                continue
            low = dim.from_unit(max(0.0, c - half))
            high = dim.from_unit(min(1.0, c + half))
            if low >= high:
                out[name] = dim.from_unit(c)
            else:
                out[name] = type(dim)(low, high, scale=dim.scale)
        return Space(out)

    # ------------------------------------------------------------------------------ static geometry

    def _possible(self, name: str) -> list[Any]:
        """Every value ``name`` can take in this space (the default when absent; ``[None]`` if none)."""
        if name in self._dims:
            dim = self._dims[name]
            if isinstance(dim, Int):
                return list(range(dim.low, dim.high + 1))
            return list(dim.values)
        if name in self._fixed:
            return [self._fixed[name]]
        return [hp.HPARAMS[name][1]]

    def _max_int(self, name: str) -> int | None:
        if name in self._dims and isinstance(self._dims[name], Int):
            return self._dims[name].high
        values = [v for v in self._possible(name) if v is not None]
        return max(values) if values else None

    def max_layers(self) -> int:
        """The largest ``num_layers`` any configuration of this space can have."""
        return int(self._max_int("num_layers"))

    def max_units_per_layer(self) -> tuple[int, ...]:
        """``[max_layers()]`` widest width of each hidden layer: ``units_i`` where the space sets it, else ``units``."""
        units = int(self._max_int("units"))
        widths = []
        for i in range(1, self.max_layers() + 1):
            own = self._max_int(f"units_{i}") if f"units_{i}" in self._items else None
            widths.append(int(own) if own is not None else units)
        return tuple(widths)

    def max_units(self) -> int:
        """The widest hidden layer any configuration can have (``units`` and ``units_1..max_layers``)."""
        return max(self.max_units_per_layer())

    def batch_sizes(self) -> list[int]:
        """Every batch size a configuration can have, sorted (an ``Int`` dimension gives every integer)."""
        return sorted(int(v) for v in self._possible("batch_size"))

    # ---------------------------------------------------------------------------------------- JSON

    def to_json(self) -> dict[str, Any]:
        """The space-file object: fixed values as they are, dimensions as ``{"float"|"int"|"choice": ...}``."""
        return {n: (v.to_json() if isinstance(v, _DIMENSION_TYPES) else v) for n, v in self._items.items()}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> "Space":
        """Parse a space-file object (see the module docstring); errors name the hyperparameter.

        Example:
            >>> Space.from_json({"dropout": {"float": [0, 0.5]}, "batch_size": 64})
            Space(dropout=Float(0.0, 0.5), batch_size=64)
        """
        if not isinstance(obj, Mapping):
            raise TypeError(f"a space must be a JSON object of hyperparameter names, got {type(obj).__name__}")
        mapping: dict[str, Any] = {}
        for name, value in obj.items():
            hp.check_name(name)
            if isinstance(value, Mapping):
                mapping[name] = parse_dimension(value, name=name)
            elif isinstance(value, (list, tuple)):
                raise TypeError(
                    f"{name}: a list is not a value; write {{\"choice\": {json.dumps(list(value))}}} "
                    f"to search these values, got {name}={value!r}"
                )
            else:
                mapping[name] = value
        return cls(mapping)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "Space":
        """Read a JSON space file. Missing file: ``FileNotFoundError``; bad JSON or content: ``ValueError``
        (or ``TypeError``) naming the path (and the line and column for a syntax error)."""
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"space file not found: {path}")
        with open(path, encoding="utf-8") as f:
            text = f.read()
        try:
            obj = json.loads(text, object_pairs_hook=_no_duplicate_keys)
        except json.JSONDecodeError as err:
            raise ValueError(
                f"{path}: invalid JSON at line {err.lineno}, column {err.colno} (char {err.pos}): {err.msg}"
            ) from None
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
        try:
            return cls.from_json(obj)
        except (ValueError, TypeError) as err:
            raise type(err)(f"{path}: {err}") from None


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r} in a JSON object")
        out[key] = value
    return out


def _make_rng(seed: int | np.random.Generator) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int or numpy Generator, got {seed=!r}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed=!r}")
    return np.random.default_rng(int(seed))


# -------------------------------------------------------------------------------------------- default


def default_space(dataset: Any) -> Space:
    """A sensible default space for ``dataset`` (needs ``n_features``, ``n_outputs``, ``n_train``, ``task``).

    The ranges follow the practitioners' guides the project is built on:

    * ``learning_rate`` log-uniform over [1e-4, 1e-1]: the useful step sizes span orders of magnitude.
    * ``optimizer`` one of momentum SGD, Adam, RMSprop: the three families that cover most practice.
    * ``momentum`` reverse_log over [0.8, 0.999] (it is β₁ for Adam): every decade of 1-β gets equal mass
      (0.8–0.98 as much as 0.98–0.998), as the averaging horizon 1/(1-β) is what matters.
    * ``num_layers`` 1..3: more rarely helps a tabular MLP and costs depth-padding for everyone.
    * ``units`` log-uniform, from Heaton's rules of thumb (a hidden layer between the output and input
      size, about 2/3·input + output, under 2·input): ``low = max(8, n_outputs)``,
      ``high = max(2·low, min(512, 2·n_features))`` rounded up to a multiple of 8 (padded widths come in
      tiles) and capped at 512 — the cap bounds the padded geometry every member pays for, so for very
      wide inputs (2/3·784 + 10 = 533 for MNIST) the rule's centre sits just above the range.
    * ``activation`` relu, tanh or elu; ``weight_decay`` log-uniform [1e-6, 1e-2]; ``dropout`` [0, 0.5].
    * ``batch_size`` fixed (a new batch size changes the micro-batch geometry): 64 when
      ``n_train >= 4096`` else 32, halved until it is at most ``n_train / 4`` so an epoch holds at least
      four steps, and at least 1.

    Example:
        >>> from types import SimpleNamespace
        >>> s = default_space(SimpleNamespace(n_features=64, n_outputs=10, n_train=1200, task="classification"))
        >>> s["units"], s["batch_size"]
        (Int(10, 128, scale='log'), 32)
    """
    sizes = {}
    for field in ("n_features", "n_outputs", "n_train"):
        if not hasattr(dataset, field):
            raise TypeError(f"default_space needs a dataset with attribute {field!r}, got {type(dataset).__name__}")
        sizes[field] = _check_count(f"dataset.{field}", getattr(dataset, field), minimum=1)
    task = getattr(dataset, "task", None)
    if task not in hp.TASK_LOSSES:
        raise ValueError(f"dataset.task must be one of {', '.join(hp.TASK_LOSSES)}, got {task=!r}")
    low = max(8, sizes["n_outputs"])
    high = max(2 * low, min(512, 2 * sizes["n_features"]))
    rounded = -(-high // 8) * 8
    high = rounded if rounded <= 512 else max(512, high)
    batch = 64 if sizes["n_train"] >= 4096 else 32
    while batch > 1 and batch > sizes["n_train"] / 4:
        batch //= 2
    return Space(
        {
            "learning_rate": Float(1e-4, 1e-1, scale="log"),
            "optimizer": Choice(["momentum", "adam", "rmsprop"]),
            "momentum": Float(0.8, 0.999, scale="reverse_log"),
            "num_layers": Int(1, 3),
            "units": Int(low, high, scale="log"),
            "activation": Choice(["relu", "tanh", "elu"]),
            "weight_decay": Float(1e-6, 1e-2, scale="log"),
            "dropout": Float(0.0, 0.5),
            "batch_size": batch,
        }
    )
