"""The C-engine Meta-World backend (``MetaWorldEnv(task, backend="mujoco")``) against native ``metaworld``.

Parity (every MT10 task and every task of ``native_tasks``, in the default set: the backend
compiles in seconds): the native env and ours start from the same reset vector (the native env's
own draw, rounded to float32, frozen in the native env so that both use the same numbers) and take
the same 500 float32 actions of Meta-World's scripted policy, through and past success. Two task
instances run as one batch over two host threads. Checked at every step: observation, reward,
success and truncation (through ``EpisodeWrapper``) equal native ``env.step`` to float32 rounding.

Measured (2026-12-07, max over the two instances and 500 steps; rewards are in [0, 10]):
observations within 6.4e-7 of native on every task (the gripper opening, a float32 norm; hand,
object and goal positions within 1.2e-7, object quaternions within 1.5e-7), rewards within
2.5e-5 (push-v3; peg-unplug-side-v3 2.0e-5, dial-turn-v3 1.5e-5, the others 1.1e-5 or less),
success and truncation equal at every step on all 50 tasks
(``benchmarks/RESULTS_metaworld.md`` has the table).
"""

import numpy as np
import pytest

import jax
import jax.numpy as jnp

metaworld = pytest.importorskip("metaworld")

from envs.metaworld import MT10_TASKS, MetaWorldEnv  # noqa: E402
from envs.metaworld.native_tasks import KALM_UNSEEN_TASKS, NATIVE_TASKS  # noqa: E402
from envs.wrappers import EpisodeWrapper, training_env  # noqa: E402

B, T = 2, 500
OBS_ATOL = 2e-6  # float32 rounding of values below ~1.1 (gripper opening, positions)
REWARD_ATOL = 5e-5  # float32 rewards up to 10; where a term subtracts nearby positions (the gripper
# caging terms), the float32 rounding of the inputs shows up to ~3e-4 relative on small rewards


def native_env(task_name: str, seed: int):
    mt1 = metaworld.MT1(task_name, seed=seed)
    env = mt1.train_classes[task_name]()
    env.set_task(mt1.train_tasks[0])
    return env


def scripted_policy(task_name: str):
    from metaworld.policies import ENV_POLICY_MAP  # type: ignore[attr-defined]

    return ENV_POLICY_MAP[task_name]()


def native_episode(task_name: str, seed: int, steps: int = T):
    """The native env's first observation and ``steps`` scripted steps, from its reset vector
    rounded to float32. Returns (vector, obs0, actions, obs, rewards, successes, truncations)."""
    env = native_env(task_name, seed)
    env.reset()
    vector = np.asarray(env._last_rand_vec, np.float32)
    env._last_rand_vec = vector.astype(np.float64)
    env._freeze_rand_vec = True
    obs, _ = env.reset()
    obs0, policy = obs, scripted_policy(task_name)
    rows = []
    for _ in range(steps):
        # Some scripted policies modify the observation they are given: pass a copy.
        action = np.clip(policy.get_action(obs.copy()), -1, 1).astype(np.float32)
        obs, reward, _, truncated, info = env.step(action)
        rows.append((action, obs, reward, float(info["success"]), float(truncated)))
    actions, obs, rew, succ, trunc = (np.stack([r[i] for r in rows]) for i in range(5))
    return vector, obs0, actions, obs, rew, succ, trunc


