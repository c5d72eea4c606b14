"""Meta-World tasks in JAX: ``MetaWorldEnv`` (one task) and ``MT10Env`` (several, batched per task).

Two engines step the physics (``backend``): MJX on a model edited for it (:mod:`envs.metaworld.model`),
or MuJoCo's C engine on Meta-World's unedited model (:mod:`envs.metaworld.native`; exact to
native Meta-World, and the faster one on a CPU). The observation, reward and success code below
serves both.

Semantics follow ``metaworld.sawyer_xyz_env.SawyerXYZEnv`` (metaworld 3.1.1):

* Action ``[4]`` in ``[-1, 1]``: the mocap target moves by ``clip(a[:3], -1, 1) / 100`` and is
  clipped to the task's mocap bounds (its ``hand_low``/``hand_high``); the two gripper position
  actuators get ``[a[3], -a[3]]``; then 5 physics steps (``frame_skip``) and the kinematics
  that ``mj_forward`` would compute.
* Observation ``[39]``: hand position (3), gripper opening ``||rightclaw - leftclaw|| / 0.1``
  clipped to ``[0, 1]`` (1), two object slots of position + quaternion (14, zero padded), the
  previous step's 18 values, and the goal (3): zeros by default (Meta-World's partially
  observable setting), the goal position with ``observe_goal=True``. Clipped like Meta-World's
  observation space. ``MT10Env(..., task_one_hot=True)`` appends a one-hot task id.
* Reward: version v2 of each task; ``State.success`` is the task's success flag at this step.
  Meta-World never terminates: ``terminated`` is always 0; the 500-step limit is applied by
  ``EpisodeWrapper`` (``max_episode_steps``), and ``EpisodeStatsWrapper`` records success at
  any step of the episode.
* Reset: Meta-World's ``reset_model``. The 50 hand-settling steps every Meta-World reset runs
  (mocap at ``hand_init_pos``, gripper open) do not depend on the random reset vector, so they
  run once on the host with MuJoCo on the task's original model; each JAX reset starts from
  that settled state, places objects and fixtures from a reset vector drawn from the task's
  own ranges (with its rejection rule), and runs the kinematics.

A fixture that a task moves at reset (the drawer, the button box) is moved by setting its
body position in the model used for that episode; the position lives in the state, so one
batch holds many task instances.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx

from envs import mjx_impl
from envs.core import Box, Env, State, initial_flags
from envs.multitask import MultiTaskEnv
from envs.metaworld import tasks as tasks_lib
from envs.metaworld.model import build_mj_model, check_max_contact_points, edits_for, native_mj_model
from envs.metaworld.native import NativeMetaWorld
from envs.metaworld.native_tasks import NATIVE_TASKS

BACKENDS = ("mjx", "mujoco", "auto")

FRAME_SKIP = 5
ACTION_SCALE = 1.0 / 100
MAX_EPISODE_STEPS = 500
HAND_SETTLE_STEPS = 50
# Meta-World's mocap quaternion [1, 0, 1, 0], normalised as MuJoCo's kinematics would.
MOCAP_QUAT = np.array([1.0, 0.0, 1.0, 0.0]) / np.sqrt(2.0)
# SawyerXYZEnv._HAND_SPACE: the bounds the hand position is clipped to in the observation.
HAND_SPACE_LOW = np.array([-0.525, 0.348, -0.0525])
HAND_SPACE_HIGH = np.array([0.525, 1.025, 0.7])
OBS_SIZE = 39
# Prefix of the task-parameter entries in ``state.info`` (e.g. ``"task/target_pos"``).
TASK_PARAM_PREFIX = "task/"


def _instructions_for(task_name: str) -> tuple[str, ...]:
    try:
        from envs.metaworld.instructions import INSTRUCTIONS  # written alongside this module
    except ImportError:
        INSTRUCTIONS = {}
    texts = INSTRUCTIONS.get(task_name) if isinstance(INSTRUCTIONS, dict) else None
    if texts:
        return tuple(texts)
    return (_FALLBACK_INSTRUCTIONS.get(task_name, task_name.replace("-v3", "").replace("-", " ")),)


_FALLBACK_INSTRUCTIONS = {
    "reach-v3": "Reach the goal position.",
    "push-v3": "Push the puck to the goal.",
    "pick-place-v3": "Pick up the puck and place it at the goal.",
    "door-open-v3": "Open the door.",
    "drawer-open-v3": "Open the drawer.",
    "drawer-close-v3": "Close the drawer.",
    "button-press-topdown-v3": "Press the button from the top.",
    "peg-insert-side-v3": "Insert the peg into the hole from the side.",
    "window-open-v3": "Open the window.",
    "window-close-v3": "Close the window.",
}


def _name_id(model: mujoco.MjModel, obj: mujoco.mjtObj, name: str) -> int:
    i = mujoco.mj_name2id(model, obj, name)
    if i < 0:
        raise KeyError(f"{obj.name} {name!r} not found in the model")
    return int(i)


def settle_hand(task: tasks_lib.Task) -> dict[str, np.ndarray]:
    """Meta-World's ``_reset_hand`` on the task's original model, from ``mj_resetData``.

    Returns qpos, qvel, qacc_warmstart after the settling, and what Meta-World reads right
    after it (without a new ``mj_forward``, as it does): ``init_tcp``, the pad positions and
    the settled object height ``obj_z`` (``obj`` body, where there is one).
    """
    m = native_mj_model(task.xml)
    d = mujoco.MjData(m)
    mujoco.mj_resetData(m, d)
    mocap_id = m.body_mocapid[_name_id(m, mujoco.mjtObj.mjOBJ_BODY, "mocap")]
    for _ in range(HAND_SETTLE_STEPS):
        d.mocap_pos[mocap_id][:] = task.hand_init_pos
        d.mocap_quat[mocap_id][:] = np.array([1.0, 0.0, 1.0, 0.0])
        d.ctrl[:] = np.array([-1.0, 1.0])
        mujoco.mj_step(m, d, nstep=FRAME_SKIP)
        mujoco.mj_rnePostConstraint(m, d)
    site = lambda n: d.site_xpos[_name_id(m, mujoco.mjtObj.mjOBJ_SITE, n)].copy()
    body = lambda n: d.xpos[_name_id(m, mujoco.mjtObj.mjOBJ_BODY, n)].copy()
    out = dict(
        qpos=d.qpos.copy(),
        qvel=d.qvel.copy(),
        qacc_warmstart=d.qacc_warmstart.copy(),
        init_tcp=(site("rightEndEffector") + site("leftEndEffector")) / 2.0,
        init_left_pad=body("leftpad"),
        init_right_pad=body("rightpad"),
    )
    obj = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "obj")
    out["obj_z"] = np.array(d.xpos[obj][2] if obj >= 0 else 0.0)
    head = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, "pegHead")
    out["peg_head"] = d.site_xpos[head].copy() if head >= 0 else np.zeros(3)
    return out


class MetaWorldEnv(Env):
    """One Meta-World task, stepped by MJX or by MuJoCo's C engine.

    Args:
      task_name: a Meta-World v3 name (``reach-v3``, ...); see :data:`tasks.TASKS`, and
        :data:`native_tasks.NATIVE_TASKS` for the tasks that run on ``backend="mujoco"`` only.
      observe_goal: put the goal position in ``obs[36:39]`` (Meta-World's fully observable
        setting); False (default) gives zeros there, like Meta-World's default.
      random_instruction: draw ``info["instruction_id"]`` uniformly at each reset (else 0).
      paraphrases: which of the task's paraphrases (indices into
        ``instructions.INSTRUCTIONS[task]``) make up ``env.instructions``, in this order (default:
        all twelve); the language protocol trains on some and holds out the rest.
      max_contact_points: opt-in speed knob, default off: MJX keeps only this many of the deepest
        contacts per condim group each physics step (1.2-1.4x env steps/s at a cap of 16 on door,
        drawer and window, B = 128, CPU; ``benchmarks/RESULTS_metaworld.md``). When more contacts are
        active the rest are lost, so the physics can differ from the default model's. The parity
        tests cover the default model; at a cap of 16 the scripted experts' success equals the
        uncapped rate on all ten MT10 tasks.
      impl: MJX implementation, ``"jax"`` (default) or ``"warp"`` (NVIDIA GPUs with mujoco >= 3.3.5;
        refused elsewhere with the install line: :mod:`envs.mjx_impl`; not yet run on a GPU here).
      backend: the physics engine. ``"mjx"`` (default): MJX on the edited model, jitted XLA, the
        engine for accelerators; its trajectories follow native Meta-World's within the gaps the
        parity tests state. ``"mujoco"``: MuJoCo's C engine on Meta-World's unedited model, through
        a host callback (:mod:`envs.metaworld.native`): observations, rewards, success equal native
        ``metaworld`` ``env.step`` to float32 rounding (``tests/test_metaworld_native.py``), and
        several times MJX's speed on a CPU. ``"auto"``: ``"mujoco"`` when JAX's default backend is
        the CPU, else ``"mjx"``. ``max_contact_points`` and ``impl`` are MJX options, refused with
        ``"mujoco"``.
      num_threads: host threads of the ``"mujoco"`` backend (default: the CPU count).

    ``state.info`` holds ``instruction_id``, ``reset_vector`` (Meta-World's ``_last_rand_vec``
    for this episode) and the episode's task parameters under ``"task/<name>"`` keys
    (``target_pos``, ``obj_init_pos``, ``init_tcp``, ...; read them with :meth:`task_params`).
    ``reset_to(reset_vector)`` starts the episode Meta-World would start from that vector.
    ``state.metrics`` carries the reward terms (``in_place``, ``grasp_reward``, ...).
    """

    def __init__(
        self,
        task_name: str,
        observe_goal: bool = False,
        random_instruction: bool = True,
        max_contact_points: int | None = None,
        impl: str = "jax",
        paraphrases: Sequence[int] | None = None,
        backend: str = "mjx",
        num_threads: int | None = None,
    ):
        if backend not in BACKENDS:
            raise ValueError(f"backend={backend!r} is not one of {BACKENDS}")
        if backend == "auto":
            backend = "mujoco" if jax.default_backend() == "cpu" else "mjx"
        if backend == "mujoco" and (impl != "jax" or max_contact_points is not None):
            raise ValueError(f"impl={impl!r} and max_contact_points={max_contact_points!r} are MJX options; "
                             "backend='mujoco' steps MuJoCo's C engine on the unedited model (use backend='mjx')")
        if backend == "mjx" and num_threads is not None:
            raise ValueError(f"num_threads={num_threads!r} sets the host threads of backend='mujoco'; "
                             "backend='mjx' has none")
        self.backend = backend
        self.impl = mjx_impl.check_impl(impl)
        if task_name in NATIVE_TASKS:
            if backend != "mujoco":
                raise ValueError(f"{task_name!r} runs on backend='mujoco' only (no MJX model is made for it); "
                                 f"MJX tasks: {sorted(tasks_lib.TASKS)}")
            self.task = NATIVE_TASKS[task_name]
        else:
            self.task = tasks_lib.get_task(task_name)
        self.task_name = task_name
        self.observe_goal = bool(observe_goal)
        self.random_instruction = bool(random_instruction)
        self._instructions = _instructions_for(task_name)
        if paraphrases is not None:
            idx = tuple(int(i) for i in paraphrases)
            n = len(self._instructions)
            if not idx or len(set(idx)) != len(idx) or any(not 0 <= i < n for i in idx):
                raise ValueError(f"paraphrases must be distinct indices in [0, {n}) of {task_name}'s instructions, "
                                 f"got {list(idx)}")
            self._instructions = tuple(self._instructions[i] for i in idx)

        task = self.task
        self.native = None
        if backend == "mujoco":
            self.max_contact_points = None
            self.native = NativeMetaWorld(task_name, self.observe_goal, num_threads, fixture_body=task.fixture_body,
                                          min_obj_goal_xy=task.min_obj_goal_xy, touch_geom=task.touch_geom)
            self.mj_model = self.native.model
            self.model_edits = ()
            self.mjx_model = None
        else:
            self.max_contact_points = check_max_contact_points(max_contact_points)
            self.mj_model = build_mj_model(task.xml, task.colliders, self.max_contact_points)
            self.model_edits = edits_for(task.xml, task.colliders, self.max_contact_points)
            self.mjx_model = mjx_impl.put_model(self.mj_model, self.impl)
        m = self.mj_model

        body = lambda n: _name_id(m, mujoco.mjtObj.mjOBJ_BODY, n)
        site = lambda n: _name_id(m, mujoco.mjtObj.mjOBJ_SITE, n)
        geom = lambda n: _name_id(m, mujoco.mjtObj.mjOBJ_GEOM, n)
        self._hand = body("hand")
        self._rightclaw, self._leftclaw = body("rightclaw"), body("leftclaw")
        self._rightpad, self._leftpad = body("rightpad"), body("leftpad")
        self._right_ee, self._left_ee = site("rightEndEffector"), site("leftEndEffector")
        ids = {}
        for n in task.names.get("bodies", ()):
            ids[n] = body(n)
        for n in task.names.get("sites", ()):
            ids[n] = site(n)
        for n in task.names.get("geoms", ()):
            ids[n] = geom(n)
        self._ids = ids
        self._fixture = body(task.fixture_body) if task.fixture_body else None

        if self.native is None:
            base = settle_hand(task)
            if base["qpos"].shape != (m.nq,) or base["qvel"].shape != (m.nv,):
                raise ValueError("the edited model's joints differ from Meta-World's model")
            self._base = {k: np.asarray(v, np.float32) for k, v in base.items()}
            self._native_param_names = ()
        else:
            self._native_param_names = self._param_names()
            missing = set(self._native_param_names) - set(self.native.param_names)
            if missing:
                raise ValueError(f"{task_name}: the native env holds no {sorted(missing)} for the reward")
        self._mocap_low = np.asarray(task.hand_low, np.float32)
        self._mocap_high = np.asarray(task.hand_high, np.float32)
        self._rand_low = np.asarray(task.rand_low, np.float32)
        self._rand_high = np.asarray(task.rand_high, np.float32)

    # ------------------------------------------------------------------ properties

    @property
    def observation_size(self) -> int:
        return OBS_SIZE

    @property
    def action_space(self) -> Box:
        return Box.uniform(4)

    @property
    def instructions(self) -> Sequence[str]:
        return self._instructions

    @property
    def max_episode_steps(self) -> int:
        return MAX_EPISODE_STEPS

    @property
    def goal_features(self) -> tuple[int, ...]:
        """Observation entries that tell the task: none within one task (the goal position at
        ``[36:39]`` is where, not what); a multi-task env adds its one-hot task id."""
        return ()

    # ------------------------------------------------------------------ reset

    def sample_reset_vector(self, key: jax.Array) -> jax.Array:
        """Meta-World's random reset vector: uniform in the task's reset space, with its rejection rule."""
        low, high = jnp.asarray(self._rand_low), jnp.asarray(self._rand_high)

        def draw(k):
            return jax.random.uniform(k, low.shape, jnp.float32, low, high)

        if self.task.min_obj_goal_xy is None:
            return draw(key)
        min_d = self.task.min_obj_goal_xy

        def bad(carry):
            _, v = carry
            return jnp.linalg.norm(v[:2] - v[3:5]) < min_d

        def redraw(carry):
            k, _ = carry
            k, sub = jax.random.split(k)
            return k, draw(sub)

        key, sub = jax.random.split(key)
        return jax.lax.while_loop(bad, redraw, (key, draw(sub)))[1]

    def _model(self, params: dict):
        if self._fixture is None:
            return self.mjx_model
        body_pos = self.mjx_model.body_pos.at[self._fixture].set(params["fixture_pos"])
        return self.mjx_model.replace(body_pos=body_pos)

    def reset(self, key: jax.Array) -> State:
        k_vec, k_instr = jax.random.split(key)
        state = self.reset_to(self.sample_reset_vector(k_vec))
        if self.random_instruction and len(self._instructions) > 1:
            iid = jax.random.randint(k_instr, (), 0, len(self._instructions), dtype=jnp.int32)
            state = state.replace(info=dict(state.info, instruction_id=iid))
        return state

    def reset_to(self, reset_vector: jax.Array) -> State:
        """Reset to the task instance given by Meta-World's reset vector (``env._last_rand_vec``)."""
        if self.native is not None:
            return self._native_reset_to(reset_vector)
        base = {k: jnp.asarray(v) for k, v in self._base.items()}
        rand = jnp.asarray(reset_vector, jnp.float32)
        qpos, qvel, params = self.task.reset(rand, base["qpos"], base["qvel"], base)
        params = dict(
            params,
            init_tcp=base["init_tcp"],
            hand_init_pos=jnp.asarray(self.task.hand_init_pos, jnp.float32),
        )
        if "fixture_pos" not in params:
            params["fixture_pos"] = jnp.zeros(3, jnp.float32)
        m = self._model(params)
        data = mjx_impl.make_data(self.mj_model, self.impl)
        data = data.replace(
            qpos=qpos,
            qvel=qvel,
            qacc_warmstart=base["qacc_warmstart"],
            mocap_pos=jnp.asarray(self.task.hand_init_pos, jnp.float32)[None],
            mocap_quat=jnp.asarray(MOCAP_QUAT, jnp.float32)[None],
            ctrl=jnp.array([-1.0, 1.0], jnp.float32),
        )
        data = mjx.kinematics(m, data)
        if self.task.post_reset is not None:
            params = self.task.post_reset(params, data.site_xpos, data.xpos, self._ids)
        if "target_pos" not in params:
            raise KeyError(f"{self.task_name}: reset defines no target_pos")
        curr = self._current(data)
        if self.task.reset_obs_object_offset is not None:
            curr = curr.at[4:7].add(jnp.asarray(self.task.reset_obs_object_offset, jnp.float32))
        obs = self._observation(curr, curr, params)
        # Flat keys: wrappers (auto-reset) select info entries leaf by leaf.
        info = dict(instruction_id=jnp.zeros((), jnp.int32), reset_vector=rand)
        info.update({TASK_PARAM_PREFIX + k: jnp.asarray(v, jnp.float32) for k, v in params.items()})
        metrics = {k: jnp.zeros((), jnp.float32) for k in self._metric_keys()}
        return State(data=data, obs=obs, metrics=metrics, info=info, **initial_flags())

    # ------------------------------------------------------------------ step

    @staticmethod
    def task_params(state: State) -> dict:
        """The episode's task parameters (``target_pos``, ``obj_init_pos``, ...) from ``state.info``."""
        n = len(TASK_PARAM_PREFIX)
        return {k[n:]: v for k, v in state.info.items() if k.startswith(TASK_PARAM_PREFIX)}

    def step(self, state: State, action: jax.Array) -> State:
        if self.native is not None:
            return self._native_step(state, action)
        params = self.task_params(state)
        m = self._model(params)
        d = state.data
        action = jnp.asarray(action, jnp.float32)
        delta = jnp.clip(action[:3], -1.0, 1.0) * ACTION_SCALE
        mocap = jnp.clip(d.mocap_pos[0] + delta, self._mocap_low, self._mocap_high)
        d = d.replace(
            mocap_pos=mocap[None],
            mocap_quat=jnp.asarray(MOCAP_QUAT, jnp.float32)[None],
            ctrl=jnp.stack([action[3], -action[3]]),
        )
        d = jax.lax.fori_loop(0, FRAME_SKIP, lambda _, x: mjx.step(m, x), d)
        d = mjx.kinematics(m, d)
        return self._scored(state, d, d, action, params)

    def _scored(self, state: State, data, kin, action: jax.Array, params: dict) -> State:
        """The state after a step: the new physics ``data``, and the observation, reward, success
        and reward terms computed from ``kin`` (positions as ``mjx.Data`` names them)."""
        curr = self._current(kin)
        obs = self._observation(curr, state.obs[:18], params)
        frame = self._frame(kin, obs, action, params)
        reward, success, terms = self.task.reward(frame)
        metrics = dict(state.metrics)
        for k in self._metric_keys():
            metrics[k] = jnp.asarray(terms.get(k, 0.0), jnp.float32)
        zero = jnp.zeros((), jnp.float32)
        return state.replace(
            data=data,
            obs=obs,
            reward=jnp.asarray(reward, jnp.float32),
            success=jnp.asarray(success, jnp.float32),
            terminated=zero,
            truncated=zero,
            done=zero,
            metrics=metrics,
        )

    # ------------------------------------------------------------------ C-engine backend

    def _param_names(self) -> tuple[str, ...]:
        """The task parameters the MJX reset puts in ``state.info`` (the same keys for both backends)."""
        names = {"init_tcp", "hand_init_pos", "fixture_pos"}
        z3 = jax.ShapeDtypeStruct((3,), jnp.float32)
        base = dict(obj_z=jax.ShapeDtypeStruct((), jnp.float32), init_tcp=z3, init_left_pad=z3, init_right_pad=z3,
                    peg_head=z3)
        rand = jax.ShapeDtypeStruct(np.shape(self.task.rand_low), jnp.float32)
        m = self.mj_model
        qpos, qvel = jax.ShapeDtypeStruct((m.nq,), jnp.float32), jax.ShapeDtypeStruct((m.nv,), jnp.float32)
        params = jax.eval_shape(self.task.reset, rand, qpos, qvel, base)[2]
        names |= set(params)
        if self.task.post_reset is not None:
            site = jax.ShapeDtypeStruct((m.nsite, 3), jnp.float32)
            body = jax.ShapeDtypeStruct((m.nbody, 3), jnp.float32)
            full = dict(params, init_tcp=z3, hand_init_pos=z3, fixture_pos=z3)
            names |= set(jax.eval_shape(lambda p, s, b: self.task.post_reset(p, s, b, self._ids), full, site, body))
        return tuple(sorted(names))

    def _native_reset_to(self, reset_vector: jax.Array) -> State:
        rand = jnp.asarray(reset_vector, jnp.float32)
        data, kin, native_params = self.native.reset(rand)
        params = {k: native_params[k] for k in self._native_param_names}
        # SawyerXYZEnv.reset: the current frame twice and the goal, not clipped.
        curr = self._current(kin)
        goal = params["target_pos"] if self.observe_goal else jnp.zeros(3, jnp.float32)
        obs = jnp.concatenate([curr, curr, goal]).astype(jnp.float32)
        info = dict(instruction_id=jnp.zeros((), jnp.int32), reset_vector=rand)
        info.update({TASK_PARAM_PREFIX + k: jnp.asarray(v, jnp.float32) for k, v in params.items()})
        metrics = {k: jnp.zeros((), jnp.float32) for k in self._metric_keys()}
        return State(data=data, obs=obs, metrics=metrics, info=info, **initial_flags())

    def _native_step(self, state: State, action: jax.Array) -> State:
        action = jnp.asarray(action, jnp.float32)
        data, kin = self.native.step(state.data, action)
        return self._scored(state, data, kin, action, self.task_params(state))

    # ------------------------------------------------------------------ pieces

    @staticmethod
    def _metric_keys() -> tuple[str, ...]:
        return ("in_place", "grasp_reward", "obj_to_target", "tcp_to_obj", "tcp_to_target")

    def _current(self, d) -> jax.Array:
        """Meta-World's ``_get_curr_obs_combined_no_goal`` ``[18]``."""
        hand = d.xpos[self._hand]
        gap = jnp.linalg.norm(d.xpos[self._rightclaw] - d.xpos[self._leftclaw])
        gap = jnp.clip(gap / 0.1, 0.0, 1.0)
        objects = self.task.objects(d.xpos, d.xquat, d.geom_xpos, d.geom_xmat, dict(self._ids, _site_xpos=d.site_xpos, _site_xmat=d.site_xmat))
        return jnp.concatenate([hand, gap[None], objects]).astype(jnp.float32)

    def _observation(self, curr, prev, params) -> jax.Array:
        """``[curr, prev, goal]`` clipped to Meta-World's observation space ``[39]``."""

        def clip18(x):
            hand = jnp.clip(x[:3], HAND_SPACE_LOW, HAND_SPACE_HIGH)
            gap = jnp.clip(x[3:4], -1.0, 1.0)
            return jnp.concatenate([hand, gap, x[4:]])

        if self.observe_goal:
            goal = jnp.clip(params["target_pos"], np.asarray(self.task.goal_low), np.asarray(self.task.goal_high))
        else:
            goal = jnp.zeros(3)
        return jnp.concatenate([clip18(curr), clip18(prev), goal]).astype(jnp.float32)

    def _frame(self, d, obs, action, params) -> tasks_lib.Frame:
        tcp = (d.site_xpos[self._right_ee] + d.site_xpos[self._left_ee]) / 2.0
        return tasks_lib.Frame(
            obs=obs,
            action=action,
            tcp=tcp,
            left_pad=d.xpos[self._leftpad],
            right_pad=d.xpos[self._rightpad],
            qpos=d.qpos,
            site_xpos=d.site_xpos,
            params=dict(params, _ids=self._ids),
            touching=getattr(d, "touching", None),
        )

    def evaluate(self, obs, action, tcp, left_pad, right_pad, qpos, site_xpos, params, touching=None):
        """The task's reward and success on explicit quantities (for checks against Meta-World)."""
        frame = tasks_lib.Frame(
            obs=jnp.asarray(obs, jnp.float32), action=jnp.asarray(action, jnp.float32), tcp=jnp.asarray(tcp, jnp.float32),
            left_pad=jnp.asarray(left_pad, jnp.float32), right_pad=jnp.asarray(right_pad, jnp.float32),
            qpos=jnp.asarray(qpos, jnp.float32), site_xpos=jnp.asarray(site_xpos, jnp.float32),
            params=dict({k: jnp.asarray(v, jnp.float32) for k, v in params.items()}, _ids=self._ids),
            touching=None if touching is None else jnp.asarray(touching, jnp.float32),
        )
        return self.task.reward(frame)


