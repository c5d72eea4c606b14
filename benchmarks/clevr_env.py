"""CLEVR-Robot throughput: batched env steps/s per physics backend vs a plain-mujoco Python loop.

For each backend (``--backends``: ``mujoco``, the C engine through ``pure_callback``; ``mjx``)
and batch size B, one jitted program runs ``--steps`` random env steps (each one push of 40
physics steps) of ``wrap_for_training(ClevrRobot(backend=...), B)`` in a ``lax.scan``
(auto-reset included); it is compiled ahead of time (the compile time) and then timed
``--repeats`` times (median). ``--cached-reset`` uses ``AutoResetWrapper(cached=True)`` (what
PPO's default does; without it every step also runs a full reset). The reference is a Python
loop over ``push_reference`` on the same ``MjModel`` in plain mujoco (one env at a time).
``--rates N`` also measures the oracle's and the random policy's success rates over N episodes
(with the first backend).

    python benchmarks/clevr_env.py                      # both backends, B = 1, 64, 1024
    python benchmarks/clevr_env.py --backends mujoco --batch-sizes 8 64 256 --steps 20 --rates 200

The compilation cache goes to a fresh temporary folder so compile times are real.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lago_jax import runtime  # noqa: E402  (imports no jax)

runtime.configure(tempfile.mkdtemp(prefix="clevr_bench_cache_"))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from envs import demos as demos_lib  # noqa: E402
from envs.clevr_robot import oracle  # noqa: E402
from envs.clevr_robot.env import BALL_XY_QPOS, NUM_ACTIONS, ClevrRobot, push_reference, sample_layout  # noqa: E402
from envs.wrappers import wrap_for_training  # noqa: E402


def bench_env(env: ClevrRobot, batch: int, steps: int, repeats: int, cached_reset: bool) -> dict:
    wrapped = wrap_for_training(env, batch, cached_reset=cached_reset)

    @jax.jit
    def run(key):
        state = wrapped.reset(key)

        def one(state, k):
            action = jax.random.randint(k, (batch,), 0, NUM_ACTIONS, jnp.int32)
            state = wrapped.step(state, action)
            return state, state.reward

        state, rewards = jax.lax.scan(one, state, jax.random.split(key, steps))
        return state.obs, rewards

    key = jax.random.key(1)
    t0 = time.perf_counter()
    compiled = run.lower(key).compile()
    compile_s = time.perf_counter() - t0
    times = []
    for r in range(max(1, repeats)):
        t0 = time.perf_counter()
        obs, _ = jax.block_until_ready(compiled(jax.random.key(2 + r)))
        times.append(time.perf_counter() - t0)
        assert np.isfinite(np.asarray(obs)).all()
    run_s = float(np.median(times))
    return dict(batch=batch, steps=steps, compile_s=compile_s, run_s=run_s, steps_per_s=batch * steps / run_s)


def bench_mujoco(env: ClevrRobot, n_steps: int) -> dict:
    m = env.mj_model
    d = mujoco.MjData(m)
    rng = np.random.default_rng(0)
    layout = np.asarray(sample_layout(jax.random.key(0))[0], np.float64)
    d.qpos[BALL_XY_QPOS.reshape(-1)] = layout.reshape(-1)
    t0 = time.perf_counter()
    for i in range(n_steps):
        if i % 50 == 49:  # a new layout every 50 steps, as episodes would
            mujoco.mj_resetData(m, d)
            d.qpos[BALL_XY_QPOS.reshape(-1)] = layout.reshape(-1)
        push_reference(m, d, int(rng.integers(NUM_ACTIONS)))
    run_s = time.perf_counter() - t0
    return dict(steps=n_steps, run_s=run_s, steps_per_s=n_steps / run_s)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 64, 1024])
    parser.add_argument("--max-batch", type=int, default=None, help="skip batch sizes above this")
    parser.add_argument("--steps", type=int, default=2, help="env steps per timed call (scan length)")
    parser.add_argument("--backends", nargs="+", default=["mujoco", "mjx"], choices=["mujoco", "mjx"])
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per (backend, B); the median is shown")
    parser.add_argument("--cached-reset", action="store_true", help="AutoResetWrapper(cached=True)")
    parser.add_argument("--mujoco-steps", type=int, default=500)
    parser.add_argument("--rates", type=int, default=0, help="episodes for oracle/random success rates (0: skip)")
    args = parser.parse_args(argv)

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"jax {jax.__version__} ({jax.default_backend()}), mujoco {mujoco.__version__}")
    envs = {b: ClevrRobot(backend=b) for b in args.backends}
    env = envs[args.backends[0]]
    ref = bench_mujoco(env, args.mujoco_steps)
    print(f"plain mujoco loop: {ref['steps_per_s']:.1f} env steps/s "
          f"({ref['steps_per_s'] * 40:.0f} physics steps/s, {ref['steps']} steps)", flush=True)
    print(f"auto-reset: {'cached' if args.cached_reset else 'full reset every step'}")
    print("| backend | B | env steps/s | physics steps/s | vs mujoco loop | compile s | timed call s |")
    print("|---|---|---|---|---|---|---|")
    for name, e in envs.items():
        for b in args.batch_sizes:
            if args.max_batch is not None and b > args.max_batch:
                continue
            r = bench_env(e, b, args.steps, args.repeats, args.cached_reset)
            print(f"| {name} | {b} | {r['steps_per_s']:.1f} | {r['steps_per_s'] * 40:.0f} | "
                  f"{r['steps_per_s'] / ref['steps_per_s']:.2f}x | {r['compile_s']:.1f} | {r['run_s']:.2f} |", flush=True)

    if args.rates:
        for name, policy in (("oracle", oracle.oracle_policy), ("random", oracle.random_policy)):
            t0 = time.perf_counter()
            d = demos_lib.collect_demonstrations(env, policy, args.rates, jax.random.key(7), batch_size=min(50, args.rates))
            s = d.summary()
            print(f"{name}: success {s['success_rate']:.3f} over {s['episodes']} episodes, "
                  f"mean length {s['mean_length']:.1f} ({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
