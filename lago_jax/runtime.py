"""Process-level JAX settings: XLA flags for CPU and the persistent compilation cache.

Call :func:`configure` **before** ``import jax`` anywhere in the process (the entry points,
benchmarks and the test suite do). On CPU, batched MJX programs can deadlock with XLA's
concurrency-optimised scheduler, and fusion emitters slow MJX down; both are switched off.
The persistent compilation cache makes a second run skip most compile time.
"""

from __future__ import annotations

import os

CPU_XLA_FLAGS = (
    "--xla_cpu_enable_concurrency_optimized_scheduler=false",
    "--xla_cpu_use_fusion_emitters=false",
)
DEFAULT_CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "lago_jax", "jax_cache")


def set_xla_flags(extra: tuple[str, ...] = ()) -> None:
    """Append the CPU flags (and ``extra``) to ``XLA_FLAGS`` unless already present."""
    flags = os.environ.get("XLA_FLAGS", "").split()
    for f in CPU_XLA_FLAGS + tuple(extra):
        name = f.split("=")[0]
        if not any(x.split("=")[0] == name for x in flags):
            flags.append(f)
    os.environ["XLA_FLAGS"] = " ".join(flags)


def enable_compilation_cache(cache_dir: str | None = None) -> str:
    """Turn on JAX's persistent compilation cache (imports jax). Returns the directory."""
    import jax

    cache_dir = cache_dir or os.environ.get("LAGO_JAX_CACHE_DIR", DEFAULT_CACHE_DIR)
    os.makedirs(cache_dir, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", cache_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return cache_dir


def configure(cache_dir: str | None = None) -> None:
    """Set XLA flags, then enable the compilation cache."""
    set_xla_flags()
    enable_compilation_cache(cache_dir)
