"""Reporting: learning-curve plots, the trials CSV, result tables, the text summary and live progress.

This is host-side code only: it reads the plain trial records the search layer produces and writes files or
terminal output. A trial record is a ``dict``::

    {"id": 7, "config": {"learning_rate": 3e-3, ...}, "bracket": 1,
     "rungs": [{"epochs": 3, "val_score": 0.91}, {"epochs": 9, "val_score": 0.95}],
     "status": "completed",            # or "pruned" or "diverged"
     "curve": [0.52, 0.81, ..., 0.95]}  # validation score after each epoch; NaN after divergence

Scores are "higher is better" everywhere (accuracy, R², −f). A trial's *final score* is its last rung's
``val_score`` (or, without rungs, the last finite value of its curve); diverged trials and trials without a
finite final score always rank last.

Files are written atomically: rendered to a temporary file in the target's directory, then moved over the
target with ``os.replace``, so a crash never leaves a half-written plot or CSV behind.

matplotlib is used through ``Figure`` and ``FigureCanvasAgg`` directly; nothing here touches pyplot or the
global backend, so interactive sessions keep theirs.
"""

from __future__ import annotations

import csv
import datetime
import json
import math
import numbers
import os
import pathlib
import tempfile
import threading
import time
from typing import IO, Any, Callable, Iterable, Mapping, Sequence

import numpy as np

STATUSES = ("completed", "pruned", "diverged")

# --------------------------------------------------------------------------------------------------------
# Trial records
# --------------------------------------------------------------------------------------------------------


class _Trial:
    """A checked, normalised view of one trial record (host-side, never traced)."""

    __slots__ = ("id", "config", "bracket", "rungs", "status", "curve", "finite_len", "final_score")

    def __init__(self, record: Any, position: int) -> None:
        if not isinstance(record, Mapping):
            raise TypeError(f"trials[{position}] must be a mapping (a trial record), got {type(record).__name__}")
        for key in ("id", "status"):
            if key not in record:
                raise ValueError(f"trials[{position}] has no {key!r} field; its keys: {sorted(record)}")
        self.id = record["id"]
        status = record["status"]
        if status not in STATUSES:
            raise ValueError(f"trials[{position}] (id={self.id!r}) has status={status!r}; expected one of {STATUSES}")
        self.status: str = status
        config = record.get("config") or {}
        if not isinstance(config, Mapping):
            raise TypeError(f"trials[{position}] (id={self.id!r}) config must be a mapping, got {config!r}")
        self.config: Mapping[str, Any] = config
        self.bracket = record.get("bracket")
        rungs = record.get("rungs") or []
        for j, rung in enumerate(rungs):
            if not isinstance(rung, Mapping) or "epochs" not in rung or "val_score" not in rung:
                raise ValueError(
                    f"trials[{position}] (id={self.id!r}) rungs[{j}] must be a mapping with 'epochs' and "
                    f"'val_score', got {rung!r}"
                )
        self.rungs: list = list(rungs)
        curve = record.get("curve")
        if curve is None:
            curve = []
        # JSON has no NaN: a reloaded results file may carry None where the score was NaN.
        self.curve = np.asarray([np.nan if v is None else v for v in curve], dtype=np.float64).reshape(-1)
        bad = np.flatnonzero(~np.isfinite(self.curve))
        #: the curve is drawn up to (not including) its first non-finite value
        self.finite_len = int(bad[0]) if bad.size else int(self.curve.size)
        self.final_score = self._final_score()

    def _final_score(self) -> float:
        if self.rungs:
            value = self.rungs[-1]["val_score"]
            score = math.nan if value is None else float(value)
        elif self.finite_len:
            score = float(self.curve[self.finite_len - 1])
        else:
            score = math.nan
        return score

    @property
    def failed(self) -> bool:
        """Diverged, or no finite final score: ranks after every other trial."""
        return self.status == "diverged" or not math.isfinite(self.final_score)

    @property
    def last_epochs(self) -> Any:
        return self.rungs[-1]["epochs"] if self.rungs else None

    @property
    def best_curve_score(self) -> float:
        finite = self.curve[np.isfinite(self.curve)]
        return float(finite.max()) if finite.size else math.nan


