"""Success rate of the scripted MT10 policies: native Meta-World vs the MJX env.

Native half: Meta-World's own policy class (``metaworld.policies``) drives the native
``metaworld`` env, one episode per MT1 train task (50 per ``MT1(task, seed)``; further
blocks of 50 use seed + 1, + 2, ...). An episode succeeds when ``info["success"]`` is true at
any of its 500 steps (the loop stops at the first success; later steps cannot change it).

MJX half: the JAX port of the same policy (``envs.metaworld.policies``) drives
``envs.metaworld.env.MetaWorldEnv(task, observe_goal=True)`` (the goal is observed in MT1, as
natively): a vmapped batch of episodes runs in one jitted
``lax.scan`` over ``max_episode_steps`` steps; success is ``State.success`` at any step. One
compile per task (every batch has the same shape; the last one is padded).

Run (repository root)::

    python benchmarks/metaworld_policy_success.py   # all MT10 tasks: 200 native, 50 MJX episodes
    python benchmarks/metaworld_policy_success.py --tasks push-v3 reach-v3 --mjx-episodes 20
    python benchmarks/metaworld_policy_success.py --native-only
    python benchmarks/metaworld_policy_success.py --max-contact-points 16 --out /tmp/capped.md

and it writes ``benchmarks/RESULTS_mw_policies.md`` (``--out`` to change). The slow test
``tests/test_metaworld_policies.py::test_mjx_success_rate_matches_native`` imports
:func:`native_success`, :func:`mjx_success` and :func:`mjx_unsupported_reason` from here.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

if __name__ == "__main__":
    from lago_jax import runtime

    runtime.configure()  # before jax is imported

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from envs.metaworld.policies import POLICIES, get_policy, native_policy  # noqa: E402

MT10 = tuple(POLICIES)
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS_mw_policies.md")
TASKS_PER_MT1 = 50


# ----------------------------------------------------------------------------- native


def native_episodes(task: str, episodes: int, seed: int = 0):
    """Yield ``(episode, env)``: the native env set to one MT1 train task per episode (blocks of 50
    use seed, seed + 1, ...), not yet reset; the env is closed when the generator ends."""
    import metaworld

    env, mt1 = None, None
    try:
        for e in range(episodes):
            block, index = divmod(e, TASKS_PER_MT1)
            if index == 0:
                if env is not None:
                    env.close()
                mt1 = metaworld.MT1(task, seed=seed + block)
                env = mt1.train_classes[task]()
            env.set_task(mt1.train_tasks[index])
            yield e, env
    finally:
        if env is not None:
            env.close()


def native_success(task: str, episodes: int, seed: int = 0, max_steps: int = 500) -> np.ndarray:
    """Per-episode success ``[episodes]`` bool of Meta-World's own policy in the native env."""
    policy = native_policy(task)
    out = np.zeros(episodes, bool)
    for e, env in native_episodes(task, episodes, seed):
        obs, _ = env.reset()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Meta-World warns when a gain leaves [-1, 1]
            for _ in range(max_steps):
                obs, _, _, truncated, info = env.step(policy.get_action(obs.copy()))  # the door policy edits it
                if info["success"]:
                    out[e] = True
                    break
                if truncated:
                    break
    return out


# ----------------------------------------------------------------------------- MJX


def mjx_unsupported_reason(task: str) -> str | None:
    """None when ``MetaWorldEnv(task)`` can be built; otherwise why not (for skips and the table)."""
    try:
        from envs.metaworld.env import MetaWorldEnv
    except Exception as err:  # the env module may not exist yet or fail to import
        return f"envs.metaworld.env is not importable ({type(err).__name__}: {err})"
    try:
        MetaWorldEnv(task, observe_goal=True)
    except Exception as err:
        return f"MetaWorldEnv({task!r}) is not supported ({type(err).__name__}: {err})"
    return None


def make_mjx_episodes(task: str, max_contact_points: int | None = None):
    """``(run, steps)``: jitted ``run(keys [B]) -> success [B] bool``, one ``steps``-long scan per episode."""
    from envs.metaworld.env import MetaWorldEnv

    # MT1/MT10 tasks observe the goal (Meta-World's ``partially_observable=False``); the
    # reach, push, pick-place and peg-insert policies steer by it.
    env = MetaWorldEnv(task, observe_goal=True, max_contact_points=max_contact_points)
    policy = get_policy(task)
    steps = int(env.max_episode_steps or 500)

    def episode(key: jax.Array) -> jax.Array:
        def body(state, _):
            state = env.step(state, policy(state.obs))
            return state, state.success

        _, success = jax.lax.scan(body, env.reset(key), None, length=steps)
        return jnp.any(success > 0)

    return jax.jit(jax.vmap(episode)), steps


