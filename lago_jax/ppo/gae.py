"""Generalised advantage estimation as a reverse ``lax.scan``.

    delta_t = r_t + gamma * (1 - terminated_t) * V(s'_t) - V(s_t)
    A_t     = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}
    target_t = A_t + V(s_t)

``V(s'_t)`` is ``next_values[t]``: the value of the true next observation (``info["final_obs"]``),
so a truncated step bootstraps from the state it was cut at and a terminated one from zero; the
advantage recursion stops at every episode end (terminated or truncated). The last step of the
rollout bootstraps from its own ``next_values[T-1]``.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


def compute_gae(
    rewards: jax.Array,
    values: jax.Array,
    next_values: jax.Array,
    terminated: jax.Array,
    dones: jax.Array,
    gamma: float,
    gae_lambda: float,
) -> tuple[jax.Array, jax.Array]:
    """All inputs ``[T, B]`` float32 -> ``(advantages [T, B], value_targets [T, B])``."""
    chex.assert_equal_shape([rewards, values, next_values, terminated, dones])
    deltas = rewards + gamma * (1.0 - terminated) * next_values - values

    def step(next_adv, xs):
        delta, done = xs
        adv = delta + gamma * gae_lambda * (1.0 - done) * next_adv
        return adv, adv

    _, advantages = jax.lax.scan(step, jnp.zeros_like(values[0]), (deltas, dones), reverse=True)
    return advantages, advantages + values
