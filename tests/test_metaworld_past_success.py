"""After success the MJX Meta-World env keeps behaving like native Meta-World.

The scripted policies run on for 200 steps (the training episode length) without stopping at
success, from the same task instances in both envs (``benchmarks/metaworld_past_success.py``).
The tasks here are those whose fixture or object once went on through its stop in MJX (button
housing, drawer case, window frame, peg box); push is the object-task reference. Held to native on
the same 50 episodes: success still held at the last step within 10 points, mean reward per step
within 15%. One MJX compile per task (slow set).

Measured 2026-12-01 (benchmarks/RESULTS_mw_past_success.md, 50 episodes): held 94 / 96 / 100 / 70 /
92 % against native 100 / 100 / 100 / 80 / 92; reward ratios 0.92 / 0.99 / 0.86 / 1.14 / 0.96.
window-close's 0.856 (4.81 against 5.62) is inside the 15% with 0.6 points to spare: after ~130
steps the hand box slides off the stopped handle and the policy re-approaches
(benchmarks/RESULTS_metaworld.md). The episodes are the same in both envs and MJX on one CPU is
deterministic, so the margin is a measured one, not luck of the draw.
"""

import importlib

import numpy as np
import pytest

metaworld = pytest.importorskip("metaworld")

EPISODES, STEPS = 50, 200
HELD_POINTS, REWARD_RTOL = 0.10, 0.15
TASKS = ("button-press-topdown-v3", "drawer-close-v3", "window-close-v3", "peg-insert-side-v3", "push-v3")


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_mjx_past_success_matches_native(task):
    bench = importlib.import_module("benchmarks.metaworld_past_success")
    native = bench.native_rollouts(task, EPISODES, STEPS)
    mjx = bench.mjx_rollouts(task, native.reset_vectors, STEPS)
    r = bench.compare(native, mjx)
    print(task, {k: round(v, 3) for k, v in r.items()})
    assert np.isfinite(mjx.reward).all() and np.isfinite(mjx.hand).all()
    # Counted in episodes (5 of 50 is 10 points exactly, not 0.1000000009).
    assert round(abs(r["mjx_held"] - r["native_held"]) * EPISODES) <= round(HELD_POINTS * EPISODES), (
        f"{task}: success held at step {STEPS}: MJX {r['mjx_held']:.2f}, native {r['native_held']:.2f}"
    )
    assert abs(r["mjx_reward"] / r["native_reward"] - 1) <= REWARD_RTOL, (
        f"{task}: reward per step: MJX {r['mjx_reward']:.3f}, native {r['native_reward']:.3f}"
    )
