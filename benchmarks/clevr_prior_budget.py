"""How good a CLEVR-Robot prior does a distillation budget buy? Validation NLL and greedy success.

Runs the pipeline's own demonstration and distillation stages (``lago_jax.experiments.stages``)
for one prior kind with the given number of oracle episodes, steps, batch and learning-rate
schedule, then lets the distilled prior act alone, greedily, for --episodes episodes of
--episode-length pushes (the random policy's floor is printed beside it). The output directory
has the pipeline's layout (``demos/goals.npz``, ``priors/goals/<kind>``), so a pipeline run with
the same flags reuses what this wrote.

    python benchmarks/clevr_prior_budget.py --out outputs/clevr_prior --kind mlp --demo-episodes 4096 \\
        --steps 500 --batch 32
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from lago_jax import runtime  # noqa: E402

runtime.configure()

from lago_jax.experiments import stages  # noqa: E402
from lago_jax.experiments.clevr_robot import make_clevr_robot_suite  # noqa: E402
from lago_jax.experiments.config import PRIOR_KINDS, ExperimentConfig  # noqa: E402
from lago_jax.ppo.evaluate import evaluate_prior, evaluate_random  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--kind", choices=PRIOR_KINDS, default="mlp")
    p.add_argument("--demo-episodes", type=int, default=4096)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--schedule", choices=["cosine", "constant"], default="cosine")
    p.add_argument("--eval-every", type=int, default=None, help="default: steps / 10")
    p.add_argument("--episodes", type=int, default=256)
    p.add_argument("--episode-length", type=int, default=10)
    args = p.parse_args()
    suite = make_clevr_robot_suite()
    cfg = ExperimentConfig(tasks=("goals",), out_dir=args.out, demo_episodes=args.demo_episodes, demo_batch=64,
                           demo_episode_length=16, distill_steps=args.steps, distill_batch=args.batch,
                           distill_eval_every=args.eval_every or max(1, args.steps // 10), distill_lr=args.lr,
                           distill_schedule=args.schedule, episode_length=args.episode_length, progress=False)
    env = suite.make_env("goals")
    demos = stages.demos_stage(cfg, suite, "goals", env)
    t0 = time.time()
    prior, params, info = stages.distill_stage(cfg, "goals", args.kind, env, demos)
    seconds = time.time() - t0
    alone = evaluate_prior(prior, params, env, args.episodes, 1000, episode_length=args.episode_length)
    floor = evaluate_random(env, args.episodes, 1000, episode_length=args.episode_length)
    print(json.dumps({
        "kind": args.kind, "demo_episodes": args.demo_episodes, "demo_steps": int(demos.num_steps),
        "steps": args.steps, "batch": args.batch, "lr": args.lr, "schedule": args.schedule,
        "best_val_nll": info.get("best_val_nll"), "uniform_nll": info.get("baseline_nll"),
        "val_nll": info.get("val_nll"), "distill_seconds": round(seconds, 1),
        "greedy_success": alone["success_rate"], "random_success": floor["success_rate"],
        "episodes": args.episodes, "episode_length": args.episode_length,
    }))


if __name__ == "__main__":
    main()
