"""Meta-World past success: the scripted MT10 policies run on without stopping, native vs MJX.

Success is only the first step of an episode; PPO learns from the reward of every step. Here
Meta-World's own policy drives the native env and the JAX port of the same policy drives
``MetaWorldEnv(task, observe_goal=True)`` for ``--steps`` steps (default 200, the training
episode length) *without stopping at success*, from the same task instances (the MJX env is reset
to each native episode's reset vector, ``env._last_rand_vec``). Per task:

* success at the last step (the part still where the task wants it), native and MJX;
* mean reward per step, native and MJX, and their ratio;
* the hand's divergence from native over the first 100 steps: per episode the largest distance
  between the two hands, then the median and the largest over episodes (the two runs are closed
  loops, so a small difference can grow: this is the number a learner feels);
* the task's fixture joint (button, drawer, window, door) at the last step, mean over episodes.

Run (repository root)::

    python benchmarks/metaworld_past_success.py                      # all MT10, 50 episodes each
    python benchmarks/metaworld_past_success.py --tasks button-press-topdown-v3 --episodes 10

and it writes ``benchmarks/RESULTS_mw_past_success.md`` (``--out`` to change). The slow test
``tests/test_metaworld_past_success.py`` imports :func:`native_rollouts`, :func:`mjx_rollouts`
and :func:`compare` from here.
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

from benchmarks.metaworld_policy_success import MT10, native_episodes  # noqa: E402
from envs.metaworld.policies import get_policy, native_policy  # noqa: E402

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS_mw_past_success.md")
DIVERGENCE_STEPS = 100
# The fixture joint read at the last step, per task (Meta-World's joint names).
FIXTURE_JOINT = {
    "button-press-topdown-v3": "btnbox_joint",
    "drawer-open-v3": "goal_slidey",
    "drawer-close-v3": "goal_slidey",
    "window-open-v3": "window_slide",
    "window-close-v3": "window_slide",
    "door-open-v3": "doorjoint",
}


@dataclasses.dataclass
class Rollouts:
    """``episodes`` rollouts of ``steps`` steps: ``hand [E, T, 3]``, ``reward [E, T]``,
    ``success [E, T]`` (bool), ``fixture [E]`` (the fixture joint at the last step, NaN if none) and
    ``reset_vectors [E, k]`` (Meta-World's per-episode task instance)."""

    hand: np.ndarray
    reward: np.ndarray
    success: np.ndarray
    fixture: np.ndarray
    reset_vectors: np.ndarray


def native_rollouts(task: str, episodes: int, steps: int = 200, seed: int = 0) -> Rollouts:
    """Meta-World's own policy in the native env, one episode per MT1 train task (blocks of 50 use
    seed, seed + 1, ...), ``steps`` steps each without stopping at success."""
    import mujoco

    policy = native_policy(task)
    hand = np.zeros((episodes, steps, 3))
    reward = np.zeros((episodes, steps))
    success = np.zeros((episodes, steps), bool)
    fixture = np.full(episodes, np.nan)
    vectors = []
    for e, env in native_episodes(task, episodes, seed):
        obs, _ = env.reset()
        vectors.append(np.asarray(env._last_rand_vec, np.float32))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Meta-World warns when a gain leaves [-1, 1]
            for t in range(steps):
                # A copy: SawyerDoorOpenV3Policy edits the observation it is given in place.
                obs, r, _, _, info = env.step(policy.get_action(obs.copy()))
                hand[e, t], reward[e, t], success[e, t] = obs[:3], r, bool(info["success"])
        if task in FIXTURE_JOINT:
            j = mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_JOINT, FIXTURE_JOINT[task])
            fixture[e] = env.data.qpos[env.model.jnt_qposadr[j]]
    return Rollouts(hand, reward, success, fixture, np.stack(vectors))


def make_mjx_rollout(task: str, steps: int = 200):
    """Jitted ``run(reset_vectors [B, k]) -> (hand, reward, success, fixture)`` of the JAX policy."""
    import mujoco

    from envs.metaworld.env import MetaWorldEnv

    env = MetaWorldEnv(task, observe_goal=True)
    policy = get_policy(task)
    adr = None
    if task in FIXTURE_JOINT:
        j = mujoco.mj_name2id(env.mj_model, mujoco.mjtObj.mjOBJ_JOINT, FIXTURE_JOINT[task])
        adr = int(env.mj_model.jnt_qposadr[j])

    def episode(vector):
        def body(state, _):
            state = env.step(state, policy(state.obs))
            return state, (state.obs[:3], state.reward, state.success > 0)

        last, out = jax.lax.scan(body, env.reset_to(vector), None, length=steps)
        fixture = last.data.qpos[adr] if adr is not None else jnp.float32(jnp.nan)
        return out + (fixture,)

    return jax.jit(jax.vmap(episode))