def mjx_success(
    task: str,
    episodes: int,
    seed: int = 0,
    batch: int = 25,
    timings: dict | None = None,
    max_contact_points: int | None = None,
) -> np.ndarray:
    """Per-episode success ``[episodes]`` bool of the JAX policy in the MJX env.

    ``timings``, when given, receives ``compile_s``, ``run_s`` (seconds) and ``env_steps``
    (steps simulated, padding included). ``max_contact_points`` is passed to ``MetaWorldEnv``
    (the opt-in contact cap; default off).
    """
    run, steps = make_mjx_episodes(task, max_contact_points)
    keys = jax.random.split(jax.random.key(seed), episodes)
    n_batches = -(-episodes // batch)
    keys = keys[np.arange(n_batches * batch) % episodes]  # pad the last batch by wrapping
    t0 = time.perf_counter()
    compiled = run.lower(keys[:batch]).compile()
    t1 = time.perf_counter()
    out = [np.asarray(compiled(keys[i * batch : (i + 1) * batch])) for i in range(n_batches)]
    t2 = time.perf_counter()
    if timings is not None:
        timings.update(compile_s=t1 - t0, run_s=t2 - t1, env_steps=n_batches * batch * steps)
    return np.concatenate(out)[:episodes]


# ----------------------------------------------------------------------------- table


@dataclasses.dataclass
class Row:
    task: str
    native: np.ndarray | None = None
    mjx: np.ndarray | None = None
    native_s: float = 0.0
    mjx_compile_s: float = 0.0
    mjx_run_s: float = 0.0
    note: str = ""


def _kept_rows(path: str, tasks: list[str]) -> tuple[dict[str, str], list[str]]:
    """For ``--update``: ``path``'s table lines for MT10 tasks not in ``tasks``, and its provenance lines."""
    if not os.path.exists(path):
        return {}, []
    kept, provenance = {}, []
    with open(path) as f:
        lines = [line.rstrip("\n") for line in f]
    for i, line in enumerate(lines):
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 2 and cells[1] in MT10 and cells[1] not in tasks:
            kept[cells[1]] = line
        elif line.startswith("Produced by") and i + 1 < len(lines):
            provenance.append(f"{line[len('Produced by '):]} {lines[i + 1]}")
        elif line.startswith("- earlier run:"):
            provenance.append(line[len("- earlier run: "):])
    return kept, list(dict.fromkeys(provenance))


def _pct(x: np.ndarray | None) -> str:
    return "-" if x is None else f"{100.0 * x.mean():.0f}"


def render(
    rows: list[Row], args: argparse.Namespace, kept: dict[str, str] | None = None, provenance: list[str] = ()
) -> str:
    lines = [
        "# Scripted MT10 policies: success rate, native Meta-World vs MJX env",
        "",
        "Produced by `python benchmarks/metaworld_policy_success.py "
        + " ".join(sys.argv[1:])
        + "`",
        f"on {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{platform.machine()} CPU ({os.cpu_count()} cores, shared), jax {jax.__version__}.",
        "",
        "Native: Meta-World 3.1.1's own policy classes in the native env, one episode per MT1 train",
        f"task (seed {args.seed}, then {args.seed}+1, ... per block of 50). MJX: the JAX ports in",
        "`envs/metaworld/policies.py` driving `MetaWorldEnv(task, observe_goal=True"
        + ("" if args.max_contact_points is None else f", max_contact_points={args.max_contact_points}")
        + ")`, episodes from",
        f"`jax.random.split(key({args.seed}), episodes)`. Success = task success at any of the 500 steps.",
        "Difference = MJX - native, in percentage points. `-`: not measured (see note).",
    ]
    if kept:
        lines.append(f"Rows for {', '.join(sorted(kept))} are kept from earlier runs (`--update`):")
        lines += [f"- earlier run: {p}" for p in provenance]
    lines += [
        "",
        "| task | native success % | MJX success % | difference (pts) | episodes (native / MJX) | time s (native / MJX compile / MJX run) | note |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    measured = {r.task: r for r in rows}
    for task in MT10:
        if task not in measured:
            if kept and task in kept:
                lines.append(kept[task])
            continue
        r = measured[task]
        diff = "-" if r.native is None or r.mjx is None else f"{100.0 * (r.mjx.mean() - r.native.mean()):+.0f}"
        n_nat = "-" if r.native is None else str(len(r.native))
        n_mjx = "-" if r.mjx is None else str(len(r.mjx))
        lines.append(
            f"| {r.task} | {_pct(r.native)} | {_pct(r.mjx)} | {diff} | {n_nat} / {n_mjx} | "
            f"{r.native_s:.0f} / {r.mjx_compile_s:.0f} / {r.mjx_run_s:.0f} | {r.note} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(MT10), choices=MT10)
    parser.add_argument("--native-episodes", type=int, default=200, help="native episodes per task (cheap)")
    parser.add_argument("--mjx-episodes", type=int, default=50, help="MJX episodes per task")
    parser.add_argument("--batch", type=int, default=25, help="MJX episodes per jitted call")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--native-only", action="store_true")
    parser.add_argument(
        "--max-contact-points", type=int, default=None, help="MJX env with the opt-in contact cap (default: none)"
    )
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--update", action="store_true", help="keep --out's rows for tasks not run now")
    args = parser.parse_args(argv)
    kept, provenance = _kept_rows(args.out, args.tasks) if args.update else ({}, [])

    rows = []
    for task in args.tasks:
        row = Row(task)
        t0 = time.perf_counter()
        row.native = native_success(task, args.native_episodes, seed=args.seed)
        row.native_s = time.perf_counter() - t0
        if args.native_only:
            row.note = "MJX half not run (--native-only)"
        else:
            reason = mjx_unsupported_reason(task)
            if reason:
                row.note = reason.replace("|", "/")
            else:
                timings = {}
                row.mjx = mjx_success(
                    task,
                    args.mjx_episodes,
                    seed=args.seed,
                    batch=args.batch,
                    timings=timings,
                    max_contact_points=args.max_contact_points,
                )
                row.mjx_compile_s, row.mjx_run_s = timings["compile_s"], timings["run_s"]
                rate = timings["env_steps"] / row.mjx_run_s
                row.note = f"MJX batch {args.batch}, {rate:.0f} env steps/s"
        rows.append(row)
        print(
            f"{task:26s} native {_pct(row.native):>3s}% ({row.native_s:.0f}s)  "
            f"mjx {_pct(row.mjx):>3s}% (compile {row.mjx_compile_s:.0f}s, run {row.mjx_run_s:.0f}s)  {row.note}",
            flush=True,
        )
        with open(args.out, "w") as f:  # rewritten after every task: partial runs keep their rows
            f.write(render(rows, args, kept, provenance))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
