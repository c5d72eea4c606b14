"""End-to-end PPO on the point-mass env: learning (both action types), vmap over seeds, the prior hook.

Reference numbers (greedy evaluation, 256 episodes, 50-step limit): a uniformly random policy
returns about 0.1 with about 10% success. After 80 updates of 16 envs x 32 steps (~41k env
steps, about a second of training once compiled) PPO reaches returns of about 1.7-1.9 and
75-100% success on the discrete variant; the continuous one reaches about 1.7-1.95 and 78-100%
success after 150 updates (~77k env steps). The thresholds below (return
> 1.2, success > 50%) sit far above random and below what PPO reaches.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.point_mass import PointMass
from lago_jax.distributions import Categorical, kl
from lago_jax.ppo import PPOConfig, evaluate_params, make_ppo, make_train, metrics_to_rows

UPDATES = 80
CONTINUOUS_UPDATES = 150  # the Gaussian policy starts with std 1 on [-1, 1] and needs longer
SEEDS = 3
RANDOM_RETURN = 0.1
RETURN_THRESHOLD = 1.2
SUCCESS_THRESHOLD = 0.5


def config(**kw):
    return PPOConfig(num_envs=16, num_steps=32, num_updates=UPDATES, update_epochs=4, num_minibatches=4,
                     episode_length=50, **kw)


class LinearPrior:
    """A stand-in for the LLM prior: logits = obs @ w + b (params passed as an argument)."""

    def apply(self, prior_params, obs, instruction_id):
        assert obs.ndim == 2 and instruction_id.shape == obs.shape[:1] and instruction_id.dtype == jnp.int32
        return Categorical(obs @ prior_params["w"] + prior_params["b"])


PRIOR_PARAMS = {"w": jnp.zeros((6, 5)), "b": jnp.array([3.0, 0.0, 0.0, 0.0, 0.0])}  # strongly prefers "stay"


@pytest.fixture(scope="module")
def discrete_seeds():
    cfg = config()
    keys = jax.random.split(jax.random.PRNGKey(0), SEEDS)
    out = jax.vmap(make_train(cfg, PointMass(discrete=True)))(keys)
    return cfg, keys, jax.device_get(out)


@pytest.fixture(scope="module")
def prior_update():
    """Runs with the prior for beta = 0 and beta = 1 from one jitted program vmapped over the same
    seeds as ``discrete_seeds`` (beta lives in the train state, so both share the compilation; the
    config's positive ``kl_coef`` is what has the update evaluate the prior at all)."""
    cfg = config(kl_coef=1.0)
    ppo = make_ppo(cfg, PointMass(discrete=True), prior=LinearPrior())

    def train(key, prior_params, beta):
        state = ppo.init(key).replace(beta=beta)
        return ppo.update(state, prior_params, UPDATES)

    fn = jax.jit(jax.vmap(train, in_axes=(0, None, None)))
    keys = jax.random.split(jax.random.PRNGKey(0), SEEDS)
    return {beta: jax.device_get(fn(keys, PRIOR_PARAMS, jnp.float32(beta))) for beta in (0.0, 1.0)}


def test_discrete_learns_for_every_seed(discrete_seeds):
    cfg, _, out = discrete_seeds
    env = PointMass(discrete=True)
    assert out.metrics["total_loss"].shape == (SEEDS, UPDATES, cfg.update_epochs, cfg.num_minibatches)
    finals = []
    for s in range(SEEDS):
        params = jax.tree.map(lambda x: x[s], out.state.params)
        stats = jax.tree.map(lambda x: x[s], out.state.obs_stats)
        finals.append(evaluate_params(cfg, env, params, stats, episodes=256, seed=1))
    print("discrete greedy eval per seed:", finals)
    for r in finals:
        assert r["return_mean"] > RETURN_THRESHOLD > RANDOM_RETURN
        assert r["success_rate"] > SUCCESS_THRESHOLD
    # Seeds are independent runs: their parameters differ.
    leaf = np.asarray(jax.tree.leaves(out.state.params)[0])
    assert not np.allclose(leaf[0], leaf[1])
    rows = metrics_to_rows(jax.tree.map(lambda x: x[0], out.metrics))
    assert len(rows) == UPDATES and rows[-1]["update"] == UPDATES
    assert all(np.isfinite(r["total_loss"]) for r in rows)
    assert rows[-1]["lr"] < rows[0]["lr"]  # annealed


def test_continuous_learns():
    cfg = PPOConfig(**dict(config().to_dict(), hidden_sizes=(64, 64), num_updates=CONTINUOUS_UPDATES))
    env = PointMass(discrete=False)
    out = jax.jit(make_train(cfg, env))(jax.random.PRNGKey(1))
    r = evaluate_params(cfg, env, out.state.params, out.state.obs_stats, episodes=256, seed=1)
    print("continuous greedy eval:", r)
    assert r["return_mean"] > RETURN_THRESHOLD > RANDOM_RETURN
    assert r["success_rate"] > SUCCESS_THRESHOLD
    assert out.state.params["params"]["log_std"].shape == (2,)


def test_prior_with_zero_beta_is_vanilla_ppo(discrete_seeds, prior_update):
    _, keys, vanilla = discrete_seeds
    state, metrics = prior_update[0.0]
    got, want = jax.tree.leaves(state.params), jax.tree.leaves(vanilla.state.params)
    max_diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in zip(got, want))
    print("max |params(prior, beta=0) - params(vanilla)| =", max_diff)
    assert max_diff <= 1e-6
    assert float(np.min(metrics["kl_prior"])) > 0  # the KL was computed, just weighted by 0
    np.testing.assert_array_equal(np.asarray(metrics["beta"]), 0.0)


