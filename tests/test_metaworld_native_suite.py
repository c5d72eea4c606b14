"""The C engine's further Meta-World tasks in the pipeline: host-called scripted experts
(``envs.metaworld.policies.host_policy``) and the ``kalm-unseen`` group."""

import numpy as np
import pytest

import jax
import jax.numpy as jnp

pytest.importorskip("metaworld")

from envs.metaworld import KALM_UNSEEN_TASKS, MT10_TASKS, NATIVE_TASKS, MetaWorldEnv  # noqa: E402
from envs.metaworld.policies import POLICIES, host_policy  # noqa: E402


def test_host_policy_is_metaworlds_policy_under_jit_and_vmap():
    from metaworld.policies import ENV_POLICY_MAP

    obs = np.random.default_rng(0).uniform(-0.5, 0.5, (3, 5, 39)).astype(np.float32)
    want = np.stack([[ENV_POLICY_MAP["door-lock-v3"]().get_action(o.astype(np.float64).copy()) for o in row]
                     for row in obs]).astype(np.float32)
    policy = host_policy("door-lock-v3")
    got = jax.jit(jax.vmap(jax.vmap(policy)))(jnp.asarray(obs))
    np.testing.assert_array_equal(np.asarray(got), want)
    assert np.asarray(jax.jit(policy)(jnp.asarray(obs[0, 0]))).shape == (4,)
    with pytest.raises(ValueError, match="'no-such-task-v3'.*valid tasks"):
        host_policy("no-such-task-v3")
    with pytest.raises(ValueError, match="39 numbers"):
        policy(jnp.zeros((5, 12)))


def test_suite_offers_the_native_tasks_and_the_kalm_group():
    from lago_jax.experiments.metaworld import make_metaworld_suite

    suite = make_metaworld_suite()
    assert set(NATIVE_TASKS) <= set(suite.task_names) and set(MT10_TASKS) <= set(suite.task_names)
    assert suite.groups["mt10"] == tuple(MT10_TASKS)
    assert suite.groups["kalm-unseen"] == tuple(KALM_UNSEEN_TASKS)
    import metaworld.env_dict

    assert ("mt50" in suite.groups) == (set(metaworld.env_dict.MT50_V3) <= set(suite.task_names))
    # Every task has an expert: a JAX port for MT10, Meta-World's own policy on the host otherwise.
    for task in suite.task_names:
        assert callable(suite.expert(task)), task
    assert all(t in POLICIES for t in MT10_TASKS)


def test_host_expert_demonstrations_succeed_on_a_native_task():
    """Two scripted door-lock episodes through the demonstration collector on the C engine: the
    host-called expert solves them (the collector vmaps and jits it)."""
    from envs.demos import collect_demonstrations
    from lago_jax.experiments.metaworld import make_metaworld_suite

    suite = make_metaworld_suite()
    env = MetaWorldEnv("door-lock-v3", observe_goal=True, backend="mujoco", num_threads=1)
    demos = collect_demonstrations(env, suite.expert("door-lock-v3"), 2, jax.random.PRNGKey(0),
                                   batch_size=2, episode_length=200)
    assert demos.summary()["success_rate"] == 1.0
