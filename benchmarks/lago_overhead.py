"""LaGO's cost over vanilla PPO: wall time per training update at the same batch.

For each suite, builds the entry point's default PPO configuration (``DEFAULTS`` of
``lago_jax.experiments.<suite>``; ``--num-envs`` / ``--num-steps`` override it) twice on the same
environment: vanilla PPO (no prior) and LaGO (the LLM prior evaluated in the jitted update for
every visited state, and the KL term in the loss). Each is compiled once (time reported),
then the two jitted ``update`` calls are timed alternately, ``--repeats`` times each, so both
see the same machine load; the table gives medians, their ratio, and env steps per second of
the whole training step (rollout + prior + GAE + epochs x minibatches) for each.

The prior inside the update: LaGO's extra time over PPO per update, divided into the update's
``num_envs x num_steps`` visited states, gives the prior's evals/s as the update sees them
(it also pays the KL term, so this is a lower bound); next to it, in the same alternation, the
standalone jitted ``prior.apply`` on ``--prior-chunk`` rows (the chunk size the update uses).

    python benchmarks/lago_overhead.py                                  # CLEVR-Robot + Meta-World defaults, SmolLM2-135M, CPU
    python benchmarks/lago_overhead.py --suites point_mass --num-envs 1024 --num-steps 32 \\
        --llm random:tinyllama-1.1b --dtype bfloat16                    # GPU: the TinyLlama-1.1B shape in bf16

``--json PATH`` also writes the rows. Results are recorded in ``benchmarks/RESULTS_lago.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SUITES = ("clevr_robot", "metaworld", "point_mass")


def suite_env_and_defaults(name: str):
    """(env, defaults dict, task) of a suite, the env as the entry point builds it."""
    if name == "clevr_robot":
        from lago_jax.experiments import clevr_robot as m

        return m.make_clevr_robot_suite().make_env(m.TASKS[0]), dict(m.DEFAULTS), m.TASKS[0]
    if name == "metaworld":
        from lago_jax.experiments import metaworld as m

        task = m.DEFAULT_TASKS[0]
        return m.make_metaworld_suite().make_env(task), dict(m.DEFAULTS), task
    if name == "point_mass":
        from envs.point_mass import PointMass

        return PointMass(discrete=True), dict(num_envs=64, num_steps=32, episode_length=50), "discrete"
    raise ValueError(f"unknown suite {name!r}; expected one of {list(SUITES)}")


def ppo_config(defaults: dict, args, kl_coef: float):
    from lago_jax.experiments.pipeline import ExperimentConfig

    kw = {k: v for k, v in defaults.items() if k in {f for f in ExperimentConfig.__dataclass_fields__}}
    if args.num_envs:
        kw["num_envs"] = args.num_envs
    if args.num_steps:
        kw["num_steps"] = args.num_steps
    kw["num_updates"] = max(args.updates * (args.repeats + 1), 2)
    kw["prior_chunk"] = args.prior_chunk
    cfg = ExperimentConfig(tasks=("x",), out_dir="", **kw)
    import dataclasses

    ppo = cfg.ppo_config("lago" if kl_coef > 0 else "ppo", 0)
    if args.reset != "default":
        ppo = dataclasses.replace(ppo, cached_reset=args.reset == "cached")
    return ppo


def measure(name: str, args) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from lago_jax.experiments.pipeline import CONVERTED_CACHE_DIR
    from lago_jax.ppo import make_ppo
    from lago_jax.prior.model import build_llm_prior

    env, defaults, task = suite_env_and_defaults(name)
    dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[args.dtype]
    cache_dir = None if args.llm.startswith("random:") else CONVERTED_CACHE_DIR
    prior, prior_params = build_llm_prior(args.llm, env.instructions, env.observation_size, env.action_space,
                                          jax.random.PRNGKey(0), dtype=dtype, cache_dir=cache_dir)
    runs = {}
    for variant, beta in (("ppo", 0.0), ("lago", args.beta)):
        cfg = ppo_config(defaults, args, beta)
        ppo = make_ppo(cfg, env, prior if beta > 0 else None)
        pp = prior_params if beta > 0 else None
        state = jax.jit(ppo.init)(jax.random.PRNGKey(0))
        t0 = time.perf_counter()
        compiled = ppo.update.lower(state, pp, args.updates).compile()
        compile_s = time.perf_counter() - t0
        state, _ = compiled(state, pp)  # warm-up
        jax.block_until_ready(state)
        runs[variant] = dict(cfg=cfg, compiled=compiled, state=state, pp=pp, compile_s=compile_s, times=[])
    chunk = args.prior_chunk
    obs = jax.random.normal(jax.random.PRNGKey(1), (chunk, env.observation_size), jnp.float32)
    iid = jnp.arange(chunk, dtype=jnp.int32) % len(env.instructions)
    alone = jax.jit(lambda p, o, i: prior.apply(p, o, i))
    jax.block_until_ready(alone(prior_params, obs, iid))
    alone_times = []
    for _ in range(args.repeats):  # alternate, so every program sees the same load
        for r in runs.values():
            t0 = time.perf_counter()
            r["state"], m = r["compiled"](r["state"], r["pp"])
            jax.block_until_ready((r["state"], m))
            r["times"].append((time.perf_counter() - t0) / args.updates)
        t0 = time.perf_counter()
        for _ in range(3):
            jax.block_until_ready(alone(prior_params, obs, iid))
        alone_times.append((time.perf_counter() - t0) / 3)
    cfg = runs["lago"]["cfg"]
    med = {v: float(np.median(r["times"])) for v, r in runs.items()}
    steps = cfg.num_envs * cfg.num_steps
    inside = steps / max(med["lago"] - med["ppo"], 1e-9)
    standalone = chunk / float(np.median(alone_times))
    return dict(
        suite=name, task=task, backbone=prior.describe()["backbone"], dtype=args.dtype,
        device=str(jax.devices()[0].platform), num_envs=cfg.num_envs, num_steps=cfg.num_steps,
        epochs=cfg.update_epochs, minibatches=cfg.num_minibatches, soft_tokens=prior.num_soft_tokens,
        ppo_s_per_update=round(med["ppo"], 4), lago_s_per_update=round(med["lago"], 4),
        ratio=round(med["lago"] / med["ppo"], 2),
        ppo_env_steps_per_s=round(steps / med["ppo"], 1), lago_env_steps_per_s=round(steps / med["lago"], 1),
        ppo_compile_s=round(runs["ppo"]["compile_s"], 1), lago_compile_s=round(runs["lago"]["compile_s"], 1),
        prior_chunk=chunk, cached_reset=cfg.cached_reset, env_backend=getattr(env, "backend", "mjx"),
        prior_evals_per_s_in_update=round(inside, 1), prior_evals_per_s_standalone=round(standalone, 1),
        prior_inside_vs_standalone=round(inside / standalone, 2),
        times_s={v: [round(t, 4) for t in r["times"]] for v, r in runs.items()},
    )


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suites", nargs="+", default=["clevr_robot", "metaworld"], choices=SUITES)
    p.add_argument("--llm", default="smollm2-135m", help="backbone spec, as the entry points' --llm")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--beta", type=float, default=0.1)
    p.add_argument("--num-envs", type=int, default=0, help="override the suite default")
    p.add_argument("--num-steps", type=int, default=0, help="override the suite default")
    p.add_argument("--updates", type=int, default=1, help="updates per timed call")
    p.add_argument("--prior-chunk", type=int, default=256, help="rows per prior call in the update (PPOConfig.prior_chunk)")
    p.add_argument("--reset", choices=["default", "cached", "full"], default="default",
                   help="auto-reset: the suite default, cached (refreshed per rollout) or a full reset every step")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    from lago_jax import runtime

    runtime.configure()
    rows = []
    for name in args.suites:
        rows.append(measure(name, args))
        print("RESULT " + json.dumps(rows[-1]), flush=True)
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print("| suite (task) | backbone | dtype | envs x steps | reset | PPO s/update | LaGO s/update | LaGO / PPO | "
          "PPO env steps/s | LaGO env steps/s | prior evals/s in update / standalone (chunk) | compile s (PPO / LaGO) |")
    print("|---|---|---|---|---|---:|---:|---:|---:|---:|---|---|")
    for r in rows:
        print(f"| {r['suite']} ({r['task']}) | {r['backbone']} | {r['dtype']} | {r['num_envs']} x {r['num_steps']} | "
              f"{'cached' if r['cached_reset'] else 'full'} | "
              f"{r['ppo_s_per_update']} | {r['lago_s_per_update']} | {r['ratio']} | {r['ppo_env_steps_per_s']:,.0f} | "
              f"{r['lago_env_steps_per_s']:,.0f} | {r['prior_evals_per_s_in_update']:,.0f} / "
              f"{r['prior_evals_per_s_standalone']:,.0f} ({r['prior_inside_vs_standalone']}x, {r['prior_chunk']}) | "
              f"{r['ppo_compile_s']} / {r['lago_compile_s']} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
