"""Process-level XLA settings (lago_jax.runtime)."""

import os

from lago_jax import runtime


def test_loop_vectorizer_off_by_default_and_switchable(monkeypatch):
    monkeypatch.delenv("LAGO_JAX_LLVM_LOOP_VECTORIZE", raising=False)
    assert runtime.NO_LOOP_VECTORIZE_FLAG in runtime.cpu_xla_flags()
    monkeypatch.setenv("LAGO_JAX_LLVM_LOOP_VECTORIZE", "1")
    assert runtime.NO_LOOP_VECTORIZE_FLAG not in runtime.cpu_xla_flags()


def test_set_xla_flags_keeps_user_values(monkeypatch):
    monkeypatch.delenv("LAGO_JAX_LLVM_LOOP_VECTORIZE", raising=False)
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_use_fusion_emitters=true --xla_force_host_platform_device_count=2")
    runtime.set_xla_flags()
    flags = os.environ["XLA_FLAGS"].split()
    assert "--xla_cpu_use_fusion_emitters=true" in flags  # the user's value wins
    assert "--xla_cpu_use_fusion_emitters=false" not in flags
    assert "--xla_force_host_platform_device_count=2" in flags
    assert runtime.NO_LOOP_VECTORIZE_FLAG in flags
