"""Closed-form KLs, log-probs and entropies against torch.distributions on random inputs."""

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from torch import distributions as td

from lago_jax.distributions import Categorical, DiagGaussian, kl, kl_divergence

RNG = np.random.default_rng(0)


def _cat_pair(shape=(7, 5)):
    return RNG.normal(size=shape).astype(np.float32) * 2.0, RNG.normal(size=shape).astype(np.float32) * 2.0


def _gauss_pair(shape=(7, 3)):
    return [RNG.normal(size=shape).astype(np.float32) * s for s in (1.0, 0.5, 1.0, 0.5)]


def _torch_gauss(mean, log_std):
    return td.Independent(td.Normal(torch.tensor(mean), torch.tensor(log_std).exp()), 1)


@pytest.mark.parametrize("direction", ["reverse", "forward"])
def test_categorical_kl_matches_torch(direction):
    lp, lq = _cat_pair()
    pi, prior = Categorical(jnp.asarray(lp)), Categorical(jnp.asarray(lq))
    tp, tq = td.Categorical(logits=torch.tensor(lp)), td.Categorical(logits=torch.tensor(lq))
    want = td.kl_divergence(tp, tq) if direction == "reverse" else td.kl_divergence(tq, tp)
    got = kl_divergence(pi, prior, direction)
    np.testing.assert_allclose(np.asarray(got), want.numpy(), rtol=1e-5, atol=1e-6)
    assert got.shape == (7,)


@pytest.mark.parametrize("direction", ["reverse", "forward"])
def test_gaussian_kl_matches_torch(direction):
    m1, s1, m2, s2 = _gauss_pair()
    pi, prior = DiagGaussian(jnp.asarray(m1), jnp.asarray(s1)), DiagGaussian(jnp.asarray(m2), jnp.asarray(s2))
    tp, tq = _torch_gauss(m1, s1), _torch_gauss(m2, s2)
    want = td.kl_divergence(tp, tq) if direction == "reverse" else td.kl_divergence(tq, tp)
    got = kl_divergence(pi, prior, direction)
    np.testing.assert_allclose(np.asarray(got), want.numpy(), rtol=1e-5, atol=1e-5)
    assert got.shape == (7,)


def test_directions_differ_and_self_kl_is_zero():
    m1, s1, m2, s2 = _gauss_pair()
    p, q = DiagGaussian(jnp.asarray(m1), jnp.asarray(s1)), DiagGaussian(jnp.asarray(m2), jnp.asarray(s2))
    assert not np.allclose(kl_divergence(p, q, "reverse"), kl_divergence(p, q, "forward"))
    np.testing.assert_allclose(np.asarray(kl(p, p)), 0.0, atol=1e-6)


def test_log_prob_and_entropy_match_torch():
    lp, _ = _cat_pair()
    a = RNG.integers(0, 5, size=(7,))
    c, tc = Categorical(jnp.asarray(lp)), td.Categorical(logits=torch.tensor(lp))
    np.testing.assert_allclose(np.asarray(c.log_prob(jnp.asarray(a))), tc.log_prob(torch.tensor(a)).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(c.entropy()), tc.entropy().numpy(), rtol=1e-5, atol=1e-6)
    m, s, x, _ = _gauss_pair()
    g, tg = DiagGaussian(jnp.asarray(m), jnp.asarray(s)), _torch_gauss(m, s)
    np.testing.assert_allclose(np.asarray(g.log_prob(jnp.asarray(x))), tg.log_prob(torch.tensor(x)).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(g.entropy()), tg.entropy().numpy(), rtol=1e-5, atol=1e-5)


def test_bad_direction_and_mixed_families_raise():
    c = Categorical(jnp.zeros((2, 3)))
    g = DiagGaussian(jnp.zeros((2, 3)), jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match="sideways"):
        kl_divergence(c, c, "sideways")
    with pytest.raises(TypeError, match="Categorical and DiagGaussian"):
        kl(c, g)
