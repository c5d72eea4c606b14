"""Wrappers: episode limit/truncation, auto-reset, episode statistics, vmap batching.

The usual stack for training is ``VmapWrapper(AutoResetWrapper(EpisodeStatsWrapper(
EpisodeWrapper(env, T))), B)``; :func:`wrap_for_training` builds it. Algorithm code never
resets an environment itself: ``AutoResetWrapper`` does it inside ``step``.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from envs.core import BatchedEnv, Box, Discrete, Env, State


class Wrapper(Env):
    """Forwards everything to the wrapped env."""

    def __init__(self, env: Env):
        self.env = env

    def reset(self, key: jax.Array) -> State:
        return self.env.reset(key)

    def step(self, state: State, action: jax.Array) -> State:
        return self.env.step(state, action)

    @property
    def observation_size(self) -> int:
        return self.env.observation_size

    @property
    def action_space(self) -> Discrete | Box:
        return self.env.action_space

    @property
    def instructions(self) -> Sequence[str]:
        return self.env.instructions

    @property
    def max_episode_steps(self) -> int | None:
        return self.env.max_episode_steps

    @property
    def unwrapped(self) -> Env:
        return self.env.unwrapped

    def __getattr__(self, name):
        # Only reached for attributes not found normally: delegate to the wrapped env.
        if name == "env":
            raise AttributeError(name)
        return getattr(self.env, name)


def episode_limit(env: Env, episode_length: int | None) -> int:
    """``episode_length`` or the env's own limit (``max_episode_steps``), checked to be >= 1."""
    length = episode_length if episode_length is not None else env.max_episode_steps
    if length is None or int(length) < 1:
        raise ValueError(f"episode_length must be >= 1, got {episode_length!r} (the env's own limit, "
                         f"max_episode_steps, is {env.max_episode_steps!r})")
    return int(length)


class EpisodeWrapper(Wrapper):
    """Counts steps; sets ``truncated`` when ``episode_length`` steps pass without termination."""

    def __init__(self, env: Env, episode_length: int | None = None):
        super().__init__(env)
        self.episode_length = episode_limit(env, episode_length)

    @property
    def max_episode_steps(self) -> int:
        return self.episode_length

    def reset(self, key):
        state = self.env.reset(key)
        info = dict(state.info, steps=jnp.zeros((), jnp.int32))
        return state.replace(info=info)

    def step(self, state, action):
        steps = state.info["steps"] + 1
        nstate = self.env.step(state, action)
        hit_limit = (steps >= self.episode_length).astype(jnp.float32)
        truncated = jnp.maximum(nstate.truncated, hit_limit * (1.0 - nstate.terminated))
        done = jnp.maximum(nstate.terminated, truncated)
        return nstate.replace(truncated=truncated, done=done, info=dict(nstate.info, steps=steps))


class EpisodeStatsWrapper(Wrapper):
    """Tracks the running episode return/length/success and the last finished episode's.

    ``metrics`` gains ``episode_return``, ``episode_length``, ``episode_success`` (the last
    *finished* episode's values, held until the next one finishes) and ``episode_done``
    (1 on the step an episode finishes). Success is success at any step of the episode.
    """

    _KEYS = ("episode_return", "episode_length", "episode_success", "episode_done")

    def reset(self, key):
        state = self.env.reset(key)
        z = jnp.zeros((), jnp.float32)
        info = dict(state.info, running_return=z, running_length=z, running_success=z)
        metrics = dict(state.metrics, **{k: z for k in self._KEYS})
        return state.replace(info=info, metrics=metrics)

    def step(self, state, action):
        nstate = self.env.step(state, action)
        ret = state.info["running_return"] + nstate.reward
        length = state.info["running_length"] + 1.0
        succ = jnp.maximum(state.info["running_success"], nstate.success)
        done = nstate.done
        keep = 1.0 - done
        metrics = dict(
            nstate.metrics,
            episode_return=jnp.where(done > 0, ret, state.metrics["episode_return"]),
            episode_length=jnp.where(done > 0, length, state.metrics["episode_length"]),
            episode_success=jnp.where(done > 0, succ, state.metrics["episode_success"]),
            episode_done=done,
        )
        info = dict(
            nstate.info, running_return=ret * keep, running_length=length * keep, running_success=succ * keep
        )
        return nstate.replace(info=info, metrics=metrics)


