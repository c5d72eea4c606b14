"""The LaGO prior's cost per backbone: Gemma-3-270M vs SmolLM2-135M on this machine.

For each backbone (real weights, float32, on the active JAX backend), with one soft token after a
cached instruction prefix of about 20 tokens, at batch (chunk) B:
- `forward_with_prefix`: B continuations of one prefix (broadcast, no per-row copy);
- `LLMPrior.apply`: the prior as PPO calls it, B observations with per-row instruction ids over a
  bank of 4 instructions (prefix keys and values gathered per row), projection and head included.
Rounds alternate between the backbones, so a change in the machine's load hits both alike;
medians over rounds are reported, with the load average (`os.getloadavg`) before and after.
FLOPs per soft token are counted as in benchmarks/llm_prior_cost.py (matmul weights of the
decoder blocks plus attention over the prefix; no lm_head).

    python benchmarks/llm_family_cost.py --batch 256 --rounds 7
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_enable_concurrency_optimized_scheduler=false "
                      "--xla_cpu_use_fusion_emitters=false")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from lago_jax import llm  # noqa: E402
from lago_jax.prior import LLMPrior  # noqa: E402

INSTRUCTIONS = (
    "Push the red ball to the left of the blue ball, and do not move the green one.",
    "Move the green ball in front of the purple ball without touching the red one.",
    "Put the blue ball behind the cyan ball, then keep the other balls where they are.",
    "Slide the purple ball to the right of the red ball and leave the rest alone.",
)
OBS_DIM, NUM_ACTIONS = 10, 40


def forward_flops_per_token(config, num_keys: int) -> float:
    d, f, h = config.hidden_size, config.intermediate_size, config.head_dim
    n, k = config.num_heads, config.num_kv_heads
    weights = d * n * h + 2 * d * k * h + n * h * d + 3 * d * f
    return config.num_layers * (2 * weights + 4 * n * h * num_keys)


def load_avg() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def setup(name: str, batch: int, prefix_tokens: int):
    """Everything one backbone needs: jitted functions and their inputs, compiled once."""
    t0 = time.perf_counter()
    config, params, tokenizer = llm.load_pretrained(name)
    load_s = time.perf_counter() - t0
    prior = LLMPrior.from_instructions(config, tokenizer, INSTRUCTIONS, OBS_DIM,
                                       head="categorical", action_dim=NUM_ACTIONS,
                                       backbone=name)
    prior_params = prior.init(jax.random.key(0), params)
    lengths = [len(t) for t in prior.instruction_token_ids]
    prefix = jnp.asarray(list(prior.instruction_token_ids[0][:prefix_tokens]), jnp.int32)
    cache = jax.jit(llm.prefill_prefix, static_argnums=0)(config, params, prefix)

    @jax.jit
    def continue_prefix(params, cache, soft_bkd):
        return llm.forward_with_prefix(config, params, cache, soft_bkd)[:, -1]

    @jax.jit
    def prior_apply(prior_params, obs, iid):
        return prior.apply(prior_params, obs, iid).logits

    rng = np.random.default_rng(0)
    soft = jnp.asarray(0.05 * rng.normal(size=(batch, 1, config.hidden_size)), config.jnp_dtype)
    obs = jnp.asarray(rng.normal(size=(batch, OBS_DIM)), jnp.float32)
    iid = jnp.asarray(np.arange(batch) % len(INSTRUCTIONS), jnp.int32)
    calls = {
        "forward_with_prefix": (continue_prefix, (params, cache, soft)),
        "LLMPrior.apply": (prior_apply, (prior_params, obs, iid)),
    }
    compile_s = {}
    for key, (fn, args) in calls.items():
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        compile_s[key] = time.perf_counter() - t0
    info = dict(config=config, load_s=load_s, compile_s=compile_s, prefix=int(prefix.shape[0]),
                bank_lengths=lengths,
                flops=forward_flops_per_token(config, int(prefix.shape[0]) + 1),
                params_mib=sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(params)) / 2**20)
    return calls, info


def time_call(fn, args, repeats: int) -> float:
    """Median seconds of `repeats` calls."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="gemma3-270m,smollm2-135m")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--prefix-tokens", type=int, default=20,
                        help="length of the one prefix of forward_with_prefix (the bank's own "
                             "lengths are printed)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=3, help="calls per round (median taken)")
    args = parser.parse_args()
    models = args.models.split(",")

    print(f"# {platform.machine()}, {os.cpu_count()} cores visible, JAX {jax.__version__} on "
          f"{jax.devices()[0].platform}; load average (1/5/15 min) at start: {load_avg()}")
    setups = {}
    for name in models:
        calls, info = setup(name, args.batch, args.prefix_tokens)
        setups[name] = calls
        c = info["config"]
        print(f"{name}: {type(c).__name__}, L={c.num_layers} D={c.hidden_size} "
              f"N/K/H={c.num_heads}/{c.num_kv_heads}/{c.head_dim} F={c.intermediate_size} "
              f"V={c.vocab_size}; params {info['params_mib']:.0f} MiB; load {info['load_s']:.1f} s; "
              f"compile+first {', '.join(f'{k} {v:.1f} s' for k, v in info['compile_s'].items())}; "
              f"prefix {info['prefix']} tokens, bank {info['bank_lengths']} tokens; "
              f"{info['flops'] / 1e6:.0f} MFLOP per soft token", flush=True)

    results = {(m, k): [] for m in models for k in setups[m]}
    for r in range(args.rounds):
        order = models if r % 2 == 0 else models[::-1]
        for name in order:
            for key, (fn, fn_args) in setups[name].items():
                results[(name, key)].append(time_call(fn, fn_args, args.repeats))
    print(f"load average at end: {load_avg()}\n")

    b = args.batch
    print(f"| backbone | call | B | median ms | evals/s | min..max ms over {args.rounds} rounds |")
    print("|---|---|---:|---:|---:|---|")
    medians = {}
    for (name, key), times in results.items():
        med = statistics.median(times)
        medians[(name, key)] = med
        print(f"| {name} | {key} | {b} | {med * 1e3:.1f} | {b / med:.0f} | "
              f"{min(times) * 1e3:.1f}..{max(times) * 1e3:.1f} |")
    if len(models) == 2:
        a, z = models
        for key in setups[a]:
            ratio = medians[(a, key)] / medians[(z, key)]
            print(f"\n{key}: {a} takes {ratio:.2f}x the time of {z} "
                  f"({z} evals/s / {a} evals/s)", end="")
        print()


if __name__ == "__main__":
    main()
