"""Meta-World on MuJoCo's C engine with the unedited model, callable from jitted JAX code.

``MetaWorldEnv(task, backend="mujoco")`` steps the model that the installed ``metaworld``
package builds (its own XML, no collision edits) with MuJoCo's C engine through
``jax.pure_callback``, so a training update stays one jitted program and ``vmap``/``scan`` over
the env work as with MJX. The split of the work:

* **Physics, host side, the same calls as Meta-World.** Each env step loads the env's state into
  an ``MjData`` and runs what ``SawyerXYZEnv.step`` runs: the mocap move of ``set_xyz_action``
  (the same NumPy arithmetic on the float32 action), ``ctrl = [a3, -a3]``,
  ``mj_step(nstep=frame_skip)`` and ``mj_forward``. (``mj_rnePostConstraint`` is left out: it
  writes only ``cacc``/``cfrc_*``, which nothing here reads.)
* **State carried exactly.** The float64 state is ``mjSTATE_FULLPHYSICS`` (time, qpos, qvel,
  act) plus the mocap pose and ``qacc_warmstart``, kept bit for bit as ``uint32`` pairs in
  :class:`NativeData` (JAX runs in float32), so a trajectory is the one native Meta-World
  computes, step for step. Resets move fixture bodies and goal sites in the *model*; the env's
  ``body_pos``/``site_pos`` are carried the same way and written into the model before each step.
* **Reset, host side, with Meta-World's own code.** ``reset_to(vector)`` runs the task's own
  ``reset_model`` on a host ``metaworld`` env with the reset vector frozen. Its 50 hand-settling
  frames start from ``mj_resetData``; where they do not depend on where the vector puts the
  fixtures (checked at construction: :meth:`NativeMetaWorld._check_settling`), they run once
  and each reset restores the settled state, else every reset settles for real (about 3 ms).
  The task parameters (``_target_pos``, ``obj_init_pos``, ``init_tcp``, ...) are read from
  that env; the first observation is computed in JAX from the kinematics the reset leaves, as
  after a step (not clipped: Meta-World's reset does not clip it).
* **Observation, reward and success in JAX.** The host returns the float32 kinematics
  (``xpos``, ``xquat``, site and geom poses, ``qpos``) of the C-engine state after the step,
  and, for a task whose success reads the gripper's contact with an object (``touch_geom``),
  Meta-World's ``touching_object`` test on that state (:func:`touching_object`);
  the observation, the v2 reward and success are the task's jnp functions of
  :mod:`envs.metaworld.tasks` (the MJX port's, unchanged) on them. They are batched, so they
  cost little next to the physics; they equal Meta-World's float64 values to float32 rounding
  (``tests/test_metaworld_native.py`` measures the gaps over full scripted episodes).

One lock per backend: one batch at a time runs through its host envs.
"""

from __future__ import annotations

import os
import pickle
import threading
from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from flax import struct

# The host state: what ``mj_step`` reads from ``MjData`` between Meta-World steps.
STATE_SPEC = (mujoco.mjtState.mjSTATE_FULLPHYSICS | mujoco.mjtState.mjSTATE_WARMSTART
              | mujoco.mjtState.mjSTATE_MOCAP_POS | mujoco.mjtState.mjSTATE_MOCAP_QUAT)
# Meta-World's mocap quaternion, as ``set_xyz_action`` writes it (not normalised).
MOCAP_QUAT = np.array([1.0, 0.0, 1.0, 0.0])
# What a reset restores of the settled hand: the state and the inputs mj_step reads.
RESTORE_SPEC = mujoco.mjtState.mjSTATE_INTEGRATION
HAND_SETTLE_FRAMES = 50  # SawyerXYZEnv._reset_hand's default
# Largest difference between a reset from the restored settled hand and one with the full settling
# (state and model positions) for the restore to be used; far below float32 resolution.
SETTLE_ATOL = 1e-9
# Task parameters of :mod:`envs.metaworld.tasks` and the native env attribute holding each.
PARAM_ATTRS = {
    "target_pos": "_target_pos",
    "obj_init_pos": "obj_init_pos",
    "init_tcp": "init_tcp",
    "hand_init_pos": "hand_init_pos",
    "peg_head_pos_init": "peg_head_pos_init",
    "handle_pos_init": "window_handle_pos_init",
    "obj_to_target_init": "_obj_to_target_init",
    "stick_init_pos": "stick_init_pos",
}


