"""CLEVR-Robot with language goals as a pure-functional MJX environment.

After google-research/clevr_robot_env as configured by KALM (``LangEnv``, perfect action
type, direct observations), which LaGO follows.

Action: an int32 ``a`` in ``[0, 40)``: ball ``a // 8`` is pushed in direction
``PUSH_DIRECTIONS[a % 8]``. The pusher is teleported to ``ball_xy - 0.15 * dir`` with zero
velocity, then the motors apply ``dir * 1.0`` for 40 physics steps (frame_skip 20, twice;
timestep 0.01): a ``lax.scan`` of ``mjx.step`` (``backend="mjx"``) or one batched call into
MuJoCo's C engine (``backend="mujoco"``, the default on CPU; :mod:`envs.clevr_robot.native`).

Observation ``[24]`` float32:

* ``[0:10]``  ball x, y, in ball order red, blue, green, purple, cyan (``obs[2 i : 2 i + 2]``),
* ``[10:15]`` one-hot of the goal's source ball,
* ``[15:20]`` one-hot of the goal's destination ball,
* ``[20:24]`` one-hot of the goal's direction (behind +y, left -x, front -y, right +x).

Goal ``(src, dst, direction)`` (see :mod:`envs.clevr_robot.instructions`): satisfied when
``src - dst`` points within 45 degrees of the direction and ``||src - dst|| < 0.39``. Reset
samples a goal that does not hold in the initial layout; the reward is 1 on the step the goal
becomes true, which terminates the episode. Episodes last at most 50 steps
(``max_episode_steps``; truncation is ``EpisodeWrapper``'s job).

``state.info``: ``goal`` ([3] int32), ``goal_id``, ``template_id`` (index into
``instructions.TEMPLATES``) and ``instruction_id`` (index into ``env.instructions``).

The instruction bank holds the env's own goals only (``goal_ids``, in that order) times its
templates: ``instruction_id = rank(goal_id) * len(templates) + slot``. With all 80 goals (the
default) the rank is the goal id. :attr:`ClevrRobot.goal_features` names the observation entries
that encode the goal (the one-hots), which a prior that must read the goal from language alone
leaves out (:mod:`envs.clevr_robot.splits`).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx

from envs.clevr_robot import instructions as lang
from envs.clevr_robot import scene
from envs.clevr_robot.native import NativeData, NativePhysics
from envs import mjx_impl
from envs.core import Discrete, Env, State, initial_flags

PUSH_DIRECTIONS = np.array(
    [[1, 0], [0, 1], [-1, 0], [0, -1], [0.8, 0.8], [-0.8, 0.8], [0.8, -0.8], [-0.8, -0.8]], np.float32
)
NUM_ACTIONS = scene.NUM_BALLS * len(PUSH_DIRECTIONS)
PUSH_OFFSET = 0.15  # the pusher starts this far (times |dir|) behind the ball's centre
PUSH_STEPS = 40  # physics steps per env step: frame_skip 20, twice
PUSH_CONTROL = 1.0
SUCCESS_DISTANCE = 0.39  # KALM: 0.13 * 2 + 0.13
X_RANGE = (-0.5, 0.5)  # initial ball centres
Y_RANGE = (-0.3, 0.5)
MIN_GAP = 0.1  # between ball surfaces at reset
MIN_CENTER_DISTANCE = 2 * scene.BALL_RADIUS + MIN_GAP
OBS_SIZE = 2 * scene.NUM_BALLS + 2 * scene.NUM_BALLS + len(lang.DIRECTIONS)
GOAL_FEATURES = tuple(range(2 * scene.NUM_BALLS, OBS_SIZE))
"""Observation entries that encode the goal (source, destination and direction one-hots)."""

BACKENDS = ("auto", "mjx", "mujoco")
# qpos indices of the balls' x, y: [5, 2]
BALL_XY_QPOS = np.array([[a, a + 1] for a in scene.BALL_QPOS], np.int32)
# Fallback layout: 6 slots on a grid (0.4 apart in x, 0.6 in y); 5 are used, each jittered
# by at most FALLBACK_JITTER per axis, so centres stay >= 0.4 - 2 * 0.01 = 0.38 apart.
FALLBACK_SLOTS = np.array([[-0.4, -0.2], [0.0, -0.2], [0.4, -0.2], [-0.4, 0.4], [0.0, 0.4], [0.4, 0.4]], np.float32)
FALLBACK_JITTER = 0.01


def _sequential_attempt(key: jax.Array, candidates: int) -> tuple[jax.Array, jax.Array]:
    """Place balls one by one, each at its first candidate clear of the balls placed before.

    Returns ``(xy [5, 2], ok)``; ``ok`` is False when some ball had no clear candidate.
    """
    lo = jnp.array([X_RANGE[0], Y_RANGE[0]], jnp.float32)
    hi = jnp.array([X_RANGE[1], Y_RANGE[1]], jnp.float32)
    cands = jax.random.uniform(key, (scene.NUM_BALLS, candidates, 2), jnp.float32, lo, hi)
    placed = [cands[0, 0]]
    ok = jnp.array(True)
    for i in range(1, scene.NUM_BALLS):  # static unroll over the 5 balls
        prev = jnp.stack(placed)  # [i, 2]
        dist = jnp.linalg.norm(cands[i][:, None, :] - prev[None, :, :], axis=-1).min(axis=1)  # [K]
        clear = dist >= MIN_CENTER_DISTANCE
        placed.append(cands[i, jnp.argmax(clear)])
        ok = ok & clear.any()
    return jnp.stack(placed), ok


def fallback_layout(key: jax.Array) -> jax.Array:
    """A valid layout: 5 of the 6 grid slots in random order, jittered. ``[5, 2]``."""
    k_perm, k_jit = jax.random.split(key)
    slots = jax.random.permutation(k_perm, jnp.asarray(FALLBACK_SLOTS))[: scene.NUM_BALLS]
    return slots + jax.random.uniform(k_jit, slots.shape, jnp.float32, -FALLBACK_JITTER, FALLBACK_JITTER)


def sample_layout(key: jax.Array, attempts: int = 8, candidates: int = 32) -> tuple[jax.Array, jax.Array]:
    """Initial ball centres ``[5, 2]`` and whether the fallback was used.

    Scheme (fixed work, always terminates, always valid): ``attempts`` independent sequential
    placements run in parallel; in each, ball ``i`` takes the first of ``candidates`` uniform
    draws from ``X_RANGE x Y_RANGE`` whose centre is at least ``MIN_CENTER_DISTANCE`` from
    every ball already placed (the first clear draw of an i.i.d. sequence is uniform over the
    clear region, as in the original's per-ball rejection loop with ``max_retries``
    candidates). The first attempt in which every ball found a clear draw is returned. If all
    attempts fail, :func:`fallback_layout` is returned, which is valid by construction (its
    slots are >= 0.38 apart after jitter and lie inside the ranges). Measured failure rate of
    one attempt with 32 candidates: ~18%, so the fallback is used with probability ~0.18^8,
    about 1e-6.
    """
    k_att, k_fb = jax.random.split(key)
    xy, ok = jax.vmap(_sequential_attempt, in_axes=(0, None))(jax.random.split(k_att, attempts), candidates)
    first = jnp.argmax(ok)
    any_ok = ok.any()
    layout = jnp.where(any_ok, xy[first], fallback_layout(k_fb))
    return layout, ~any_ok


def relation_holds(src_xy: jax.Array, dst_xy: jax.Array, direction: jax.Array) -> jax.Array:
    """Whether ``src`` lies in ``direction`` of ``dst``: angle of ``src - dst`` within 45
    degrees of the direction (``along > |across|``) and ``||src - dst|| < 0.39``. Bool."""
    delta = src_xy - dst_xy
    e = jnp.asarray(lang.DIRECTION_VECTORS)[direction]
    along = jnp.dot(delta, e)
    across = delta[0] * e[1] - delta[1] * e[0]
    return (along > jnp.abs(across)) & (jnp.linalg.norm(delta) < SUCCESS_DISTANCE)


def goal_satisfied(ball_xy: jax.Array, goal: jax.Array) -> jax.Array:
    """``ball_xy [5, 2]``, ``goal [3]`` int (src, dst, direction) -> bool."""
    return relation_holds(ball_xy[goal[0]], ball_xy[goal[1]], goal[2])


def goal_encoding(goal: jax.Array) -> jax.Array:
    """``[14]`` one-hots of src (5), dst (5) and direction (4)."""
    n = scene.NUM_BALLS
    return jnp.concatenate(
        [jax.nn.one_hot(goal[0], n), jax.nn.one_hot(goal[1], n), jax.nn.one_hot(goal[2], len(lang.DIRECTIONS))]
    ).astype(jnp.float32)


def decode_obs(obs: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Inverse of the observation layout: ``(ball_xy [5, 2], goal [3] int32)``."""
    n = scene.NUM_BALLS
    ball_xy = obs[: 2 * n].reshape(n, 2)
    src = jnp.argmax(obs[2 * n : 3 * n])
    dst = jnp.argmax(obs[3 * n : 4 * n])
    direction = jnp.argmax(obs[4 * n : 4 * n + len(lang.DIRECTIONS)])
    return ball_xy, jnp.stack([src, dst, direction]).astype(jnp.int32)


