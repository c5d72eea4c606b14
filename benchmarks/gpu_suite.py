"""What only an accelerator can show, in one command and one Markdown table.

    python benchmarks/gpu_suite.py --out benchmarks/RESULTS_gpu.md        # sized for one H100/H200
    python benchmarks/gpu_suite.py --tiny --out /tmp/gpu_suite.md          # the same code, tiny sizes (CPU)

Four sections, each timed after compilation (median of ``--repeats``):

1. **Prior cost**: the LaGO prior's forward (k soft tokens after the cached instruction prefix,
   the hot path inside the update) for each backbone (``--llms``: SmolLM2-135M's weights and a
   random-init TinyLlama-1.1B shape) at each batch (``--prior-batches``), in ``--dtype``
   (bfloat16 by default): evaluations/s, achieved TFLOP/s (FLOPs counted analytically as in
   ``llm_prior_cost.py``) and model FLOP utilisation against ``--peak-tflops`` (default: the
   device's dense bf16 peak when it is a known GPU, else none).
2. **Environments**: env steps/s of the training stack (episode limit, statistics, auto-reset,
   vmap) stepping random actions in one jitted scan, for CLEVR-Robot in MJX and Meta-World tasks
   (``--envs``) at each batch (``--env-batches``).
3. **LaGO / PPO per update**: one update of each at ``--update-envs`` x ``--update-steps`` on each
   suite (``--update-suites``), as ``lago_overhead.py`` measures it; the target on a GPU is
   LaGO <= 1.3x PPO.
4. **A short LaGO run**: ``--run-updates`` updates of LaGO (SmolLM2-135M prior, untrained heads) on
   Meta-World reach with the env steps/s after the first (compiling) chunk.

``--tiny`` swaps in sizes a CPU runs in a minute or two (the tiny random Llama, the point-mass env,
batches of 4-8), so the test suite runs this file and it cannot rot. Nothing here needs a GPU;
the numbers it is for do.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import types

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lago_jax import runtime  # noqa: E402  (imports no jax)

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0}
"""Dense bf16 tensor-core peaks (NVIDIA's data sheets, without sparsity)."""
FULL = dict(llms=["smollm2-135m", "random:tinyllama-1.1b"], prior_batches=[1024, 4096, 16384],
            envs=["clevr", "reach-v3", "push-v3", "pick-place-v3"], env_batches=[1024, 4096, 16384],
            env_steps=50, update_suites=["clevr_robot", "metaworld"], update_envs=1024, update_steps=16,
            run_updates=20, run_llm="smollm2-135m")
TINY = dict(llms=["random:test-tiny"], prior_batches=[8], envs=["point_mass"], env_batches=[4], env_steps=5,
            update_suites=["point_mass"], update_envs=8, update_steps=4, run_updates=3, run_llm="random:test-tiny")


def _median_time(fn, repeats: int) -> float:
    import jax

    jax.block_until_ready(fn())  # compile + warm
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def peak_tflops(override: float | None) -> float | None:
    import jax

    if override:
        return override
    kind = jax.devices()[0].device_kind
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in kind), None)


def prior_cost(spec: str, batches, dtype_name: str, repeats: int, peak: float | None) -> list[dict]:
    import jax
    import jax.numpy as jnp

    from llm_prior_cost import forward_flops_per_token
    from lago_jax.prior.model import build_llm_prior
    from envs.core import Box

    dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[dtype_name]
    instructions = ("push the red ball to the left of the blue ball",)
    obs_dim = 39
    prior, params = build_llm_prior(spec, instructions, obs_dim, Box.uniform(4), jax.random.PRNGKey(0), dtype=dtype)
    config = prior.llm_config
    prefix_len = int(params.frozen["prefix_cache"].length_p[0])
    flops = prior.num_soft_tokens * forward_flops_per_token(config, prefix_len + prior.num_soft_tokens)
    apply = jax.jit(lambda p, o, i: prior.apply(p, o, i))
    rows = []
    for b in batches:
        obs = jax.random.normal(jax.random.PRNGKey(1), (b, obs_dim), jnp.float32)
        iid = jnp.zeros((b,), jnp.int32)
        t = _median_time(lambda: apply(params, obs, iid), repeats)
        tflops = b * flops / t / 1e12
        rows.append(dict(backbone=spec, dtype=dtype_name, batch=b, evals_per_s=b / t, tflops=tflops,
                         mfu=None if peak is None else tflops / peak))
    return rows


IMPL = "jax"
"""MJX implementation of the env benchmarks (``--impl``; ``"warp"`` needs a GPU and mujoco >= 3.3.5)."""


def _env(name: str):
    if name == "clevr":
        from envs.clevr_robot import ClevrRobot

        return ClevrRobot(templates=1, backend="mjx", impl=IMPL)
    if name == "point_mass":
        from envs.point_mass import PointMass

        return PointMass(discrete=False)
    from envs.metaworld import MetaWorldEnv

    return MetaWorldEnv(name, observe_goal=True, impl=IMPL)


def env_speed(name: str, batches, steps: int, repeats: int) -> list[dict]:
    import jax

    from envs.wrappers import wrap_for_training

    env = _env(name)
    rows = []
    for b in batches:
        wrapped = wrap_for_training(env, b)

        @jax.jit
        def rollout(key, wrapped=wrapped, b=b):
            state = wrapped.reset(key)

            def body(s, k):
                a = jax.vmap(env.action_space.sample)(jax.random.split(k, b))
                return wrapped.step(s, a), None

            return jax.lax.scan(body, state, jax.random.split(key, steps))[0].obs

        t = _median_time(lambda: rollout(jax.random.PRNGKey(0)), repeats)
        rows.append(dict(env=name, batch=b, steps_per_s=b * steps / t))
    return rows


