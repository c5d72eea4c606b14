"""Cost of one LaGO prior evaluation with SmolLM2-135M: k soft tokens after a cached prefix.

Measures, on whatever JAX backend is active (CPU here):
- prefix prefill time for one instruction of --prefix-tokens tokens;
- per batch size B: time of `forward_with_prefix` for B continuations of k soft tokens each
  (the prior's hot path in the PPO rollout), evaluations/s, and achieved GFLOP/s;
- per batch size: time of forward + backward to the soft-token embeddings through the frozen
  LLM (what distillation needs to train the projection);
- memory: parameter bytes, prefix-cache bytes, peak RSS of the process.

FLOPs are counted analytically per soft token: 2 * (matmul weights of the decoder blocks) +
attention (4 * N * H * keys per layer, for q.k and p.v); the lm_head is not run (the prior uses
the hidden state). Forward + backward to the inputs only is counted as 2x the forward FLOPs
(no weight gradients).

    python benchmarks/llm_prior_cost.py --max-batch 1024 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import time

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_enable_concurrency_optimized_scheduler=false "
                      "--xla_cpu_use_fusion_emitters=false")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from lago_jax import llm  # noqa: E402

INSTRUCTION = "Push the red ball to the left of the blue ball, and do not move the green one."


def forward_flops_per_token(config: llm.LlamaConfig, num_keys: int) -> float:
    d, f, h = config.hidden_size, config.intermediate_size, config.head_dim
    n, k = config.num_heads, config.num_kv_heads
    weights = d * n * h + 2 * d * k * h + n * h * d + 3 * d * f
    attention = 4 * n * h * num_keys
    return config.num_layers * (2 * weights + attention)


def timed(fn, *args, repeats: int) -> tuple[float, float]:
    """(compile + first run seconds, median seconds of `repeats` later runs)."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m",
                        help="load_pretrained name: smollm2-135m, random:smollm2-135m, a path")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--batch-sizes", default="1,64,256,1024")
    parser.add_argument("--max-batch", type=int, default=1024, help="skip larger batch sizes")
    parser.add_argument("--grad-max-batch", type=int, default=256,
                        help="largest batch for the forward+backward measurement")
    parser.add_argument("--soft-tokens", type=int, default=1, help="k soft tokens per example")
    parser.add_argument("--prefix-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    t0 = time.perf_counter()
    config, params, tokenizer = llm.load_pretrained(args.model, dtype=args.dtype)
    load_s = time.perf_counter() - t0
    prefix = tokenizer.encode(INSTRUCTION)
    prefix = (prefix * args.prefix_tokens)[:args.prefix_tokens]
    param_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(params))

    print(f"# {args.model} ({args.dtype}) on {jax.devices()[0].platform} "
          f"({os.cpu_count()} cores visible, {platform.processor() or platform.machine()}); "
          f"load {load_s:.1f} s; params {param_bytes / 2**20:.1f} MiB")

    # What one plain matmul of the MLP's shape reaches right now: the machine's (shared) rate.
    x = jnp.ones((1024, config.hidden_size), config.jnp_dtype)
    w = jnp.ones((config.hidden_size, config.intermediate_size), config.jnp_dtype)
    _, mm_s = timed(jax.jit(jnp.matmul), x, w, repeats=10)
    print(f"reference: one [1024, {config.hidden_size}] x [{config.hidden_size}, "
          f"{config.intermediate_size}] matmul reaches "
          f"{2 * x.shape[0] * w.size / mm_s / 1e9:.1f} GFLOP/s")

    prefill = jax.jit(llm.prefill_prefix, static_argnums=0)
    prefix_ids = jnp.asarray(prefix, jnp.int32)
    first, prefill_s = timed(prefill, config, params, prefix_ids, repeats=args.repeats)
    cache = prefill(config, params, prefix_ids)
    print(f"prefix prefill: {len(prefix)} tokens, compile+run {first:.2f} s, median "
          f"{prefill_s * 1e3:.1f} ms; prefix cache {cache.nbytes() / 2**10:.1f} KiB")

    @jax.jit
    def prior_eval(params, cache, soft_bkd):
        return llm.forward_with_prefix(config, params, cache, soft_bkd)[:, -1]

    @jax.jit
    def prior_grad(params, cache, soft_bkd, target_bd):
        def loss(soft):
            z = llm.forward_with_prefix(config, jax.lax.stop_gradient(params), cache, soft)[:, -1]
            return jnp.mean(jnp.square(z.astype(jnp.float32) - target_bd))
        return jax.grad(loss)(soft_bkd)

    k = args.soft_tokens
    flops_token = forward_flops_per_token(config, len(prefix) + k)
    sizes = [int(b) for b in args.batch_sizes.split(",") if int(b) <= args.max_batch]
    rows = []
    for b in sizes:
        soft = 0.05 * jax.random.normal(jax.random.key(b), (b, k, config.hidden_size),
                                        config.jnp_dtype)
        reps = args.repeats if b <= 256 else max(3, args.repeats // 2)
        compile_s, fwd_s = timed(prior_eval, params, cache, soft, repeats=reps)
        fwd_flops = flops_token * b * k
        row = {"B": b, "compile_s": compile_s, "fwd_ms": fwd_s * 1e3, "evals_per_s": b / fwd_s,
               "fwd_gflops": fwd_flops / fwd_s / 1e9}
        if b <= args.grad_max_batch:
            target = jnp.zeros((b, config.hidden_size), jnp.float32)
            _, grad_s = timed(prior_grad, params, cache, soft, target, repeats=reps)
            row.update(grad_ms=grad_s * 1e3, grad_gflops=2 * fwd_flops / grad_s / 1e9)
        rows.append(row)
        print(f"B={b}: " + ", ".join(f"{key} {val:.4g}" for key, val in row.items() if key != "B"),
              flush=True)

    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # KiB -> MiB on Linux
    print(f"\nforward FLOPs per soft token: {flops_token / 1e6:.1f} MFLOP "
          f"({len(prefix)} prefix keys + {k}); peak RSS {peak_rss:.0f} MiB\n")
    print("| B | forward ms (median) | evals/s | GFLOP/s | fwd+bwd to soft tokens ms | "
          "fwd+bwd GFLOP/s |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        grad = (f"{r['grad_ms']:.1f} | {r['grad_gflops']:.1f}" if "grad_ms" in r else "- | -")
        print(f"| {r['B']} | {r['fwd_ms']:.1f} | {r['evals_per_s']:.0f} | {r['fwd_gflops']:.1f} | "
              f"{grad} |")


if __name__ == "__main__":
    main()
