"""Does the validation NLL of prior distillation settle? Constant against cosine learning rate.

Distils the MLP prior (cheap, so several settings fit in a minute on 2 cores) on saved
demonstrations (``demos/<task>.npz`` of a pipeline run) with the same seed, batch and peak
learning rate under each schedule, and reports per schedule: the best and final validation NLL,
and the largest rise of the validation NLL between two consecutive evaluations (a noisy run
swings by nats between evaluations; one that settles does not). No early stopping, so every
run goes the whole way.

    python benchmarks/distill_schedule.py --demos outputs/mw/demos/reach-v3.npz --steps 2000 --lr 1e-3
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from lago_jax import runtime  # noqa: E402

runtime.configure()

import jax  # noqa: E402
import numpy as np  # noqa: E402

from envs.core import Box, Discrete  # noqa: E402
from envs.demos import load_demonstrations  # noqa: E402
from lago_jax.prior import DistillConfig, MLPPrior, distill  # noqa: E402


def space_of(demos) -> object:
    """The action space recorded in the demonstrations file."""
    spec = demos.action_space
    if spec["type"] == "discrete":
        return Discrete(int(spec["n"]))
    return Box(low=np.asarray(spec["low"], np.float32), high=np.asarray(spec["high"], np.float32))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--demos", required=True, help="a demonstrations .npz written by the pipeline")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    demos = load_demonstrations(args.demos)
    prior = MLPPrior.from_instructions(demos.instructions, demos.obs.shape[-1], space_of(demos))
    print(f"demos {args.demos}: {demos.num_episodes} episodes, {demos.obs.shape[0]} steps; "
          f"MLP prior, batch {args.batch}, peak lr {args.lr}, {args.steps} steps, backend {jax.default_backend()}")
    print()
    print("| schedule | best val NLL | final val NLL | largest rise between evaluations | val NLL every "
          f"{args.eval_every * (args.steps // args.eval_every // 5 or 1)} steps |")
    print("|---|---|---|---|---|")
    for schedule in ("constant", "cosine"):
        cfg = DistillConfig(lr=args.lr, lr_schedule=schedule, batch_size=args.batch, max_steps=args.steps,
                            eval_every=args.eval_every, patience=0, seed=args.seed, progress=False)
        with tempfile.TemporaryDirectory() as out:
            _, result = distill(prior, prior.init(jax.random.key(args.seed)), demos, cfg, out)
        vals = np.array([v for _, v in result.val_nll])
        rise = float(np.max(np.diff(vals), initial=0.0))
        stride = max(1, len(vals) // 5)
        shown = ", ".join(f"{v:.2f}" for v in vals[::stride])
        print(f"| {schedule} | {vals.min():.3f} | {vals[-1]:.3f} | {rise:.3f} | {shown} |")


if __name__ == "__main__":
    main()
