"""The rollout scan: clipped env actions with unclipped log-probs, raw observations to the
prior, and bootstrap values from ``info["final_obs"]`` on truncation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.core import Box, Env, State, initial_flags
from lago_jax.distributions import DiagGaussian
from lago_jax.normalization import ObsNormStats, normalize_obs
from lago_jax.ppo.config import PPOConfig
from lago_jax.ppo.networks import ActorCritic, make_network
from lago_jax.ppo.rollout import generate_rollout
from lago_jax.ppo.train import VmapWrapper, training_env

T, B, LIMIT = 7, 3, 3


class Echo(Env):
    """obs = [last action received, step count, offset]; never terminates; actions in [-0.5, 0.5]."""

    observation_size = 3
    action_space = Box((-0.5,), (0.5,))

    def reset(self, key):
        off = jax.random.uniform(key, (), minval=5.0, maxval=6.0)
        return State(data={"t": jnp.zeros(()), "off": off}, obs=jnp.stack([0.0, 0.0, off]),
                     info={"instruction_id": jnp.asarray(2, jnp.int32)}, **initial_flags())

    def step(self, state, action):
        t = state.data["t"] + 1.0
        z = jnp.zeros(())
        return state.replace(data=dict(state.data, t=t), obs=jnp.stack([action[0], t, state.data["off"]]),
                             reward=jnp.ones(()), terminated=z, truncated=z, done=z, success=z)


class ObsPrior:
    def apply(self, prior_params, obs, instruction_id):
        return DiagGaussian(obs[:, :1] * prior_params["scale"], jnp.broadcast_to(instruction_id[:, None] * 0.1, (obs.shape[0], 1)))


@pytest.fixture(scope="module")
def rollout():
    cfg = PPOConfig(num_updates=1, hidden_sizes=(8,), log_std_init=1.0)
    env = Echo()
    net = make_network(cfg, env.action_space)
    params = net.init(jax.random.PRNGKey(0), jnp.zeros((1, 3)))
    stats = ObsNormStats(count=jnp.asarray(5.0), mean=jnp.asarray([0.1, 1.0, 5.5]), var=jnp.asarray([0.3, 2.0, 0.1]))
    benv = VmapWrapper(training_env(env, LIMIT), B)
    state0 = benv.reset(jax.random.PRNGKey(1))

    @jax.jit
    def go(params, stats, state0):
        return generate_rollout(net, params, stats, benv, state0, jax.random.PRNGKey(2), T, jnp.arange(B, dtype=jnp.int32),
                                True)

    _, traj = go(params, stats, state0)
    return net, params, stats, jax.device_get(traj)


def test_actions_clipped_for_env_but_logprob_unclipped(rollout):
    net, params, stats, traj = rollout
    a = np.asarray(traj.action)[..., 0]  # [T, B]
    assert np.abs(a).max() > 0.5, "log_std_init=1 should sample outside the bounds"
    # The next observation records what the env received: the clipped action (rows right after an
    # auto-reset hold a fresh episode's observation instead).
    cont = np.asarray(traj.done)[:-1] == 0
    assert cont.sum() >= 10
    np.testing.assert_allclose(np.asarray(traj.obs)[1:, :, 0][cont], np.clip(a[:-1], -0.5, 0.5)[cont], atol=1e-6)
    dist = net.apply(params, normalize_obs(stats, jnp.asarray(traj.obs)), method=ActorCritic.policy)
    np.testing.assert_allclose(np.asarray(dist.log_prob(jnp.asarray(traj.action))), np.asarray(traj.log_prob), atol=1e-5)


def test_prior_sees_raw_observations_and_instruction(rollout):
    """The rollout stores raw observations and instruction ids; the update's prior pass
    (``prior_distributions``) sees exactly those."""
    from lago_jax.ppo.train import prior_distributions

    _, _, _, traj = rollout
    assert traj.prior_dist is None
    dist = prior_distributions(ObsPrior(), {"scale": jnp.float32(2.0)}, jnp.asarray(traj.obs),
                               jnp.asarray(traj.instruction_id), chunk=7)
    np.testing.assert_allclose(np.asarray(dist.mean), 2.0 * np.asarray(traj.obs)[..., :1], atol=1e-6)
    np.testing.assert_allclose(np.asarray(dist.log_std), 0.2, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(traj.instruction_id), 2)


def test_truncation_bootstraps_from_final_obs(rollout):
    net, params, stats, traj = rollout
    trunc = np.asarray(traj.truncated)
    np.testing.assert_array_equal(trunc[:, 0], [0, 0, 1, 0, 0, 1, 0])  # limit 3
    np.testing.assert_array_equal(np.asarray(traj.terminated), 0)
    value = lambda o: np.asarray(net.apply(params, normalize_obs(stats, jnp.asarray(o)), method=ActorCritic.value))
    obs = np.asarray(traj.obs)
    # Not truncated: next_value is the value of the next step's observation.
    np.testing.assert_allclose(np.asarray(traj.next_value)[:2], value(obs[1:3]), atol=1e-5)
    # Truncated at t=2: the next row's obs is a fresh episode (step count 0); next_value must be
    # the value of the cut episode's last observation (step count 3), not of the fresh one.
    assert np.all(obs[3, :, 1] == 0)
    final_obs = np.stack([obs[2, :, 0] * 0 + np.clip(np.asarray(traj.action)[2, :, 0], -0.5, 0.5),
                          np.full(B, 3.0), obs[2, :, 2]], -1)
    np.testing.assert_allclose(np.asarray(traj.next_value)[2], value(final_obs), atol=1e-5)
    assert not np.allclose(value(final_obs), value(obs[3]), atol=1e-3)