def _to_bits(x: np.ndarray) -> np.ndarray:
    """float64 ``[..., n]`` -> its bits as uint32 ``[..., 2n]``."""
    return np.ascontiguousarray(x, np.float64).view(np.uint32)


def _from_bits(b: np.ndarray) -> np.ndarray:
    """uint32 ``[..., 2n]`` -> float64 ``[..., n]``."""
    return np.ascontiguousarray(b, np.uint32).view(np.float64)


@struct.dataclass
class NativeData:
    """The physics state the C-engine backend carries (leading batch axes under ``vmap``).

    Attributes:
      physics: ``uint32 [2 * nstate]``, the float64 bits of ``mj_getState(STATE_SPEC)``.
      model_pos: ``uint32 [2 * 3 * (nbody + nsite)]``, the float64 bits of the episode's
        ``body_pos`` and ``site_pos`` (a reset moves fixtures and goal sites in the model).
      qpos, qvel, mocap_pos, mocap_quat: float32 copies of the state, for reading only
        (``[nq]``, ``[nv]``, ``[1, 3]``, ``[1, 4]``; rendering reads them as from ``mjx.Data``).
    """

    physics: jax.Array
    model_pos: jax.Array
    qpos: jax.Array
    qvel: jax.Array
    mocap_pos: jax.Array
    mocap_quat: jax.Array


@struct.dataclass
class Kinematics:
    """Float32 kinematics of the state after a step, named as ``mjx.Data`` names them (the
    observation and reward functions read either)."""

    xpos: jax.Array
    xquat: jax.Array
    site_xpos: jax.Array
    site_xmat: jax.Array
    geom_xpos: jax.Array
    geom_xmat: jax.Array
    qpos: jax.Array
    mocap_pos: jax.Array
    mocap_quat: jax.Array
    # 1.0 where both gripper pads push on the touch geom (:func:`touching_object`), else 0.0;
    # None for a backend built without a touch geom.
    touching: jax.Array | None = None


def touching_object(data: mujoco.MjData, geom_id: int, left_pad_id: int, right_pad_id: int) -> bool:
    """``SawyerXYZEnv.touching_object(geom_id)`` on ``data``: for each pad geom, the sum of
    ``efc_force[efc_address]`` over the contacts between it and ``geom_id`` (in contact order, with
    the same ``sum``), and True when both sums are positive."""
    con = data.contact
    g1, g2, adr = con.geom1, con.geom2, con.efc_address
    on_obj = (g1 == geom_id) | (g2 == geom_id)
    force = data.efc_force
    left = sum(force[a] for a in adr[on_obj & ((g1 == left_pad_id) | (g2 == left_pad_id))])
    right = sum(force[a] for a in adr[on_obj & ((g1 == right_pad_id) | (g2 == right_pad_id))])
    return bool(0 < left and 0 < right)


def make_native_env(task_name: str, observe_goal: bool):
    """A ``metaworld`` v3 env of ``task_name`` with its task set (the goal observed or not), as
    ``metaworld.MT1`` would set it; its reset vector is frozen (set before each reset)."""
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS
    from metaworld.types import Task

    if task_name not in ALL_V3_ENVIRONMENTS:
        raise KeyError(f"{task_name!r} is not a metaworld v3 env; known: {sorted(ALL_V3_ENVIRONMENTS)}")
    cls = ALL_V3_ENVIRONMENTS[task_name]
    env = cls()
    space = env._random_reset_space
    data = dict(env_cls=cls, rand_vec=(space.low + space.high) / 2.0, partially_observable=not observe_goal)
    env.set_task(Task(env_name=task_name, data=pickle.dumps(data)))
    return env


