"""Action distributions and their closed-form KL divergences.

Two families, both ``flax.struct`` pytrees so they can be stored on transitions:

* ``Categorical(logits [..., A])``
* ``DiagGaussian(mean [..., D], log_std [..., D])``

``kl(p, q)`` is ``KL(p || q)`` in closed form, summed over the action dimensions for the
Gaussian. ``kl_divergence(pi, prior, direction)`` picks the direction used by LaGO:
``"reverse"`` is ``KL(pi || prior)`` (default), ``"forward"`` is ``KL(prior || pi)``.
"""

from __future__ import annotations

import math
from typing import Union

import jax
import jax.numpy as jnp
from flax import struct

_LOG_2PI = math.log(2.0 * math.pi)


@struct.dataclass
class Categorical:
    """Categorical over the last axis. ``logits [..., A]`` (unnormalised)."""

    logits: jax.Array

    @property
    def log_probs(self) -> jax.Array:
        return jax.nn.log_softmax(self.logits, axis=-1)

    def log_prob(self, action: jax.Array) -> jax.Array:
        """``action [...]`` int -> ``[...]``."""
        lp = self.log_probs
        return jnp.take_along_axis(lp, action[..., None].astype(jnp.int32), axis=-1)[..., 0]

    def entropy(self) -> jax.Array:
        lp = self.log_probs
        return -jnp.sum(jnp.exp(lp) * lp, axis=-1)

    def sample(self, key: jax.Array) -> jax.Array:
        return jax.random.categorical(key, self.logits, axis=-1).astype(jnp.int32)

    def mode(self) -> jax.Array:
        return jnp.argmax(self.logits, axis=-1).astype(jnp.int32)


@struct.dataclass
class DiagGaussian:
    """Diagonal Gaussian over the last axis. ``mean, log_std [..., D]``."""

    mean: jax.Array
    log_std: jax.Array

    def log_prob(self, action: jax.Array) -> jax.Array:
        """``action [..., D]`` -> ``[...]`` (summed over D)."""
        z = (action - self.mean) * jnp.exp(-self.log_std)
        return jnp.sum(-0.5 * z * z - self.log_std - 0.5 * _LOG_2PI, axis=-1)

    def entropy(self) -> jax.Array:
        return jnp.sum(self.log_std + 0.5 * (1.0 + _LOG_2PI), axis=-1)

    def sample(self, key: jax.Array) -> jax.Array:
        return self.mean + jnp.exp(self.log_std) * jax.random.normal(key, self.mean.shape, self.mean.dtype)

    def mode(self) -> jax.Array:
        return self.mean


Distribution = Union[Categorical, DiagGaussian]


def kl(p: Distribution, q: Distribution) -> jax.Array:
    """Closed-form ``KL(p || q)``, reduced over the action axis. Both of the same family."""
    if isinstance(p, Categorical) and isinstance(q, Categorical):
        lp, lq = p.log_probs, q.log_probs
        return jnp.sum(jnp.exp(lp) * (lp - lq), axis=-1)
    if isinstance(p, DiagGaussian) and isinstance(q, DiagGaussian):
        var_ratio = jnp.exp(2.0 * (p.log_std - q.log_std))
        mean_term = jnp.square((p.mean - q.mean) * jnp.exp(-q.log_std))
        return jnp.sum(0.5 * (var_ratio + mean_term - 1.0) - (p.log_std - q.log_std), axis=-1)
    raise TypeError(f"kl needs two distributions of the same family, got {type(p).__name__} and {type(q).__name__}")


KL_DIRECTIONS = ("reverse", "forward")


def kl_divergence(pi: Distribution, prior: Distribution, direction: str = "reverse") -> jax.Array:
    """LaGO's penalty: ``"reverse"`` = KL(pi || prior), ``"forward"`` = KL(prior || pi)."""
    if direction == "reverse":
        return kl(pi, prior)
    if direction == "forward":
        return kl(prior, pi)
    raise ValueError(f"unknown KL direction {direction!r}; expected one of {KL_DIRECTIONS}")
