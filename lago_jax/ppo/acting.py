"""Acting: the env stack PPO steps, and the rollout half of an update.

:func:`batched_env` builds the stack once per run (``make_ppo`` does, memoised on the env and the
settings it depends on); :func:`make_collect` takes that stack and returns ``collect(state) ->
(state, Batch)``: ``config.num_steps`` env steps of the policy (:func:`lago_jax.ppo.rollout.
generate_rollout`) and the key of the update's minibatch shuffles. It is memoised on exactly what
it depends on, so that runs differing only in prior or loss settings share one compiled rollout.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax

from envs.core import BatchedEnv, Env
from envs.wrappers import is_batched, wrap_for_training
from lago_jax import parallel
from lago_jax.ppo.rollout import Transition, generate_rollout


class Batch(NamedTuple):
    """What the rollout hands to learning: the ``Transition`` ``[T, B, ...]`` and the key of the
    update's minibatch shuffles (split from the train state's key together with the rollout's)."""

    traj: Transition
    epoch_key: jax.Array


class Collect(NamedTuple):
    """The rollout half of an update: ``fn(state) -> (state, Batch)`` (pure, for composing into
    the fused update) and ``jit``, the same function jitted on its own, donating the state."""

    fn: Callable
    jit: Callable


def memoised(cached: Callable, fresh: Callable, *args):
    """``cached(*args)`` (an ``lru_cache``) when the arguments hash, else ``fresh(*args)``."""
    try:
        hash(args)
    except TypeError:  # e.g. an unhashable env or prior: build afresh (retraces)
        return fresh(*args)
    return cached(*args)


def batched_env(env: Env, num_envs: int, episode_length: int | None = None, cached_reset: bool = False,
                mesh: Any = None) -> BatchedEnv:
    """The env PPO steps: ``env`` with the training stack, vmapped over ``num_envs``
    (:func:`envs.wrappers.wrap_for_training`), or ``env`` itself when it is pre-batched
    (:class:`envs.core.BatchedEnv`, e.g. :class:`envs.multitask.MultiTaskEnv`), after checking
    that the run's settings agree with it."""
    if not is_batched(env):
        return wrap_for_training(env, num_envs, episode_length, cached_reset)
    name = type(env).__name__
    if env.num_envs != num_envs:
        raise ValueError(f"PPOConfig.num_envs={num_envs} but the pre-batched {name} holds {env.num_envs} envs; "
                         "set num_envs to match")
    if episode_length is not None and episode_length != env.max_episode_steps:
        raise ValueError(f"PPOConfig.episode_length={episode_length} but the pre-batched {name} applies its own "
                         f"limit {env.max_episode_steps}; leave episode_length None or build the env with it")
    if cached_reset:
        raise ValueError(f"PPOConfig.cached_reset=True needs a plain env; the pre-batched {name} auto-resets itself")
    if mesh is not None:
        raise ValueError(f"a pre-batched env ({name}) runs on one device; pass mesh=None")
    return env


cached_batched_env = functools.lru_cache(maxsize=8)(batched_env)


def make_collect(network, env: BatchedEnv, num_steps: int, normalize: bool, mesh: Any, cached_reset: bool = False,
                 obs_clip: float | None = None) -> Collect:
    """``collect(state) -> (state, Batch)`` on the env stack ``env`` (from :func:`batched_env`).

    ``state`` is a :class:`lago_jax.ppo.train.TrainState`; collect reads its ``params``,
    ``obs_stats``, ``env_state`` and ``rng`` and returns it with the env state and key advanced.
    """
    n_dev = 1 if mesh is None else int(mesh.devices.size)
    local_envs = env.num_envs // n_dev
    axis_name = None if mesh is None else parallel.AXIS

    def collect(state) -> tuple[Any, Batch]:
        rng, rollout_key, epoch_key = jax.random.split(state.rng, 3)
        env_ids = parallel.global_env_ids(local_envs, axis_name)
        env_state = state.env_state
        if cached_reset:  # one fresh reset state per env per rollout (AutoResetWrapper.refresh)
            refresh_key = jax.random.fold_in(rollout_key, num_steps)
            env_state = env.refresh(env_state, jax.vmap(jax.random.fold_in, in_axes=(None, 0))(refresh_key, env_ids))
        env_state, traj = generate_rollout(
            network, state.params, state.obs_stats, env, env_state, rollout_key, num_steps, env_ids, normalize,
            obs_clip=obs_clip,
        )
        return state.replace(rng=rng, env_state=env_state), Batch(traj=traj, epoch_key=epoch_key)

    # The state going in is dead once the new one comes out: donate its buffers (the env state,
    # parameters and optimiser state are reused in place where XLA can alias them).
    return Collect(fn=collect, jit=jax.jit(collect, donate_argnums=0))


cached_collect = functools.lru_cache(maxsize=8)(make_collect)
