"""What auto-reset costs per env step: a full reset on every step vs a cached reset state.

``AutoResetWrapper`` (``cached=False``) runs the env's ``reset`` inside every ``step``; under
``vmap`` both sides of the choice execute, so every env pays for a reset on every step whether
or not its episode ended. ``cached=True`` selects a ready reset state instead, refreshed once per
rollout (what PPO does by default, ``PPOConfig.cached_reset``).

For each suite and batch size, two jitted programs run ``--steps`` random env steps through the
training stack (episode limit, statistics, auto-reset, vmap) in a ``lax.scan`` -- one with each
auto-reset -- plus a third that runs only the batched ``reset`` ``--steps`` times. They are timed
alternately (``--repeats``, medians), so all see the same machine load.

    python benchmarks/autoreset_cost.py --suites clevr_robot metaworld --batch-sizes 32 256
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lago_jax import runtime  # noqa: E402  (imports no jax)

runtime.configure()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from envs.wrappers import AutoResetWrapper, EpisodeStatsWrapper, EpisodeWrapper  # noqa: E402


def make_env(suite: str, task: str | None):
    if suite == "clevr_robot":
        from envs.clevr_robot import ClevrRobot

        return ClevrRobot(), "goals"
    if suite == "metaworld":
        from envs.metaworld import MetaWorldEnv

        task = task or "reach-v3"
        return MetaWorldEnv(task, observe_goal=True), task
    raise ValueError(f"unknown suite {suite!r}; expected clevr_robot or metaworld")


def programs(env, batch: int, steps: int, episode_length: int | None):
    action_space = env.action_space

    def stepper(cached: bool):
        single = AutoResetWrapper(EpisodeStatsWrapper(EpisodeWrapper(env, episode_length)), cached=cached)

        @jax.jit
        def run(key):
            state = jax.vmap(single.reset)(jax.random.split(key, batch))

            def one(state, k):
                action = jax.vmap(action_space.sample)(jax.random.split(k, batch))
                state = jax.vmap(single.step)(state, action)
                return state, state.reward

            state, rewards = jax.lax.scan(one, state, jax.random.split(key, steps))
            return state.obs, rewards

        return run

    @jax.jit
    def resets(key):
        def one(carry, k):
            s = jax.vmap(env.reset)(jax.random.split(k, batch))
            return carry + jnp.sum(s.obs), None

        total, _ = jax.lax.scan(one, jnp.zeros(()), jax.random.split(key, steps))
        return total

    return {"full": stepper(False), "cached": stepper(True), "reset_only": resets}


def measure(suite: str, task: str | None, batch: int, steps: int, repeats: int, episode_length: int | None) -> dict:
    env, task = make_env(suite, task)
    progs = programs(env, batch, steps, episode_length)
    compile_s = {}
    for name, fn in progs.items():
        t0 = time.perf_counter()
        jax.block_until_ready(fn(jax.random.key(0)))
        compile_s[name] = round(time.perf_counter() - t0, 1)
    times = {name: [] for name in progs}
    for r in range(repeats):
        for name, fn in progs.items():
            t0 = time.perf_counter()
            jax.block_until_ready(fn(jax.random.key(1 + r)))
            times[name].append(time.perf_counter() - t0)
    med = {name: float(np.median(t)) / steps for name, t in times.items()}  # seconds per batched step
    return dict(
        suite=suite, task=task, batch=batch, steps=steps, backend=getattr(env, "backend", "mjx"),
        full_ms_per_step=round(1e3 * med["full"], 3), cached_ms_per_step=round(1e3 * med["cached"], 3),
        reset_ms=round(1e3 * med["reset_only"], 3),
        reset_share_of_full=round(med["reset_only"] / med["full"], 3),
        cached_speedup=round(med["full"] / med["cached"], 2),
        full_env_steps_per_s=round(batch / med["full"], 1), cached_env_steps_per_s=round(batch / med["cached"], 1),
        first_call_s=compile_s,
    )


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suites", nargs="+", default=["clevr_robot", "metaworld"], choices=["clevr_robot", "metaworld"])
    p.add_argument("--task", default=None, help="Meta-World task (default reach-v3)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 256])
    p.add_argument("--steps", type=int, default=16, help="env steps per timed call")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--episode-length", type=int, default=None)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    rows = []
    for suite in args.suites:
        for b in args.batch_sizes:
            rows.append(measure(suite, args.task, b, args.steps, args.repeats, args.episode_length))
            print("RESULT " + json.dumps(rows[-1]), flush=True)
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} CPUs, jax {jax.__version__} ({jax.default_backend()}), "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print("| suite (task) | env backend | B | full reset ms/step | cached ms/step | reset alone ms | reset share | "
          "cached speed-up | env steps/s full / cached |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['suite']} ({r['task']}) | {r['backend']} | {r['batch']} | {r['full_ms_per_step']} | "
              f"{r['cached_ms_per_step']} | {r['reset_ms']} | {r['reset_share_of_full']:.0%} | {r['cached_speedup']}x | "
              f"{r['full_env_steps_per_s']:,.0f} / {r['cached_env_steps_per_s']:,.0f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
