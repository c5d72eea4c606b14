"""envs.episodes.run_episodes: one compiled env program shared by every policy, same results as
a plain Python loop, early stop, and clear errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.episodes import env_programs, run_episodes
from envs.point_mass import PointMass
from envs.wrappers import EpisodeWrapper

B, LIMIT = 4, 12


@pytest.fixture(scope="module")
def env():
    return PointMass(discrete=False, episode_length=LIMIT)


def towards_goal(params, state, key):
    return jnp.clip(state.obs[:, 4:6] * params, -1.0, 1.0)


def weak_zeros(params, state, key):
    return jnp.zeros((B, 2)) * 0.5  # float32, weakly typed only through the python scalar


def random_int_like(params, state, key):
    return jax.random.uniform(key, (B, 2), minval=-1, maxval=1).astype(jnp.float16)


def test_policies_share_one_env_step_program(env):
    programs = env_programs(env, B, LIMIT)
    committed = jax.device_put(jnp.float32(5.0), jax.devices()[0])  # as restored from a checkpoint
    policies = ((towards_goal, 10.0), (towards_goal, committed), (weak_zeros, None), (random_int_like, None))
    for act, params in policies:
        out = run_episodes(env, act, params, B, jax.random.PRNGKey(0), LIMIT)
        assert out["reward"].shape[1] == B
    assert programs.step._cache_size() == 1
    assert programs.reset._cache_size() == 1


def test_matches_a_python_loop(env):
    key = jax.random.PRNGKey(3)
    out = run_episodes(env, towards_goal, 10.0, B, key, LIMIT, record=("obs", "action"))
    wrapped = EpisodeWrapper(env, LIMIT)
    reset_key, run_key = jax.random.split(key)
    state = jax.vmap(wrapped.reset)(jax.random.split(reset_key, B))
    alive = np.ones(B, np.float32)
    for t, k in enumerate(jax.random.split(run_key, LIMIT)[: out["reward"].shape[0]]):
        a = towards_goal(10.0, state, k)
        np.testing.assert_allclose(out["obs"][t], np.asarray(state.obs), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(out["action"][t], np.asarray(a), rtol=1e-6, atol=1e-6)
        state = jax.vmap(wrapped.step)(state, a)
        np.testing.assert_allclose(out["reward"][t], np.asarray(state.reward), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(out["valid"][t], alive)
        alive = alive * (1.0 - np.asarray(state.done))


def test_stops_once_every_episode_ended(env):
    # The greedy policy reaches the goal quickly; the loop stops at the next 16-step check.
    long_env = PointMass(discrete=False, episode_length=200)
    out = run_episodes(long_env, towards_goal, 10.0, B, jax.random.PRNGKey(1), 200)
    steps = out["valid"].shape[0]
    assert steps < 200 and steps % 16 == 0
    assert out["valid"][-1].sum() == 0


def test_bad_input_is_named(env):
    with pytest.raises(ValueError, match="shape"):
        run_episodes(env, lambda p, s, k: jnp.zeros((B, 3)), None, B, jax.random.PRNGKey(0), LIMIT)
    with pytest.raises(ValueError, match="record"):
        run_episodes(env, towards_goal, 1.0, B, jax.random.PRNGKey(0), LIMIT, record=("qpos",))
    with pytest.raises(ValueError, match="batch"):
        run_episodes(env, towards_goal, 1.0, 0, jax.random.PRNGKey(0), LIMIT)
