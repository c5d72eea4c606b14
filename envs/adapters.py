"""Adapters that make environments written for other JAX RL libraries an :class:`envs.core.Env`.

* :class:`GymnaxEnv`: a gymnax ``Environment`` with its ``EnvParams``. gymnax's ``step``
  auto-resets; the adapter calls ``step_env`` and ``reset_env`` instead, so the episode is reset
  once, by :class:`envs.wrappers.AutoResetWrapper`, which keeps the finished episode's last
  observation in ``info["final_obs"]`` for bootstrapping. gymnax reports one ``done`` for both
  ways an episode ends; the adapter calls it a truncation when the episode reached
  ``params.max_steps_in_episode`` and a termination otherwise.
* :class:`BraxEnv`: a brax ``Env`` (``brax.envs.get_environment(name)``, without brax's own
  training wrappers). brax's ``done`` is a termination; there is no success signal (``success``
  is read from ``state.metrics[success_metric]`` when one is named, else 0), and the episode
  limit is the adapter's ``episode_length`` (brax applies it in its training wrappers).

Neither library is a dependency of this module: the adapted object is passed in. Both adapters
flatten observations to ``[observation_size]`` float32 and hold the wrapped env and its
parameters as static Python values (``GymnaxEnv.params`` is closed over, not traced).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from envs.core import Box, Discrete, Env, State, initial_flags


def _flat_obs(obs: jax.Array) -> jax.Array:
    return jnp.reshape(obs, (-1,)).astype(jnp.float32)


def _strong(tree: Any) -> Any:
    """``tree`` with Python scalars and weakly typed leaves as concrete-dtype arrays, so that the
    state a reset returns has the same types as the one a step returns (``lax.scan`` carries)."""
    return jax.tree.map(lambda x: jnp.array(x, dtype=jnp.asarray(x).dtype), tree)


class _Adapted(Env):
    """What both adapters report the same way: the sizes, spaces, instructions and episode limit
    their constructors read from the wrapped env."""

    _obs_size: int
    _action_space: Discrete | Box
    _instructions: Sequence[str]
    _limit: int | None

    @property
    def observation_size(self) -> int:
        return self._obs_size

    @property
    def action_space(self) -> Discrete | Box:
        return self._action_space

    @property
    def instructions(self) -> Sequence[str]:
        return self._instructions

    @property
    def max_episode_steps(self) -> int | None:
        return self._limit


class GymnaxEnv(_Adapted):
    """A gymnax environment as an :class:`envs.core.Env`.

    Args:
      env: a gymnax ``Environment`` (``env, params = gymnax.make("CartPole-v1")``).
      params: its ``EnvParams``; None uses ``env.default_params``.
      instructions: the instruction texts of the task (``info["instruction_id"]`` is always 0).

    ``State.data`` holds ``{"state": <gymnax EnvState>, "key": <PRNG key of the next step>}``.
    ``max_episode_steps`` is ``params.max_steps_in_episode``; a ``done`` on the step that reaches
    it is a truncation (the value of the next state is bootstrapped), any other ``done`` a
    termination. An episode that fails on exactly its last allowed step counts as truncated.
    """

    def __init__(self, env: Any, params: Any = None, instructions: Sequence[str] = ("",)):
        self.gymnax_env = env
        self.params = env.default_params if params is None else params
        self._instructions = tuple(instructions)
        if not self._instructions:
            raise ValueError("GymnaxEnv needs at least one instruction (use ('',) for none)")
        self._obs_size = int(math.prod(env.observation_space(self.params).shape))
        space = env.action_space(self.params)
        self._action_space = _convert_gymnax_space(space)
        self._action_shape = tuple(getattr(space, "shape", ()))
        limit = getattr(self.params, "max_steps_in_episode", None)
        self._limit = None if limit is None else int(limit)

    def reset(self, key: jax.Array) -> State:
        key, reset_key = jax.random.split(key)
        obs, gstate = self.gymnax_env.reset_env(reset_key, self.params)
        return State(
            data={"state": _strong(gstate), "key": key},
            obs=_flat_obs(obs),
            info={"instruction_id": jnp.zeros((), jnp.int32)},
            **initial_flags(),
        )

    def step(self, state: State, action: jax.Array) -> State:
        key, step_key = jax.random.split(state.data["key"])
        if isinstance(self._action_space, Box):
            action = jnp.reshape(action, self._action_shape)
        obs, gstate, reward, done, _ = self.gymnax_env.step_env(step_key, state.data["state"], action, self.params)
        done = jnp.asarray(done, jnp.float32)
        if self._limit is None:
            timed_out = jnp.zeros((), jnp.float32)
        else:
            timed_out = (gstate.time >= self._limit).astype(jnp.float32)
        truncated = done * timed_out
        terminated = done * (1.0 - timed_out)
        return state.replace(
            data={"state": _strong(gstate), "key": key},
            obs=_flat_obs(obs),
            reward=jnp.asarray(reward, jnp.float32),
            done=done,
            terminated=terminated,
            truncated=truncated,
            success=jnp.zeros((), jnp.float32),
        )


def _convert_gymnax_space(space: Any) -> Discrete | Box:
    """A gymnax ``Discrete`` or ``Box`` space as ours (a ``Box`` flattened to one axis)."""
    if hasattr(space, "n"):
        return Discrete(int(space.n))
    shape = tuple(getattr(space, "shape", ()))
    if hasattr(space, "low") and hasattr(space, "high"):
        low = np.broadcast_to(np.asarray(space.low, np.float32), shape).reshape(-1)
        high = np.broadcast_to(np.asarray(space.high, np.float32), shape).reshape(-1)
        return Box(tuple(float(x) for x in low), tuple(float(x) for x in high))
    raise TypeError(f"GymnaxEnv supports Discrete and Box action spaces, got {type(space).__name__}")


class BraxEnv(_Adapted):
    """A brax environment as an :class:`envs.core.Env`.

    Args:
      env: a brax ``Env`` without brax's training wrappers (``brax.envs.get_environment(name)``).
      episode_length: the episode limit :class:`envs.wrappers.EpisodeWrapper` applies (brax's
        training default is 1000); None leaves it to ``PPOConfig.episode_length``.
      success_metric: a key of the brax state's ``metrics`` that is the task's success predicate;
        None (default): ``success`` is always 0.
      instructions: the instruction texts of the task (``info["instruction_id"]`` is always 0).

    ``State.data`` is the brax ``State``; brax's ``done`` becomes ``terminated``, brax's
    ``metrics`` are passed through. Actions are in ``[-1, 1]^action_size``, as brax expects.
    """

    def __init__(self, env: Any, episode_length: int | None = 1000, success_metric: str | None = None,
                 instructions: Sequence[str] = ("",)):
        self.brax_env = env
        if episode_length is not None and int(episode_length) < 1:
            raise ValueError(f"BraxEnv needs episode_length >= 1 or None, got {episode_length!r}")
        self._limit = None if episode_length is None else int(episode_length)
        self.success_metric = success_metric
        self._instructions = tuple(instructions)
        if not self._instructions:
            raise ValueError("BraxEnv needs at least one instruction (use ('',) for none)")
        size = env.observation_size
        if not isinstance(size, int):
            raise TypeError(f"BraxEnv needs a flat observation (an int observation_size), got {size!r}")
        self._obs_size = int(size)
        self._action_space = Box.uniform(int(env.action_size))

    def _state(self, bstate: Any) -> State:
        done = jnp.asarray(bstate.done, jnp.float32)
        if self.success_metric is None:
            success = jnp.zeros((), jnp.float32)
        else:
            success = jnp.asarray(bstate.metrics[self.success_metric], jnp.float32)
        return State(
            data=bstate,
            obs=_flat_obs(bstate.obs),
            reward=jnp.asarray(bstate.reward, jnp.float32),
            done=done,
            terminated=done,
            truncated=jnp.zeros((), jnp.float32),
            success=success,
            metrics={k: jnp.asarray(v, jnp.float32) for k, v in bstate.metrics.items()},
            info={"instruction_id": jnp.zeros((), jnp.int32)},
        )

    def reset(self, key: jax.Array) -> State:
        return self._state(_strong(self.brax_env.reset(key)))

    def step(self, state: State, action: jax.Array) -> State:
        nstate = self._state(_strong(self.brax_env.step(state.data, action)))
        # Wrapper-level entries (step counters, reset keys) ride along in ``info``.
        return nstate.replace(info=dict(state.info, **nstate.info))
