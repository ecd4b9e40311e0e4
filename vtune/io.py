"""Crash-safe files: everything vtune writes goes to a temporary sibling first, then ``os.replace``.

A process killed at any instant leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile
from typing import IO, Any, Callable


def _umask() -> int:
    """The process umask, read without changing it (os.umask would, racily); 0o022 if unknown."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def write_atomic(path: str | os.PathLike, write_fn: Callable[[IO], None], *, binary: bool) -> pathlib.Path:
    """Write ``path`` through ``write_fn(file)`` on a temporary sibling, then ``os.replace`` it into place."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {path!r}")
    target = pathlib.Path(path)
    if target.is_dir():
        raise ValueError(f"path={str(target)!r} is a directory; give a file name")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        mode = target.stat().st_mode & 0o777 if target.exists() else 0o666 & ~_umask()
        os.chmod(tmp, mode)
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")) as fh:
            write_fn(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return target


def write_text(path: str | os.PathLike, text: str) -> pathlib.Path:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    return write_atomic(path, lambda fh: fh.write(text), binary=False)


def write_bytes(path: str | os.PathLike, data: bytes) -> pathlib.Path:
    """Atomically write ``data`` to ``path``."""
    return write_atomic(path, lambda fh: fh.write(data), binary=True)


def write_json(path: str | os.PathLike, obj: Any) -> pathlib.Path:
    """Atomically write ``obj`` as indented JSON (NaN and infinities as null)."""
    return write_text(path, json.dumps(_json_safe(obj), indent=2, allow_nan=False) + "\n")


def _json_safe(obj: Any) -> Any:
    import math

    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, np.ndarray):
        return _json_safe(obj.tolist())
    return obj
