"""The KL-guided PPO loss on one minibatch.

    L = L_clip + vf_coef * L_value - ent_coef * H[pi] + beta * mean(KL)

* ``L_clip = -mean(min(r * A, clip(r, 1 - eps, 1 + eps) * A))``, ``r = exp(logp - logp_old)``,
  ``A`` standardised over the minibatch when ``normalize_advantages`` (mean and variance averaged
  over devices under data parallelism).
* ``L_value = 0.5 * mean(max((V - R)^2, (V_clip - R)^2))`` with
  ``V_clip = V_old + clip(V - V_old, -eps, eps)`` when ``clip_value``, else ``0.5 * mean((V - R)^2)``.
* ``KL = kl_divergence(pi, prior_dist, kl_direction)`` per sample (closed form); the term is
  absent when the batch has no ``prior_dist`` (prior=None). With ``beta = 0`` it adds exactly 0.
  When the batch carries a ``prior_mask`` (the prior evaluated on a fraction of the states), the
  mean runs over the masked samples only: ``sum(mask * KL) / max(sum(mask), 1)``.
"""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp

from lago_jax import parallel
from lago_jax.distributions import kl_divergence
from lago_jax.normalization import ObsNormStats, normalize_obs
from lago_jax.ppo.networks import ActorCritic
from lago_jax.ppo.rollout import Transition

ADV_EPS = 1e-8


def ppo_loss(
    params: Any,
    network: ActorCritic,
    obs_stats: ObsNormStats,
    batch: Transition,
    advantages: jax.Array,
    targets: jax.Array,
    beta: jax.Array,
    config,
    axis_name: str | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Loss and metrics on a flat minibatch.

    Args:
      batch: a ``Transition`` with leaves ``[N, ...]`` (N samples of this device).
      advantages, targets: ``[N]`` from :func:`lago_jax.ppo.gae.compute_gae`.
      beta: scalar KL weight.
      config: a ``PPOConfig`` (clip_eps, clip_value, vf_coef, ent_coef, normalize_advantages,
        normalize_obs, kl_direction).
    Returns: ``(loss, metrics)``; metrics are this device's scalars.
    """
    chex.assert_rank([advantages, targets, batch.log_prob, batch.value], 1)
    chex.assert_equal_shape([advantages, targets, batch.log_prob, batch.value])
    dist, value = network.apply(params, normalize_obs(obs_stats, batch.obs, config.normalize_obs, config.obs_clip))
    log_prob = dist.log_prob(batch.action)
    log_ratio = log_prob - batch.log_prob
    ratio = jnp.exp(log_ratio)

    adv = advantages
    if config.normalize_advantages:
        mean = parallel.pmean(jnp.mean(adv), axis_name)
        var = parallel.pmean(jnp.mean(jnp.square(adv - mean)), axis_name)
        adv = (adv - mean) / (jnp.sqrt(var) + ADV_EPS)
    eps = config.clip_eps
    pg_loss = -jnp.mean(jnp.minimum(ratio * adv, jnp.clip(ratio, 1.0 - eps, 1.0 + eps) * adv))

    if config.clip_value:
        v_clipped = batch.value + jnp.clip(value - batch.value, -eps, eps)
        value_loss = 0.5 * jnp.mean(jnp.maximum(jnp.square(value - targets), jnp.square(v_clipped - targets)))
    else:
        value_loss = 0.5 * jnp.mean(jnp.square(value - targets))

    entropy = jnp.mean(dist.entropy())
    loss = pg_loss + config.vf_coef * value_loss - config.ent_coef * entropy
    if batch.prior_dist is not None:
        kl = kl_divergence(dist, batch.prior_dist, config.kl_direction)
        if batch.prior_mask is None:
            kl_prior = jnp.mean(kl)
        else:
            kl_prior = jnp.sum(batch.prior_mask * kl) / jnp.maximum(jnp.sum(batch.prior_mask), 1.0)
        loss = loss + beta * kl_prior
    else:
        kl_prior = jnp.zeros((), jnp.float32)

    metrics = dict(
        total_loss=loss,
        policy_loss=pg_loss,
        value_loss=value_loss,
        entropy=entropy,
        kl_prior=kl_prior,
        approx_kl=jnp.mean((ratio - 1.0) - log_ratio),
        clip_frac=jnp.mean((jnp.abs(ratio - 1.0) > eps).astype(jnp.float32)),
    )
    return loss, metrics
