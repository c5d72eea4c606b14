"""Process-level JAX settings: XLA flags for CPU and the persistent compilation cache.

Call :func:`configure` **before** ``import jax`` anywhere in the process (the entry points,
benchmarks and the test suite do). On CPU, batched MJX programs can deadlock with XLA's
concurrency-optimised scheduler, and fusion emitters slow MJX down; both are switched off.

LLVM's loop vectorizer is switched off too (``-vectorize-loops=false``): on the batched MJX
programs of the Meta-World tasks whose fixtures collide (window, drawer, door) it spends
exponential time in its plan analysis (``llvm::vputils::isSingleScalar``), and one compile took
15-40 minutes; with it off the same program compiled in about 3 minutes. The SLP vectorizer stays
on. Set ``LAGO_JAX_LLVM_LOOP_VECTORIZE=1`` to keep the loop vectorizer (``benchmarks/RESULTS_metaworld.md``
has the compile and run times both ways).

The persistent compilation cache makes a second run skip most compile time.
"""

from __future__ import annotations

import os

CPU_XLA_FLAGS = (
    "--xla_cpu_enable_concurrency_optimized_scheduler=false",
    "--xla_cpu_use_fusion_emitters=false",
)
NO_LOOP_VECTORIZE_FLAG = "--xla_backend_extra_options=-vectorize-loops=false"


def cpu_xla_flags() -> tuple[str, ...]:
    """The flags :func:`set_xla_flags` adds (loop vectorizer off unless ``LAGO_JAX_LLVM_LOOP_VECTORIZE=1``)."""
    if os.environ.get("LAGO_JAX_LLVM_LOOP_VECTORIZE", "0") == "1":
        return CPU_XLA_FLAGS
    return CPU_XLA_FLAGS + (NO_LOOP_VECTORIZE_FLAG,)


DEFAULT_CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "lago_jax", "jax_cache")


def set_xla_flags(extra: tuple[str, ...] = ()) -> None:
    """Append the CPU flags (and ``extra``) to ``XLA_FLAGS`` unless already present."""
    flags = os.environ.get("XLA_FLAGS", "").split()
    for f in cpu_xla_flags() + tuple(extra):
        name = f.split("=")[0]
        if not any(x.split("=")[0] == name for x in flags):
            flags.append(f)
    os.environ["XLA_FLAGS"] = " ".join(flags)


def enable_compilation_cache(cache_dir: str | None = None) -> str | None:
    """Turn on JAX's persistent compilation cache (imports jax). Returns the directory, or None
    (with a warning naming it) when it cannot be created or written: runs then compile afresh."""
    import jax

    cache_dir = cache_dir or os.environ.get("LAGO_JAX_CACHE_DIR", DEFAULT_CACHE_DIR)
    try:
        os.makedirs(cache_dir, exist_ok=True)
        if not os.access(cache_dir, os.W_OK | os.X_OK):
            raise PermissionError(f"not writable")
    except (OSError, ValueError) as err:
        import warnings

        warnings.warn(f"JAX's compilation cache is off: cannot use {cache_dir!r} ({err}); set LAGO_JAX_CACHE_DIR "
                      "to a writable folder to keep compiled programs between runs")
        return None
    jax.config.update("jax_compilation_cache_dir", cache_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return cache_dir


def configure(cache_dir: str | None = None) -> None:
    """Set XLA flags, then enable the compilation cache."""
    set_xla_flags()
    enable_compilation_cache(cache_dir)