class ClevrRobot(Env):
    """CLEVR-Robot: push 5 balls to satisfy a spatial-relation goal given in language.

    Args:
      templates: which instruction templates episodes draw from: a split name (``"all"``,
        ``"train"``, ``"test"``), a count ``k`` (the first ``k``), indices, or None (all).
        ``env.instructions`` holds every goal rendered with exactly these templates.
      goal_ids: restrict the goals sampled at reset to these distinct ids (default: all 80), and
        the instruction bank to their instructions, in this order. If every allowed goal already
        holds in a layout (possible only for tiny sets), one is drawn anyway.
      episode_length: ``max_episode_steps`` (50).
      solver_iterations, ls_iterations: Newton iterations and line-search steps of the model.
      max_contact_points: optional cap on contacts kept per physics step (MJX).
      backend: which engine steps the model: ``"mjx"`` (MJX, jitted XLA; the choice on
        accelerators), ``"mujoco"`` (MuJoCo's C engine through ``jax.pure_callback``,
        :mod:`envs.clevr_robot.native`; 10x+ faster than MJX on a CPU) or ``"auto"`` (the
        default: ``"mujoco"`` when JAX's default backend is the CPU, else ``"mjx"``). Both step
        the same ``MjModel``; ``state.data`` is an ``mjx.Data`` or a :class:`NativeData`, both
        with ``qpos``/``qvel``.
      num_threads: threads of the ``"mujoco"`` backend (default: the CPU count).
      impl: MJX implementation of the ``"mjx"`` backend, ``"jax"`` (default) or ``"warp"`` (NVIDIA
        GPUs with mujoco >= 3.3.5; refused elsewhere: :mod:`envs.mjx_impl`; not yet run on a GPU here).
      layout_attempts, layout_candidates: see :func:`sample_layout`.
    """

    def __init__(
        self,
        templates: Sequence[int] | str | int | None = None,
        goal_ids: Sequence[int] | None = None,
        episode_length: int = 50,
        solver_iterations: int = 6,
        ls_iterations: int = 8,
        max_contact_points: int | None = None,
        layout_attempts: int = 8,
        layout_candidates: int = 32,
        backend: str = "auto",
        num_threads: int | None = None,
        impl: str = "jax",
    ):
        self.impl = mjx_impl.check_impl(impl)
        self.templates = lang.resolve_templates(templates)
        if goal_ids is None:
            goal_ids = range(lang.NUM_GOALS)
        goal_ids = tuple(int(g) for g in goal_ids)
        if (not goal_ids or any(not 0 <= g < lang.NUM_GOALS for g in goal_ids)
                or len(set(goal_ids)) != len(goal_ids)):
            raise ValueError(f"goal_ids must be a non-empty set of distinct ids in [0, {lang.NUM_GOALS}), got {goal_ids}")
        self.goal_ids = goal_ids
        self._goal_mask = np.zeros(lang.NUM_GOALS, bool)
        self._goal_mask[list(goal_ids)] = True
        self._goal_rank = np.full(lang.NUM_GOALS, -1, np.int32)  # goal id -> its row in the bank
        self._goal_rank[list(goal_ids)] = np.arange(len(goal_ids), dtype=np.int32)
        self._instructions = tuple(lang.render(t, lang.GOALS[g]) for g in goal_ids for t in self.templates)
        if int(episode_length) < 1:
            raise ValueError(f"episode_length must be >= 1, got {episode_length}")
        self._episode_length = int(episode_length)
        self.layout_attempts = int(layout_attempts)
        self.layout_candidates = int(layout_candidates)
        if backend not in BACKENDS:
            raise ValueError(f"backend={backend!r} is not one of {BACKENDS}")
        if backend == "auto":
            backend = "mujoco" if jax.default_backend() == "cpu" else "mjx"
        if backend == "mujoco" and self.impl != "jax":
            raise ValueError(f"impl={impl!r} is an MJX implementation; backend='mujoco' steps MuJoCo's C engine "
                             "(use backend='mjx')")
        self.backend = backend
        self.mj_model: mujoco.MjModel = scene.build_model(solver_iterations, ls_iterations, max_contact_points)
        self.mjx_model = mjx_impl.put_model(self.mj_model, self.impl)
        self.native = None
        if backend == "mujoco":
            self.native = NativePhysics(self.mj_model, push_offset=PUSH_OFFSET, push_control=PUSH_CONTROL,
                                        push_steps=PUSH_STEPS, directions=PUSH_DIRECTIONS,
                                        ball_xy_qpos=BALL_XY_QPOS, num_threads=num_threads)

    # ---- Env API -------------------------------------------------------------------------

    @property
    def observation_size(self) -> int:
        return OBS_SIZE

    @property
    def action_space(self) -> Discrete:
        return Discrete(NUM_ACTIONS)

    @property
    def instructions(self) -> tuple[str, ...]:
        return self._instructions

    @property
    def max_episode_steps(self) -> int:
        return self._episode_length

    @property
    def goal_features(self) -> tuple[int, ...]:
        """Observation entries that encode the goal (the one-hots ``[10:24]``)."""
        return GOAL_FEATURES

    @property
    def goals(self) -> np.ndarray:
        """``[80, 3]`` int32 (src, dst, direction) of every goal id."""
        return lang.GOALS

    def instruction_id(self, goal_id: int, template_slot: int) -> int:
        """Index in ``instructions`` of goal ``goal_id`` phrased with ``self.templates[template_slot]``."""
        rank = int(self._goal_rank[int(goal_id)])
        if rank < 0:
            raise ValueError(f"goal {goal_id} is not among this env's goal_ids {self.goal_ids}")
        return rank * len(self.templates) + int(template_slot)

    def reset(self, key: jax.Array) -> State:
        k_layout, k_goal, k_template = jax.random.split(key, 3)
        ball_xy, _ = sample_layout(k_layout, self.layout_attempts, self.layout_candidates)
        qpos = jnp.asarray(self.mj_model.qpos0, jnp.float32)
        qpos = qpos.at[BALL_XY_QPOS].set(ball_xy)
        # Only qpos is set: derived quantities (xpos, contacts, ...) are computed by the first
        # physics step, which is also where the pusher is placed. This keeps ``reset`` (run on
        # every step by ``AutoResetWrapper``) free of physics.
        if self.native is not None:
            data = NativeData(qpos=qpos, qvel=jnp.zeros(self.mj_model.nv, jnp.float32))
        else:
            data = mjx_impl.make_data(self.mjx_model, self.impl).replace(qpos=qpos)

        goals = jnp.asarray(lang.GOALS)
        holds = jax.vmap(goal_satisfied, in_axes=(None, 0))(ball_xy, goals)
        allowed = jnp.asarray(self._goal_mask)
        candidates = allowed & ~holds
        candidates = jnp.where(candidates.any(), candidates, allowed)
        gid = jax.random.categorical(k_goal, jnp.where(candidates, 0.0, -jnp.inf)).astype(jnp.int32)
        slot = jax.random.randint(k_template, (), 0, len(self.templates), jnp.int32)
        goal = goals[gid]
        info = {
            "goal": goal,
            "goal_id": gid,
            "template_id": jnp.asarray(self.templates, jnp.int32)[slot],
            "instruction_id": jnp.asarray(self._goal_rank)[gid] * len(self.templates) + slot,
        }
        return State(
            data=data,
            obs=self._obs(ball_xy, goal),
            metrics={"goal_distance": jnp.linalg.norm(ball_xy[goal[0]] - ball_xy[goal[1]])},
            info=info,
            **initial_flags(),
        )

    def step(self, state: State, action: jax.Array) -> State:
        if self.native is not None:
            data = self.native.push(state.data, action)
        else:
            data = push(self.mjx_model, state.data, action)
        ball_xy = data.qpos[BALL_XY_QPOS]
        goal = state.info["goal"]
        success = goal_satisfied(ball_xy, goal).astype(jnp.float32)
        return state.replace(
            data=data,
            obs=self._obs(ball_xy, goal),
            reward=success,
            terminated=success,
            truncated=jnp.zeros((), jnp.float32),
            done=success,
            success=success,
            metrics=dict(state.metrics, goal_distance=jnp.linalg.norm(ball_xy[goal[0]] - ball_xy[goal[1]])),
        )

    # ---- helpers -------------------------------------------------------------------------

    def _obs(self, ball_xy: jax.Array, goal: jax.Array) -> jax.Array:
        return jnp.concatenate([ball_xy.reshape(-1), goal_encoding(goal)]).astype(jnp.float32)

    def ball_xy(self, state: State) -> jax.Array:
        """Ball centres ``[..., 5, 2]`` of a (possibly batched) state."""
        return state.data.qpos[..., BALL_XY_QPOS]

    def describe(self, state: State) -> str:
        """The instruction text of an unbatched state (host side)."""
        return self._instructions[int(state.info["instruction_id"])]


