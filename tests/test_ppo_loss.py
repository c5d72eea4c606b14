"""The PPO + beta * KL loss against the same numbers worked out in NumPy on a tiny batch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.core import Box, Discrete
from lago_jax.distributions import Categorical, DiagGaussian
from lago_jax.ppo.config import PPOConfig
from lago_jax.ppo.loss import ppo_loss
from lago_jax.ppo.networks import ObsNormStats, make_network
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
        prior_dist=prior if with_prior else None, metrics={},
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
    from lago_jax.ppo.networks import ObsNormStats, normalize_obs, update_obs_norm

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
