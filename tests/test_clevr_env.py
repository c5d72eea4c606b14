"""CLEVR-Robot physics: pushes, MJX vs plain-mujoco parity, the C-engine backend, jitted rollouts.

MJX compiles slowly on CPU, so this module builds each program once: a vmapped ``push`` over a
batch of (layout, action) pairs per backend, and one scanned random rollout per backend.
"""

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from mujoco import mjx

from envs.clevr_robot import scene
from envs.clevr_robot.env import (
    BALL_XY_QPOS,
    NUM_ACTIONS,
    PUSH_DIRECTIONS,
    ClevrRobot,
    push,
    push_reference,
)
from envs.clevr_robot.native import NativeData
from envs.wrappers import wrap_for_training

# The pushed ball sits in the middle; the others wait in the corners, out of reach of one push.
CENTER = (0.0, 0.12)
CORNERS = ((-0.45, -0.27), (0.45, -0.27), (-0.45, 0.5), (0.45, 0.5))
# MJX (float32) vs plain mujoco (float64) after one push (40 physics steps), metres;
# measured 6e-7 on CPU.
PARITY_ATOL = 1e-4


def fixed_layout(ball: int) -> np.ndarray:
    xy = np.zeros((5, 2))
    xy[ball] = CENTER
    others = [b for b in range(5) if b != ball]
    for b, c in zip(others, CORNERS):
        xy[b] = c
    return xy


