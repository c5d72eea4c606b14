"""The MJX Meta-World env: reward helpers against metaworld's own, API, and jitted rollouts.

Default set: reward_utils and the scipy quaternion against the originals on random inputs,
task registry errors, the model edits, the opt-in contact cap (model only, no compile), and one
jitted reset + 60-step rollout of reach-v3 through the full training wrapper stack (one compile).
Every task's own jitted random rollout is in ``test_metaworld_{object,fixture}_tasks_jit.py``
(one compile per task).
"""

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from envs.metaworld import MT10_TASKS, TASKS, MetaWorldEnv, get_task, model_edits
from envs.metaworld import reward_utils as ru

mw_ru = pytest.importorskip("metaworld.utils.reward_utils")

SIGMOIDS = ["gaussian", "hyperbolic", "long_tail", "reciprocal", "cosine", "linear", "quadratic", "tanh_squared"]


@pytest.mark.parametrize("sigmoid", SIGMOIDS)
def test_tolerance_matches_metaworld(sigmoid):
    rng = np.random.default_rng(0)
    xs = rng.uniform(-1.0, 2.0, 300)
    margins = np.concatenate([[0.0], rng.uniform(0.01, 1.0, 299)])
    bounds = (0.1, 0.4)
    ours = jax.jit(jax.vmap(lambda x, m: ru.tolerance(x, bounds=bounds, margin=m, sigmoid=sigmoid)))(xs, margins)
    ref = np.array([mw_ru.tolerance(x, bounds=bounds, margin=m, sigmoid=sigmoid) for x, m in zip(xs, margins)])
    np.testing.assert_allclose(np.asarray(ours), ref, rtol=1e-5, atol=1e-6)


def test_hamacher_product_matches_metaworld():
    rng = np.random.default_rng(1)
    a, b = rng.uniform(0, 1, 200), rng.uniform(0, 1, 200)
    a[:5] = 0.0
    b[:3] = 0.0
    ours = jax.vmap(ru.hamacher_product)(a, b)
    ref = np.array([mw_ru.hamacher_product(x, y) for x, y in zip(a, b)])
    np.testing.assert_allclose(np.asarray(ours), ref, rtol=1e-5, atol=1e-7)


def test_gripper_caging_reward_matches_metaworld():
    """Our pure caging reward vs SawyerXYZEnv._gripper_caging_reward on a native env's states."""
    metaworld = pytest.importorskip("metaworld")
    mt1 = metaworld.MT1("push-v3", seed=0)
    env = mt1.train_classes["push-v3"]()
    env.set_task(mt1.train_tasks[0])
    env.reset()
    rng = np.random.default_rng(2)
    for _ in range(15):
        a = rng.uniform(-1, 1, 4).astype(np.float32)
        env.step(a)
        obj = env._get_pos_objects().copy() + rng.normal(0, 0.02, 3)
        for kw in (dict(high_density=True), dict(medium_density=True), {}):
            ref = env._gripper_caging_reward(a, obj, obj_radius=0.015, pad_success_thresh=0.05,
                                             object_reach_radius=0.01, xz_thresh=0.005, **kw)
            ours = ru.gripper_caging_reward(
                jnp.asarray(a), jnp.asarray(obj), 0.015, 0.05, 0.01, 0.005,
                left_pad=jnp.asarray(env.get_body_com("leftpad")), right_pad=jnp.asarray(env.get_body_com("rightpad")),
                tcp=jnp.asarray(env.tcp_center), obj_init_pos=jnp.asarray(env.obj_init_pos),
                init_tcp=jnp.asarray(env.init_tcp), **kw,
            )
            np.testing.assert_allclose(float(ours), ref, rtol=1e-4, atol=1e-6)


