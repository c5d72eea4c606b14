"""Which contacts Meta-World's scripted experts make natively, and whether the MJX model keeps them.

Runs Meta-World's own policy in the native ``metaworld`` env (plain MuJoCo, the original model)
and counts, at every step, the geom pairs in contact. Each pair is then looked up in the edited
MJX model of ``envs.metaworld.model`` (same XML, same geom order): *kept* when its
``contype``/``conaffinity`` bits still let the two geoms collide. A contact the expert relies on
that the MJX model dropped shows up here as a large count with ``kept = no``; this is how the
hand-versus-handle contacts of the window and drawer tasks were found.

    python benchmarks/metaworld_contacts.py                       # every MT10 task, 5 episodes each
    python benchmarks/metaworld_contacts.py --tasks window-open-v3 --episodes 20

Prints a Markdown table per task (the most frequent pairs) and the kept fraction of all
contact-steps. Cheap: native MuJoCo only, no JAX compile.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import warnings

import mujoco

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from envs.metaworld import tasks as tasks_lib  # noqa: E402
from envs.metaworld.model import build_mj_model, native_mj_model  # noqa: E402
from envs.metaworld.policies import native_policy  # noqa: E402


def native_contacts(task: str, episodes: int, seed: int = 0, max_steps: int = 500) -> collections.Counter:
    """``Counter`` of sorted ``(geom_a, geom_b)`` index pairs in contact, summed over the steps of
    ``episodes`` native expert episodes (each stops at its first success, as Meta-World's
    evaluation would stop caring)."""
    import metaworld

    policy = native_policy(task)
    mt1 = metaworld.MT1(task, seed=seed)
    env = mt1.train_classes[task]()
    count: collections.Counter = collections.Counter()
    try:
        for e in range(episodes):
            env.set_task(mt1.train_tasks[e % len(mt1.train_tasks)])
            obs, _ = env.reset()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for _ in range(max_steps):
                    obs, _, _, truncated, info = env.step(policy.get_action(obs.copy()))  # the door policy edits it
                    d = env.data
                    for c in d.contact[: d.ncon]:
                        count[tuple(sorted((int(c.geom1), int(c.geom2))))] += 1
                    if info["success"] or truncated:
                        break
    finally:
        env.close()
    return count


def kept_in_mjx_model(task: str, pairs) -> dict[tuple[int, int], bool]:
    """For each native geom pair: can the two geoms still collide in the edited MJX model?"""
    t = tasks_lib.get_task(task)
    m = build_mj_model(t.xml, t.colliders)

    def collide(a, b):
        return bool((m.geom_contype[a] & m.geom_conaffinity[b]) or (m.geom_contype[b] & m.geom_conaffinity[a]))

    return {p: collide(*p) for p in pairs}


def geom_label(m: mujoco.MjModel, g: int) -> str:
    body = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, int(m.geom_bodyid[g])) or f"body{m.geom_bodyid[g]}"
    name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, g)
    kind = mujoco.mjtGeom(m.geom_type[g]).name.replace("mjGEOM_", "").lower()
    return f"{body}:{name or '#' + str(g)} ({kind})"


def census(task: str, episodes: int) -> tuple[collections.Counter, dict, float]:
    """(contact counts, kept flags, fraction of contact-steps whose pair the MJX model keeps)."""
    count = native_contacts(task, episodes)
    kept = kept_in_mjx_model(task, count)
    total = sum(count.values())
    frac = sum(v for p, v in count.items() if kept[p]) / total if total else 1.0
    return count, kept, frac


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=list(tasks_lib.MT10_TASKS))
    p.add_argument("--episodes", type=int, default=5)
    p.add_argument("--top", type=int, default=8)
    args = p.parse_args(argv)
    for task in args.tasks:
        count, kept, frac = census(task, args.episodes)
        native = native_mj_model(tasks_lib.get_task(task).xml)
        print(f"\n### {task}: {sum(count.values())} contact-steps over {args.episodes} expert episodes, "
              f"{100 * frac:.1f}% on pairs the MJX model keeps\n")
        print("| contact-steps | geom | geom | kept in MJX model |")
        print("|---:|---|---|---|")
        for (a, b), v in count.most_common(args.top):
            print(f"| {v} | {geom_label(native, a)} | {geom_label(native, b)} | {'yes' if kept[(a, b)] else 'no'} |")
    print()


if __name__ == "__main__":
    main()
