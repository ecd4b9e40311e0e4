"""JAX's persistent compilation cache, so a second run of the same search starts without compiling.

Where the cache lives, in order: the ``compile_cache`` argument / ``--compile-cache DIR``, the
``VTUNE_COMPILE_CACHE`` environment variable, then a per-user folder (``$XDG_CACHE_HOME/vtune/jax`` or
``~/.cache/vtune/jax``). ``none`` (or ``None``) turns it off. Every compiled program is cached, however
quick its compile (vtune's programs are few and reused).

Beside JAX's executables, the engine keeps each bracket program's *lowered* form (``jax.export``, under
``programs/``), so a warm run skips tracing and lowering too (see :meth:`vtune.engine.Engine.compiled`).
"""

from __future__ import annotations

import os
import pathlib

import jax

_active: str | None = None


def default_cache_dir() -> pathlib.Path:
    env = os.environ.get("VTUNE_COMPILE_CACHE")
    if env:
        return pathlib.Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "vtune" / "jax"


def configure_compile_cache(setting: str | os.PathLike | None = "default") -> str | None:
    """Point JAX's persistent cache at the folder ``setting`` names; returns the folder (or None: off)."""
    global _active
    from jax._src import compilation_cache as cc

    if setting is None or (isinstance(setting, str) and setting.lower() == "none"):
        path = None
    elif setting == "default":
        env = os.environ.get("VTUNE_COMPILE_CACHE", "")
        path = None if env.lower() == "none" else str(default_cache_dir())
    elif isinstance(setting, (str, os.PathLike)):
        path = str(pathlib.Path(setting).expanduser())
    else:
        raise TypeError(f"compile_cache must be 'default', 'none' or a folder, got {setting!r}")
    if path == _active:
        return path
    if path is not None:
        try:
            pathlib.Path(path).mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ValueError(f"compile_cache={path!r} cannot be created: {err}") from None
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_enable_compilation_cache", path is not None)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    cc.reset_cache()
    _active = path
    return path


def active_dir() -> str | None:
    """The folder the persistent cache uses now (None: off)."""
    return _active