def _check_trials(trials: Any) -> list[_Trial]:
    if isinstance(trials, (str, bytes, Mapping)) or not isinstance(trials, Iterable):
        raise TypeError(f"trials must be a sequence of trial records (dicts), got {type(trials).__name__}")
    return [_Trial(record, i) for i, record in enumerate(trials)]


def _ranked(trials: Sequence[_Trial]) -> list[_Trial]:
    """Best first: finite final scores descending, then failed trials; ties broken by position."""
    order = sorted(
        range(len(trials)),
        key=lambda i: (trials[i].failed, -trials[i].final_score if not trials[i].failed else 0.0, i),
    )
    return [trials[i] for i in order]


# --------------------------------------------------------------------------------------------------------
# Atomic files
# --------------------------------------------------------------------------------------------------------


from vtune.io import write_atomic as _write_atomic  # noqa: E402


# --------------------------------------------------------------------------------------------------------
# Learning curves
# --------------------------------------------------------------------------------------------------------

_COLORS = {"completed": "#1f77b4", "pruned": "#7f7f7f", "diverged": "#d62728", "best": "#ff7f0e"}


def _robust_bottom(best_scores: np.ndarray, values: np.ndarray) -> float | None:
    """A lower y-limit that keeps terrible scores (R² of −1e4, −f of −1e6) from flattening the rest.

    ``best_scores`` ``[T]`` holds each plotted trial's best finite score, ``values`` every plotted point.
    When the lowest point lies more than three times the spread of the better three quarters of the
    trials below them, the axis starts one spread below their lower quartile; otherwise None (no clip).
    """
    if best_scores.size < 4:
        return None
    q25, top = np.quantile(best_scores, [0.25, 1.0])
    span = top - q25
    if not span > 0 or values.min() >= q25 - 3.0 * span:
        return None
    return float(q25 - span)


def plot_curves(
    trials: Sequence[Mapping[str, Any]],
    path: str | os.PathLike,
    *,
    best_id: Any = None,
    metric: str = "accuracy",
    title: str | None = None,
    show_rungs: bool = False,
) -> pathlib.Path:
    """Plot every trial's validation learning curve into one PNG; return the path written.

    The picture is ``curves_figure(...)`` (see there); the file is written atomically and its parent
    folders are created.

    Example::

        >>> trials = [{"id": 0, "status": "completed", "curve": [0.5, 0.8, 0.9]},
        ...           {"id": 1, "status": "pruned", "curve": [0.4]}]
        >>> plot_curves(trials, "/tmp/curves.png").name
        'curves.png'
    """
    fig = curves_figure(trials, best_id=best_id, metric=metric, title=title, show_rungs=show_rungs)
    return _write_atomic(path, lambda fh: fig.savefig(fh, format="png"), binary=True)


