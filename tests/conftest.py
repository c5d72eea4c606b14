"""Test-suite set-up: XLA flags for CPU and the persistent compilation cache, before jax loads."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lago_jax import runtime  # noqa: E402  (imports no jax)

os.environ.setdefault("JAX_PLATFORMS", "cpu")
runtime.set_xla_flags()
runtime.enable_compilation_cache(
    os.environ.get("LAGO_JAX_CACHE_DIR", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".jax_cache"))
)

# Longest modules first, so that with pytest-xdist (``--dist loadfile``) they start at once and
# the other worker works through the rest meanwhile.
LONG_MODULES = ("test_metaworld_fixture_tasks_jit.py", "test_metaworld_object_tasks_jit.py")


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.path.name not in LONG_MODULES)


class SettingsWritten(Exception):
    """Raised by the ``stop_after_settings`` fixture once a pipeline run has written experiment.json."""


@pytest.fixture
def stop_after_settings(monkeypatch):
    """Makes ``run_pipeline`` stop (raising :class:`SettingsWritten`) right after it has checked
    and written ``experiment.json``: the resume checks, without running any stage."""
    from lago_jax import parallel

    real_barrier = parallel.barrier

    def barrier(name):
        real_barrier(name)
        if "experiment.json written" in name:
            raise SettingsWritten

    monkeypatch.setattr(parallel, "barrier", barrier)
    return SettingsWritten