def update_ratio(suite: str, num_envs: int, num_steps: int, llm: str, dtype: str, repeats: int) -> dict:
    from lago_overhead import measure

    args = types.SimpleNamespace(llm=llm, dtype=dtype, beta=0.1, num_envs=num_envs, num_steps=num_steps, updates=1,
                                 prior_chunk=max(256, num_envs), reset="default", repeats=repeats)
    return measure(suite, args)


def short_run(llm: str, num_envs: int, num_steps: int, updates: int, tiny: bool, dtype: str) -> dict:
    import jax
    import jax.numpy as jnp

    from lago_jax.ppo import PPOConfig, make_ppo
    from lago_jax.prior.model import build_llm_prior

    env = _env("point_mass" if tiny else "reach-v3")
    prior, params = build_llm_prior(llm, env.instructions, env.observation_size, env.action_space,
                                    jax.random.PRNGKey(0), dtype={"float32": jnp.float32, "bfloat16": jnp.bfloat16}[dtype])
    cfg = PPOConfig(num_envs=num_envs, num_steps=num_steps, num_updates=updates, kl_coef=0.1,
                    prior_chunk=max(256, num_envs), episode_length=50 if tiny else 200, reward_scale=0.1)
    ppo = make_ppo(cfg, env, prior)
    state = jax.jit(ppo.init)(jax.random.PRNGKey(0))
    state, _ = ppo.update(state, params, updates)  # compile (and a first run) of the same program
    jax.block_until_ready(state)
    t0 = time.perf_counter()
    state, metrics = ppo.update(state, params, updates)
    jax.block_until_ready(state)
    dt = time.perf_counter() - t0
    return dict(env="point_mass" if tiny else "reach-v3", backbone=llm, updates=updates,
                env_steps_per_s=updates * num_envs * num_steps / dt, seconds=dt)


def markdown(device: str, sections: dict) -> str:
    out = [f"# GPU suite: {device}", "", f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
           f"{platform.machine()}, {os.cpu_count()} CPUs", ""]
    out += ["## Prior cost", "", "| backbone | dtype | batch | evals/s | TFLOP/s | MFU |", "|---|---|---:|---:|---:|---:|"]
    for r in sections["prior"]:
        mfu = "-" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
        out.append(f"| {r['backbone']} | {r['dtype']} | {r['batch']} | {r['evals_per_s']:,.0f} | {r['tflops']:.3f} | {mfu} |")
    out += ["", "## Environments (training stack, random actions)", "", "| env | batch | env steps/s |", "|---|---:|---:|"]
    for r in sections["env"]:
        out.append(f"| {r['env']} | {r['batch']} | {r['steps_per_s']:,.0f} |")
    out += ["", "## LaGO / PPO per update", "",
            "| suite | backbone | envs x steps | PPO s/update | LaGO s/update | LaGO / PPO | LaGO env steps/s |",
            "|---|---|---|---:|---:|---:|---:|"]
    for r in sections["update"]:
        out.append(f"| {r['suite']} | {r['backbone']} | {r['num_envs']} x {r['num_steps']} | {r['ppo_s_per_update']} | "
                   f"{r['lago_s_per_update']} | {r['ratio']} | {r['lago_env_steps_per_s']:,.0f} |")
    r = sections["run"]
    out += ["", "## Short LaGO run", "", "| env | backbone | updates | env steps/s | seconds |", "|---|---|---:|---:|---:|",
            f"| {r['env']} | {r['backbone']} | {r['updates']} | {r['env_steps_per_s']:,.0f} | {r['seconds']:.1f} |", ""]
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="CPU-sized everything (what the test runs)")
    p.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    p.add_argument("--peak-tflops", type=float, default=None, help="peak for MFU (default: known GPUs' bf16 peak)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--impl", default="jax", choices=["jax", "warp"],
                   help="MJX implementation for the env rows (warp: NVIDIA GPU, mujoco >= 3.3.5)")
    p.add_argument("--out", default=None, help="write the Markdown table here too")
    for k, v in FULL.items():
        flag = "--" + k.replace("_", "-")
        if isinstance(v, list):
            p.add_argument(flag, nargs="+", type=type(v[0]), default=None)
        else:
            p.add_argument(flag, type=type(v), default=None)
    args = p.parse_args(argv)
    sizes = dict(TINY if args.tiny else FULL)
    sizes.update({k: getattr(args, k) for k in FULL if getattr(args, k) is not None})
    runtime.configure()
    import jax

    global IMPL
    from envs.mjx_impl import check_impl

    IMPL = check_impl(args.impl)  # refused up front where it cannot run, before any measurement
    device = f"{jax.devices()[0].platform} {jax.devices()[0].device_kind} x {jax.device_count()}"
    peak = peak_tflops(args.peak_tflops)
    sections = {"prior": [], "env": [], "update": []}
    for spec in sizes["llms"]:
        sections["prior"] += prior_cost(spec, sizes["prior_batches"], args.dtype, args.repeats, peak)
    for name in sizes["envs"]:
        sections["env"] += env_speed(name, sizes["env_batches"], sizes["env_steps"], args.repeats)
    for suite in sizes["update_suites"]:
        sections["update"].append(update_ratio(suite, sizes["update_envs"], sizes["update_steps"], sizes["run_llm"],
                                               args.dtype, args.repeats))
    sections["run"] = short_run(sizes["run_llm"], sizes["update_envs"], sizes["update_steps"], sizes["run_updates"],
                                args.tiny, args.dtype)
    text = markdown(device, sections)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
