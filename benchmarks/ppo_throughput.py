"""PPO throughput: env steps per second of the full jitted update on the point-mass env.

Times ``ppo.update(state, None, updates)`` (rollout + GAE + epochs x minibatches, all jitted) on
1 device and on 4 forced host devices (a subprocess with
``--xla_force_host_platform_device_count=4``). Compile time is measured separately, with the
persistent compilation cache off. Reports the median of ``--repeats`` timed calls.

    python benchmarks/ppo_throughput.py                    # both layouts, prints a table
    python benchmarks/ppo_throughput.py --devices 4 --child  # one layout (used internally)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child(args) -> dict:
    sys.path.insert(0, ROOT)
    from lago_jax import runtime

    extra = (f"--xla_force_host_platform_device_count={args.devices}",) if args.devices > 1 else ()
    runtime.set_xla_flags(extra)  # no persistent cache: compile time is measured cold
    import jax
    import numpy as np

    from envs.point_mass import PointMass
    from lago_jax import parallel
    from lago_jax.ppo import PPOConfig, make_ppo

    assert jax.device_count() == args.devices, jax.devices()
    cfg = PPOConfig(num_envs=args.num_envs, num_steps=args.num_steps, num_updates=1000,
                    update_epochs=args.epochs, num_minibatches=args.minibatches, episode_length=50)
    mesh = parallel.make_mesh() if args.devices > 1 else None
    ppo = make_ppo(cfg, PointMass(discrete=not args.continuous), mesh=mesh)
    state = jax.jit(ppo.init)(jax.random.PRNGKey(0))
    t0 = time.perf_counter()
    compiled = ppo.update.lower(state, None, args.updates).compile()
    compile_s = time.perf_counter() - t0
    state, m = compiled(state, None)  # warm-up
    jax.block_until_ready(state)
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        state, m = compiled(state, None)
        jax.block_until_ready((state, m))
        times.append(time.perf_counter() - t0)
    med = float(np.median(times))
    steps = args.updates * cfg.num_envs * cfg.num_steps
    return dict(devices=args.devices, num_envs=cfg.num_envs, num_steps=cfg.num_steps, updates_per_call=args.updates,
                epochs=cfg.update_epochs, minibatches=cfg.num_minibatches, action="continuous" if args.continuous else "discrete",
                compile_s=round(compile_s, 2), median_call_s=round(med, 4), times_s=[round(t, 4) for t in times],
                env_steps_per_s=round(steps / med, 1))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--devices", type=int, default=0, help="1 or 4 for one layout; 0 runs both in subprocesses")
    p.add_argument("--child", action="store_true")
    p.add_argument("--num-envs", type=int, default=64)
    p.add_argument("--num-steps", type=int, default=64)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--minibatches", type=int, default=4)
    p.add_argument("--updates", type=int, default=10, help="updates per timed call (one lax.scan)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--continuous", action="store_true")
    args = p.parse_args()
    if args.child or args.devices:
        print("RESULT " + json.dumps(child(args)), flush=True)
        return
    results = []
    for devices in (1, 4):
        cmd = [sys.executable, os.path.abspath(__file__), "--child", "--devices", str(devices)]
        for k in ("num_envs", "num_steps", "epochs", "minibatches", "updates", "repeats"):
            cmd += [f"--{k.replace('_', '-')}", str(getattr(args, k))]
        if args.continuous:
            cmd.append("--continuous")
        out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, JAX_PLATFORMS="cpu"))
        line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
        if out.returncode or not line:
            sys.exit(f"child with {devices} devices failed:\n{out.stderr[-3000:]}")
        results.append(json.loads(line[-1][7:]))
    print("| devices | action | envs x steps | compile (s) | median call (s) | env steps/s |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['devices']} | {r['action']} | {r['num_envs']} x {r['num_steps']} | {r['compile_s']} | "
              f"{r['median_call_s']} | {r['env_steps_per_s']:,.0f} |")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