class MT10Env(MultiTaskEnv):
    """Several Meta-World tasks in one pre-batched env (:class:`envs.multitask.MultiTaskEnv`):
    ``envs_per_task`` copies of each task, tasks in blocks of rows in the order of
    ``task_names``; ``obs [N, 39 (+ num_tasks)]``. Train it directly (``lago_jax.ppo`` does not
    wrap or vmap a pre-batched env); ``task_env(name)`` gives one task as the policy sees it.

    Args:
      task_names: tasks, default the MT10 list (only those available are accepted).
      envs_per_task: sub-batch size per task.
      task_one_hot: append a one-hot task id to the observation (multi-task policies).
      episode_length: episode limit (Meta-World's 500 by default).
      observe_goal, max_contact_points, backend, num_threads: passed to every :class:`MetaWorldEnv`.
    """

    def __init__(
        self,
        task_names: Sequence[str] | None = None,
        envs_per_task: int = 1,
        task_one_hot: bool = True,
        episode_length: int = MAX_EPISODE_STEPS,
        observe_goal: bool = False,
        max_contact_points: int | None = None,
        backend: str = "mjx",
        num_threads: int | None = None,
    ):
        names = tuple(task_names) if task_names is not None else tasks_lib.MT10_TASKS
        if not names:
            raise ValueError("MT10Env needs at least one task")
        tasks = {n: MetaWorldEnv(n, observe_goal=observe_goal, max_contact_points=max_contact_points, backend=backend,
                                 num_threads=num_threads) for n in names}
        super().__init__(tasks, envs_per_task=envs_per_task, task_one_hot=task_one_hot, episode_length=episode_length)
