"""Collecting a rollout: ``T`` steps of ``B`` environments in one ``lax.scan``.

Each step: normalise the observation, evaluate the policy, sample an action per environment
(key ``fold_in(step_key, global_env_id)``), step the auto-resetting env and evaluate the critic
on the true next observation ``info["final_obs"]`` for bootstrapping. The *raw* observations
and instruction ids are stored; the prior is not evaluated here but afterwards, in the update,
on all ``T x B`` stored states at once (``lago_jax.ppo.guidance.prior_distributions``): large
batches are what make an LLM forward fast, and keeping the prior out of this scan lets every
PPO variant on one env share one compiled rollout.

Truncation: ``AutoResetWrapper`` keeps the pre-reset observation in ``info["final_obs"]``
(equal to ``obs`` on steps that did not end an episode). ``next_value = V(final_obs)`` is stored
for every step; GAE multiplies it by ``1 - terminated``, so a time-limit cut bootstraps from the
value of the state the episode was cut at, while a real termination bootstraps from 0.
"""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs.core import Box, Env, State
from lago_jax.distributions import Distribution
from lago_jax.normalization import ObsNormStats, normalize_obs
from lago_jax.ppo.networks import ActorCritic

EPISODE_METRICS = ("episode_return", "episode_length", "episode_success", "episode_done")


@struct.dataclass
class Transition:
    """One rollout, time-major. ``T`` steps, ``B`` environments (of this device).

    Attributes:
      obs: ``[T, B, obs_dim]`` float32 raw (un-normalised) observation the action was taken in.
      action: ``[T, B]`` int32 (discrete) or ``[T, B, A]`` float32 *unclipped* sample (continuous).
      log_prob: ``[T, B]`` log-prob of ``action`` under the behaviour policy.
      value: ``[T, B]`` critic value of ``obs``.
      reward: ``[T, B]`` reward of the step.
      terminated: ``[T, B]`` 1.0 where the step reached a terminal state.
      truncated: ``[T, B]`` 1.0 where the step hit the episode limit.
      done: ``[T, B]`` ``max(terminated, truncated)``.
      next_value: ``[T, B]`` critic value of ``info["final_obs"]`` (the true next observation).
      instruction_id: ``[T, B]`` int32 instruction of the episode.
      prior_dist: the prior's distribution for ``obs`` (leaves ``[T, B, A]``): None as collected,
        filled in by the update when there is a prior.
      prior_mask: ``[T, B]`` float32, 1.0 where ``prior_dist`` was evaluated, when the update
        evaluates the prior on a fraction of the time steps (``PPOConfig.prior_fraction < 1``);
        None otherwise (every state has its prior).
      metrics: episode statistics from ``EpisodeStatsWrapper`` (``EPISODE_METRICS``), ``[T, B]``.
    """

    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    done: jax.Array
    next_value: jax.Array
    instruction_id: jax.Array
    prior_dist: Any
    prior_mask: Any
    metrics: dict


def env_action(action: jax.Array, action_space) -> jax.Array:
    """The action sent to the env: clipped to the ``Box`` bounds (continuous), as is (discrete)."""
    if isinstance(action_space, Box):
        low = np.asarray(action_space.low, np.float32)
        high = np.asarray(action_space.high, np.float32)
        return jnp.clip(action, low, high)
    return action


def sample_actions(dist: Distribution, keys: jax.Array) -> jax.Array:
    """One independent sample per row: ``dist`` batched ``[B, ...]``, ``keys [B, 2]``."""
    return jax.vmap(lambda d, k: d.sample(k))(dist, keys)


def generate_rollout(
    network: ActorCritic,
    params: Any,
    obs_stats: ObsNormStats,
    env: Env,
    env_state: State,
    key: jax.Array,
    num_steps: int,
    env_ids: jax.Array,
    normalize: bool,
    obs_clip: float | None = None,
) -> tuple[State, Transition]:
    """Roll ``env`` (a batched step function over ``B`` envs) forward ``num_steps`` steps.

    Args:
      env: applies to a batch: ``env.step(State[B], action[B, ...]) -> State[B]`` (auto-resetting).
      env_ids: ``[B]`` int32 global env ids (sampling keys are ``fold_in(step_key, id)``).
    Returns: the env state after the rollout and the ``Transition`` ``[T, B, ...]``.
    """
    chex.assert_rank(env_ids, 1)
    chex.assert_axis_dimension(env_state.obs, 0, env_ids.shape[0])
    action_space = env.action_space

    def step(state: State, step_key: jax.Array):
        obs = state.obs
        x = normalize_obs(obs_stats, obs, normalize, obs_clip)
        dist, value = network.apply(params, x)
        keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(step_key, env_ids)
        action = sample_actions(dist, keys)
        log_prob = dist.log_prob(action)
        instruction_id = state.info["instruction_id"].astype(jnp.int32)
        nstate = env.step(state, env_action(action, action_space))
        final_obs = nstate.info["final_obs"]
        next_value = network.apply(params, normalize_obs(obs_stats, final_obs, normalize, obs_clip), method=ActorCritic.value)
        tr = Transition(
            obs=obs,
            action=action,
            log_prob=log_prob,
            value=value,
            reward=nstate.reward,
            terminated=nstate.terminated,
            truncated=nstate.truncated,
            done=nstate.done,
            next_value=next_value,
            instruction_id=instruction_id,
            prior_dist=None,
            prior_mask=None,
            metrics={k: nstate.metrics[k] for k in EPISODE_METRICS},
        )
        return nstate, tr

    keys = jax.random.split(key, num_steps)
    return jax.lax.scan(step, env_state, keys)
