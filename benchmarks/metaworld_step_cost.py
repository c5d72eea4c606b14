"""Where a batched MJX Meta-World step spends its time, and what each model change would buy.

    python benchmarks/metaworld_step_cost.py --task drawer-open-v3 --batch 128 \\
        --variants base no-contacts condim1 ls2 it1 cap16 pairs4 drop:g3 --profile

Each *variant* is the task's MJX model (``envs.metaworld.model``) with one change; every variant
runs the real ``MetaWorldEnv.step`` (mocap control, 5 physics steps, observation, reward) under
``VmapWrapper`` in one jitted ``lax.scan`` of ``--steps`` random-action steps. The variants are
compiled first and then timed in turns, ``--repeats`` rounds, in one process, so that load on a
shared machine hits them alike; the table gives the median env steps/s and the ratio to ``base``.

Variants (combine them with ``,``: ``cap16,ls2``):

* ``base``: the model the env uses;
* ``no-contacts``: contacts disabled (``mjDSBL_CONTACT``): the cost of everything else;
* ``condim1``: every geom frictionless (one constraint row per contact instead of 4 or 6);
* ``ls<N>`` / ``it<N>``: ``N`` line-search steps / solver iterations;
* ``cap<K>``: ``MetaWorldEnv(task, max_contact_points=K)``, MJX's ``max_contact_points`` numeric
  (the ``K`` deepest contacts per condim group);
* ``pairs<K>``: MJX's ``max_geom_pairs`` numeric (the ``K`` nearest pairs per collision function);
* ``drop:<geom>+<geom>``: those geoms lose their collisions (names, or ``g<id>`` for unnamed geoms).

Only ``base`` (and ``cap<K>``, opt-in) are env settings; the others change the physics and are
measurements of where the time goes, not proposals.
``--profile`` traces one run of ``base`` with ``jax.profiler`` and sums the XLA op times by the
MJX function they come from (``fwd_position``: kinematics, collision, constraint rows;
``solve``: the Newton solver), with the largest single ops.
"""

from __future__ import annotations

import argparse
import collections
import copy
import glob
import gzip
import json
import os
import platform
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lago_jax import runtime  # noqa: E402

runtime.configure()

import jax  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402
from mujoco import mjx  # noqa: E402


def _geom_id(m: mujoco.MjModel, name: str) -> int:
    if re.fullmatch(r"g\d+", name):
        i = int(name[1:])
        if i >= m.ngeom:
            raise ValueError(f"geom id {i} out of range (the model has {m.ngeom} geoms)")
        return i
    i = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, name)
    if i < 0:
        raise ValueError(f"no geom named {name!r} in the model")
    return i


def variant_model(env, variant: str) -> mujoco.MjModel:
    """The env's ``mj_model`` with the changes named in ``variant`` (see the module docstring)."""
    from envs.metaworld import model as model_lib

    m = copy.deepcopy(env.mj_model)
    for part in variant.split(","):
        if part == "base":
            continue
        if re.fullmatch(r"(cap|pairs)\d+", part):
            # cap<K> is the env's own opt-in knob, MetaWorldEnv(max_contact_points=K).
            name = "max_contact_points" if part.startswith("cap") else "max_geom_pairs"
            k = int(part.removeprefix("cap").removeprefix("pairs"))
            numeric = copy.deepcopy(model_lib._build(env.task.xml, env.task.colliders, ((name, k),))[0])
            # Keep any other change already made to ``m``.
            for field in ("geom_contype", "geom_conaffinity", "geom_condim"):
                getattr(numeric, field)[:] = getattr(m, field)
            numeric.opt.disableflags = m.opt.disableflags
            numeric.opt.iterations, numeric.opt.ls_iterations = m.opt.iterations, m.opt.ls_iterations
            m = numeric
        elif part == "no-contacts":
            m.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_CONTACT
        elif part == "condim1":
            m.geom_condim[:] = 1
        elif re.fullmatch(r"ls\d+", part):
            m.opt.ls_iterations = int(part[2:])
        elif re.fullmatch(r"it\d+", part):
            m.opt.iterations = int(part[2:])
        elif part.startswith("drop:"):
            for g in part[5:].split("+"):
                i = _geom_id(m, g)
                m.geom_contype[i] = m.geom_conaffinity[i] = 0
        else:
            raise ValueError(
                f"unknown variant {part!r}: expected base, no-contacts, condim1, ls<N>, it<N>, cap<K>, pairs<K> "
                "or drop:<geom>+<geom>"
            )
    return m


def make_run(env, model: mujoco.MjModel, batch: int, steps: int):
    """(reset, run): jitted batched reset and a ``steps``-long random-action scan of the env on ``model``."""
    from envs.wrappers import VmapWrapper

    env = copy.copy(env)
    env.mj_model = model
    env.mjx_model = mjx.put_model(model)
    venv = VmapWrapper(env, batch)

    @jax.jit
    def run(state, key):
        def body(s, k):
            a = jax.random.uniform(k, (batch, 4), minval=-1.0, maxval=1.0)
            s = venv.step(s, a)
            return s, s.reward

        return jax.lax.scan(body, state, jax.random.split(key, steps))

    return jax.jit(venv.reset), run


