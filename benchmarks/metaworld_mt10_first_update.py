"""Time from start to the first PPO update, and peak memory, of one multi-task PPO on MT10.

    python benchmarks/metaworld_mt10_first_update.py --backend mujoco --envs-per-task 4

Builds ``MT10Env(backend=...)`` (the ten tasks, goal observed and a one-hot task id, as
``--task mt10`` trains) and runs ``lago_jax.ppo.make_train`` for one update of vanilla PPO (the
pipeline's Meta-World settings: 256x256 MLPs, rewards x 0.1, 64 steps per rollout, 200-step
episodes). Reports the env construction time, the first call (compile + one update), a second call
(one update, compiled), and the process's peak resident memory (``ru_maxrss``). One backend per
process, so that the peak memory is that backend's.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lago_jax import runtime  # noqa: E402

runtime.configure()

import jax  # noqa: E402


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", default="mujoco", choices=("mujoco", "mjx"))
    p.add_argument("--envs-per-task", type=int, default=4)
    p.add_argument("--num-steps", type=int, default=64)
    args = p.parse_args(argv)
    from envs.metaworld import MT10Env
    from lago_jax.ppo.config import PPOConfig
    from lago_jax.ppo.train import make_train

    t0 = time.perf_counter()
    env = MT10Env(envs_per_task=args.envs_per_task, observe_goal=True, episode_length=200, backend=args.backend)
    built = time.perf_counter() - t0
    n = env.num_envs
    config = PPOConfig(num_envs=n, num_steps=args.num_steps, num_updates=1, hidden_sizes=(256, 256),
                       reward_scale=0.1, episode_length=200)
    train = make_train(config, env)
    t1 = time.perf_counter()
    jax.block_until_ready(train(jax.random.PRNGKey(0)))
    first = time.perf_counter() - t1
    t2 = time.perf_counter()
    jax.block_until_ready(train(jax.random.PRNGKey(1)))
    again = time.perf_counter() - t2
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    steps = n * args.num_steps
    print(f"| {args.backend} | {n} ({args.envs_per_task}/task) | {built:.1f} | {first:.1f} | {built + first:.1f} | "
          f"{again:.1f} ({steps / again:,.0f} env steps/s incl. the update) | {peak_gb:.2f} | "
          f"{os.getloadavg()[0]:.2f} |")


if __name__ == "__main__":
    main()