def test_kl_penalty_pulls_policy_to_prior(prior_update):
    state0, m0 = prior_update[0.0]
    state1, m1 = prior_update[1.0]
    kl0 = float(np.mean(m0["kl_prior"][:, -10:]))
    kl1 = float(np.mean(m1["kl_prior"][:, -10:]))
    print("final KL to prior: beta=0", kl0, "beta=1", kl1)
    assert kl1 < 0.5 * kl0
    np.testing.assert_allclose(np.asarray(m1["beta"]), 1.0)
    # Measured on fresh observations with the trained policy: closer to the prior with beta=1.
    ppo = make_ppo(config(), PointMass(discrete=True))
    obs = jax.random.uniform(jax.random.PRNGKey(5), (64, 6), minval=-1, maxval=1)
    prior = LinearPrior().apply(PRIOR_PARAMS, obs, jnp.zeros(64, jnp.int32))

    def policy_kl(state):
        params = jax.tree.map(lambda x: x[0], state.params)
        stats = jax.tree.map(lambda x: x[0], state.obs_stats)
        from lago_jax.normalization import normalize_obs

        dist = ppo.network.apply(params, normalize_obs(stats, obs), method=type(ppo.network).policy)
        return float(jnp.mean(kl(dist, prior)))

    assert policy_kl(state1) < policy_kl(state0)


def test_prior_on_a_quarter_of_the_steps_still_pulls_policy_to_prior(prior_update):
    """``prior_fraction = 0.25``: the prior evaluated on 8 of the 32 time steps per update; the KL
    (measured over those states) still falls as far as with the prior on every state."""
    cfg = config(prior_fraction=0.25, kl_coef=1.0)
    ppo = make_ppo(cfg, PointMass(discrete=True), prior=LinearPrior())

    def train(key):
        return ppo.update(ppo.init(key).replace(beta=jnp.float32(1.0)), PRIOR_PARAMS, UPDATES)

    _, m = jax.device_get(jax.jit(jax.vmap(train))(jax.random.split(jax.random.PRNGKey(0), SEEDS)))
    kl0 = float(np.mean(prior_update[0.0][1]["kl_prior"][:, -10:]))
    kl_full = float(np.mean(prior_update[1.0][1]["kl_prior"][:, -10:]))
    kl_quarter = float(np.mean(m["kl_prior"][:, -10:]))
    print("final KL to prior: beta=0", kl0, "beta=1 all states", kl_full, "beta=1 a quarter", kl_quarter)
    assert np.all(np.isfinite(m["total_loss"]))
    assert kl_quarter < 0.5 * kl0
    assert kl_quarter < 2.0 * kl_full + 0.05


def test_missing_prior_params_is_an_error():
    ppo = make_ppo(config(), PointMass(discrete=True), prior=LinearPrior())
    with pytest.raises(ValueError, match="prior_params is None"):
        ppo.update(jax.eval_shape(ppo.init, jax.random.PRNGKey(0)), None, 1)


def test_run_programs_equal_the_fused_update_and_share_the_rollout(tmp_path):
    """``run`` (rollout and learning as two programs per update) reproduces the fused ``update``
    with a prior, and runs that differ only in prior / KL settings reuse one compiled rollout."""
    from lago_jax.ppo import run

    env = PointMass(discrete=True)
    cfg = PPOConfig(num_envs=8, num_steps=8, num_updates=3, update_epochs=2, num_minibatches=2,
                    episode_length=20, kl_coef=0.5, checkpoint_every=3, seed=4)
    ppo = make_ppo(cfg, env, prior=LinearPrior())
    fused, fused_metrics = jax.jit(lambda k, p: ppo.update(ppo.init(k), p, 3))(jax.random.PRNGKey(4), PRIOR_PARAMS)
    # Committed prior parameters (as restored from a checkpoint) must not fork the rollout program.
    committed = jax.device_put(PRIOR_PARAMS, jax.devices()[0])
    split = run(cfg, env, str(tmp_path / "a"), prior=LinearPrior(), prior_params=committed, progress=False)
    for a, b in zip(jax.tree.leaves(split.state.params), jax.tree.leaves(fused.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose([r["kl_prior"] for r in split.rows],
                               np.asarray(fused_metrics["kl_prior"]).mean(axis=(1, 2)), rtol=1e-5)
    collect, _ = make_ppo(cfg, env, prior=LinearPrior()).split
    vanilla = dataclasses.replace(cfg, kl_coef=0.0, lr=1e-4, seed=5)
    run(vanilla, env, str(tmp_path / "b"), progress=False)
    assert make_ppo(vanilla, env).split[0] is collect
    assert collect._cache_size() == 1


def test_discrete_learns_without_obs_normalisation_and_with_reward_scale():
    """Normalisation off, rewards scaled by 0.1 (value targets 10x smaller): still learns."""
    cfg = config(normalize_obs=False, reward_scale=0.1)
    env = PointMass(discrete=True)
    out = jax.jit(make_train(cfg, env))(jax.random.PRNGKey(2))
    r = evaluate_params(cfg, env, out.state.params, out.state.obs_stats, episodes=256, seed=1)
    print("discrete, no obs norm, reward scale 0.1:", r)
    assert r["return_mean"] > RETURN_THRESHOLD > RANDOM_RETURN
    assert r["success_rate"] > SUCCESS_THRESHOLD
