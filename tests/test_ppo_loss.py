"""The PPO + beta * KL loss against the same numbers worked out in NumPy on a tiny batch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.core import Box, Discrete
from lago_jax.distributions import Categorical, DiagGaussian
from lago_jax.normalization import ObsNormStats
from lago_jax.ppo.config import PPOConfig
from lago_jax.ppo.loss import ppo_loss
from lago_jax.ppo.networks import make_network
from lago_jax.ppo.rollout import Transition

N, D = 6, 3


def np_mlp(p, x):
    names = sorted(p, key=lambda n: int(n.split("_")[1]))
    for i, n in enumerate(names):
        x = x @ np.asarray(p[n]["kernel"], np.float64) + np.asarray(p[n]["bias"], np.float64)
        if i < len(names) - 1:
            x = np.tanh(x)
    return x


def np_log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def make_batch(discrete, rng, with_prior):
    obs = rng.normal(size=(N, D)).astype(np.float32) * 2 + 1
    if discrete:
        action = rng.integers(0, 4, size=(N,)).astype(np.int32)
        prior = Categorical(jnp.asarray(rng.normal(size=(N, 4)).astype(np.float32)))
    else:
        action = rng.normal(size=(N, 2)).astype(np.float32) * 1.5
        prior = DiagGaussian(jnp.asarray(rng.normal(size=(N, 2)).astype(np.float32)),
                             jnp.asarray(rng.normal(size=(N, 2)).astype(np.float32) * 0.3))
    batch = Transition(
        obs=jnp.asarray(obs), action=jnp.asarray(action),
        log_prob=jnp.asarray(rng.normal(size=(N,)).astype(np.float32) * 0.3 - 1.5),
        value=jnp.asarray(rng.normal(size=(N,)).astype(np.float32) * 0.3),
        reward=jnp.zeros(N), terminated=jnp.zeros(N), truncated=jnp.zeros(N), done=jnp.zeros(N),
        next_value=jnp.zeros(N), instruction_id=jnp.zeros(N, jnp.int32),
        prior_dist=prior if with_prior else None, prior_mask=None, metrics={},
    )
    adv = rng.normal(size=(N,)).astype(np.float32)
    tgt = rng.normal(size=(N,)).astype(np.float32)
    return batch, adv, tgt


def numpy_loss(params, stats, batch, adv, tgt, beta, cfg, discrete):
    p = params["params"]
    obs = np.asarray(batch.obs, np.float64)
    x = np.clip((obs - np.asarray(stats.mean)) / np.sqrt(np.asarray(stats.var) + 1e-8), -10, 10)
    out = np_mlp(p["actor"], x)
    value = np_mlp(p["critic"], x)[:, 0]
    a = np.asarray(batch.action)
    if discrete:
        lp_all = np_log_softmax(out)
        logp = lp_all[np.arange(N), a]
        ent = -(np.exp(lp_all) * lp_all).sum(-1)
        q = np_log_softmax(np.asarray(batch.prior_dist.logits, np.float64))
        kl_rev = (np.exp(lp_all) * (lp_all - q)).sum(-1)
        kl_fwd = (np.exp(q) * (q - lp_all)).sum(-1)
    else:
        ls = np.broadcast_to(np.asarray(p["log_std"], np.float64), out.shape)
        logp = (-0.5 * ((a - out) / np.exp(ls)) ** 2 - ls - 0.5 * np.log(2 * np.pi)).sum(-1)
        ent = (ls + 0.5 + 0.5 * np.log(2 * np.pi)).sum(-1)
        m2, s2 = np.asarray(batch.prior_dist.mean, np.float64), np.asarray(batch.prior_dist.log_std, np.float64)

        def gkl(m1, l1, m2, l2):  # KL(N1 || N2), summed over dims
            return (l2 - l1 + (np.exp(2 * l1) + (m1 - m2) ** 2) / (2 * np.exp(2 * l2)) - 0.5).sum(-1)

        kl_rev, kl_fwd = gkl(out, ls, m2, s2), gkl(m2, s2, out, ls)
    ratio = np.exp(logp - np.asarray(batch.log_prob, np.float64))
    A = (adv - adv.mean()) / (adv.std() + 1e-8)
    eps = cfg.clip_eps
    pg = -np.mean(np.minimum(ratio * A, np.clip(ratio, 1 - eps, 1 + eps) * A))
    v_old = np.asarray(batch.value, np.float64)
    v_clip = v_old + np.clip(value - v_old, -eps, eps)
    vl = 0.5 * np.mean(np.maximum((value - tgt) ** 2, (v_clip - tgt) ** 2))
    kl_term = np.mean(kl_rev if cfg.kl_direction == "reverse" else kl_fwd)
    total = pg + cfg.vf_coef * vl - cfg.ent_coef * ent.mean() + beta * kl_term
    return dict(total_loss=total, policy_loss=pg, value_loss=vl, entropy=ent.mean(), kl_prior=kl_term)


@pytest.mark.parametrize("discrete", [True, False])
@pytest.mark.parametrize("direction", ["reverse", "forward"])
def test_loss_matches_numpy(discrete, direction):
    rng = np.random.default_rng(7 + discrete)
    cfg = PPOConfig(num_updates=1, hidden_sizes=(5,), clip_eps=0.15, vf_coef=0.7, ent_coef=0.03,
                    kl_direction=direction, log_std_init=-0.3)
    net = make_network(cfg, Discrete(4) if discrete else Box.uniform(2))
    params = net.init(jax.random.PRNGKey(1), jnp.zeros((1, D)))
    # Move the policy away from the behaviour policy so some ratios are clipped.
    params = jax.tree.map(lambda x: x + 0.3 * jax.random.normal(jax.random.PRNGKey(2), x.shape), params)
    stats = ObsNormStats(count=jnp.asarray(10.0), mean=jnp.asarray([0.5, -0.2, 1.0]), var=jnp.asarray([2.0, 0.5, 1.5]))
    batch, adv, tgt = make_batch(discrete, rng, with_prior=True)
    beta = 0.37
    loss, metrics = jax.jit(lambda p, b: ppo_loss(p, net, stats, b, adv, tgt, beta, cfg))(params, batch)
    want = numpy_loss(params, stats, batch, adv, tgt, beta, cfg, discrete)
    for k, v in want.items():
        np.testing.assert_allclose(float(metrics[k]), v, rtol=2e-5, atol=2e-6, err_msg=k)
    np.testing.assert_allclose(float(loss), want["total_loss"], rtol=2e-5, atol=2e-6)
    assert 0 < float(metrics["clip_frac"]) < 1, "the test batch should exercise clipping"


def test_no_prior_equals_prior_with_zero_beta():
    rng = np.random.default_rng(3)
    cfg = PPOConfig(num_updates=1, hidden_sizes=(5,))
    net = make_network(cfg, Discrete(4))
    params = net.init(jax.random.PRNGKey(1), jnp.zeros((1, D)))
    stats = ObsNormStats.create(D)
    batch, adv, tgt = make_batch(True, rng, with_prior=True)
    grad = jax.jit(jax.grad(lambda p, b, beta: ppo_loss(p, net, stats, b, adv, tgt, beta, cfg)[0]))
    g_prior = grad(params, batch, 0.0)
    g_none = grad(params, batch.replace(prior_dist=None), 0.0)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-7), g_prior, g_none)
    g_beta = grad(params, batch, 1.0)
    assert not np.allclose(jax.tree.leaves(g_beta)[0], jax.tree.leaves(g_none)[0])


def test_soften_prior_temperature_one_is_the_prior_and_others_flatten_it():
    from lago_jax.distributions import Categorical, DiagGaussian, kl_divergence
    from lago_jax.ppo.train import soften_prior

    rng = np.random.default_rng(0)
    cat = Categorical(jnp.asarray(rng.normal(size=(5, 7)) * 4, jnp.float32))
    gau = DiagGaussian(jnp.asarray(rng.normal(size=(5, 3)), jnp.float32), jnp.asarray(rng.uniform(-6, 0, (5, 3)), jnp.float32))
    pi_c = Categorical(jnp.zeros((5, 7)))
    pi_g = DiagGaussian(jnp.zeros((5, 3)), jnp.full((5, 3), -0.5))
    # temperature 1, no floor: the very same distributions, so the KL is bit-identical
    assert soften_prior(cat) is cat and soften_prior(gau) is gau
    # a higher temperature brings a sharp prior closer to a broad policy
    for pi, prior in ((pi_c, cat), (pi_g, gau)):
        base = np.asarray(kl_divergence(pi, prior, "reverse"))
        soft = np.asarray(kl_divergence(pi, soften_prior(prior, 3.0), "reverse"))
        assert np.all(soft < base)
    np.testing.assert_allclose(np.asarray(soften_prior(cat, 2.0).logits), np.asarray(cat.logits) / 2.0)
    g2 = soften_prior(gau, 2.0, min_std=0.1)
    np.testing.assert_allclose(np.asarray(g2.mean), np.asarray(gau.mean))
    np.testing.assert_allclose(np.asarray(g2.log_std), np.maximum(np.asarray(gau.log_std) + np.log(2.0), np.log(0.1)),
                               rtol=1e-6)
    assert float(np.exp(np.asarray(g2.log_std)).min()) >= 0.1 - 1e-7


def test_obs_normaliser_matches_numpy_and_clips_only_when_asked():
    from lago_jax.normalization import ObsNormStats, normalize_obs, update_obs_norm

    rng = np.random.default_rng(1)
    batches = [rng.normal(3.0, 2.0, size=(n, 4)).astype(np.float32) * [1, 10, 0.1, 100] for n in (16, 40, 8)]
    stats = ObsNormStats.create(4)
    for b in batches:
        stats = update_obs_norm(stats, jnp.asarray(b))
    allx = np.concatenate(batches).astype(np.float64)
    np.testing.assert_allclose(np.asarray(stats.mean), allx.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(stats.var), allx.var(axis=0), rtol=1e-4)
    far = jnp.asarray(allx.mean(axis=0) + 50 * allx.std(axis=0), jnp.float32)[None]
    np.testing.assert_allclose(np.asarray(normalize_obs(stats, far)), 50.0, rtol=1e-3)
    np.testing.assert_allclose(np.asarray(normalize_obs(stats, far, clip=10.0)), 10.0)
    assert normalize_obs(stats, far, enabled=False) is far


@pytest.mark.parametrize("discrete", [True, False])
def test_masked_kl_averages_over_the_masked_states_only(discrete):
    """With ``prior_mask`` the KL term is the mean over the masked samples (NumPy); an all-ones
    mask gives the unmasked loss."""
    from lago_jax.distributions import kl_divergence

    rng = np.random.default_rng(11)
    cfg = PPOConfig(num_updates=1, hidden_sizes=(5,))
    net = make_network(cfg, Discrete(4) if discrete else Box.uniform(2))
    params = net.init(jax.random.PRNGKey(1), jnp.zeros((1, D)))
    stats = ObsNormStats.create(D)
    batch, adv, tgt = make_batch(discrete, rng, with_prior=True)
    f = jax.jit(lambda b: ppo_loss(params, net, stats, b, adv, tgt, 0.5, cfg))
    mask = np.array([1, 0, 0, 1, 1, 0], np.float32)
    _, m_masked = f(batch.replace(prior_mask=jnp.asarray(mask)))
    _, m_ones = f(batch.replace(prior_mask=jnp.ones(N)))
    _, m_none = f(batch)
    dist, _ = net.apply(params, batch.obs)
    kl = np.asarray(kl_divergence(dist, batch.prior_dist, cfg.kl_direction))
    np.testing.assert_allclose(float(m_masked["kl_prior"]), kl[mask > 0].mean(), rtol=1e-5)
    np.testing.assert_allclose(float(m_ones["kl_prior"]), float(m_none["kl_prior"]), rtol=1e-6)
    np.testing.assert_allclose(float(m_ones["total_loss"]), float(m_none["total_loss"]), rtol=1e-6)
    _, m_zero = f(batch.replace(prior_mask=jnp.zeros(N)))  # a minibatch without prior states adds 0
    assert float(m_zero["kl_prior"]) == 0.0


class _AffinePrior:
    """A prior whose Gaussian mean is a fixed function of the observation (counts its rows)."""

    def apply(self, params, obs, instruction_id):
        return DiagGaussian(obs[..., :2] * params + instruction_id[..., None], jnp.full(obs.shape[:-1] + (2,), -1.0))


@pytest.mark.parametrize("fraction,expect_steps", [(1.0, 8), (0.25, 2), (0.3, 2), (0.01, 1)])
def test_prior_fraction_evaluates_the_prior_on_whole_time_steps(fraction, expect_steps):
    from lago_jax.ppo.train import with_prior

    T, B = 8, 3
    rng = np.random.default_rng(5)
    traj = Transition(
        obs=jnp.asarray(rng.normal(size=(T, B, D)).astype(np.float32)), action=jnp.zeros((T, B, 2)),
        log_prob=jnp.zeros((T, B)), value=jnp.zeros((T, B)), reward=jnp.zeros((T, B)), terminated=jnp.zeros((T, B)),
        truncated=jnp.zeros((T, B)), done=jnp.zeros((T, B)), next_value=jnp.zeros((T, B)),
        instruction_id=jnp.asarray(rng.integers(0, 3, (T, B)).astype(np.int32)), prior_dist=None, prior_mask=None,
        metrics={},
    )
    cfg = PPOConfig(num_updates=1, num_steps=T, num_minibatches=1, prior_fraction=fraction, prior_chunk=5,
                    prior_min_std=0.5)
    out = jax.jit(lambda t, k: with_prior(t, _AffinePrior(), 2.0, cfg, k))(traj, jax.random.PRNGKey(3))
    full = _AffinePrior().apply(2.0, traj.obs, traj.instruction_id)
    if expect_steps == T:
        assert out.prior_mask is None
        np.testing.assert_allclose(np.asarray(out.prior_dist.mean), np.asarray(full.mean))
        return
    mask = np.asarray(out.prior_mask)
    steps = np.flatnonzero(mask[:, 0])
    assert len(steps) == expect_steps and np.all(mask[steps] == 1) and mask.sum() == expect_steps * B
    np.testing.assert_allclose(np.asarray(out.prior_dist.mean)[steps], np.asarray(full.mean)[steps], rtol=1e-6)
    # softened like the full evaluation (min std 0.5 over the prior's exp(-1))
    np.testing.assert_allclose(np.asarray(out.prior_dist.log_std)[steps], np.log(0.5), rtol=1e-6)
    # a different key draws different steps (over a few keys)
    draws = {tuple(np.flatnonzero(np.asarray(jax.jit(lambda t, k: with_prior(t, _AffinePrior(), 2.0, cfg, k))(
        traj, jax.random.PRNGKey(s)).prior_mask)[:, 0])) for s in range(6)}
    assert len(draws) > 1


def test_prior_fraction_is_checked():
    for bad in (0.0, -0.5, 1.5, float("nan")):
        with pytest.raises(ValueError, match="prior_fraction"):
            PPOConfig(num_updates=1, prior_fraction=bad)
