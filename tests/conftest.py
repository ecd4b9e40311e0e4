import os
import sys

# Tests run against the installed package (`pip install ".[test]" && pytest`), so a packaging mistake fails
# here as it would for a user. Without an installed vtune (a bare checkout), fall back to the source tree.
try:
    import vtune  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault("VTUNE_COMPILE_CACHE", "none")

import jax  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
