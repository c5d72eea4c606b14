"""A tiny pure-JAX point mass that must reach a goal: the env PPO's tests learn on.

The agent sits in ``[-1, 1]^2`` and must reach a random goal within ``goal_radius``.
Observation ``[6]``: position (2), goal (2), goal - position (2).

* ``PointMass(discrete=True)``: 5 actions (stay, +x, -x, +y, -y), each moving ``step_size``.
* ``PointMass(discrete=False)``: a 2-d velocity command in ``[-1, 1]^2`` times ``step_size``.

Reward is dense: the decrease in distance to the goal each step, plus ``success_bonus`` on the
step the goal is reached, which terminates the episode. An optimal policy's return is about
``initial_distance + success_bonus``; a random policy's is about 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from envs.core import Box, Discrete, Env, State, initial_flags

_MOVES = np.array([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1]], np.float32)


class PointMass(Env):
    def __init__(
        self,
        discrete: bool = True,
        step_size: float = 0.1,
        goal_radius: float = 0.1,
        success_bonus: float = 1.0,
        episode_length: int = 50,
    ):
        self.discrete = bool(discrete)
        self.step_size = float(step_size)
        self.goal_radius = float(goal_radius)
        self.success_bonus = float(success_bonus)
        self._episode_length = int(episode_length)

    @property
    def observation_size(self) -> int:
        return 6

    @property
    def action_space(self):
        return Discrete(5) if self.discrete else Box.uniform(2)

    @property
    def max_episode_steps(self) -> int:
        return self._episode_length

    @property
    def instructions(self):
        return ("Move the point to the goal.",)

    def _obs(self, pos, goal):
        return jnp.concatenate([pos, goal, goal - pos]).astype(jnp.float32)

    def reset(self, key: jax.Array) -> State:
        k1, k2 = jax.random.split(key)
        pos = jax.random.uniform(k1, (2,), jnp.float32, -1.0, 1.0)
        goal = jax.random.uniform(k2, (2,), jnp.float32, -1.0, 1.0)
        data = {"pos": pos, "goal": goal}
        return State(
            data=data,
            obs=self._obs(pos, goal),
            metrics={"distance": jnp.linalg.norm(goal - pos)},
            info={"instruction_id": jnp.zeros((), jnp.int32)},
            **initial_flags(),
        )

    def step(self, state: State, action: jax.Array) -> State:
        pos, goal = state.data["pos"], state.data["goal"]
        if self.discrete:
            delta = jnp.asarray(_MOVES)[action]
        else:
            delta = jnp.clip(action, -1.0, 1.0)
        new_pos = jnp.clip(pos + self.step_size * delta, -1.0, 1.0)
        d_old = jnp.linalg.norm(goal - pos)
        d_new = jnp.linalg.norm(goal - new_pos)
        success = (d_new < self.goal_radius).astype(jnp.float32)
        reward = (d_old - d_new) + self.success_bonus * success
        return state.replace(
            data={"pos": new_pos, "goal": goal},
            obs=self._obs(new_pos, goal),
            reward=reward.astype(jnp.float32),
            terminated=success,
            truncated=jnp.zeros((), jnp.float32),
            done=success,
            success=success,
            metrics=dict(state.metrics, distance=d_new),
        )