def profile(compiled, state, key) -> tuple[collections.Counter, list[tuple[float, str, str]], float]:
    """Trace one call; XLA op time summed by MJX function, the largest ops, and the wall time."""
    hlo = compiled.as_text()
    op_of = {}
    for line in hlo.splitlines():
        mo = re.match(r'^\s*(?:ROOT )?%?([\w.\-]+) = (\S+).*?op_name="([^"]*)"', line)
        if mo:
            op_of[mo.group(1)] = (mo.group(2), mo.group(3))
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        with jax.profiler.trace(d):
            jax.block_until_ready(compiled(state, key))
        wall = time.perf_counter() - t0
        (path,) = glob.glob(os.path.join(d, "**", "*.trace.json.gz"), recursive=True)
        events = json.load(gzip.open(path))["traceEvents"]
    by_stage, by_op = collections.Counter(), collections.Counter()
    for e in events:
        if e.get("ph") != "X" or e["name"] not in op_of:
            continue
        op = op_of[e["name"]][1]
        tail = op.split("/step/")[-1] if "/step/" in op else "env (outside mjx.step)"
        parts = [p for p in tail.split("/") if p not in ("vmap()", "while", "body", "closed_call")]
        by_stage["/".join(parts[:2])] += e["dur"] / 1e3
        by_op[e["name"]] += e["dur"] / 1e3
    top = [(t, n, f"{op_of[n][0]} {op_of[n][1].split('/step/')[-1][-70:]}") for n, t in by_op.most_common(12)]
    return by_stage, top, wall


def main(argv=None) -> None:
    from envs.metaworld import TASKS, MetaWorldEnv

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="drawer-open-v3", help=f"one of {sorted(TASKS)}")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=20, help="env steps per timed run")
    p.add_argument("--repeats", type=int, default=4, help="timed rounds (variants alternate within a round)")
    p.add_argument("--variants", nargs="+", default=["base", "no-contacts", "condim1", "cap16"])
    p.add_argument("--profile", action="store_true", help="also trace one run of the base variant")
    args = p.parse_args(argv)
    if args.task not in TASKS:
        p.error(f"unknown task {args.task!r}; expected one of {sorted(TASKS)}")
    variants = list(dict.fromkeys(["base"] + args.variants))

    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, jax {jax.__version__}; "
          f"{args.task}, B = {args.batch}, {args.steps} steps per run", flush=True)
    env = MetaWorldEnv(args.task)
    progs = {}
    for v in variants:
        model = variant_model(env, v)
        dims = mjx.make_data(model)
        reset, run = make_run(env, model, args.batch, args.steps)
        state = reset(jax.random.PRNGKey(0))
        t0 = time.perf_counter()
        compiled = run.lower(state, jax.random.PRNGKey(1)).compile()
        compile_s = time.perf_counter() - t0
        out = jax.block_until_ready(compiled(state, jax.random.PRNGKey(1)))
        if not np.isfinite(np.asarray(out[1])).all():
            raise RuntimeError(f"variant {v!r}: non-finite rewards")
        progs[v] = (compiled, state, int(dims.ncon), int(dims.nefc), compile_s)
        print(f"# {v}: ncon {dims.ncon}, nefc {dims.nefc}, compile {compile_s:.0f} s", flush=True)

    times = {v: [] for v in variants}
    for r in range(args.repeats):
        for v in variants:
            compiled, state = progs[v][:2]
            t0 = time.perf_counter()
            jax.block_until_ready(compiled(state, jax.random.PRNGKey(2 + r)))
            times[v].append(time.perf_counter() - t0)
    base = args.batch * args.steps / np.median(times["base"])
    print("\n| variant | contact slots | constraint rows | compile s | env steps/s (median) | vs base |")
    print("|---|---|---|---|---|---|")
    for v in variants:
        _, _, ncon, nefc, compile_s = progs[v]
        sps = args.batch * args.steps / np.median(times[v])
        print(f"| {v} | {ncon} | {nefc} | {compile_s:.0f} | {sps:,.0f} | {sps / base:.2f}x |")

    if args.profile:
        compiled, state = progs["base"][:2]
        by_stage, top, wall = profile(compiled, state, jax.random.PRNGKey(99))
        total = sum(by_stage.values())
        print(f"\nProfile of base (one run, {wall:.2f} s wall under the tracer; op times summed over threads, "
              f"{total:,.0f} ms attributed to ops):\n")
        print("| MJX function | ms | share |")
        print("|---|---|---|")
        for k, t in by_stage.most_common(8):
            print(f"| {k} | {t:,.0f} | {t / total:.0%} |")
        print("\n| largest ops | ms | shape and origin |")
        print("|---|---|---|")
        for t, n, desc in top:
            print(f"| {n} | {t:,.0f} | {desc} |")


if __name__ == "__main__":
    main()
