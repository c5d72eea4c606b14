"""The scripted CLEVR-Robot oracle, the random floor, and CLEVR demonstrations on disk.

The default test runs a short oracle collection (one compiled rollout); the slow tests
measure the oracle over 200 random goals and the random policy over 200 episodes, both with
the full 50-step limit.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs import demos as demos_lib
from envs.clevr_robot import instructions as lang
from envs.clevr_robot import oracle
from envs.clevr_robot.env import ClevrRobot, decode_obs


@pytest.fixture(scope="module")
def env():
    return ClevrRobot(templates=4)


def test_oracle_model_prefers_the_obvious_push():
    """Red is 0.3 right of blue and must go left of it: never push red straight into blue;
    with red 0.5 left of blue, push red right (toward blue)."""
    xy = jnp.array([[0.3, 0.0], [0.0, 0.0], [-0.45, 0.45], [0.45, 0.45], [0.45, -0.27]], jnp.float32)
    goal = jnp.array([0, 1, 1])  # red left of blue
    costs = np.asarray(oracle.action_costs(xy, goal))
    assert costs[2] >= oracle.BLOCK_PENALTY  # straight -x runs into blue
    assert int(np.argmin(costs)) != 2
    xy2 = xy.at[0].set(jnp.array([-0.5, 0.0]))
    best = int(np.argmin(np.asarray(oracle.action_costs(xy2, goal))))
    assert best == 0  # red, +x: 0.21 closer to the target 0.32 left of blue


def test_oracle_short_collection_and_demo_file(env, tmp_path):
    d = demos_lib.collect_demonstrations(
        env, oracle.oracle_policy, 16, jax.random.key(0), batch_size=16, episode_length=15,
        env_name="clevr_robot", metadata={"policy": "oracle"},
    )
    assert d.num_episodes == 16
    assert d.success_rate >= 0.75, d.summary()
    assert d.obs.shape == (d.num_steps, 24) and d.action.dtype == np.int32
    assert d.action.min() >= 0 and d.action.max() < 40
    # each step's instruction names the goal encoded in its observation
    _, goals = jax.vmap(decode_obs)(jnp.asarray(d.obs))
    np.testing.assert_array_equal(lang.GOALS[d.instruction_id // len(env.templates)], np.asarray(goals))
    # reward 1 exactly on the terminating step of successful episodes
    np.testing.assert_array_equal(d.reward, d.terminated)
    np.testing.assert_array_equal(d.episode_return, d.episode_success)
    loaded = demos_lib.load_demonstrations(demos_lib.save_demonstrations(tmp_path / "clevr", d))
    np.testing.assert_array_equal(loaded.obs, d.obs)
    np.testing.assert_array_equal(loaded.action, d.action)
    np.testing.assert_array_equal(loaded.episode_success, d.episode_success)
    assert loaded.instructions == env.instructions and loaded.action_space == {"type": "discrete", "n": 40}
    assert loaded.instructions[loaded.instruction_id[0]] in env.instructions


@pytest.mark.slow
def test_oracle_success_rate_over_200_goals(env):
    d = demos_lib.collect_demonstrations(env, oracle.oracle_policy, 200, jax.random.key(1), batch_size=50)
    print("oracle:", d.summary())
    assert d.num_episodes == 200
    assert d.success_rate >= 0.9, d.summary()


@pytest.mark.slow
def test_random_policy_floor(env):
    d = demos_lib.collect_demonstrations(env, oracle.random_policy, 200, jax.random.key(2), batch_size=50)
    print("random:", d.summary())
    assert d.success_rate < 0.9
