"""Guidance: the frozen prior's distribution over the states a rollout visited, and its softening.

The update calls :func:`with_prior` once, right after the rollout: the prior runs on all
``T x B`` visited states (or those of a random ``config.prior_fraction`` of the time steps),
flattened and split into chunks of ``config.prior_chunk`` rows, and its (softened) distribution
is stored on ``Transition.prior_dist`` for every epoch of the update to reuse.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from lago_jax.distributions import Categorical, DiagGaussian
from lago_jax.ppo.config import PPOConfig
from lago_jax.ppo.protocol import Prior
from lago_jax.ppo.rollout import Transition


def prior_distributions(prior: Prior, prior_params: Any, obs: jax.Array, instruction_id: jax.Array, chunk: int):
    """The frozen prior's distribution for every visited state: ``obs [T, B, O]``,
    ``instruction_id [T, B]`` -> a distribution with leaves ``[T, B, ...]``.

    The ``T * B`` states are flattened and evaluated ``chunk`` rows per call (``lax.map`` over
    ``ceil(T * B / chunk)`` chunks; the last one padded by repeating the final state, and the
    padding dropped), so each call of the LLM runs at a batch that fills the hardware rather than
    at the rollout's ``B``. The result does not depend on ``chunk`` beyond float rounding.
    """
    num_steps, num_envs = instruction_id.shape
    n = num_steps * num_envs
    chunk = max(1, min(int(chunk), n))
    num_chunks = -(-n // chunk)
    pad = num_chunks * chunk - n
    flat_obs = obs.reshape((n,) + obs.shape[2:])
    flat_ids = instruction_id.reshape(n)
    if pad:
        flat_obs = jnp.concatenate([flat_obs, jnp.repeat(flat_obs[-1:], pad, axis=0)])
        flat_ids = jnp.concatenate([flat_ids, jnp.repeat(flat_ids[-1:], pad, axis=0)])

    def one(x):
        return jax.lax.stop_gradient(prior.apply(prior_params, x[0], x[1]))

    dists = jax.lax.map(one, (flat_obs.reshape((num_chunks, chunk) + obs.shape[2:]),
                              flat_ids.reshape(num_chunks, chunk)))
    return jax.tree.map(lambda x: x.reshape((num_chunks * chunk,) + x.shape[2:])[:n].reshape(
        (num_steps, num_envs) + x.shape[2:]), dists)


def soften_prior(dist: Any, temperature: float = 1.0, min_std: float = 0.0):
    """The prior the KL term pulls toward, made less sharp: a categorical's logits divided by
    ``temperature``; a diagonal Gaussian's standard deviation multiplied by ``temperature`` and
    floored at ``min_std``. ``temperature = 1, min_std = 0`` returns ``dist`` itself (unchanged)."""
    if temperature == 1.0 and min_std == 0.0:
        return dist
    if isinstance(dist, Categorical):
        return Categorical(dist.logits / temperature)
    if isinstance(dist, DiagGaussian):
        log_std = dist.log_std + jnp.log(jnp.asarray(temperature, dist.log_std.dtype))
        if min_std > 0.0:
            log_std = jnp.maximum(log_std, jnp.log(jnp.asarray(min_std, log_std.dtype)))
        return DiagGaussian(dist.mean, log_std)
    raise TypeError(f"soften_prior: unsupported distribution {type(dist).__name__}")


def with_prior(traj: Transition, prior: Prior, prior_params: Any, config: PPOConfig, key: jax.Array) -> Transition:
    """``traj`` with ``prior_dist`` (softened by ``config.prior_temperature`` / ``prior_min_std``)
    on every state, or, when ``config.prior_fraction < 1``, on the states of
    ``max(1, round(T * prior_fraction))`` time steps drawn with ``key`` (without replacement) and
    ``prior_mask`` marking them; elsewhere the distribution holds zeros and is masked out."""
    num_steps = traj.instruction_id.shape[0]
    n_t = max(1, int(round(num_steps * config.prior_fraction)))
    if n_t >= num_steps:
        dist = prior_distributions(prior, prior_params, traj.obs, traj.instruction_id, config.prior_chunk)
        return traj.replace(prior_dist=soften_prior(dist, config.prior_temperature, config.prior_min_std))
    steps = jax.random.choice(key, num_steps, (n_t,), replace=False)
    sub = prior_distributions(prior, prior_params, traj.obs[steps], traj.instruction_id[steps], config.prior_chunk)
    sub = soften_prior(sub, config.prior_temperature, config.prior_min_std)
    dist = jax.tree.map(lambda x: jnp.zeros((num_steps,) + x.shape[1:], x.dtype).at[steps].set(x), sub)
    mask = jnp.zeros(traj.instruction_id.shape, jnp.float32).at[steps].set(1.0)
    return traj.replace(prior_dist=dist, prior_mask=mask)
