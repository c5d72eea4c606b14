"""Env steps per second: batched MJX Meta-World vs native ``metaworld`` stepping, same process.

    python benchmarks/metaworld_env.py --tasks reach-v3 push-v3 --batch-sizes 1 64 256 --steps 50

For each task: native ``env.step`` with random actions (resetting every 500 steps), before and
after the MJX runs; the MJX env under ``VmapWrapper`` with one jitted ``lax.scan`` of ``--steps``
steps per batch size (compile time reported separately, then the best of ``--repeats`` timed
runs after one warm-up run). Use ``--max-batch`` / ``--batch-sizes`` / ``--tasks`` to keep a run
short: each batch size is one compile (about 1-2 min on a 2-core CPU).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lago_jax import runtime  # noqa: E402

runtime.configure()

import jax  # noqa: E402
import numpy as np  # noqa: E402


def native_steps_per_s(task: str, steps: int) -> float:
    import metaworld

    mt1 = metaworld.MT1(task, seed=0)
    env = mt1.train_classes[task]()
    env.set_task(mt1.train_tasks[0])
    env.reset()
    rng = np.random.default_rng(0)
    acts = rng.uniform(-1, 1, (steps, 4)).astype(np.float32)
    t0 = time.perf_counter()
    n = 0
    for a in acts:
        env.step(a)
        n += 1
        if env.curr_path_length >= env.max_path_length:
            env.reset()
    return n / (time.perf_counter() - t0)


def random_rollout(env, batch: int, steps: int):
    """A jitted program: reset the batched ``env``, then ``steps`` steps of uniform random actions
    in a ``lax.scan``; returns the rewards."""

    @jax.jit
    def run(key):
        state = env.reset(key)

        def body(s, k):
            a = jax.random.uniform(k, (batch, 4), minval=-1.0, maxval=1.0)
            s = env.step(s, a)
            return s, s.reward

        return jax.lax.scan(body, state, jax.random.split(key, steps))[1]

    return run


def mjx_steps_per_s(task: str, batch: int, steps: int, repeats: int) -> tuple[float, float]:
    from envs.metaworld import MetaWorldEnv
    from envs.wrappers import VmapWrapper

    run = random_rollout(VmapWrapper(MetaWorldEnv(task), batch), batch, steps)

    t0 = time.perf_counter()
    compiled = run.lower(jax.random.PRNGKey(0)).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(jax.random.PRNGKey(1)))
    best = float("inf")
    for r in range(repeats):
        t0 = time.perf_counter()
        out = compiled(jax.random.PRNGKey(2 + r))
        jax.block_until_ready(out)
        best = min(best, time.perf_counter() - t0)
    if not np.isfinite(np.asarray(out)).all():
        raise RuntimeError(f"{task}: non-finite rewards at batch {batch}")
    return batch * steps / best, compile_s


def main(argv=None):
    from envs.metaworld import TASKS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=["reach-v3"], help=f"any of {sorted(TASKS)}")
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 64, 256, 1024])
    p.add_argument("--max-batch", type=int, default=None, help="skip batch sizes above this")
    p.add_argument("--steps", type=int, default=50, help="scan length per timed run")
    p.add_argument("--native-steps", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args(argv)
    sizes = [b for b in args.batch_sizes if args.max_batch is None or b <= args.max_batch]
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, jax {jax.__version__}, "
          f"devices {jax.devices()}", flush=True)
    rows = []
    for task in args.tasks:
        native = native_steps_per_s(task, args.native_steps)
        print(f"# {task}: native {native:,.0f} steps/s", flush=True)
        cells = []
        for b in sizes:
            sps, comp = mjx_steps_per_s(task, b, args.steps, args.repeats)
            print(f"# {task}: MJX B={b}: {sps:,.0f} steps/s, compile {comp:.0f} s", flush=True)
            cells.append(f"{sps:,.0f} ({comp:.0f})")
        # Native again after the MJX runs: on a shared machine the load drifts.
        native_after = native_steps_per_s(task, args.native_steps)
        print(f"# {task}: native (after) {native_after:,.0f} steps/s", flush=True)
        rows.append(f"| {task} | {native:,.0f} / {native_after:,.0f} | " + " | ".join(cells) + " |")
    print("| task | native steps/s (before / after) | " + " | ".join(f"MJX B={b} steps/s (compile s)" for b in sizes) + " |")
    print("|---|---|" + "---|" * len(sizes))
    print("\n".join(rows), flush=True)


if __name__ == "__main__":
    main()