def curves_figure(
    trials: Sequence[Mapping[str, Any]],
    *,
    best_id: Any = None,
    metric: str = "accuracy",
    title: str | None = None,
    show_rungs: bool = False,
):
    """All trials' validation learning curves as a ``matplotlib.figure.Figure`` (Agg canvas, no pyplot).

    x is the epoch (1 .. len(curve)), y the validation score (higher is better). Pruned trials are drawn
    faint and thin, completed ones normally, diverged ones up to their last finite value with an ``x``
    where they broke off, and the best trial thick and labelled in the legend (below the axes). Thousands
    of trials are fine (one ``LineCollection`` per status). A plot with nothing to draw (no trials, empty
    curves, every trial diverged) carries a sentence saying why. When a few scores lie far below the
    rest (R² of −1e4), the y axis is clipped below and the plot says so.

    Args:
      trials: trial records (see the module docstring); ``curve`` has shape ``[epochs]`` per trial.
      best_id: the ``id`` of the trial to highlight; default: the best final score among the trials that
        did not diverge (none if all did).
      metric: the score's name, for the y label.
      title: the plot title; default ``"Learning curves · N trials"``.
      show_rungs: draw a dotted vertical line at every rung boundary (the rungs' epoch counts).

    Example::

        >>> fig = curves_figure([{"id": 0, "status": "completed", "curve": [0.5, 0.8, 0.9]}])
        >>> fig.savefig("/tmp/curves.svg")  # any format Agg/matplotlib can write
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    checked = _check_trials(trials)
    if not isinstance(metric, str):
        raise TypeError(f"metric must be a string, got {metric=}")
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title must be a string or None, got {title=}")
    ids = [t.id for t in checked]
    if best_id is None:
        ranked = _ranked(checked)
        best = ranked[0] if ranked and not ranked[0].failed else None
    else:
        matches = [t for t in checked if t.id == best_id]
        if not matches:
            shown = ids[:10] + (["..."] if len(ids) > 10 else [])
            raise ValueError(f"best_id={best_id!r} is not the id of any trial; ids: {shown}")
        best = matches[0]

    fig = Figure(figsize=(8.0, 5.0), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation {metric}")
    ax.set_title(title if title is not None else f"Learning curves · {len(checked)} trial{'s' * (len(checked) != 1)}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.25, linewidth=0.6)

    num = len(checked)
    alpha_full = float(np.clip(60.0 / max(num, 1), 0.08, 0.9))
    alpha_faint = float(np.clip(25.0 / max(num, 1), 0.05, 0.5))
    styles = {
        "pruned": dict(color=_COLORS["pruned"], linewidths=0.6, alpha=alpha_faint, zorder=1),
        "diverged": dict(
            color=_COLORS["diverged"], linewidths=0.7, alpha=max(alpha_faint, 0.5 * alpha_full), zorder=2
        ),
        "completed": dict(color=_COLORS["completed"], linewidths=1.0, alpha=alpha_full, zorder=3),
    }
    mark_size = 22.0 if num <= 200 else 10.0
    counts = {s: 0 for s in STATUSES}
    all_values: list[np.ndarray] = []
    best_scores: list[float] = []
    max_epoch = 0
    for status in ("pruned", "completed", "diverged"):
        segments, dots, marks = [], [], []
        for t in checked:
            if t.status != status:
                continue
            counts[status] += 1
            n = t.finite_len
            if n:
                xy = np.column_stack([np.arange(1, n + 1, dtype=np.float64), t.curve[:n]])
                all_values.append(xy[:, 1])
                best_scores.append(float(xy[:, 1].max()))
                max_epoch = max(max_epoch, n)
                (segments if n > 1 else dots).append(xy if n > 1 else xy[0])
                if n < t.curve.size or status == "diverged":
                    marks.append(xy[-1])
        style = styles[status]
        if segments:
            ax.add_collection(LineCollection(segments, label=f"_{status}", **style))
        if dots:
            d = np.asarray(dots)
            ax.scatter(
                d[:, 0], d[:, 1], s=10, color=style["color"], alpha=style["alpha"], zorder=style["zorder"],
                linewidths=0, label=f"_{status}_points",
            )
        if marks:
            m = np.asarray(marks)
            ax.scatter(
                m[:, 0], m[:, 1], marker="x", s=mark_size, color=_COLORS["diverged"], linewidths=1.0, zorder=4,
                label="_breaks",
            )

    handles = []
    for status in ("completed", "pruned", "diverged"):
        if counts[status]:
            handles.append(
                Line2D(
                    [], [], color=styles[status]["color"], linewidth=1.5,
                    alpha=max(styles[status]["alpha"], 0.6),
                    marker="x" if status == "diverged" else None,
                    label=f"{status} ({counts[status]})",
                )
            )
    if best is not None and best.finite_len:
        n = best.finite_len
        x = np.arange(1, n + 1)
        score = best.final_score if math.isfinite(best.final_score) else best.best_curve_score
        (line,) = ax.plot(
            x, best.curve[:n], color=_COLORS["best"], linewidth=2.6, zorder=5,
            marker="o" if n == 1 else None, markersize=5,
            label=f"best: trial {best.id} ({metric} {_fmt_score(score)})",
        )
        handles.insert(0, line)

    if show_rungs:
        bounds = sorted({int(r["epochs"]) for t in checked for r in t.rungs if r.get("epochs") is not None})
        for b in bounds:
            if 0 < b < max_epoch:
                ax.axvline(b, color="black", linestyle=":", linewidth=0.8, alpha=0.45, zorder=0)
        if any(0 < b < max_epoch for b in bounds):
            handles.append(
                Line2D([], [], color="black", linestyle=":", linewidth=0.8, alpha=0.6, label="rung boundary")
            )

    note = None
    if not checked:
        note = "no trials to plot"
    elif counts["diverged"] == num:
        note = (
            f"all {num} trial{'s' * (num != 1)} diverged\n"
            "(the loss became NaN or infinite; try smaller learning rates)"
        )
    elif not all_values:
        note = "no learning curves recorded (every curve is empty)"
    if all_values:
        values = np.concatenate(all_values)
        lo, hi = float(values.min()), float(values.max())
        bottom = _robust_bottom(np.asarray(best_scores), values)
        clipped = bottom is not None
        low = bottom if clipped else lo
        pad = 0.05 * (hi - low) if hi > low else max(abs(hi) * 0.05, 0.05)
        # room above the curves for the note, so it hides none of them
        headroom = 0.0 if note is None else 0.3 * (hi - low + 2 * pad)
        ax.set_ylim(low if clipped else low - pad, hi + pad + headroom)
        xpad = 0.5 if max_epoch <= 1 else max(0.2, 0.01 * max_epoch)
        ax.set_xlim(1 - xpad, max_epoch + xpad)
        if max_epoch <= 1:
            ax.set_xticks([1])
        if clipped:
            ax.text(
                0.01, 0.01, f"y axis clipped below {_fmt_score(bottom)} (lowest score {_fmt_score(lo)})",
                transform=ax.transAxes, fontsize=8, color="#555555", ha="left", va="bottom",
            )
    else:
        ax.set_xlim(0.5, 1.5)
        ax.set_xticks([1])
        ax.set_ylim(0, 1)
    if note is not None:
        ax.text(
            0.5, 0.5 if not all_values else 0.97, note, transform=ax.transAxes, ha="center",
            va="center" if not all_values else "top", fontsize=12, color="#444444",
            bbox=dict(boxstyle="round,pad=0.6", facecolor="white", edgecolor="#bbbbbb", alpha=0.9), zorder=10,
        )
    if handles:
        # Outside the axes: "best" placement does not see LineCollections, and thousands of curves leave
        # no free corner anyway.
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3), fontsize=9, frameon=False)
    return fig


# --------------------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------------------

CSV_COLUMNS = ("id", "bracket", "status", "epochs", "val_score", "best_curve_score")


def _csv_value(value: Any) -> str:
    """Text for one cell: floats as ``repr`` (round-trips exactly), NaN as ``nan``, None as empty."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value))
    if isinstance(value, str):
        return value
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return _csv_value(value.item())
    if isinstance(value, (list, tuple, np.ndarray)):
        return json.dumps(np.asarray(value).tolist() if isinstance(value, np.ndarray) else list(value))
    return str(value)


