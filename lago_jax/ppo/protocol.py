"""The one ``Prior`` protocol: what PPO needs of a prior (see :mod:`lago_jax.ppo` for the contract).

Kept in its own module with no heavy imports, so that code that only trains PPO (or types a
prior) does not load the LLM stack.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import jax

from lago_jax.distributions import Distribution


@runtime_checkable
class Prior(Protocol):
    """Any object with ``apply(prior_params, obs [B, obs_dim] raw float32, instruction_id [B] int32)
    -> Distribution`` over ``[B, A]``, pure and jittable. ``LLMPrior`` and ``MLPPrior``
    (:mod:`lago_jax.prior`) implement it; so can a user's own prior."""

    def apply(self, prior_params: Any, obs: jax.Array, instruction_id: jax.Array) -> Distribution:
        ...
