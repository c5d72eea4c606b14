"""Test-suite set-up: XLA flags for CPU and the persistent compilation cache, before jax loads."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lago_jax import runtime  # noqa: E402  (imports no jax)

os.environ.setdefault("JAX_PLATFORMS", "cpu")
runtime.set_xla_flags()
runtime.enable_compilation_cache(
    os.environ.get("LAGO_JAX_CACHE_DIR", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".jax_cache"))
)
