"""``import lago_jax.ppo`` stays light: PPO alone does not load the LLM stack."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_importing_ppo_does_not_load_the_llm_stack():
    code = ("import sys, lago_jax.ppo, lago_jax.ppo.schedule; "
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('transformers', 'tokenizers', 'torch') "
            "or m.startswith(('lago_jax.llm', 'lago_jax.prior'))); print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", out.stdout


def test_llm_and_mlp_priors_satisfy_the_one_prior_protocol():
    from lago_jax.ppo import Prior
    from lago_jax.prior import LLMPrior, MLPPrior
    from tests.prior_testing import mlp_prior, tiny_llm_prior

    assert isinstance(tiny_llm_prior("categorical"), Prior) and isinstance(mlp_prior("gaussian"), Prior)
    assert issubclass(LLMPrior, Prior) and issubclass(MLPPrior, Prior)
    assert not isinstance(object(), Prior)


def test_one_non_finite_loss_error_for_ppo_and_distillation():
    import lago_jax.ppo
    import lago_jax.prior
    from lago_jax.errors import NonFiniteLossError

    assert lago_jax.ppo.NonFiniteLossError is lago_jax.prior.NonFiniteLossError is NonFiniteLossError
    assert issubclass(NonFiniteLossError, FloatingPointError)