class AutoResetWrapper(Wrapper):
    """Resets an episode inside ``step`` when it is done.

    The returned state after a done step is the *new* episode's first state, carrying the
    done step's ``reward``/``done``/``terminated``/``truncated``/``success``; the last
    observation of the finished episode is kept in ``info["final_obs"]`` (for value
    bootstrapping on truncation). Wrapper-level counters in ``info`` (e.g. ``steps``) are taken
    from the fresh reset.

    Two ways to get the fresh state:

    * ``cached=False`` (full re-randomising reset): ``step`` runs ``env.reset`` with a key drawn
      from ``info["reset_key"]`` on every step. Under ``vmap`` both branches of the choice
      execute, so every step pays for a reset whether or not an episode ended.
    * ``cached=True`` (as brax and mujoco_playground do): the state holds a ready reset state in
      ``info["reset_state"]`` and ``step`` only selects it. :meth:`refresh` replaces it with a
      freshly drawn one; the PPO rollout calls it once per rollout, so every episode that starts
      in a rollout starts from a new random state, except that an env finishing two episodes
      within one rollout starts both from the same state. Without ``refresh`` every episode
      of an env restarts from the same state.
    """

    _OWN = ("reset_key", "final_obs", "reset_state")

    def __init__(self, env: Env, cached: bool = False):
        super().__init__(env)
        self.cached = bool(cached)

    def _ready(self, state: State) -> dict:
        return {"data": state.data, "obs": state.obs,
                "info": {k: v for k, v in state.info.items() if k not in self._OWN}}

    def reset(self, key):
        key, reset_key = jax.random.split(key)
        state = self.env.reset(key)
        info = dict(state.info, reset_key=reset_key, final_obs=state.obs)
        if self.cached:
            cache_key, info["reset_key"] = jax.random.split(reset_key)
            info["reset_state"] = self._ready(self.env.reset(cache_key))
        return state.replace(info=info)

    def refresh(self, state: State, key: jax.Array) -> State:
        """A cached-reset state with a freshly drawn reset state ready (no-op when not cached)."""
        if not self.cached:
            return state
        return state.replace(info=dict(state.info, reset_state=self._ready(self.env.reset(key))))

    def step(self, state, action):
        nstate = self.env.step(state, action)
        if self.cached:
            fresh, next_key = state.info["reset_state"], state.info["reset_key"]
        else:
            reset_key, next_key = jax.random.split(state.info["reset_key"])
            fresh = self._ready(self.env.reset(reset_key))
        done = nstate.done > 0

        def pick(new, old):
            return jnp.where(done, new, old)

        data = jax.tree.map(pick, fresh["data"], nstate.data)
        obs = pick(fresh["obs"], nstate.obs)
        fresh_info = fresh["info"]
        info = {}
        for k, v in nstate.info.items():
            info[k] = pick(fresh_info[k], v) if k in fresh_info else v
        # Episode statistics must persist across the reset: the stats wrapper sits inside
        # this one and already zeroed its running values on done.
        info["reset_key"] = next_key
        info["final_obs"] = nstate.obs
        return nstate.replace(data=data, obs=obs, info=info)


class VmapWrapper(Wrapper, BatchedEnv):
    """Batches an env over ``batch_size`` independent copies (leading axis of every leaf)."""

    def __init__(self, env: Env, batch_size: int):
        super().__init__(env)
        if batch_size < 1:
            raise ValueError(f"VmapWrapper needs batch_size >= 1, got {batch_size}")
        self.batch_size = int(batch_size)

    @property
    def num_envs(self) -> int:
        """The batch size (:class:`envs.core.BatchedEnv`)."""
        return self.batch_size

    def reset(self, key):
        keys = jax.random.split(key, self.batch_size)
        return jax.vmap(self.env.reset)(keys)

    def step(self, state, action):
        return jax.vmap(self.env.step)(state, action)

    def refresh(self, state, keys):
        """``AutoResetWrapper.refresh`` of every copy, one key per row (``keys [B, 2]``)."""
        return jax.vmap(self.env.refresh)(state, keys)


def is_batched(env: Env) -> bool:
    """Whether ``env`` is pre-batched: an :class:`envs.core.BatchedEnv` (``VmapWrapper``,
    :class:`envs.multitask.MultiTaskEnv`). Having a ``num_envs`` attribute does not make an env
    batched; subclassing ``BatchedEnv`` does."""
    return isinstance(env, BatchedEnv)


def training_env(env: Env, episode_length: int | None = None, cached_reset: bool = False) -> AutoResetWrapper:
    """The single-env training stack: episode limit -> episode statistics -> auto-reset."""
    return AutoResetWrapper(EpisodeStatsWrapper(EpisodeWrapper(env, episode_length)), cached=cached_reset)


def wrap_for_training(env: Env, num_envs: int, episode_length: int | None = None, cached_reset: bool = False) -> Env:
    """The standard training stack: :func:`training_env` vmapped over ``num_envs``."""
    return VmapWrapper(training_env(env, episode_length, cached_reset), num_envs)
