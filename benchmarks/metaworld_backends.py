"""Env steps per second of Meta-World's three engines, side by side in one process.

    python benchmarks/metaworld_backends.py --tasks mt10 --batch-sizes 32 128 --engines mujoco native mjx

Engines, for each task and batch size B:

* ``mjx``: ``MetaWorldEnv(task)`` (MJX on the edited model) under ``VmapWrapper``;
* ``mujoco``: ``MetaWorldEnv(task, backend="mujoco")`` (MuJoCo's C engine on the unedited model,
  through a host callback; ``--threads`` host threads), under ``VmapWrapper``;
* ``mujoco+reset``: the same through the training stack (``wrap_for_training``, auto-reset without
  a cached reset state: a reset is computed for every env at every step, as the PPO pipeline runs it
  by default);
* ``native``: B ``metaworld`` envs stepped one after the other in Python (``env.step``, resetting
  at 500 steps), as a Python training loop would.

JAX engines: one jitted program (reset, then a ``lax.scan`` of ``--steps`` steps with random
actions); "compile" is the first call's time less one timed run; steps/s is the best of
``--repeats`` timed runs. Each MJX (task, B) is a compile of about 1-2 minutes on 2 cores.
The machine's load average is printed with each row (other work shares the CPU).
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

ENGINES = ("mujoco", "mujoco+reset", "native", "mjx")


def native_steps_per_s(task: str, batch: int, steps: int) -> float:
    import metaworld

    mt1 = metaworld.MT1(task, seed=0)
    envs = []
    for i in range(batch):
        env = mt1.train_classes[task]()
        env.set_task(mt1.train_tasks[i % len(mt1.train_tasks)])
        env.reset()
        envs.append(env)
    acts = np.random.default_rng(0).uniform(-1, 1, (steps, batch, 4)).astype(np.float32)
    t0 = time.perf_counter()
    for t in range(steps):
        for env, a in zip(envs, acts[t]):
            env.step(a)
            if env.curr_path_length >= env.max_path_length:
                env.reset()
    return steps * batch / (time.perf_counter() - t0)


def jax_steps_per_s(task: str, engine: str, batch: int, steps: int, repeats: int, threads: int | None):
    from envs.metaworld import MetaWorldEnv
    from envs.wrappers import VmapWrapper, wrap_for_training
    from metaworld_env import random_rollout  # this folder's MJX benchmark: the same program

    if engine == "mjx":
        env = VmapWrapper(MetaWorldEnv(task, observe_goal=True), batch)
    else:
        base = MetaWorldEnv(task, observe_goal=True, backend="mujoco", num_threads=threads)
        env = wrap_for_training(base, batch) if engine == "mujoco+reset" else VmapWrapper(base, batch)
    run = random_rollout(env, batch, steps)

    t0 = time.perf_counter()
    jax.block_until_ready(run(jax.random.PRNGKey(0)))
    first = time.perf_counter() - t0
    best = np.inf
    for r in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(run(jax.random.PRNGKey(r + 1)))
        best = min(best, time.perf_counter() - t0)
    return steps * batch / best, first - best


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=["mt10"], help="task names, or mt10")
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[32, 128])
    p.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    p.add_argument("--steps", type=int, default=50, help="steps per timed run (JAX engines)")
    p.add_argument("--native-steps", type=int, default=20, help="steps of the B native envs")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="host threads of the mujoco backend")
    p.add_argument("--mjx-tasks", nargs="+", default=None,
                   help="run the mjx engine on these tasks only (each (task, B) is a 1-2 minute compile)")
    args = p.parse_args(argv)
    from envs.metaworld import MT10_TASKS

    tasks = list(MT10_TASKS) if args.tasks == ["mt10"] else args.tasks
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"jax {jax.__version__} ({jax.default_backend()}), threads={args.threads or os.cpu_count()}")
    print("| task | B | engine | env steps/s | compile s | load (1 min) |")
    print("|---|---|---|---|---|---|")
    for task in tasks:
        for b in args.batch_sizes:
            for engine in args.engines:
                if engine == "mjx" and args.mjx_tasks is not None and task not in args.mjx_tasks:
                    continue
                if engine == "native":
                    sps, comp = native_steps_per_s(task, b, args.native_steps), float("nan")
                else:
                    sps, comp = jax_steps_per_s(task, engine, b, args.steps, args.repeats, args.threads)
                comp_s = "-" if np.isnan(comp) else f"{comp:.1f}"
                print(f"| {task} | {b} | {engine} | {sps:,.0f} | {comp_s} | {os.getloadavg()[0]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