@pytest.mark.parametrize("task_name", MT10_TASKS + tuple(NATIVE_TASKS))
def test_scripted_episodes_equal_native(task_name):
    natives = [native_episode(task_name, seed) for seed in range(B)]
    vectors, obs0, actions, nat_obs, nat_rew, nat_succ, nat_trunc = (
        np.stack([n[i] for n in natives], axis=1 if i >= 2 else 0) for i in range(7))
    env = EpisodeWrapper(MetaWorldEnv(task_name, observe_goal=True, backend="mujoco", num_threads=2), T)

    def reset_to(vec):  # EpisodeWrapper.reset, from a given vector
        state = env.unwrapped.reset_to(vec)
        return state.replace(info=dict(state.info, steps=jnp.zeros((), jnp.int32)))

    @jax.jit
    def rollout(vecs, acts):
        state = jax.vmap(reset_to)(vecs)

        def body(s, a):
            s = jax.vmap(env.step)(s, a)
            return s, (s.obs, s.reward, s.success, s.truncated)

        return state.obs, jax.lax.scan(body, state, acts)[1]

    ours0, (obs, rew, succ, trunc) = jax.tree.map(np.asarray, rollout(jnp.asarray(vectors), jnp.asarray(actions)))
    obs_err, rew_err = np.abs(obs - nat_obs).max(), np.abs(rew - nat_rew).max()
    print(f"{task_name}: max |ours - native| over {T} steps: reset obs {np.abs(ours0 - obs0).max():.1e}, "
          f"obs {obs_err:.1e}, reward {rew_err:.1e}; native successes {nat_succ.sum(axis=0)}")
    np.testing.assert_allclose(ours0, obs0, atol=OBS_ATOL, rtol=0, err_msg="reset observation")
    np.testing.assert_allclose(obs, nat_obs, atol=OBS_ATOL, rtol=0, err_msg="observations")
    np.testing.assert_allclose(rew, nat_rew, atol=REWARD_ATOL, rtol=0, err_msg="rewards")
    np.testing.assert_array_equal(succ, nat_succ, err_msg="success")
    np.testing.assert_array_equal(trunc, nat_trunc, err_msg="truncation")
    # The scripted policy solves every instance well before the end: the comparison runs through
    # and past success.
    assert (nat_succ[: T - 50].max(axis=0) == 1).all()
    assert nat_trunc[-1].all() and not nat_trunc[:-1].any()


def test_touching_is_metaworlds_touching_main_object():
    """stick-push's success reads Meta-World's ``touching_main_object``: the backend's
    ``Kinematics.touching`` equals it after the reset and after each of 200 scripted steps (both
    values occur); a task without a touch geom computes none."""
    task_name = "stick-push-v3"
    nat = native_env(task_name, 0)
    nat.reset()
    vector = np.asarray(nat._last_rand_vec, np.float32)
    nat._last_rand_vec = vector.astype(np.float64)
    nat._freeze_rand_vec = True
    obs, _ = nat.reset()
    backend = MetaWorldEnv(task_name, observe_goal=True, backend="mujoco", num_threads=1).native
    data, kin, _ = jax.jit(backend.reset)(jnp.asarray(vector))
    got, want = [float(kin.touching)], [float(nat.touching_main_object)]
    step, policy = jax.jit(backend.step), scripted_policy(task_name)
    for _ in range(200):
        action = np.clip(policy.get_action(obs.copy()), -1, 1).astype(np.float32)
        obs, *_ = nat.step(action)
        data, kin = step(data, jnp.asarray(action))
        got.append(float(kin.touching))
        want.append(float(nat.touching_main_object))
    assert got == want
    assert 0 < sum(want) < len(want)
    reach = MetaWorldEnv("reach-v3", backend="mujoco", num_threads=1).native
    assert reach.touch_ids is None and jax.eval_shape(reach.reset, jnp.zeros(6))[1].touching is None


