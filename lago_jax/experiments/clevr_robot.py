"""``python -m lago_jax.experiments.clevr_robot``: the LaGO pipeline on CLEVR-Robot.

The default finishes on a 2-core CPU in under 10 minutes (see README); the paper-scale command is
in the README too.
"""

from __future__ import annotations

import sys

from lago_jax.experiments.pipeline import Suite, main

TASKS = ("goals",)
"""CLEVR-Robot has one task: random (source, destination, direction) goals from language."""

TEMPLATES = 1
"""Instruction templates per goal in the env's bank (80 goals x TEMPLATES prefixes the LLM prior
caches). Each extra template adds 80 cached prefixes (~1 MiB each for SmolLM2-135M)."""


def make_clevr_robot_suite() -> Suite:
    from envs.clevr_robot import ClevrRobot
    from envs.clevr_robot.oracle import oracle_policy

    def make_env(task: str):
        return ClevrRobot(templates=TEMPLATES)

    def expert(task: str):
        return oracle_policy

    return Suite(name="clevr_robot", task_names=TASKS, make_env=make_env, expert=expert)


DEFAULTS = dict(
    seeds=(0, 1, 2),
    num_envs=64,
    num_steps=16,
    num_updates=8,
    checkpoint_every=4,
    cached_reset=True,
    beta=0.1,
    demo_episodes=128,
    demo_batch=64,
    demo_episode_length=16,
    distill_steps=50,
    distill_batch=32,
    distill_eval_every=10,
    eval_episodes=16,
)
"""Sized for a 2-core CPU in under 10 minutes (README). Batches sized for throughput
(``benchmarks/RESULTS_lago.md``): 64 envs step at ~2,200 pushes/s with the C-engine backend and
a cached reset (1.5x a full reset per step), and each update's 1,024 visited states go through the
prior in 4 chunks of 256 rows (~4x the per-state speed of one call per time step at 8 envs)."""


if __name__ == "__main__":
    sys.exit(main(make_clevr_robot_suite, TASKS, DEFAULTS))