def contact_layouts(n: int, seed: int = 0) -> list[np.ndarray]:
    """Layouts where a push makes balls collide: ball 1 right of (or diagonal to) ball 0."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        xy = np.array(CORNERS[:1] + ((0.0, 0.0),) + CORNERS[1:], float)
        xy[0] = rng.uniform([-0.2, 0.0], [-0.1, 0.2])
        xy[1] = xy[0] + [0.3, rng.uniform(-0.1, 0.1)]
        out.append(xy)
    return out


@pytest.fixture(scope="module")
def env():
    return ClevrRobot(backend="mujoco")


@pytest.fixture(scope="module")
def push_results(env):
    """Every action from its fixed layout, plus contact-rich pushes, in MJX and in mujoco."""
    layouts, actions = [], []
    for a in range(NUM_ACTIONS):
        layouts.append(fixed_layout(a // len(PUSH_DIRECTIONS)))
        actions.append(a)
    for xy in contact_layouts(8):
        layouts.append(xy)
        actions.append(0)  # push ball 0 (red) +x into ball 1 (blue)
    qpos0 = np.tile(env.mj_model.qpos0, (len(layouts), 1))
    for i, xy in enumerate(layouts):
        qpos0[i, BALL_XY_QPOS] = xy

    base = mjx.make_data(env.mjx_model)
    batch = jax.vmap(lambda q: base.replace(qpos=q))(jnp.asarray(qpos0, jnp.float32))
    run = jax.jit(jax.vmap(lambda d, a: push(env.mjx_model, d, a)))
    out = run(batch, jnp.asarray(actions, jnp.int32))
    mjx_qpos = np.asarray(out.qpos)
    native = jax.jit(jax.vmap(env.native.push))(
        NativeData(qpos=jnp.asarray(qpos0, jnp.float32), qvel=jnp.zeros((len(layouts), env.mj_model.nv), jnp.float32)),
        jnp.asarray(actions, jnp.int32))

    ref_qpos = []
    for q, a in zip(qpos0, actions):
        d = mujoco.MjData(env.mj_model)
        d.qpos[:] = q
        push_reference(env.mj_model, d, a)
        ref_qpos.append(d.qpos.copy())
    return dict(qpos0=qpos0, actions=np.array(actions), mjx=mjx_qpos, ref=np.array(ref_qpos),
                native=np.asarray(native.qpos), native_qvel=np.asarray(native.qvel))


def test_every_action_moves_its_ball_its_way(push_results):
    for a in range(NUM_ACTIONS):
        ball, k = divmod(a, len(PUSH_DIRECTIONS))
        before = push_results["qpos0"][a, BALL_XY_QPOS]
        after = push_results["mjx"][a, BALL_XY_QPOS]
        moved = after - before
        u = PUSH_DIRECTIONS[k] / np.linalg.norm(PUSH_DIRECTIONS[k])
        along = moved[ball] @ u
        across = abs(moved[ball][0] * u[1] - moved[ball][1] * u[0])
        assert 0.12 < along < 0.35, (a, along)
        assert across < 0.3 * along, (a, along, across)
        others = [b for b in range(5) if b != ball]
        assert np.abs(moved[others]).max() < 1e-3, (a, moved)
        # the balls stay on the table
        z = push_results["mjx"][a, [7 * b + 2 for b in range(5)]]
        assert np.all(z > -0.25) and np.all(z < 0.0)


def test_contact_pushes_move_the_struck_ball(push_results):
    for i in range(NUM_ACTIONS, len(push_results["actions"])):
        before = push_results["qpos0"][i, BALL_XY_QPOS]
        after = push_results["mjx"][i, BALL_XY_QPOS]
        assert after[1, 0] - before[1, 0] > 0.02  # red shoved blue to the right


def test_mjx_matches_plain_mujoco(push_results):
    """One env step (one push) in MJX matches the same step in plain mujoco, same model."""
    diff = np.abs(push_results["mjx"][:, BALL_XY_QPOS] - push_results["ref"][:, BALL_XY_QPOS])
    print(f"MJX vs mujoco after one push: max |dxy| {diff.max():.2e} m "
          f"(isolated pushes {diff[:NUM_ACTIONS].max():.2e}, ball-ball contact {diff[NUM_ACTIONS:].max():.2e})")
    assert diff.max() < PARITY_ATOL, diff.max()
    pusher = slice(scene.PUSHER_QPOS, scene.PUSHER_QPOS + 2)
    assert np.abs(push_results["mjx"][:, pusher] - push_results["ref"][:, pusher]).max() < PARITY_ATOL


def test_c_engine_backend_matches_plain_mujoco_and_mjx(push_results):
    """The ``backend="mujoco"`` push (``mujoco.rollout`` through ``pure_callback`` under
    ``vmap``) is ``push_reference`` on the same model up to the float32 state, and agrees with MJX."""
    xy = BALL_XY_QPOS
    to_ref = np.abs(push_results["native"][:, xy] - push_results["ref"][:, xy]).max()
    to_mjx = np.abs(push_results["native"][:, xy] - push_results["mjx"][:, xy]).max()
    print(f"C-engine backend after one push: max |dxy| vs mujoco {to_ref:.2e} m, vs MJX {to_mjx:.2e} m")
    assert to_ref < 1e-5, to_ref
    assert to_mjx < PARITY_ATOL, to_mjx
    assert np.isfinite(push_results["native_qvel"]).all()
    pusher = slice(scene.PUSHER_QPOS, scene.PUSHER_QPOS + 2)
    assert np.abs(push_results["native"][:, pusher] - push_results["ref"][:, pusher]).max() < 1e-5


def test_c_engine_push_depends_only_on_its_own_env(env):
    """Batch order, batch size and threads do not change a push (zero solver warm start)."""
    rng = np.random.default_rng(5)
    layouts = contact_layouts(6, seed=2)
    qpos = np.tile(env.mj_model.qpos0, (6, 1)).astype(np.float32)
    for i, xy in enumerate(layouts):
        qpos[i, BALL_XY_QPOS] = xy
    qvel = np.zeros((6, env.mj_model.nv), np.float32)
    actions = rng.integers(0, NUM_ACTIONS, 6)
    together, _ = env.native.push_host(qpos, qvel, actions)
    perm = rng.permutation(6)
    shuffled, _ = env.native.push_host(qpos[perm], qvel[perm], actions[perm])
    one_by_one = np.stack([env.native.push_host(qpos[i], qvel[i], actions[i])[0] for i in range(6)])
    single = ClevrRobot(backend="mujoco", num_threads=1).native.push_host(qpos, qvel, actions)[0]
    np.testing.assert_array_equal(shuffled, together[perm])
    np.testing.assert_array_equal(one_by_one, together)
    np.testing.assert_array_equal(single, together)


def test_backend_is_validated_and_auto_picks_the_c_engine_on_cpu():
    with pytest.raises(ValueError, match="backend='physx'"):
        ClevrRobot(backend="physx")
    assert ClevrRobot().backend == ("mujoco" if jax.default_backend() == "cpu" else "mjx")


def test_cheap_solver_is_faithful_to_the_original_settings():
    """The default Newton 6 iterations / 8 line-search steps vs the original's 20 / 50
    (plain mujoco, four pushes with collisions; 4 / 6 would drift by 1 cm here)."""
    cheap, orig = scene.build_model(), scene.build_model(20, 50)
    worst = 0.0
    for i, xy in enumerate(contact_layouts(6, seed=1) + [fixed_layout(2)]):
        finals = []
        for m in (cheap, orig):
            d = mujoco.MjData(m)
            d.qpos[BALL_XY_QPOS.reshape(-1)] = xy.reshape(-1)
            for a in (0, 4, 8 + 2, 20 + i):
                push_reference(m, d, a)
            finals.append(d.qpos[BALL_XY_QPOS].copy())
        worst = max(worst, np.abs(finals[0] - finals[1]).max())
    assert worst < 1e-3, worst


@pytest.fixture(scope="module")
def rollouts(env):
    """The same random rollout (same keys, same actions) through the training stack, per backend."""
    batch, steps = 4, 6
    out = {}
    for backend, e in (("mujoco", env), ("mjx", ClevrRobot(backend="mjx"))):
        wrapped = wrap_for_training(e, batch)

        @jax.jit
        def rollout(key):
            state = wrapped.reset(key)

            def one(state, k):
                action = jax.random.randint(k, (batch,), 0, NUM_ACTIONS, jnp.int32)
                state = wrapped.step(state, action)
                return state, (state.obs, state.reward, state.done, state.info["instruction_id"])

            return jax.lax.scan(one, state, jax.random.split(key, steps))

        out[backend] = (rollout, rollout(jax.random.key(3)))
    return batch, steps, out


@pytest.mark.parametrize("backend", ["mujoco", "mjx"])
def test_random_rollout_jits_without_nan(env, rollouts, backend):
    batch, steps, out = rollouts
    rollout, (final, (obs, reward, done, iid)) = out[backend]
    assert obs.shape == (steps, batch, 24)
    assert np.isfinite(np.asarray(obs)).all()
    assert np.isfinite(np.asarray(final.data.qpos)).all() and np.isfinite(np.asarray(final.data.qvel)).all()
    assert set(np.unique(np.asarray(reward))) <= {0.0, 1.0}
    assert np.all((np.asarray(iid) >= 0) & (np.asarray(iid) < len(env.instructions)))
    # the balls stay within the walls
    xy = np.asarray(obs)[..., :10].reshape(steps, batch, 5, 2)
    assert np.all(np.abs(xy[..., 0]) < scene.WALL_X) and np.all(xy[..., 1] > scene.WALL_Y_LOW)
    assert np.all(xy[..., 1] < scene.WALL_Y_HIGH)
    # a second call with a new key reuses the compiled program
    before = rollout._cache_size()
    rollout(jax.random.key(4))
    assert rollout._cache_size() == before


def test_backends_give_the_same_trajectories(rollouts):
    """Six random pushes of four envs through the training stack (auto-reset included): the
    C-engine backend and MJX see the same observations, rewards and episode ends."""
    _, _, out = rollouts
    (_, (_, (obs_c, rew_c, done_c, iid_c))), (_, (_, (obs_m, rew_m, done_m, iid_m))) = out["mujoco"], out["mjx"]
    diff = np.abs(np.asarray(obs_c) - np.asarray(obs_m)).max()
    print(f"C engine vs MJX over 6 pushes x 4 envs: max |d obs| {diff:.2e}")
    assert diff < 1e-3, diff
    np.testing.assert_array_equal(np.asarray(rew_c), np.asarray(rew_m))
    np.testing.assert_array_equal(np.asarray(done_c), np.asarray(done_m))
    np.testing.assert_array_equal(np.asarray(iid_c), np.asarray(iid_m))


@pytest.mark.parametrize("cached", [False, True])
def test_auto_reset_starts_a_consistent_new_episode(cached):
    """Inside training rollouts (3-step episode limit, so episodes end all the time): after every
    step the observation's balls are the physics state's, and the goal in the observation, the
    goal id, the instruction id and the goal in ``info`` all belong to the same episode -- with a
    full reset each step and with the cached reset refreshed every few steps (the prior is
    conditioned on the instruction id)."""
    from envs.clevr_robot.env import decode_obs
    from envs.clevr_robot.instructions import GOALS

    env = ClevrRobot(templates=2, backend="mujoco")
    batch = 16
    w = wrap_for_training(env, batch, episode_length=3, cached_reset=cached)
    step = jax.jit(w.step)
    refresh = jax.jit(jax.vmap(w.env.refresh))
    state = w.reset(jax.random.key(0))
    rng = np.random.default_rng(0)
    ends = 0
    for t in range(9):
        if cached and t % 4 == 0:
            state = refresh(state, jax.random.split(jax.random.key(100 + t), batch))
        state = step(state, jnp.asarray(rng.integers(0, NUM_ACTIONS, batch), jnp.int32))
        ends += int(np.asarray(state.done).sum())
        ball_xy, goal = jax.vmap(decode_obs)(state.obs)
        np.testing.assert_array_equal(np.asarray(ball_xy), np.asarray(env.ball_xy(state)))
        np.testing.assert_array_equal(np.asarray(goal), np.asarray(state.info["goal"]))
        gid = np.asarray(state.info["goal_id"])
        np.testing.assert_array_equal(np.asarray(goal), GOALS[gid])
        iid = np.asarray(state.info["instruction_id"])
        np.testing.assert_array_equal(iid // len(env.templates), gid)
        np.testing.assert_array_equal(np.asarray(env.templates)[iid % len(env.templates)],
                                      np.asarray(state.info["template_id"]))
    assert ends >= batch * 2  # every env went through at least two resets