class _Worker:
    """One host ``metaworld`` env (its own ``MjModel``/``MjData``) and the settled ``MjData``."""

    def __init__(self, task_name: str, observe_goal: bool):
        env = make_native_env(task_name, observe_goal)
        self.env, self.model, self.data = env, env.model, env.data
        # Meta-World's reset: mj_resetData, then the hand settling of _reset_hand (50 frames of
        # frame_skip physics steps). Kept: the data after it, and the joint positions before its
        # last physics step, where the kinematics that mj_step leaves behind were computed.
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        env._reset_hand(steps=HAND_SETTLE_FRAMES - 1)
        mocap_id = m.body_mocapid[d.body("mocap").id]
        d.mocap_pos[mocap_id][:] = env.hand_init_pos
        d.mocap_quat[mocap_id][:] = MOCAP_QUAT
        d.ctrl[:] = [-1, 1]
        mujoco.mj_step(m, d, nstep=env.frame_skip - 1)
        self.settled_qpos_before = d.qpos.copy()
        mujoco.mj_step(m, d)
        self.settled = np.zeros(mujoco.mj_stateSize(m, RESTORE_SPEC))
        mujoco.mj_getState(m, d, self.settled, RESTORE_SPEC)
        self._in_reset = self._restored = False
        native_do_simulation = env.do_simulation

        def do_simulation(ctrl, n_frames):
            # Inside reset_model only _reset_hand steps the physics: its result is the settled
            # state, and the kinematics its last physics step computed (under this episode's
            # model), which is what reset_model reads of positions until its next mj_forward.
            if not self._in_reset:
                return native_do_simulation(ctrl, n_frames)
            if not self._restored:
                mujoco.mj_setState(m, d, self.settled, RESTORE_SPEC)
                qpos = d.qpos.copy()
                d.qpos[:] = self.settled_qpos_before
                mujoco.mj_kinematics(m, d)
                d.qpos[:] = qpos
                self._restored = True
            return None

        env.do_simulation = do_simulation
        # With the settling restored, one pass of _reset_hand's loop does all it did (the task's
        # own _reset_hand override still runs).
        self._short_reset_hand = lambda steps=HAND_SETTLE_FRAMES: type(env)._reset_hand(env, steps=1)
        self.restore_settled = True
        self.reset_passes = 2
        # The reset observation is computed in JAX from the kinematics the reset leaves
        # (reset_model ends with ``return self._get_obs()``).
        env._get_obs = lambda: None
        self.state = np.zeros(mujoco.mj_stateSize(m, STATE_SPEC))

    def set_model_pos(self, pos: np.ndarray) -> None:
        nb = self.model.nbody * 3
        self.model.body_pos[:] = pos[:nb].reshape(-1, 3)
        self.model.site_pos[:] = pos[nb:].reshape(-1, 3)

    def model_pos(self) -> np.ndarray:
        return np.concatenate([self.model.body_pos.ravel(), self.model.site_pos.ravel()])

    def reset(self, vector: np.ndarray):
        """``SawyerXYZEnv.reset`` with this reset vector (the settling restored, not rerun, when
        ``restore_settled``); the observation is left to the caller (the kinematics in ``self.data``).

        As Meta-World does, ``reset_model`` runs twice (``reset_passes``): the first pass moves the
        fixtures in the model, the second (after ``mj_resetData``) starts the episode with them in
        place. Where one pass gives the same state from any model, one is run.
        """
        env, m, d = self.env, self.model, self.data
        env._last_rand_vec = np.asarray(vector, np.float64)
        env._freeze_rand_vec = True
        env.curr_path_length = 0
        if self.restore_settled:
            env._reset_hand = self._short_reset_hand
        elif "_reset_hand" in vars(env):
            del env._reset_hand
        for _ in range(self.reset_passes):
            mujoco.mj_resetData(m, d)
            self._in_reset, self._restored = self.restore_settled, False
            try:
                env.reset_model()
            finally:
                self._in_reset = False
            if self.restore_settled and not self._restored:
                raise RuntimeError(f"{type(env).__name__}.reset_model did not settle the hand")

    def step(self, state, model_pos, mocap_pos, a3):
        m, d = self.model, self.data
        self.set_model_pos(model_pos)
        mujoco.mj_setState(m, d, state, STATE_SPEC)
        d.mocap_pos[0] = mocap_pos
        d.mocap_quat[0] = MOCAP_QUAT
        d.ctrl[0], d.ctrl[1] = a3, -a3
        mujoco.mj_step(m, d, nstep=self.env.frame_skip)
        mujoco.mj_forward(m, d)


