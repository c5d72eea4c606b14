"""``python -m lago_jax.experiments.metaworld``: the LaGO pipeline on Meta-World (MJX).

The default finishes on a 2-core CPU in under 10 minutes (see README); the paper-scale command is
in the README too.
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
    seeds=(0, 1, 2),
    num_envs=32,
    num_steps=64,
    num_updates=4,
    checkpoint_every=2,
    beta=0.1,
    demo_episodes=16,
    distill_steps=60,
    distill_batch=32,
    distill_eval_every=10,
    eval_episodes=16,
    episode_length=100,
)
"""Sized for a 2-core CPU in under 10 minutes (README). Batches sized for throughput
(``benchmarks/RESULTS_lago.md``): 32 envs x 64 steps (the vanilla-PPO setting that learns reach),
whose 2,048 visited states per update go through the prior in 8 chunks of 256 rows. The auto-reset
stays a full reset: in MJX it is 1% of a Meta-World step, and the cached state costs more to carry."""


if __name__ == "__main__":
    sys.exit(main(make_metaworld_suite, DEFAULT_TASKS, DEFAULTS))