def test_quaternion_matches_scipy():
    from scipy.spatial.transform import Rotation

    rots = Rotation.random(200, random_state=3)
    mats = rots.as_matrix()
    # Include near-identity and 180-degree rotations (every branch of the formula).
    mats = np.concatenate([mats, np.eye(3)[None], np.diag([1.0, -1.0, -1.0])[None], np.diag([-1.0, 1.0, -1.0])[None]])
    ours = jax.vmap(ru.quat_from_matrix_scipy)(jnp.asarray(mats, jnp.float32))
    ref = Rotation.from_matrix(mats).as_quat()
    np.testing.assert_allclose(np.asarray(ours), ref, atol=2e-5)


def test_unknown_task_lists_valid_names():
    with pytest.raises(ValueError, match="reach-v3"):
        get_task("reach-v2")
    with pytest.raises(ValueError, match="valid tasks"):
        MetaWorldEnv("not-a-task")


def test_registry_is_mt10_and_edits_listed():
    assert set(TASKS) == set(MT10_TASKS)
    for name in TASKS:
        edits = model_edits(name)
        assert any("Newton" in e for e in edits) and any("plane" in e for e in edits)


def test_contact_cap_is_opt_in_and_caps_each_condim_group():
    from mujoco import mjx
    from mujoco.mjx._src import collision_driver

    task = "drawer-open-v3"
    default = MetaWorldEnv(task)
    capped = MetaWorldEnv(task, max_contact_points=16)
    # Default: no cap, the numeric is absent and every candidate contact has a slot.
    assert default.max_contact_points is None
    assert not any("max_contact_points" in e for e in default.model_edits)
    dims = collision_driver.make_condim(default.mj_model)
    counts = {int(c): int((dims == c).sum()) for c in np.unique(dims)}
    assert sum(counts.values()) == mjx.make_data(default.mj_model).ncon and max(counts.values()) > 16
    # Capped: MJX reads the numeric; each condim group holds at most 16 contacts.
    assert any("max_contact_points = 16" in e for e in capped.model_edits)
    cdims = collision_driver.make_condim(capped.mj_model)
    assert {int(c): int((cdims == c).sum()) for c in np.unique(cdims)} == {c: min(n, 16) for c, n in counts.items()}
    assert mjx.make_data(capped.mj_model).ncon == sum(min(n, 16) for n in counts.values())
    # Same model otherwise (geoms, collision bits, solver).
    np.testing.assert_array_equal(capped.mj_model.geom_contype, default.mj_model.geom_contype)
    assert capped.mj_model.opt.ls_iterations == default.mj_model.opt.ls_iterations
    for bad in (0, -3, 2.5, True, "16"):
        with pytest.raises(ValueError, match="max_contact_points"):
            MetaWorldEnv(task, max_contact_points=bad)
    # MT10Env passes it to every task env.
    from envs.metaworld import MT10Env

    inner = MT10Env((task,), max_contact_points=16).envs[task]
    while not isinstance(inner, MetaWorldEnv):
        inner = inner.env
    assert inner.max_contact_points == 16 and inner.mj_model is capped.mj_model


@pytest.fixture(scope="module")
def reach_training_rollout():
    from envs.wrappers import wrap_for_training

    env = MetaWorldEnv("reach-v3")
    # Short episodes so auto-reset happens inside the rollout.
    venv = wrap_for_training(env, num_envs=4, episode_length=25)

    @jax.jit
    def rollout(key):
        state = venv.reset(key)

        def body(s, k):
            a = jax.random.uniform(k, (4, 4), minval=-1.0, maxval=1.0)
            s = venv.step(s, a)
            return s, (s.obs, s.reward, s.done, s.success, s.info["instruction_id"], s.metrics["episode_done"])

        return state, jax.lax.scan(body, state, jax.random.split(key, 60))

    state0, (final, out) = rollout(jax.random.PRNGKey(0))
    return env, state0, final, jax.tree.map(np.asarray, out)


