"""The KL weight beta over training: constant, linear decay, or PPO's adaptive-KL rule.

All schedules are pure functions of ``(beta, update_index, measured_kl)`` so they run inside
the jitted training scan. ``next_beta`` gives the beta for update ``update_index + 1`` after
update ``update_index`` measured ``measured_kl`` (the mean KL to the prior over its minibatches):

* ``constant``: ``beta_init`` forever.
* ``linear``: ``beta_init + (beta_final - beta_init) * min(i / (num_updates - 1), 1)`` at update i.
* ``adaptive``: ``beta * 2`` if ``kl > 1.5 * target``, ``beta / 2`` if ``kl < target / 1.5``,
  else unchanged; clipped to ``[beta_min, beta_max]``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from lago_jax.ppo.config import KL_SCHEDULES


@dataclasses.dataclass(frozen=True)
class BetaSchedule:
    """A beta schedule's static parameters."""

    kind: str = "constant"
    """One of :data:`lago_jax.ppo.config.KL_SCHEDULES`."""
    beta_init: float = 0.0
    """beta at update 0, >= 0."""
    beta_final: float = 0.0
    """beta at the last update (``linear``), >= 0."""
    num_updates: int = 1
    """Updates in the run (``linear``), >= 1."""
    kl_target: float = 0.01
    """Target KL (``adaptive``), > 0."""
    beta_min: float = 1e-4
    """Lower clip (``adaptive``), > 0."""
    beta_max: float = 10.0
    """Upper clip (``adaptive``), >= ``beta_min``."""

    def __post_init__(self):
        if self.kind not in KL_SCHEDULES:
            raise ValueError(f"BetaSchedule.kind={self.kind!r} is invalid: expected one of {KL_SCHEDULES}")
        if self.beta_init < 0 or self.beta_final < 0:
            raise ValueError(f"BetaSchedule needs beta_init, beta_final >= 0, got {self.beta_init}, {self.beta_final}")
        if self.num_updates < 1:
            raise ValueError(f"BetaSchedule.num_updates={self.num_updates} is invalid: expected >= 1")
        if not self.kl_target > 0:
            raise ValueError(f"BetaSchedule.kl_target={self.kl_target} is invalid: expected > 0")
        if not 0 < self.beta_min <= self.beta_max:
            raise ValueError(f"BetaSchedule needs 0 < beta_min <= beta_max, got {self.beta_min}, {self.beta_max}")

    def init(self) -> jax.Array:
        """beta for update 0, a float32 scalar."""
        return jnp.asarray(self.beta_init, jnp.float32)


def linear_beta(schedule: BetaSchedule, update_index: jax.Array) -> jax.Array:
    """The linear schedule's beta at ``update_index``."""
    frac = jnp.minimum(update_index / max(schedule.num_updates - 1, 1), 1.0)
    return jnp.asarray(schedule.beta_init + (schedule.beta_final - schedule.beta_init) * frac, jnp.float32)


def adaptive_beta(schedule: BetaSchedule, beta: jax.Array, measured_kl: jax.Array) -> jax.Array:
    """One step of PPO's adaptive-KL rule. A schedule that starts at ``beta_init = 0`` stays at 0
    (no prior guidance: vanilla PPO under every schedule), instead of being clipped up to
    ``beta_min`` and doubled from there."""
    up = measured_kl > 1.5 * schedule.kl_target
    down = measured_kl < schedule.kl_target / 1.5
    new = jnp.where(up, beta * 2.0, jnp.where(down, beta / 2.0, beta))
    new = jnp.clip(new, schedule.beta_min, schedule.beta_max)
    if schedule.beta_init == 0:
        new = jnp.zeros_like(new)
    return new.astype(jnp.float32)


def next_beta(schedule: BetaSchedule, beta: jax.Array, update_index: jax.Array, measured_kl: jax.Array) -> jax.Array:
    """beta for update ``update_index + 1``, given update ``update_index``'s ``beta`` and measured KL."""
    if schedule.kind == "constant":
        return jnp.asarray(beta, jnp.float32)
    if schedule.kind == "linear":
        return linear_beta(schedule, update_index + 1)
    return adaptive_beta(schedule, beta, measured_kl)
