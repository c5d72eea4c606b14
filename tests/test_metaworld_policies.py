"""JAX scripted Meta-World policies vs Meta-World's own policy classes.

Oracle: the native ``metaworld`` environment is rolled out with the native policy on several
task instances per MT10 task; at every step the JAX policy and the native ``get_action`` see
the same observation and must return the same action.

Tolerance: both sides receive the observation rounded to float32 (the JAX policy's input
dtype). Meta-World then computes in float64 and rounds the action to float32; the JAX port
computes in float32. With gains up to p = 50 on coordinates of magnitude <= ~1.5 the
difference is a few float32 ulps of ``p * |x|``: ``atol = 1e-5`` (measured maximum 1e-6 over
all ten tasks) and the gripper command must match exactly.

The slow test at the end compares success rates of the scripted policies in the MJX env and
in the native env (>= 50 episodes per task, |difference| <= 10 points).
"""

from __future__ import annotations

import importlib
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.metaworld import policies

MT10 = tuple(policies.POLICIES)
ATOL = 1e-5
INSTANCES = (0, 17, 33)  # MT1 train-task indices rolled out per task
EXTRA_STEPS_AFTER_SUCCESS = 20


def _collect_native(task: str, instances=INSTANCES, max_steps: int = 500):
    """Roll out the native policy; return (obs float32 [N, 39], native actions [N, 4], any success)."""
    import metaworld

    mt1 = metaworld.MT1(task, seed=0)
    env = mt1.train_classes[task]()
    native = policies.native_policy(task)
    obs_list, act_list, successes = [], [], []
    for i in instances:
        env.set_task(mt1.train_tasks[i])
        obs, _ = env.reset()
        success_at = None
        for t in range(max_steps):
            obs32 = np.asarray(obs, np.float32)
            # Native sees the same float32-rounded values (a copy: door-open edits it in place).
            act = native.get_action(obs32.astype(np.float64))
            obs_list.append(obs32)
            act_list.append(np.asarray(act, np.float32))
            obs, _, _, truncated, info = env.step(native.get_action(np.array(obs)))
            if info["success"] and success_at is None:
                success_at = t
            if truncated or (success_at is not None and t >= success_at + EXTRA_STEPS_AFTER_SUCCESS):
                break
        successes.append(success_at is not None)
    env.close()
    return np.stack(obs_list), np.stack(act_list), successes


@pytest.mark.parametrize("task", MT10)
def test_policy_matches_native_on_native_rollouts(task):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Meta-World warns when a gain leaves [-1, 1]
        obs, native_actions, successes = _collect_native(task)
    # The rollouts go through every phase of the script (the task is solved at least once).
    assert any(successes), f"native {task} policy never succeeded on instances {INSTANCES}"
    ours = np.asarray(jax.jit(jax.vmap(policies.get_policy(task)))(jnp.asarray(obs)))
    assert ours.shape == native_actions.shape and ours.dtype == np.float32
    err = np.abs(ours - native_actions)
    worst = int(np.argmax(err.max(axis=1)))
    assert err[:, :3].max() <= ATOL, (
        f"{task}: max |delta| {err.max():.3g} at step {worst}: obs={obs[worst]}, "
        f"native={native_actions[worst]}, jax={ours[worst]}"
    )
    np.testing.assert_array_equal(ours[:, 3], native_actions[:, 3])


def _obs(hand=(0.0, 0.6, 0.2), gripper=1.0, obj=(0.0, 0.6, 0.02), goal=(0.1, 0.8, 0.1)):
    o = np.zeros(39, np.float32)
    o[0:3], o[3], o[4:7], o[36:39] = hand, gripper, obj, goal
    return jnp.asarray(o)


def test_reach_by_hand():
    a = policies.reach_policy(_obs(hand=(0.0, 0.6, 0.2), goal=(0.1, 0.8, 0.1)))
    np.testing.assert_allclose(np.asarray(a), [0.5, 1.0, -0.5, 0.0], atol=1e-6)


def test_drawer_open_switches_gain_at_the_handle():
    # Far from the handle: p = 4 toward 0.3 above it.
    far = policies.drawer_open_policy(_obs(hand=(0.2, 0.6, 0.2), obj=(0.0, 0.7, 0.1)))
    np.testing.assert_allclose(np.asarray(far), [4 * -0.2, 4 * 0.1, 4 * (0.38 - 0.2), -1.0], atol=1e-5)
    # At the handle: p = 50 toward 6 cm behind it.
    at = policies.drawer_open_policy(_obs(hand=(0.0, 0.7, 0.08), obj=(0.0, 0.7, 0.1)))
    np.testing.assert_allclose(np.asarray(at), [0.0, 50 * -0.06, 0.0, -1.0], atol=1e-4)


def test_policies_jit_vmap_and_shapes():
    batch = jnp.stack([_obs(), _obs(hand=(0.1, 0.5, 0.3))])
    for task, pol in policies.POLICIES.items():
        out = jax.jit(jax.vmap(pol))(batch)
        assert out.shape == (2, 4) and out.dtype == jnp.float32, task
        assert bool(jnp.all(jnp.isfinite(out))), task


def test_registry_and_errors():
    assert set(policies.POLICIES) == set(policies.NATIVE_POLICY_CLASSES)
    assert len(policies.POLICIES) == 10
    with pytest.raises(ValueError, match="valid tasks.*push-v3"):
        policies.get_policy("push-v2")
    with pytest.raises(ValueError, match="shape"):
        policies.push_policy(jnp.zeros((2, 39)))


# ----------------------------------------------------------------------------- MJX vs native


def _load_benchmark():
    return importlib.import_module("benchmarks.metaworld_policy_success")


@pytest.mark.slow
@pytest.mark.parametrize("task", MT10)
def test_mjx_success_rate_matches_native(task):
    bench = _load_benchmark()
    reason = bench.mjx_unsupported_reason(task)
    if reason:
        pytest.skip(reason)
    # Native episodes are cheap: 200 of them keep the native rate's sampling error small (<= 3.5
    # points), so the 10-point bound is mostly the MJX side's own error (<= 7 points at 50).
    native = bench.native_success(task, 200)
    mjx = bench.mjx_success(task, 50)
    diff = 100.0 * (mjx.mean() - native.mean())
    assert abs(diff) <= 10.0, f"{task}: MJX {100 * mjx.mean():.0f}% vs native {100 * native.mean():.0f}%"