@pytest.mark.parametrize("task_name", ["push-v3", "door-open-v3"])  # two reset passes / one (native.py)
def test_reset_draws_and_auto_reset_through_the_training_stack(task_name):
    """``reset(key)`` draws a vector in the task's reset space; the non-cached auto-reset starts
    each new episode from the state native Meta-World starts from for the vector it drew."""
    env = MetaWorldEnv(task_name, observe_goal=True, backend="mujoco", num_threads=1)
    stack = training_env(env, episode_length=3)
    actions = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (7, 4)), jnp.float32)

    @jax.jit
    def run(key):
        s = stack.reset(key)

        def body(s, a):
            s = stack.step(s, a)
            return s, (s.obs, s.done, s.info["reset_vector"], s.reward)

        return jax.lax.scan(body, s, actions)[1]

    obs, done, vecs, rew = jax.tree.map(np.asarray, run(jax.random.PRNGKey(0)))
    assert done.tolist() == [0, 0, 1, 0, 0, 1, 0]
    assert np.isfinite(obs).all() and np.isfinite(rew).all()
    low, high = np.asarray(env.task.rand_low), np.asarray(env.task.rand_high)
    assert ((vecs >= low - 1e-6) & (vecs <= high + 1e-6)).all()
    if env.task.min_obj_goal_xy is not None:
        assert np.linalg.norm(vecs[2, :2] - vecs[2, 3:5]) >= env.task.min_obj_goal_xy
    assert not np.array_equal(vecs[2], vecs[5])
    for t in (2, 5):  # the first observations of the second and third episodes
        nat = native_env(task_name, 0)
        nat._last_rand_vec = vecs[t].astype(np.float64)
        nat._freeze_rand_vec = True
        np.testing.assert_allclose(obs[t], nat.reset()[0], atol=OBS_ATOL, rtol=0)


def test_backend_choice_and_refused_options():
    env = MetaWorldEnv("reach-v3", backend="auto", num_threads=1)
    assert env.backend == ("mujoco" if jax.default_backend() == "cpu" else "mjx")
    assert env.model_edits == () or env.backend == "mjx"
    with pytest.raises(ValueError, match="backend"):
        MetaWorldEnv("reach-v3", backend="warp")
    with pytest.raises(ValueError, match="MJX options"):
        MetaWorldEnv("reach-v3", backend="mujoco", max_contact_points=16)
    with pytest.raises(ValueError, match="num_threads"):
        MetaWorldEnv("reach-v3", backend="mjx", num_threads=2)


def test_state_info_keys_match_the_mjx_backend():
    """Both backends put the same task parameters in ``state.info`` (wrappers and the multi-task
    env treat them alike)."""
    ours = MetaWorldEnv("drawer-open-v3", backend="mujoco", num_threads=1)
    mjx_env = MetaWorldEnv("drawer-open-v3")
    vec = jnp.asarray(ours.task.rand_low, jnp.float32)
    a = jax.eval_shape(ours.reset_to, vec).info
    b = jax.eval_shape(mjx_env.reset_to, vec).info
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    params = ours.task_params(jax.jit(ours.reset_to)(vec))
    # The drawer body stands at the reset vector's position (Meta-World's reset_model).
    np.testing.assert_array_equal(np.asarray(params["fixture_pos"]), np.asarray(vec))


@pytest.mark.parametrize("task_name", sorted(NATIVE_TASKS))
def test_native_task_constants_are_metaworlds(task_name):
    """The reset space, goal space and hand start written in ``native_tasks`` are the native env's."""
    from envs.metaworld.native import make_native_env

    task, env = NATIVE_TASKS[task_name], make_native_env(task_name, observe_goal=True)
    np.testing.assert_array_equal(np.float32(task.rand_low), np.float32(env._random_reset_space.low))
    np.testing.assert_array_equal(np.float32(task.rand_high), np.float32(env._random_reset_space.high))
    np.testing.assert_array_equal(np.float32(task.goal_low), np.float32(env.goal_space.low))
    np.testing.assert_array_equal(np.float32(task.goal_high), np.float32(env.goal_space.high))
    np.testing.assert_array_equal(np.float32(task.hand_init_pos), np.float32(env.hand_init_pos))


def test_native_only_tasks_are_refused_by_mjx_and_kalm_tasks_run():
    with pytest.raises(ValueError, match="backend='mujoco' only"):
        MetaWorldEnv("door-lock-v3")
    assert set(KALM_UNSEEN_TASKS) <= set(NATIVE_TASKS) | set(MT10_TASKS)
    env = MetaWorldEnv("door-lock-v3", backend="mujoco", num_threads=1)
    assert len(env.instructions) == 12 and env.instructions[0] == "Lock the door."
    from envs.metaworld.instructions import INSTRUCTIONS

    assert set(NATIVE_TASKS) <= set(INSTRUCTIONS)
