"""Every Meta-World task: jitted batched reset + random-action rollout, no NaN, rewards in range.

One compile per task (reset and 40 steps in one program, B = 3), the persistent compilation
cache on (``conftest.py``). On the 2-core CI machine each task's program compiles in about
1-1.5 minutes, so this module is the longest of the default set; pytest-xdist runs it beside
the other modules.
"""

import numpy as np
import pytest

import jax

from envs.metaworld import TASKS, MetaWorldEnv

B, T = 3, 40


@pytest.mark.parametrize("task_name", sorted(TASKS))
def test_task_jits_without_nan(task_name):
    env = MetaWorldEnv(task_name)

    @jax.jit
    def rollout(key):
        state = jax.vmap(env.reset)(jax.random.split(key, B))

        def body(s, k):
            a = jax.random.uniform(k, (B, 4), minval=-1.0, maxval=1.0)
            s = jax.vmap(env.step)(s, a)
            return s, (s.obs, s.reward, s.success, s.data.qpos)

        return state.obs, jax.lax.scan(body, state, jax.random.split(key, T))[1]

    obs0, (obs, rew, succ, qpos) = jax.tree.map(np.asarray, rollout(jax.random.PRNGKey(0)))
    assert obs.shape == (T, B, 39) and rew.shape == (T, B)
    assert np.isfinite(obs0).all() and np.isfinite(obs).all() and np.isfinite(qpos).all()
    assert np.isfinite(rew).all() and (rew >= 0).all() and (rew <= 10 + 1e-4).all()
    assert set(np.unique(succ)) <= {0.0, 1.0}
    # Random actions move the hand: the observation changes over the rollout in every env.
    assert (np.abs(obs[-1, :, :3] - obs0[:, :3]).max(axis=1) > 1e-3).all()
    # The three envs were reset to different task instances (object/goal drawn per env).
    assert np.unique(np.round(obs0[:, 4:7], 5), axis=0).shape[0] > 1 or np.unique(np.round(obs0[:, 36:39], 5), axis=0).shape[0] > 1
