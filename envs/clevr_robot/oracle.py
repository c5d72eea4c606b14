"""A scripted CLEVR-Robot policy that solves goals from the observation (pure JAX).

Model of one push: the pushed ball moves ``PUSH_DISTANCE`` (0.21, the mean measured in the
scene, std about 0.05) along the push direction and nothing else moves; positions are clipped
to the region the walls allow. The goal's target is ``src - dst = TARGET_DISTANCE * e`` (the
middle of the success region, between touching, 0.26, and the 0.39 limit). Every one of the
40 actions is scored with ``lookahead``-step search over that model (the cost of the best
continuation):

* cost: distance of the predicted ``src - dst`` to the target offset;
* penalty ``BLOCK_PENALTY`` when the pushed ball's path passes through the other goal ball
  (it would shove it instead), ``CROWD_PENALTY`` when it passes through any other ball;
* each extra push costs ``STEP_COST``; a small random jitter (``TIE_NOISE``) breaks ties
  and cycles.

The cheapest action is taken. The policy reads only the observation, so it works batched
under ``vmap`` and inside ``collect_demonstrations``. Its measured success rate is recorded
in ``benchmarks/RESULTS_clevr.md``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from envs.clevr_robot import instructions as lang
from envs.clevr_robot import scene
from envs.clevr_robot.env import NUM_ACTIONS, PUSH_DIRECTIONS, decode_obs

PUSH_DISTANCE = 0.21
TARGET_DISTANCE = 0.32
BLOCK_PENALTY = 0.5
CROWD_PENALTY = 0.05
TIE_NOISE = 0.01
STEP_COST = 0.03  # prefer reaching the target in fewer pushes
# ball centres stay within the walls: x in [-0.52, 0.52], y in [-0.32, 0.57]
_XY_LOW = np.array([-scene.WALL_X + scene.BALL_RADIUS, scene.WALL_Y_LOW + scene.BALL_RADIUS], np.float32)
_XY_HIGH = np.array([scene.WALL_X - scene.BALL_RADIUS, scene.WALL_Y_HIGH - scene.BALL_RADIUS], np.float32)
_UNIT_DIRS = PUSH_DIRECTIONS / np.linalg.norm(PUSH_DIRECTIONS, axis=1, keepdims=True)


def _segment_point_distance(a: jax.Array, b: jax.Array, p: jax.Array) -> jax.Array:
    """Distance from points ``p [..., 2]`` to the segment ``a -> b``."""
    ab = b - a
    t = jnp.clip(jnp.sum((p - a) * ab, -1) / jnp.maximum(jnp.sum(ab * ab), 1e-9), 0.0, 1.0)
    return jnp.linalg.norm(a + t[..., None] * ab - p, axis=-1)


def predict_push(ball_xy: jax.Array, action: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Model of one push: ``(new ball_xy [5, 2], crossed [5] bool)``; ``crossed[j]`` says the
    pushed ball's path comes within two radii of ball ``j``."""
    ball = action // len(PUSH_DIRECTIONS)
    u = jnp.asarray(_UNIT_DIRS)[action % len(PUSH_DIRECTIONS)]
    start = ball_xy[ball]
    end = jnp.clip(start + PUSH_DISTANCE * u, _XY_LOW, _XY_HIGH)
    dist = _segment_point_distance(start, end, ball_xy)
    crossed = (dist < 2 * scene.BALL_RADIUS) & (jnp.arange(scene.NUM_BALLS) != ball)
    return ball_xy.at[ball].set(end), crossed


def goal_cost(ball_xy: jax.Array, goal: jax.Array) -> jax.Array:
    """Distance of ``src - dst`` to the target offset ``TARGET_DISTANCE * e``."""
    e = jnp.asarray(lang.DIRECTION_VECTORS)[goal[2]]
    return jnp.linalg.norm(ball_xy[goal[0]] - ball_xy[goal[1]] - TARGET_DISTANCE * e)


def action_costs(ball_xy: jax.Array, goal: jax.Array, lookahead: int = 2) -> jax.Array:
    """``[40]`` cost of each action: model cost after it plus the best ``lookahead - 1`` more."""
    actions = jnp.arange(NUM_ACTIONS)

    def one(xy, a):
        new_xy, crossed = predict_push(xy, a)
        ball = a // len(PUSH_DIRECTIONS)
        other_goal_ball = jnp.where(ball == goal[0], goal[1], goal[0])
        is_goal_ball = (ball == goal[0]) | (ball == goal[1])
        blocked = is_goal_ball & crossed[other_goal_ball]
        penalty = BLOCK_PENALTY * blocked + CROWD_PENALTY * crossed.sum()
        return new_xy, penalty

    def cost(xy, depth):
        new_xy, penalty = jax.vmap(one, in_axes=(None, 0))(xy, actions)
        if depth == 1:
            return jax.vmap(goal_cost, in_axes=(0, None))(new_xy, goal) + penalty
        future = jax.vmap(lambda x: jnp.min(cost(x, depth - 1)))(new_xy)
        here = jax.vmap(goal_cost, in_axes=(0, None))(new_xy, goal)
        # reaching the target now beats reaching it one push later
        return jnp.minimum(here, future + STEP_COST) + penalty

    return cost(ball_xy, lookahead)


def oracle_policy(obs: jax.Array, key: jax.Array, lookahead: int = 2) -> jax.Array:
    """``obs [24]`` (the env's layout), ``key`` -> action int32 in ``[0, 40)``."""
    ball_xy, goal = decode_obs(obs)
    costs = action_costs(ball_xy, goal, lookahead)
    costs = costs + TIE_NOISE * jax.random.uniform(key, costs.shape)
    return jnp.argmin(costs).astype(jnp.int32)


def random_policy(obs: jax.Array, key: jax.Array) -> jax.Array:
    """Uniform random action (the floor for learning curves)."""
    return jax.random.randint(key, (), 0, NUM_ACTIONS, jnp.int32)