def test_reach_rollout_shapes_finite_and_autoreset(reach_training_rollout):
    """reach-v3 through the training wrappers (auto-reset inside the rollout). In the default set in
    place of reach's program in metaworld_task_rollouts.py: reach's parity with native (reset and
    100 steps) is test_metaworld_parity's."""
    env, state0, final, (obs, rew, done, succ, iid, ep_done) = reach_training_rollout
    assert obs.shape == (60, 4, 39) and rew.shape == (60, 4)
    assert np.isfinite(obs).all() and np.isfinite(rew).all()
    assert (rew >= 0).all() and (rew <= 10).all()
    # Partially observable by default: the goal slot is zero.
    assert np.all(obs[..., 36:] == 0)
    # Episodes of 25 steps: done at steps 25 and 50 for every env.
    np.testing.assert_array_equal(done[:, 0], (np.arange(1, 61) % 25 == 0).astype(np.float32))
    assert ep_done.sum() == 2 * 4
    assert iid.dtype == np.int32 and ((iid >= 0) & (iid < len(env.instructions))).all()
    # Different resets across the batch: Meta-World's random goal per instance.
    goals = np.asarray(env.task_params(state0)["target_pos"])
    assert np.unique(goals[:, 0]).size == 4
    lo, hi = np.array(get_task("reach-v3").goal_low), np.array(get_task("reach-v3").goal_high)
    assert ((goals >= lo - 1e-6) & (goals <= hi + 1e-6)).all()


def test_reset_vector_respects_rejection_rule():
    env = MetaWorldEnv("push-v3")
    vecs = np.asarray(jax.jit(jax.vmap(env.sample_reset_vector))(jax.random.split(jax.random.PRNGKey(0), 512)))
    task = get_task("push-v3")
    assert (vecs >= np.array(task.rand_low) - 1e-6).all() and (vecs <= np.array(task.rand_high) + 1e-6).all()
    assert (np.linalg.norm(vecs[:, :2] - vecs[:, 3:5], axis=1) >= 0.15).all()


@pytest.mark.slow
def test_mt10_env_batches_tasks_with_one_hot():
    from envs.metaworld import MT10Env

    names = ("reach-v3", "drawer-close-v3")
    env = MT10Env(names, envs_per_task=2, task_one_hot=True, episode_length=10)
    assert env.observation_size == 41 and env.num_envs == 4

    @jax.jit
    def rollout(key):
        s = env.reset(key)

        def body(s, k):
            s = env.step(s, jax.random.uniform(k, (4, 4), minval=-1.0, maxval=1.0))
            return s, (s.obs, s.reward, s.done, s.info["task_id"], s.info["instruction_id"])

        return jax.lax.scan(body, s, jax.random.split(key, 12))[1]

    obs, rew, done, tid, iid = jax.tree.map(np.asarray, rollout(jax.random.PRNGKey(0)))
    assert obs.shape == (12, 4, 41) and np.isfinite(obs).all() and np.isfinite(rew).all()
    np.testing.assert_array_equal(tid[0], [0, 0, 1, 1])
    np.testing.assert_array_equal(obs[..., 39:], np.eye(2)[tid])
    np.testing.assert_array_equal(done[9], 1.0)
    texts = [env.instructions[i] for i in iid[0]]
    assert texts[0] in MetaWorldEnv("reach-v3").instructions
    assert texts[3] in MetaWorldEnv("drawer-close-v3").instructions


def test_hand_box_collides_with_fixtures_only():
    """Window, drawer and door keep the hand's gripper-base mesh as a fitted box that touches the
    task's fixtures (handles) and nothing else; object tasks leave it without collisions."""
    import mujoco

    from envs.metaworld.model import FIXTURE, HAND, build_mj_model

    def hand_geoms(m):
        body = m.body("right_hand").id
        return [g for g in range(m.ngeom) if m.geom_bodyid[g] == body and (m.geom_contype[g] or m.geom_conaffinity[g])]

    for name in ("window-open-v3", "drawer-open-v3", "door-open-v3"):
        task = get_task(name)
        m = build_mj_model(task.xml, task.colliders)
        (g,) = hand_geoms(m)
        assert m.geom_type[g] == mujoco.mjtGeom.mjGEOM_BOX
        assert m.geom_contype[g] == HAND and m.geom_conaffinity[g] == 0
        # Fitted to the mesh's bounding box: a few centimetres on each side, not zero, not huge.
        assert np.all(m.geom_size[g] > 0.02) and np.all(m.geom_size[g] < 0.06), m.geom_size[g]
        partners = [h for h in range(m.ngeom) if h != g and (m.geom_conaffinity[h] & HAND)]
        assert partners and all(m.geom_contype[h] == FIXTURE for h in partners)
        assert any("right_hand" in e for e in model_edits(name))
    task = get_task("reach-v3")
    assert hand_geoms(build_mj_model(task.xml, task.colliders)) == []