def mjx_rollouts(task: str, reset_vectors: np.ndarray, steps: int = 200, timings: dict | None = None) -> Rollouts:
    """The JAX policy in the MJX env from the given task instances (one compile, one batch)."""
    run = make_mjx_rollout(task, steps)
    vectors = jnp.asarray(reset_vectors, jnp.float32)
    t0 = time.perf_counter()
    compiled = run.lower(vectors).compile()
    t1 = time.perf_counter()
    hand, reward, success, fixture = jax.tree.map(np.asarray, compiled(vectors))
    t2 = time.perf_counter()
    if timings is not None:
        timings.update(compile_s=t1 - t0, run_s=t2 - t1)
    return Rollouts(hand, reward, success, fixture, np.asarray(reset_vectors))


def compare(native: Rollouts, mjx: Rollouts) -> dict:
    """The per-task numbers of the table (see the module docstring)."""
    n = min(DIVERGENCE_STEPS, native.hand.shape[1])
    gap = np.linalg.norm(native.hand[:, :n] - mjx.hand[:, :n], axis=-1).max(axis=1)
    return dict(
        native_held=float(native.success[:, -1].mean()),
        mjx_held=float(mjx.success[:, -1].mean()),
        native_ever=float(native.success.any(axis=1).mean()),
        mjx_ever=float(mjx.success.any(axis=1).mean()),
        native_reward=float(native.reward.mean()),
        mjx_reward=float(mjx.reward.mean()),
        hand_median_mm=float(np.median(gap) * 1e3),
        hand_max_mm=float(gap.max() * 1e3),
        native_fixture=float(np.mean(native.fixture)),
        mjx_fixture=float(np.mean(mjx.fixture)),
    )


def render(rows: dict[str, dict], args: argparse.Namespace, times: dict[str, dict]) -> str:
    lines = [
        "# Meta-World past success: scripted MT10 policies run on without stopping, native vs MJX",
        "",
        f"Produced by `python benchmarks/metaworld_past_success.py {' '.join(sys.argv[1:])}`",
        f"on {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.machine()} CPU "
        f"({os.cpu_count()} cores), jax {jax.__version__}.",
        "",
        f"{args.episodes} episodes per task (MT1 train tasks, seed {args.seed}), {args.steps} steps each without stopping",
        "at success, the MJX env reset to the native episodes' task instances. Held: success at the last step.",
        "Reward: mean per step. Hand: per episode the largest distance between the two hands over the first",
        f"{DIVERGENCE_STEPS} steps; median and max over episodes. Fixture: its joint at the last step (mean).",
        "",
        "| task | held % (native / MJX) | success at any step % (native / MJX) | reward per step (native / MJX, ratio) "
        "| hand divergence mm (median / max) | fixture joint at the end (native / MJX) | MJX compile / run s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for task, r in rows.items():
        fixture = "-" if np.isnan(r["native_fixture"]) else f"{r['native_fixture']:+.3f} / {r['mjx_fixture']:+.3f}"
        t = times.get(task, {})
        lines.append(
            f"| {task} | {100 * r['native_held']:.0f} / {100 * r['mjx_held']:.0f} | "
            f"{100 * r['native_ever']:.0f} / {100 * r['mjx_ever']:.0f} | "
            f"{r['native_reward']:.2f} / {r['mjx_reward']:.2f} ({r['mjx_reward'] / r['native_reward']:.2f}) | "
            f"{r['hand_median_mm']:.1f} / {r['hand_max_mm']:.1f} | {fixture} | "
            f"{t.get('compile_s', 0):.0f} / {t.get('run_s', 0):.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(MT10), choices=MT10)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    rows, times = {}, {}
    for task in args.tasks:
        native = native_rollouts(task, args.episodes, args.steps, args.seed)
        times[task] = {}
        mjx = mjx_rollouts(task, native.reset_vectors, args.steps, timings=times[task])
        rows[task] = compare(native, mjx)
        print(task, {k: round(v, 3) for k, v in rows[task].items()}, times[task], flush=True)
    text = render(rows, args, times)
    with open(args.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