def write_trials_csv(trials: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> pathlib.Path:
    """Write one CSV row per trial (in the given order) and return the path written.

    Columns: ``id, bracket, status, epochs, val_score, best_curve_score`` (``epochs`` and ``val_score``
    from the last rung; ``best_curve_score`` the highest finite value of the curve), then one column per
    configuration key (the union over trials, sorted). Floats are written with ``repr``, so
    ``float(cell)`` gives back the exact value; NaN is ``nan``; a missing value is an empty cell. The file
    is written atomically.

    Example::

        >>> trials = [{"id": 0, "status": "completed", "bracket": 0, "config": {"learning_rate": 0.003},
        ...            "rungs": [{"epochs": 9, "val_score": 0.95}], "curve": [0.9, 0.95]}]
        >>> write_trials_csv(trials, "/tmp/trials.csv").read_text().splitlines()[1]
        '0,0,completed,9,0.95,0.95,0.003'
    """
    checked = _check_trials(trials)
    keys = sorted({str(k) for t in checked for k in t.config})
    clash = sorted(set(keys) & set(CSV_COLUMNS))
    if clash:
        raise ValueError(f"configuration keys {clash} clash with the CSV's own columns {CSV_COLUMNS}")

    def write(fh: IO) -> None:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow([*CSV_COLUMNS, *keys])
        for t in checked:
            config = {str(k): v for k, v in t.config.items()}
            last_score = t.rungs[-1]["val_score"] if t.rungs else None
            row = [t.id, t.bracket, t.status, t.last_epochs, last_score, t.best_curve_score if t.curve.size else None]
            writer.writerow([_csv_value(v) for v in row] + [_csv_value(config.get(k)) for k in keys])

    return _write_atomic(path, write, binary=False)


# --------------------------------------------------------------------------------------------------------
# Tables and summaries
# --------------------------------------------------------------------------------------------------------


def _fmt_score(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    value = float(value)
    if math.isnan(value):
        return "nan"
    return f"{value:.{digits}g}"


def _compact(value: Any, digits: int = 3, *, scientific: bool | None = None) -> str:
    """Short text for a config value: floats with ``digits`` significant digits (3.16e-03, 0.9, 128).

    ``scientific`` forces (True) or forbids (False) the exponent form; None picks it for values below
    1e-2 or at or above ``10**(digits+1)``.
    """
    if value is None:
        return "—"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        x = float(value)
        if not math.isfinite(x):
            return str(x)
        if scientific is None:
            scientific = not _plain_float(x, digits)
        return f"{x:.{digits - 1}e}" if scientific else f"{x:.{digits}g}"
    return str(value)


def _plain_float(x: float, digits: int = 3) -> bool:
    return x == 0 or not math.isfinite(x) or 1e-2 <= abs(x) < 10 ** (digits + 1)


def _column_scientific(values: Iterable[Any]) -> bool | None:
    """One float style per table column: the exponent form for all when any float needs it."""
    floats = [
        float(v) for v in values
        if isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_, numbers.Integral))
    ]
    if not floats:
        return None
    return not all(_plain_float(x) for x in floats)


