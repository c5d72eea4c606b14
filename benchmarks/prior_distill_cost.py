"""Cost of the LaGO prior in stage 1 and stage 2: distillation step and cached-prefix apply.

Measures, on the active JAX backend:
- time per distillation step (the jitted data-parallel train step of `lago_jax.prior.distill`,
  batch --batch, k soft tokens) for the LLM prior on --backbone and for the MLP prior;
- time per `prior.apply` (the PPO rollout's prior query, cached instruction prefix) for each
  batch size in --apply-batches;
- time to build the prefix caches of an instruction bank of --instructions instructions.
Each number is the median of --repeats timed calls after one warm-up (compile) call; the
process CPU time next to it (all threads) is what the call costs regardless of other load on a
shared machine (with C free cores the wall time is at least CPU time / C).

    python benchmarks/prior_distill_cost.py --backbone smollm2-135m --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from lago_jax import runtime  # noqa: E402

runtime.configure()

import jax  # noqa: E402
import numpy as np  # noqa: E402

from lago_jax import llm, parallel  # noqa: E402
from lago_jax.prior import DistillConfig, LLMPrior, MLPPrior  # noqa: E402
from lago_jax.prior.distill import make_train_step  # noqa: E402

COLOURS = ("red", "blue", "green", "purple", "cyan")


def instruction_bank(n: int) -> list[str]:
    out = []
    for i in range(n):
        a, b = COLOURS[i % 5], COLOURS[(i // 5 + 1 + i) % 5]
        out.append(f"Push the {a} ball to the left of the {b} ball (variant {i}).")
    return out


CPU_TIMES: dict[int, float] = {}


def median_time(fn, repeats: int) -> float:
    """Median wall time of fn(); the median process CPU time goes to CPU_TIMES[id(fn)]."""
    jax.block_until_ready(fn())
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    CPU_TIMES[id(fn)] = statistics.median(cpu)
    return statistics.median(times)


def cpu_note(fn) -> str:
    return f"; process CPU {CPU_TIMES[id(fn)] * 1e3:.0f} ms"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbone", default="smollm2-135m")
    ap.add_argument("--obs-dim", type=int, default=10)
    ap.add_argument("--actions", type=int, default=40)
    ap.add_argument("--instructions", type=int, default=40)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--k", type=int, default=1)
    ap.add_argument("--apply-batches", default="64,256")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = ap.parse_args()

    print(f"devices: {jax.devices()}  backend: {jax.default_backend()}")
    t0 = time.perf_counter()
    config, llm_params, tokenizer = llm.load_pretrained(args.backbone, dtype=args.dtype)
    print(f"load {args.backbone} ({args.dtype}): {time.perf_counter() - t0:.1f} s")
    bank = instruction_bank(args.instructions)
    prior = LLMPrior.from_instructions(config, tokenizer, bank, args.obs_dim, head="categorical",
                                       action_dim=args.actions, num_soft_tokens=args.k,
                                       backbone=args.backbone)
    longest = max(len(t) for t in prior.instruction_token_ids)
    print(f"instruction bank: {args.instructions} instructions, longest {longest} tokens")
    t0 = time.perf_counter()
    params = prior.init(jax.random.key(0), llm_params)
    jax.block_until_ready(params.frozen["prefix_cache"])
    print(f"prior.init incl. prefix caches (compile + run): {time.perf_counter() - t0:.2f} s; "
          f"cache {params.frozen['prefix_cache'].nbytes() / 2**20:.1f} MiB")
    t0 = time.perf_counter()
    jax.block_until_ready(prior.build_prefix_cache(llm_params))
    print(f"prefix caches, compiled: {time.perf_counter() - t0:.2f} s")

    rng = np.random.default_rng(0)

    def batch(b):
        return (rng.normal(size=(b, args.obs_dim)).astype(np.float32),
                rng.integers(0, args.actions, b).astype(np.int32),
                rng.integers(0, args.instructions, b).astype(np.int32))

    apply = jax.jit(prior.apply)
    for b in [int(x) for x in args.apply_batches.split(",")]:
        obs, _, iid = batch(b)
        fn = lambda: apply(params, obs, iid).logits  # noqa: E731
        t = median_time(fn, args.repeats)
        print(f"LLM prior apply, cached prefix, B={b}: {t * 1e3:.1f} ms ({b / t:.0f} states/s)"
              + cpu_note(fn))

    mesh = parallel.make_mesh()
    dcfg = DistillConfig(batch_size=args.batch)
    obs, action, iid = batch(args.batch)
    for name, p, pp in [
        ("LLM prior", prior, params),
        ("MLP prior", MLPPrior.from_instructions(bank, args.obs_dim, head="categorical",
                                                 action_dim=args.actions), None)]:
        if pp is None:
            pp = p.init(jax.random.key(0))
        tx = dcfg.optimizer()
        step = make_train_step(p, tx, mesh)
        state = {"trainable": pp.trainable, "opt": tx.init(pp.trainable)}

        def run():
            state["trainable"], state["opt"], loss = step(state["trainable"], state["opt"], pp.frozen,
                                                          obs, action, iid)
            return loss

        t0 = time.perf_counter()
        jax.block_until_ready(run())
        compile_s = time.perf_counter() - t0
        t = median_time(run, args.repeats)
        print(f"{name} distillation step, B={args.batch}, k={args.k}: {t * 1e3:.1f} ms "
              f"(first call incl. compile {compile_s:.1f} s)" + cpu_note(run))
        if name == "MLP prior":
            apply_mlp = jax.jit(p.apply)
            for b in [int(x) for x in args.apply_batches.split(",")]:
                o, _, i = batch(b)
                tm = median_time(lambda: apply_mlp(pp, o, i).logits, args.repeats)
                print(f"MLP prior apply, B={b}: {tm * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
