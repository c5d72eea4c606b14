"""Env API and wrappers: spaces, truncation vs termination, auto-reset's final_obs, episode stats."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.core import Box, Discrete, Env, State, initial_flags
from envs.point_mass import PointMass
from envs.wrappers import AutoResetWrapper, EpisodeStatsWrapper, EpisodeWrapper, VmapWrapper, wrap_for_training


class Chain(Env):
    """obs = [t, start]; reward 1 per step; action 1 terminates (success). ``start`` ~ reset key."""

    observation_size = 2
    action_space = Discrete(2)

    def reset(self, key):
        start = jax.random.uniform(key, ())
        return State(data={"t": jnp.zeros((), jnp.float32), "start": start}, obs=jnp.stack([0.0 * start, start]),
                     info={"instruction_id": jnp.zeros((), jnp.int32)}, **initial_flags())

    def step(self, state, action):
        t = state.data["t"] + 1.0
        term = (action == 1).astype(jnp.float32)
        return state.replace(data=dict(state.data, t=t), obs=jnp.stack([t, state.data["start"]]), reward=jnp.ones(()),
                             terminated=term, truncated=jnp.zeros(()), done=term, success=term)


def run_actions(env, actions, key=0):
    state = env.reset(jax.random.PRNGKey(key))
    out = [state]
    step = jax.jit(env.step)
    for a in actions:
        state = step(state, jnp.asarray(a, jnp.int32))
        out.append(state)
    return out


def test_spaces_validate():
    with pytest.raises(ValueError, match="n=0"):
        Discrete(0)
    with pytest.raises(ValueError, match="low < high"):
        Box((0.0,), (0.0,))
    with pytest.raises(ValueError, match="differ in length"):
        Box((0.0,), (1.0, 2.0))
    assert Box.uniform(3).dim == 3
    a = Box((-1.0, 0.0), (1.0, 2.0)).sample(jax.random.PRNGKey(0))
    assert a.shape == (2,) and -1 <= a[0] <= 1 and 0 <= a[1] <= 2


def test_episode_wrapper_truncates_but_termination_wins():
    env = EpisodeWrapper(Chain(), 3)
    s = run_actions(env, [0, 0, 0])
    assert [float(x.truncated) for x in s[1:]] == [0, 0, 1]
    assert [float(x.done) for x in s[1:]] == [0, 0, 1]
    assert float(s[-1].terminated) == 0
    s = run_actions(env, [0, 0, 1])
    assert (float(s[-1].terminated), float(s[-1].truncated), float(s[-1].done)) == (1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="episode_length"):
        EpisodeWrapper(Chain(), None)


def test_auto_reset_keeps_final_obs_and_stats():
    env = AutoResetWrapper(EpisodeStatsWrapper(EpisodeWrapper(Chain(), 3)))
    s = run_actions(env, [0, 0, 0, 0, 1, 0])
    # Step 3: truncated; returned obs is a fresh episode's (t=0), final_obs the cut one (t=3).
    assert float(s[3].truncated) == 1 and float(s[3].done) == 1
    assert float(s[3].obs[0]) == 0.0 and float(s[3].info["final_obs"][0]) == 3.0
    assert float(s[3].obs[1]) != float(s[3].info["final_obs"][1])  # a new start was drawn
    assert float(s[3].reward) == 1.0 and int(s[3].info["steps"]) == 0
    # On ordinary steps final_obs equals obs (the true next observation).
    np.testing.assert_array_equal(np.asarray(s[2].obs), np.asarray(s[2].info["final_obs"]))
    # Episode stats: first episode (truncated) return 3, length 3, no success; held until the next.
    assert [float(s[i].metrics["episode_done"]) for i in range(1, 7)] == [0, 0, 1, 0, 1, 0]
    assert float(s[3].metrics["episode_return"]) == 3.0 and float(s[3].metrics["episode_success"]) == 0.0
    assert float(s[4].metrics["episode_return"]) == 3.0
    # Second episode terminates after 2 steps with success.
    assert float(s[5].terminated) == 1 and float(s[5].metrics["episode_return"]) == 2.0
    assert float(s[5].metrics["episode_length"]) == 2.0 and float(s[5].metrics["episode_success"]) == 1.0
    assert float(s[5].info["final_obs"][0]) == 2.0 and float(s[5].obs[0]) == 0.0


def test_vmap_training_stack_scans_point_mass():
    for discrete in (True, False):
        env = wrap_for_training(PointMass(discrete=discrete), num_envs=5, episode_length=7)
        state = env.reset(jax.random.PRNGKey(0))
        assert state.obs.shape == (5, 6)

        def body(s, k):
            a = jax.vmap(env.action_space.sample)(jax.random.split(k, 5))
            s = env.step(s, a)
            return s, (s.done, s.truncated, s.terminated)

        state, (done, trunc, term) = jax.jit(lambda s: jax.lax.scan(body, s, jax.random.split(jax.random.PRNGKey(1), 15)))(state)
        assert done.shape == (15, 5)
        assert np.all(np.isfinite(np.asarray(state.obs)))
        np.testing.assert_array_equal(np.asarray(done), np.maximum(np.asarray(trunc), np.asarray(term)))
        # The 7-step limit: every env's first episode ends (terminated or truncated) by step 7.
        np.testing.assert_array_equal(np.asarray(done[:7]).max(axis=0), 1.0)
        assert float(np.asarray(trunc).max()) == 1.0


def test_point_mass_reaching_goal_terminates_with_bonus():
    env = PointMass(discrete=True)
    s = env.reset(jax.random.PRNGKey(3))
    s = s.replace(data={"pos": jnp.array([0.0, 0.0]), "goal": jnp.array([0.05, 0.0])})
    n = env.step(s, jnp.asarray(1))
    assert float(n.terminated) == 1 and float(n.success) == 1
    assert float(n.reward) == pytest.approx(0.05 - 0.05 + 1.0, abs=1e-6)


def test_vmap_wrapper_batches():
    env = VmapWrapper(Chain(), 4)
    s = env.reset(jax.random.PRNGKey(0))
    assert s.obs.shape == (4, 2)
    n = env.step(s, jnp.array([0, 1, 0, 1]))
    np.testing.assert_array_equal(np.asarray(n.terminated), [0, 1, 0, 1])


def test_cached_auto_reset_starts_from_the_ready_state_and_refresh_redraws_it():
    env = AutoResetWrapper(EpisodeStatsWrapper(EpisodeWrapper(Chain(), 3)), cached=True)
    s0 = env.reset(jax.random.PRNGKey(0))
    ready = float(s0.info["reset_state"]["obs"][1])
    assert ready != float(s0.obs[1])  # the ready state is a draw of its own, not the first episode's
    s = run_actions(env, [0, 0, 0, 0, 1])
    # The truncated step (3) and the terminated one (5) both restart from the ready state.
    assert float(s[3].done) == 1 and float(s[5].done) == 1
    for i in (3, 5):
        assert float(s[i].obs[0]) == 0.0 and float(s[i].obs[1]) == ready
        assert int(s[i].info["steps"]) == 0
    assert float(s[3].info["final_obs"][0]) == 3.0 and float(s[3].metrics["episode_return"]) == 3.0
    # refresh draws a new ready state (the same key gives the same draw); the next episode uses it.
    r = env.refresh(s[5], jax.random.PRNGKey(7))
    new_ready = float(r.info["reset_state"]["obs"][1])
    assert new_ready != ready
    assert new_ready == float(env.refresh(s[5], jax.random.PRNGKey(7)).info["reset_state"]["obs"][1])
    n = jax.jit(env.step)(r, jnp.asarray(1, jnp.int32))
    assert float(n.done) == 1 and float(n.obs[1]) == new_ready
    # Without caching, refresh is a no-op and the state carries no ready state.
    full = AutoResetWrapper(EpisodeStatsWrapper(EpisodeWrapper(Chain(), 3)))
    f0 = full.reset(jax.random.PRNGKey(0))
    assert "reset_state" not in f0.info and full.refresh(f0, jax.random.PRNGKey(7)) is f0