def _precise(value: Any) -> str:
    """Text for a config value in the summary: floats to 6 significant digits (0.00316228, 1e-05)."""
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_, numbers.Integral)):
        return f"{float(value):.6g}"
    return _compact(value)


def _hashable(value: Any) -> Any:
    try:
        hash(value)
        return value
    except TypeError:
        return repr(value)


def _varying_keys(trials: Sequence[_Trial]) -> list[str]:
    keys = sorted({str(k) for t in trials for k in t.config})
    out = []
    for key in keys:
        seen = {_hashable(next((v for k, v in t.config.items() if str(k) == key), None)) for t in trials}
        if len(seen) > 1:
            out.append(key)
    return out


def trials_table(
    trials: Sequence[Mapping[str, Any]],
    *,
    top: int = 10,
    metric: str = "accuracy",
    title: str | None = None,
):
    """The best ``top`` trials as a ``rich.table.Table``, best first (diverged last).

    Columns: rank, id, bracket, epochs (last rung's), the final validation score, status, then every
    configuration key whose value differs between the trials (floats to 3 significant digits, 3.16e-03).

    Example::

        >>> from rich.console import Console
        >>> trials = [{"id": i, "status": "completed", "config": {"learning_rate": 10.0 ** -i},
        ...            "rungs": [{"epochs": 9, "val_score": 0.9 - 0.1 * i}]} for i in range(1, 4)]
        >>> table = trials_table(trials, top=2)
        >>> table.row_count
        2
        >>> Console().print(table)  # doctest: +SKIP
    """
    from rich.table import Table
    from rich.text import Text

    checked = _check_trials(trials)
    if isinstance(top, bool) or not isinstance(top, numbers.Integral) or top < 1:
        raise ValueError(f"top must be a positive integer, got {top=}")
    if not isinstance(metric, str):
        raise TypeError(f"metric must be a string, got {metric=}")
    ranked = _ranked(checked)[: int(top)]
    keys = _varying_keys(checked)
    if title is None:
        title = f"best {len(ranked)} of {len(checked)} trials" if checked else "no trials"
    table = Table(title=title, header_style="bold", title_justify="left")
    table.add_column("#", justify="right", style="dim")
    table.add_column("id", justify="right")
    table.add_column("bracket", justify="right")
    table.add_column("epochs", justify="right")
    table.add_column(f"val {metric}", justify="right", style="bold")
    table.add_column("status")
    for key in keys:
        table.add_column(key, justify="right", overflow="fold")
    status_style = {"completed": "green", "pruned": "yellow", "diverged": "red"}
    configs = [{str(k): v for k, v in t.config.items()} for t in ranked]
    scientific = {k: _column_scientific(c.get(k) for c in configs) for k in keys}
    for rank, (t, config) in enumerate(zip(ranked, configs), start=1):
        score = "—" if t.failed else _fmt_score(t.final_score)
        table.add_row(
            str(rank),
            str(t.id),
            "—" if t.bracket is None else str(t.bracket),
            "—" if t.last_epochs is None else str(t.last_epochs),
            score,
            Text(t.status, style=status_style[t.status]),
            *[_compact(config.get(k), scientific=scientific[k]) for k in keys],
            style="bold" if rank == 1 and not t.failed else None,
        )
    return table