# Fraction of native expert contact-steps whose geom pair the MJX model keeps (measured with
# benchmarks/metaworld_contacts.py, 10 episodes): 100% except door-open (92%: door panel vs lock,
# one handle cylinder vs a claw) and button-press-topdown (80%: button vs its box walls).
_MIN_KEPT_CONTACTS = {"door-open-v3": 0.85, "button-press-topdown-v3": 0.7}


@pytest.mark.parametrize("name", MT10_TASKS)
def test_mjx_model_keeps_the_contacts_experts_make(name):
    import importlib

    contacts = importlib.import_module("benchmarks.metaworld_contacts")
    count, kept, frac = contacts.census(name, episodes=3)
    assert frac >= _MIN_KEPT_CONTACTS.get(name, 0.99), {p: (v, kept[p]) for p, v in count.most_common(8)}


def _collides(m, a, b):
    return bool((m.geom_contype[a] & m.geom_conaffinity[b]) or (m.geom_contype[b] & m.geom_conaffinity[a]))


def test_stops_collide_with_the_parts_they_stop():
    """Button, drawer, window and peg: each stop geom collides with the moving geoms it stops (and
    the gripper where the spec says so) and with nothing else; every other task has no stop."""
    from envs.metaworld.model import GRIPPER_GEOMS, STOP, STOPPED, build_mj_model, native_mj_model

    expected = {  # task: (stop geoms, geoms they stop, gripper too)
        "button-press-topdown-v3": ({"buttonbox:0"}, {"button:2"}, True),
        "drawer-close-v3": ({"drawercase_link:2"}, {"drawer_link:1"}, False),
        "window-close-v3": ({"window/0:0", "window/0:2"}, {"windowb_a:5", "windowb_a:6"}, False),
        "peg-insert-side-v3": ({"box/0:0", "box/0:4"}, set(), True),
    }
    for name in MT10_TASKS:
        task = get_task(name)
        m = build_mj_model(task.xml, task.colliders)
        stops = [g for g in range(m.ngeom) if m.geom_contype[g] & STOP]
        key = name.replace("-open-", "-close-")  # drawer-open and window-open share the close tasks' colliders
        if key not in expected:
            assert stops == [], name
            continue
        want_stops, want_stopped, gripper = expected[key]
        native = native_mj_model(task.xml)

        def label(g):  # "<body>:<index among the body's natively colliding geoms>"
            body = m.geom_bodyid[g]
            colliding = [h for h in range(native.ngeom) if native.geom_bodyid[h] == body
                         and (native.geom_contype[h] or native.geom_conaffinity[h])]
            return f"{m.body(body).name}:{colliding.index(g)}"

        assert {label(g) for g in stops} == want_stops, name
        own = {h for h in range(m.ngeom) if m.geom_contype[h] & STOPPED}
        assert {label(g) for g in own} == want_stopped, name
        grippers = {m.geom(n).id for n in GRIPPER_GEOMS}
        for s in stops:
            partners = {h for h in range(m.ngeom) if h != s and _collides(m, s, h)}
            if m.geom_contype[s] == STOP:  # a stop only (peg's wall above the hole also meets the peg)
                assert partners - own - grippers == set(), (name, label(s))
            assert own <= partners and (grippers <= partners) == gripper, (name, label(s))
