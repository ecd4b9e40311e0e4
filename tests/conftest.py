import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("VTUNE_COMPILE_CACHE", "none")

import jax  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
