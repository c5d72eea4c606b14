"""CLEVR-Robot's success floor and ceiling against the episode length: the uniformly random
policy's and the scripted oracle's success rates over the same episodes, for each length.

A learning experiment needs a setting whose random floor leaves room above it: within the default
50 pushes the random policy already succeeds about 30% of the time (success as in KALM's
"tau_level": the source ball within 45 degrees of the named direction of the destination ball and
closer than 0.39), while the oracle needs about 4.4 pushes.

    python benchmarks/clevr_floor.py                          # 400 episodes, lengths 5 10 15 20 30 50
    python benchmarks/clevr_floor.py --episodes 1000 --lengths 10 50
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lago_jax import runtime  # noqa: E402  (imports no jax)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--episodes", type=int, default=400)
    p.add_argument("--lengths", type=int, nargs="+", default=[5, 10, 15, 20, 30, 50])
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    runtime.configure()
    import jax

    from envs.clevr_robot import ClevrRobot
    from envs.clevr_robot.oracle import oracle_policy
    from lago_jax.ppo.evaluate import evaluate_policy, evaluate_random

    env = ClevrRobot(templates=1)

    def oracle(params, obs, instruction_id, key):
        return jax.vmap(oracle_policy)(obs, jax.random.split(key, obs.shape[0]))

    print(f"{args.episodes} episodes per cell, seed {args.seed}, backend {env.backend}")
    print("| episode length (pushes) | random policy success | oracle success | seconds |")
    print("|---|---|---|---|")
    for length in args.lengths:
        t = time.time()
        r = evaluate_random(env, args.episodes, args.seed, length)
        o = evaluate_policy(oracle, None, env, args.episodes, args.seed, length)
        print(f"| {length} | {r['success_rate']:.3f} | {o['success_rate']:.3f} | {time.time() - t:.0f} |", flush=True)


if __name__ == "__main__":
    main()
