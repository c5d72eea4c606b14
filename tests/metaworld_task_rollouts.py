"""The check every Meta-World task passes: jitted batched reset + random-action rollout, no NaN,
rewards in range. Used by ``test_metaworld_object_tasks_jit.py`` and
``test_metaworld_fixture_tasks_jit.py`` (the ten MT10 tasks split in two modules, so that the two
pytest-xdist workers each take one: each task is one MJX compile of about 1-2 minutes on the
2-core CI machine, the longest part of the default set).

One compile per task (reset and 40 steps in one program, B = 3), the persistent compilation
cache on (``conftest.py``).
"""

import numpy as np

import jax

from envs.metaworld import MetaWorldEnv

B, T = 3, 40
OBJECT_TASKS = ("reach-v3", "push-v3", "pick-place-v3", "peg-insert-side-v3", "button-press-topdown-v3")
FIXTURE_TASKS = ("door-open-v3", "drawer-open-v3", "drawer-close-v3", "window-open-v3", "window-close-v3")


def check_task_rollout(task_name):
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