def push(model: mjx.Model, data: mjx.Data, action: jax.Array) -> mjx.Data:
    """Execute one discrete push: teleport the pusher behind the ball, then 40 physics steps."""
    ball = action // len(PUSH_DIRECTIONS)
    direction = jnp.asarray(PUSH_DIRECTIONS)[action % len(PUSH_DIRECTIONS)]
    start = data.qpos[BALL_XY_QPOS][ball] - PUSH_OFFSET * direction
    p, v = scene.PUSHER_QPOS, scene.PUSHER_QVEL
    data = data.replace(
        qpos=data.qpos.at[p : p + 2].set(start),
        qvel=data.qvel.at[v : v + 2].set(0.0),
        ctrl=PUSH_CONTROL * direction,
    )

    def physics_step(d, _):
        return mjx.step(model, d), None

    data, _ = jax.lax.scan(physics_step, data, None, length=PUSH_STEPS)
    return data


def push_reference(model: mujoco.MjModel, data: mujoco.MjData, action: int) -> None:
    """The same push in plain ``mujoco`` (in place), for reference runs and parity tests."""
    ball, d = divmod(int(action), len(PUSH_DIRECTIONS))
    direction = PUSH_DIRECTIONS[d].astype(np.float64)
    xy = data.qpos[BALL_XY_QPOS[ball]]
    p, v = scene.PUSHER_QPOS, scene.PUSHER_QVEL
    data.qpos[p : p + 2] = xy - PUSH_OFFSET * direction
    data.qvel[v : v + 2] = 0.0
    data.ctrl[:] = PUSH_CONTROL * direction
    for _ in range(PUSH_STEPS):
        mujoco.mj_step(model, data)
