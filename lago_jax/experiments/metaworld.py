"""``python -m lago_jax.experiments.metaworld``: the LaGO pipeline on Meta-World (MJX).

The default finishes on a 2-core CPU in under 15 minutes (measured 10.9 min, see README); the
paper-scale command is in the README too.
"""

from __future__ import annotations

import sys

from lago_jax.experiments.pipeline import Suite, main

DEFAULT_TASKS = ("reach-v3",)


def make_metaworld_suite() -> Suite:
    from envs.metaworld import TASKS, MetaWorldEnv
    from envs.metaworld.policies import POLICIES, get_policy

    def make_env(task: str):
        # Goal visible, as in metaworld.MT1 (the scripted experts steer to it; so can the policy).
        return MetaWorldEnv(task, observe_goal=True)

    def expert(task: str):
        policy = get_policy(task)
        return lambda obs, key: policy(obs)

    # Tasks with both an MJX env and a scripted expert.
    names = tuple(t for t in TASKS if t in POLICIES)
    return Suite(name="metaworld", task_names=names, make_env=make_env, expert=expert)


DEFAULTS = dict(
    seeds=(0, 1),
    num_envs=8,
    num_steps=40,
    num_updates=6,
    beta=0.1,
    demo_episodes=16,
    distill_steps=100,
    distill_batch=32,
    distill_eval_every=10,
    eval_episodes=16,
    episode_length=100,
)


if __name__ == "__main__":
    sys.exit(main(make_metaworld_suite, DEFAULT_TASKS, DEFAULTS))