class NativeMetaWorld:
    """Host side of the C-engine backend for one task, and its JAX entry points.

    Args:
      task_name: a metaworld v3 env name.
      observe_goal: the goal in the reset observation (as ``MetaWorldEnv``'s ``observe_goal``).
      num_threads: host threads stepping a batch (default: the CPU count); each has its own
        ``metaworld`` env.
      fixture_body: the body a reset moves, reported as the ``fixture_pos`` parameter (zeros
        when None).
      min_obj_goal_xy: the task's rule on reset vectors (``||v[:2] - v[3:5]||`` at least this);
        Meta-World's reset loops forever on a frozen vector that breaks it, so such a vector is
        refused.
      touch_geom: a geom whose contact with both gripper pads the reward reads: after each step and
        reset, :func:`touching_object` on it is returned as ``Kinematics.touching`` (None: not
        computed, and ``touching`` is None).
    """

    def __init__(self, task_name: str, observe_goal: bool, num_threads: int | None = None,
                 fixture_body: str | None = None, min_obj_goal_xy: float | None = None,
                 touch_geom: str | None = None):
        n = int(num_threads) if num_threads else (os.cpu_count() or 1)
        if n < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        self.task_name = task_name
        self.num_threads = n
        self.workers = [_Worker(task_name, observe_goal) for _ in range(n)]
        self._pool = ThreadPoolExecutor(n) if n > 1 else None
        self._lock = threading.Lock()
        w = self.workers[0]
        self.model: mujoco.MjModel = w.model
        if self.model.nmocap != 1 or self.model.nu != 2:
            raise ValueError(f"{task_name}: expected Meta-World's one mocap body and two gripper actuators, "
                             f"got nmocap={self.model.nmocap}, nu={self.model.nu}")
        env = w.env
        self.frame_skip = int(env.frame_skip)
        self.action_scale = env.action_scale
        self.mocap_low = np.asarray(env.mocap_low)
        self.mocap_high = np.asarray(env.mocap_high)
        self.nstate = int(w.state.shape[0])
        self.npos = 3 * (self.model.nbody + self.model.nsite)
        # Where mocap_pos starts in the state vector (its elements come in mjtState bit order).
        before_mocap = int(STATE_SPEC) & (int(mujoco.mjtState.mjSTATE_MOCAP_POS) - 1)
        self.mocap_offset = mujoco.mj_stateSize(self.model, before_mocap)
        self.min_obj_goal_xy = min_obj_goal_xy
        self.touch_ids = None if touch_geom is None else tuple(
            int(self.model.geom(n).id) for n in (touch_geom, "leftpad_geom", "rightpad_geom"))
        self._check_settling()
        # Which task parameters the native env holds: read them once after a reset.
        w.reset(w.env._last_rand_vec)
        self.param_names = tuple(k for k, attr in PARAM_ATTRS.items() if getattr(env, attr, None) is not None)
        self.param_names += ("fixture_pos",)
        self.fixture_id = None if fixture_body is None else int(self.model.body(fixture_body).id)

    # ------------------------------------------------------------------ host

    def _vectors(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` reset vectors drawn in the task's reset space (with its rule), float32-exact."""
        space = self.workers[0].env._random_reset_space
        rng = np.random.default_rng(seed)
        out = []
        while len(out) < n:
            v = rng.uniform(space.low, space.high).astype(np.float32).astype(np.float64)
            if self.min_obj_goal_xy is None or np.linalg.norm(v[:2] - v[3:5]) >= self.min_obj_goal_xy:
                out.append(v)
        return np.stack(out)

    def _check_settling(self, n: int = 4) -> None:
        """Restoring one settled hand is exact only where the settling does not depend on where the
        reset puts the fixtures (it runs with them in place, natively). Compared here on ``n``
        vectors with the full settling: where the reset states differ by more than
        ``SETTLE_ATOL`` anywhere, every reset settles for real (door-lock: its lock meets the arm).
        Then whether one ``reset_model`` pass gives the state two give (see :meth:`_Worker.reset`).
        Measured: drawer-close's restored reset differs by 8e-14 in the solver warm start and
        4e-16 in qvel; door-lock's by up to 3.4 (so it settles for real)."""
        w = self.workers[0]
        d = w.data

        def state():  # everything a reset hands on: state, model, kinematics, task parameters
            params = [np.ravel(getattr(w.env, a)) for a in PARAM_ATTRS.values() if getattr(w.env, a, None) is not None]
            return np.concatenate([self._state_of(w), w.model_pos(), d.xpos.ravel(), d.xquat.ravel(),
                                   d.site_xpos.ravel(), d.site_xmat.ravel(), d.geom_xpos.ravel(), d.geom_xmat.ravel(),
                                   *params])

        for v in self._vectors(n):
            w.restore_settled = True
            w.reset(v)
            fast = state()
            w.restore_settled = False
            w.reset(v)
            if not np.abs(fast - state()).max() <= SETTLE_ATOL:
                w.restore_settled = False
                break
        else:
            w.restore_settled = True
        restore = w.restore_settled
        # One reset_model pass instead of Meta-World's two: the same state, bit for bit, when the
        # model starts from another episode's fixtures?
        vectors = self._vectors(n + 1, seed=1)
        one_pass = True
        for prev, v in zip(vectors[:-1], vectors[1:]):
            results = []
            for passes in (2, 1):
                w.reset_passes = 2
                w.reset(prev)
                w.reset_passes = passes
                w.reset(v)
                results.append(state())
            if not np.array_equal(*results):
                one_pass = False
                break
        for x in self.workers:
            x.restore_settled = restore
            x.reset_passes = 1 if one_pass else 2

    def _state_of(self, w: "_Worker") -> np.ndarray:
        out = np.zeros(self.nstate)
        mujoco.mj_getState(w.model, w.data, out, STATE_SPEC)
        return out

    def _param_shape(self, name: str) -> tuple[int, ...]:
        if name == "fixture_pos":
            return (3,)
        return tuple(np.shape(getattr(self.workers[0].env, PARAM_ATTRS[name])))

    def _chunks(self, b: int):
        k = min(self.num_threads, max(b, 1))
        edges = np.linspace(0, b, k + 1).astype(int)
        return [(i, edges[i], edges[i + 1]) for i in range(k) if edges[i + 1] > edges[i]]

    def _map(self, fn, b: int):
        chunks = self._chunks(b)
        with self._lock:
            if self._pool is None or len(chunks) == 1:
                for c in chunks:
                    fn(*c)
            else:
                list(self._pool.map(lambda c: fn(*c), chunks))

    def _kinematics_buffers(self, b: int) -> dict[str, np.ndarray]:
        m = self.model
        return dict(
            xpos=np.zeros((b, m.nbody, 3), np.float32), xquat=np.zeros((b, m.nbody, 4), np.float32),
            site_xpos=np.zeros((b, m.nsite, 3), np.float32), site_xmat=np.zeros((b, m.nsite, 9), np.float32),
            geom_xpos=np.zeros((b, m.ngeom, 3), np.float32), geom_xmat=np.zeros((b, m.ngeom, 9), np.float32),
            qpos=np.zeros((b, m.nq), np.float32), mocap_pos=np.zeros((b, 1, 3), np.float32),
            mocap_quat=np.zeros((b, 1, 4), np.float32),
            **({} if self.touch_ids is None else dict(touching=np.zeros((b,), np.float32))),
        )

    def _read_kinematics(self, out: dict[str, np.ndarray], i: int, d: mujoco.MjData) -> None:
        out["xpos"][i], out["xquat"][i] = d.xpos, d.xquat
        out["site_xpos"][i], out["site_xmat"][i] = d.site_xpos, d.site_xmat
        out["geom_xpos"][i], out["geom_xmat"][i] = d.geom_xpos, d.geom_xmat
        out["qpos"][i] = d.qpos
        out["mocap_pos"][i], out["mocap_quat"][i] = d.mocap_pos, d.mocap_quat
        if self.touch_ids is not None:
            out["touching"][i] = touching_object(d, *self.touch_ids)

    def reset_host(self, vector: np.ndarray):
        """NumPy: reset vectors ``[..., n]`` -> (physics bits, model pos bits, qvel, kinematics,
        task parameters by name), float32 but for the bits."""
        vector = np.asarray(vector)
        batch = vector.shape[:-1]
        vec = vector.reshape(-1, vector.shape[-1]).astype(np.float64)
        b = vec.shape[0]
        if self.min_obj_goal_xy is not None:
            bad = np.linalg.norm(vec[:, :2] - vec[:, 3:5], axis=1) < self.min_obj_goal_xy
            if bad.any():
                raise ValueError(f"{self.task_name}: reset vector {vec[bad][0].tolist()} puts object and goal closer "
                                 f"than {self.min_obj_goal_xy} in x, y (Meta-World would redraw it forever)")
        physics = np.zeros((b, self.nstate))
        pos = np.zeros((b, self.npos))
        qvel = np.zeros((b, self.model.nv), np.float32)
        kin = self._kinematics_buffers(b)
        params = {k: np.zeros((b,) + self._param_shape(k), np.float32) for k in self.param_names}

        def run(w_index, lo, hi):
            w = self.workers[w_index]
            for i in range(lo, hi):
                w.reset(vec[i])
                mujoco.mj_getState(w.model, w.data, physics[i], STATE_SPEC)
                pos[i] = w.model_pos()
                qvel[i] = w.data.qvel
                self._read_kinematics(kin, i, w.data)
                for k in self.param_names:
                    if k != "fixture_pos":
                        params[k][i] = getattr(w.env, PARAM_ATTRS[k])
                if self.fixture_id is not None:
                    params["fixture_pos"][i] = w.model.body_pos[self.fixture_id]

        self._map(run, b)
        shape = lambda v: v.reshape(batch + v.shape[1:])
        return (_to_bits(physics).reshape(batch + (-1,)), _to_bits(pos).reshape(batch + (-1,)), shape(qvel),
                {k: shape(v) for k, v in kin.items()}, {k: shape(v) for k, v in params.items()})

    def step_host(self, physics_bits: np.ndarray, pos_bits: np.ndarray, action: np.ndarray):
        """NumPy: one Meta-World step of a batch -> (physics bits, qvel, kinematics arrays)."""
        action = np.asarray(action, np.float32)
        batch = action.shape[:-1]
        act = action.reshape(-1, 4)
        b = act.shape[0]
        state = _from_bits(np.asarray(physics_bits).reshape(b, -1)).copy()
        pos = _from_bits(np.asarray(pos_bits).reshape(b, -1))
        m = self.model
        # set_xyz_action, on the float32 action as Meta-World computes it.
        delta = np.clip(act[:, :3], -1, 1) * self.action_scale
        a = self.mocap_offset
        mocap = state[:, a : a + 3] + delta
        mocap = np.clip(mocap, self.mocap_low, self.mocap_high)
        a3 = act[:, 3].astype(np.float64)
        out = self._kinematics_buffers(b)
        qvel = np.zeros((b, m.nv), np.float32)

        def run(w_index, lo, hi):
            w = self.workers[w_index]
            d = w.data
            for i in range(lo, hi):
                w.step(state[i], pos[i], mocap[i], a3[i])
                mujoco.mj_getState(w.model, d, state[i], STATE_SPEC)
                self._read_kinematics(out, i, d)
                qvel[i] = d.qvel

        self._map(run, b)
        kin = {k: v.reshape(batch + v.shape[1:]) for k, v in out.items()}
        return _to_bits(state).reshape(batch + (-1,)), qvel.reshape(batch + (-1,)), kin

    # ------------------------------------------------------------------ JAX

    def _kinematics_shapes(self) -> dict:
        m = self.model
        f32 = lambda *s: jax.ShapeDtypeStruct(s, jnp.float32)
        shapes = dict(xpos=f32(m.nbody, 3), xquat=f32(m.nbody, 4), site_xpos=f32(m.nsite, 3),
                      site_xmat=f32(m.nsite, 9), geom_xpos=f32(m.ngeom, 3), geom_xmat=f32(m.ngeom, 9), qpos=f32(m.nq),
                      mocap_pos=f32(1, 3), mocap_quat=f32(1, 4))
        if self.touch_ids is not None:
            shapes["touching"] = f32()
        return shapes

    def reset(self, vector: jax.Array) -> tuple[NativeData, Kinematics, dict]:
        """``vector [n]`` float32 -> (data, kinematics, task parameters), through ``pure_callback``."""
        f32 = lambda *s: jax.ShapeDtypeStruct(s, jnp.float32)
        shapes = (
            jax.ShapeDtypeStruct((2 * self.nstate,), jnp.uint32), jax.ShapeDtypeStruct((2 * self.npos,), jnp.uint32),
            f32(self.model.nv), self._kinematics_shapes(), {k: f32(*self._param_shape(k)) for k in self.param_names},
        )
        physics, pos, qvel, kin, params = jax.pure_callback(
            self.reset_host, shapes, jnp.asarray(vector, jnp.float32), vmap_method="broadcast_all")
        data = NativeData(physics=physics, model_pos=pos, qpos=kin["qpos"], qvel=qvel, mocap_pos=kin["mocap_pos"],
                          mocap_quat=kin["mocap_quat"])
        return data, Kinematics(**kin), params

    def step(self, data: NativeData, action: jax.Array) -> tuple[NativeData, Kinematics]:
        """One Meta-World step (``pure_callback``; a ``vmap`` batch reaches the host as one call)."""
        shapes = (jax.ShapeDtypeStruct((2 * self.nstate,), jnp.uint32),
                  jax.ShapeDtypeStruct((self.model.nv,), jnp.float32), self._kinematics_shapes())
        physics, qvel, kin = jax.pure_callback(self.step_host, shapes, data.physics, data.model_pos,
                                               jnp.asarray(action, jnp.float32), vmap_method="broadcast_all")
        new = NativeData(physics=physics, model_pos=data.model_pos, qpos=kin["qpos"], qvel=qvel,
                         mocap_pos=kin["mocap_pos"], mocap_quat=kin["mocap_quat"])
        return new, Kinematics(**kin)