def _fmt_seconds(seconds: float) -> str:
    seconds = float(seconds)
    if not math.isfinite(seconds):
        return str(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min {sec:02d} s"


def _number(summary: Mapping, *path: str) -> float | None:
    node: Any = summary
    for key in path:
        if not isinstance(node, Mapping) or node.get(key) is None:
            return None
        node = node[key]
    if isinstance(node, bool) or not isinstance(node, numbers.Real):
        raise TypeError(f"summary[{']['.join(map(repr, path))}] must be a number or None, got {node!r}")
    return float(node)


def format_summary(summary: Mapping[str, Any]) -> str:
    """A multi-line plain-text summary of a finished search.

    ``summary`` holds ``best`` (``config``, ``val_score``, ``test_score`` or None) and, each optional:
    ``metric``, ``strategy``, ``num_trials``, ``num_diverged``, ``budget`` (``model_epochs``), ``timing``
    (``wall_s``, ``compile_s``), ``out_dir``. Lines whose data is missing are left out.

    Example::

        >>> print(format_summary({"best": {"config": {"learning_rate": 0.003}, "val_score": 0.9833,
        ...                                "test_score": None}, "metric": "accuracy"}))
        best validation accuracy: 0.9833 (no test split)
        best configuration:
          learning_rate  0.003
    """
    if not isinstance(summary, Mapping):
        raise TypeError(f"summary must be a mapping, got {type(summary).__name__}")
    best = summary.get("best")
    if not isinstance(best, Mapping):
        raise ValueError(f"summary['best'] must be a mapping with 'config' and 'val_score', got {best!r}")
    metric = summary.get("metric") or "score"
    val = _number(summary, "best", "val_score")
    test = _number(summary, "best", "test_score")
    lines = []
    head = f"best validation {metric}: {_fmt_score(val, 6)}"
    head += f"   test {metric}: {_fmt_score(test, 6)}" if test is not None else " (no test split)"
    lines.append(head)
    config = best.get("config") or {}
    if not isinstance(config, Mapping):
        raise TypeError(f"summary['best']['config'] must be a mapping, got {config!r}")
    if config:
        lines.append("best configuration:")
        width = max(len(str(k)) for k in config)
        for key, value in config.items():
            lines.append(f"  {str(key):<{width}}  {_precise(value)}")
    strategy = summary.get("strategy")
    num_trials = summary.get("num_trials")
    num_diverged = summary.get("num_diverged")
    parts = []
    if strategy:
        parts.append(f"strategy: {strategy}")
    if num_trials is not None:
        trials_text = f"{num_trials:,} trials" if isinstance(num_trials, numbers.Integral) else f"{num_trials} trials"
        if num_diverged is not None:
            trials_text += f" ({num_diverged} diverged)"
        parts.append(trials_text)
    elif num_diverged is not None:
        parts.append(f"{num_diverged} diverged")
    if parts:
        lines.append(" · ".join(parts))
    model_epochs = _number(summary, "budget", "model_epochs")
    wall = _number(summary, "timing", "wall_s")
    compile_s = _number(summary, "timing", "compile_s")
    if model_epochs is not None:
        text = f"budget: {model_epochs:,.0f} model-epochs"
        if wall:
            text += f" ({model_epochs / wall:,.1f} model-epochs/s)"
        lines.append(text)
    if wall is not None:
        text = f"time: {_fmt_seconds(wall)} wall"
        if compile_s is not None:
            share = f", {100.0 * compile_s / wall:.0f}%" if wall > 0 else ""
            text += f" ({_fmt_seconds(compile_s)} compiling{share})"
        lines.append(text)
    elif compile_s is not None:
        lines.append(f"time: {_fmt_seconds(compile_s)} compiling")
    if summary.get("out_dir"):
        lines.append(f"output: {summary['out_dir']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------------------------------------


def _clock(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(seconds)))


def _check_count(name: str, value: Any, *, minimum: int = 0) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        if isinstance(value, np.ndarray) and value.ndim == 0 and np.issubdtype(value.dtype, np.integer):
            value = value.item()
        else:
            raise TypeError(f"{name} must be an integer, got {name}={value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {name}={value}")
    return value


def _bracket_label(first: int, last: int, num: int) -> str:
    """"bracket 2/4", or "brackets 1–4/4" for brackets trained together (0-based arguments)."""
    if last > first:
        return f"brackets {first + 1}–{last + 1}/{num}"
    return f"bracket {first + 1}/{num}"


class ProgressDisplay:
    """Live progress of a search: model-epochs done/total, the bracket and rung, elapsed time, best score.

    On a terminal (or in Jupyter) this is a rich ``Progress`` bar that redraws in place. Anywhere else
    (CI logs, pipes, files) it prints one plain line per bracket and nothing else, so logs stay short.
    With ``enabled=False`` it prints nothing at all (it still counts). ``advance`` and ``set_best`` may be
    called from any thread (for example a JAX host callback); the counters are guarded by a lock.

    Indices are 0-based (``start_bracket(0, 4, ...)`` shows "bracket 1/4"; brackets that train together,
    ``start_bracket(0, 4, ..., last=3)``, show "brackets 1–4/4").

    Args:
      total_model_epochs: the search's budget in model-epochs (one model trained for one epoch).
      enabled: False turns every display off.
      console: the ``rich.console.Console`` to draw on; default a new one on stderr.
      metric: the score's name, shown with the best score.

    Example::

        >>> with ProgressDisplay(810) as progress:
        ...     progress.start_bracket(0, 5, [(81, 1), (27, 3), (9, 9), (3, 27), (1, 81)])
        ...     progress.advance(81, rung=0)
        ...     progress.set_best(0.93)
    """

    def __init__(
        self, total_model_epochs: int, *, enabled: bool = True, console: Any = None, metric: str = "accuracy"
    ) -> None:
        self.total = _check_count("total_model_epochs", total_model_epochs)
        if not isinstance(metric, str):
            raise TypeError(f"metric must be a string, got {metric=}")
        self.enabled = bool(enabled)
        self.metric = metric
        self._lock = threading.Lock()
        self._done = 0
        self._best = math.nan
        self._bracket: tuple[int, int, int] | None = None  # (first, last, num_brackets), 0-based
        self._rungs: list[tuple[int, int]] = []
        self._rung = 0
        self._start = time.monotonic()
        self._progress = None
        self._task = None
        self._active = False
        self.console = None
        self.live = False
        if self.enabled:
            from rich.console import Console

            if console is None:
                console = Console(stderr=True)
            self.console = console
            self.live = bool((console.is_terminal and not console.is_dumb_terminal) or console.is_jupyter)

    # -- state -------------------------------------------------------------------------------------------

    @property
    def completed(self) -> int:
        """Model-epochs counted so far."""
        with self._lock:
            return self._done

    @property
    def best(self) -> float:
        """The highest score given to ``set_best`` so far (NaN if none)."""
        with self._lock:
            return self._best

    def _stage_text(self) -> str:
        if self._bracket is None:
            return "searching"
        parts = [_bracket_label(*self._bracket)]
        if self._rungs:
            n_configs, epochs = self._rungs[min(self._rung, len(self._rungs) - 1)]
            parts.append(f"rung {self._rung + 1}/{len(self._rungs)}")
            parts.append(f"{n_configs} config{'s' * (n_configs != 1)} × {epochs} epoch{'s' * (epochs != 1)}")
        return " · ".join(parts)

    def _best_text(self) -> str:
        return f"best {self.metric} {_fmt_score(self._best) if math.isfinite(self._best) else '—'}"

    def _refresh(self) -> None:
        """Push the state to the live bar; call with the lock held (keeps ``completed`` monotonic)."""
        if self._progress is not None and self._task is not None:
            from rich.markup import escape

            self._progress.update(
                self._task,
                completed=self._done,
                description=escape(self._stage_text()),
                best=escape(self._best_text()),
            )

    # -- context -----------------------------------------------------------------------------------------

    def __enter__(self) -> "ProgressDisplay":
        with self._lock:
            self._start = time.monotonic()
            self._active = True
            if self.enabled and self.live and self._progress is None:
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

                self._progress = Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("model-epochs"),
                    TimeElapsedColumn(),
                    TextColumn("{task.fields[best]}"),
                    console=self.console,
                    refresh_per_second=8,
                )
                self._task = self._progress.add_task(
                    self._stage_text(), total=self.total or None, completed=self._done, best=self._best_text()
                )
                self._progress.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        with self._lock:
            self._active = False
            progress, self._progress = self._progress, None
            if progress is not None:
                status = "done" if exc_info[0] is None else "stopped"
                progress.update(self._task, completed=self._done, description=status, best=self._best_text())
                progress.stop()
            self._task = None

    # -- updates -----------------------------------------------------------------------------------------

    def start_bracket(self, index: int, num_brackets: int, rungs: Sequence[tuple[int, int]], *,
                      last: int | None = None) -> None:
        """Announce bracket ``index`` (0-based) of ``num_brackets``; ``rungs`` lists ``(n_configs, epochs)``.
        ``last`` (0-based, default ``index``): brackets ``index`` to ``last`` train together, and ``rungs``
        are the rungs of the program that trains them (configs summed over those brackets).

        In plain (non-terminal) mode this prints the bracket's one line.
        """
        num_brackets = _check_count("num_brackets", num_brackets, minimum=1)
        index = _check_count("index", index)
        if index >= num_brackets:
            raise ValueError(f"index must be < num_brackets={num_brackets}, got {index=}")
        last = index if last is None else _check_count("last", last)
        if not index <= last < num_brackets:
            raise ValueError(f"last must be in [index={index}, num_brackets={num_brackets}), got {last=}")
        checked = []
        for j, rung in enumerate(rungs):
            if not isinstance(rung, Sequence) or len(rung) != 2:
                raise ValueError(f"rungs[{j}] must be a pair (n_configs, epochs), got {rung!r}")
            checked.append((_check_count(f"rungs[{j}][0]", rung[0]), _check_count(f"rungs[{j}][1]", rung[1])))
        with self._lock:
            self._bracket = (index, last, num_brackets)
            self._rungs = checked
            self._rung = 0
            self._refresh()
            if self.enabled and not self.live:
                plan = " → ".join(f"{n}×{e}" for n, e in checked)
                line = _bracket_label(index, last, num_brackets)
                if plan:
                    line += f" · configs×epochs {plan}"
                line += (
                    f" · {self._done:,}/{self.total:,} model-epochs · {_clock(time.monotonic() - self._start)}"
                    f" · {self._best_text()}"
                )
                self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def advance(self, model_epochs: int, *, bracket: int | None = None, rung: int | None = None) -> None:
        """Count ``model_epochs`` more model-epochs done; optionally say which bracket/rung (0-based) is on.

        Safe to call from any thread.
        """
        model_epochs = _check_count("model_epochs", model_epochs)
        if bracket is not None:
            bracket = _check_count("bracket", bracket)
        if rung is not None:
            rung = _check_count("rung", rung)
        with self._lock:
            self._done += model_epochs
            if bracket is not None and self._bracket is not None and bracket != self._bracket[0]:
                self._bracket = (bracket, bracket, max(self._bracket[2], bracket + 1))
            if rung is not None:
                self._rung = rung
            self._refresh()

    def set_best(self, score: float) -> None:
        """Record a score; the display shows the highest seen so far (NaN and None are ignored)."""
        if score is None:
            return
        if isinstance(score, bool) or not isinstance(score, (numbers.Real, np.ndarray, np.generic)):
            raise TypeError(f"score must be a number, got {score=!r}")
        value = float(score)
        with self._lock:
            if math.isfinite(value) and not (value <= self._best):
                self._best = value
                self._refresh()

    def message(self, text: str) -> None:
        """Print one line of text (above the live bar on a terminal)."""
        if not self.enabled:
            return
        console = self._progress.console if self._progress is not None else self.console
        console.print(str(text), markup=False, highlight=False, soft_wrap=True)
